"""`raictl migrate [--repair] [--dry-run] [--yes] [--json] [--restore FILE]`: upgrade to head, repair the
schema additively, or restore a backup into an empty database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from raictl.errors import RaictlError

if TYPE_CHECKING:
    from raictl.migrate import MigrateResult, Plan
    from raishared.settings import Settings


def migrate(
    repair: Annotated[bool, typer.Option(
        "--repair", help="Reconcile the Alembic history with the live schema: re-stamp, finish a "
                         "half-applied revision, add what is missing. Never drops or alters.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan and its exact SQL; change nothing.")] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Apply a repair without asking (required when stdin is not a terminal).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", min=0, help="Seconds to wait for another migrate of this database to finish (default: "
                              "refuse at once). Exported systemd replicas use it: the first migrates.")] = 0.0,
    restore: Annotated[Optional[Path], typer.Option(
        "--restore", metavar="FILE", help="Replay a backup of <home>/backups/ into the (empty) database.")] = None,
) -> None:
    """Upgrade the database to head; with --repair, fix its history and schema additively (backup first)."""
    from raictl import render

    if restore is not None:
        from raictl import migrate as core
        from raishared.settings import load_settings

        render.restore_result(core.restore_backup(load_settings(), restore), as_json)
        return

    try:
        result = _run(repair, dry_run, yes, wait)
    except RaictlError as exc:
        if as_json:  # stdout still holds one JSON document; the error's line and hint go to stderr too
            render.migrate_failure(exc, dry_run)
        raise
    render.migrate_result(result, as_json)
    raise typer.Exit(0 if result.ok else 1)


def _run(repair: bool, dry_run: bool, yes: bool, wait: float = 0.0) -> MigrateResult:
    from raictl import migrate as core
    from raishared.settings import load_settings

    settings = load_settings()
    if dry_run:  # reads only: no lock, so a plan can be looked at while a repair waits for its answer
        return core.dry_run_result(_plan(settings, repair))
    with core.migrate_lock(settings.home, wait, database_url=settings.database_url):  # planned under the lock: a second run sees the first's result
        plan = _plan(settings, repair)
        if repair and plan.actions and not yes:
            _confirm(plan)
        return core.apply_plan(plan, settings.home)


def _plan(settings: Settings, repair: bool) -> Plan:
    from raictl import migrate as core

    return core.plan_repair(settings.database_url) if repair else core.plan_upgrade(settings.database_url)


def _confirm(plan: Plan) -> None:
    """Show the plan and ask; without a terminal, refuse rather than guess."""
    from raictl import render

    if not sys.stdin.isatty():
        raise RaictlError("migrate --repair changes the database schema and asks first, but stdin is not a terminal",
                          hint="rerun with --yes (or --dry-run to see the plan and its SQL)")
    render.migrate_plan(plan)
    if not render.ask("Apply these changes (a backup is taken first)?"):  # no, Ctrl-D or Ctrl-C
        raise RaictlError("repair cancelled: nothing was changed")


def register(app: typer.Typer) -> None:
    """Attach `migrate` to the raictl app."""
    app.command()(migrate)
