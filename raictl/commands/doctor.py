"""`raictl doctor [CHECK…] [--fix] [--yes] [--json] [-v]`: a thin command over raictl.doctor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, List, Optional

import typer


if TYPE_CHECKING:
    from raictl.doctor.context import Context
    from raictl.doctor.registry import Result


def doctor(
    checks: Annotated[Optional[List[str]], typer.Argument(
        help="Run only the checks whose id starts with these (e.g. rai_api, db.schema).")] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the safe fixes (each listed first), then check again.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before a database repair.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show each check's details.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the check ids and exit.")] = False,
) -> None:
    """Diagnose the stack: config, imports, ports on both loopbacks, health, wiring, engine, database, logs."""
    from raictl import doctor as core, render

    if list_:
        render.doctor_list(core.registered_checks(core.make_context()))
        return
    context = core.make_context()
    results = core.run_checks(checks, context)
    if fix:
        results = _fix(results, context, checks, yes)
    render.doctor_results(results, as_json=json_, verbose=verbose)
    raise typer.Exit(1 if any(r.status == "fail" for r in results) else 0)


def _fix(results: list[Result], context: Context, checks: list[str] | None, yes: bool) -> list[Result]:
    """List the applicable fixes, ask where needed, apply them, and check again."""
    from raictl import doctor as core
    from raictl import render
    from raictl.doctor.fixes import apply_fix, plan_fixes
    from raictl.doctor.runner import extra_specs
    from raictl.errors import RaictlError

    planned = plan_fixes(results, [s.name for s in extra_specs(context)])
    render.doctor_fix_plan(planned)
    if not planned or context.settings is None:
        return results
    for item in planned:
        declined = None if yes or not item.fix.confirm else _declined(item.fix.title)
        if declined:
            render.doctor_fix_outcome(item, f"skipped ({declined}; --yes applies it without asking)", ok=False)
            continue
        try:
            render.doctor_fix_outcome(item, apply_fix(item, context.settings), ok=True)
        except RaictlError as exc:
            render.doctor_fix_outcome(item, str(exc), ok=False)  # "MESSAGE (hint: HINT)"
    return core.run_checks(checks, core.make_context())


def _declined(question: str) -> str | None:
    """Why a fix that asks first is not applied; None when the answer (read from stdin, a pipe too)
    was yes. No answer (stdin closed, Ctrl-C) is a no, and doctor still reports."""
    from raictl import render

    return None if render.ask(f"{question}?") else "not confirmed"


def register(app: typer.Typer) -> None:
    """Attach `doctor` to the raictl app."""
    app.command()(doctor)
