"""The console entry point, and the service commands' thin bodies (callable with or without Typer).

`raictl status [--json]`, `raictl up [SERVICE…] [--timeout S]` and `raictl down [SERVICE…]` in
these plain forms are answered here without importing Typer at all: Typer costs ~40 ms to import
and, when it parses a command's options, imports pydantic (~70 ms more on this machine). Those
are most of what `status` needs to beat `supervisorctl status`, and of what `up` may add to a
bare Popen. Any other command line (`--help`, other options, a bad value) goes to `raictl.cli`,
whose Typer commands in `raictl/commands/service.py` call the same `run_*` functions below.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from raictl.errors import RaictlError, debugging

if TYPE_CHECKING:
    from raictl.supervisor.control import UpResult

# command -> {option: type}: the plain forms answered without Typer
PLAIN_FORMS: dict[str, dict[str, Callable[[str], Any]]] = {"status": {"--json": bool}, "up": {"--timeout": float},
                                                          "down": {}}


def main() -> None:
    """Console entry point (`raictl`, `python -m raictl`)."""
    try:
        code = fast_path(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C while `up` waits: one line, not a traceback
        sys.stderr.write("\ninterrupted\nhint: what was already started keeps running: `raictl status` "
                         "shows it, `raictl down` stops it\n")
        raise SystemExit(130) from None
    if code is not None:
        exit_now(code)
    from raictl.cli import main as typer_main

    typer_main()


def exit_now(code: int) -> None:
    """Exit without the interpreter's tear-down of every module (measured ~18 ms after `up` with
    the supervisor modules loaded: most of what `up` added once the services were ready). Nothing
    needs it here: no atexit handler, no thread, no open file of ours; the output is flushed."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (`| head`): nothing more can reach it
        pass
    os._exit(code)


def parse_plain(argv: list[str]) -> tuple[str, list[str], dict[str, Any]] | None:
    """(command, names, options) when argv is one of PLAIN_FORMS exactly; None otherwise."""
    if not argv or argv[0] not in PLAIN_FORMS:
        return None
    options, rest = PLAIN_FORMS[argv[0]], list(argv[1:])
    names: list[str] = []
    values: dict[str, Any] = {}
    while rest:
        token = rest.pop(0)
        if options.get(token) is bool:
            values[token] = True
        elif token in options and rest:
            try:
                values[token] = options[token](rest.pop(0))
            except ValueError:
                return None
        elif token.startswith("-") or argv[0] == "status":
            return None
        else:
            names.append(token)
    return argv[0], names, values


def fast_path(argv: list[str]) -> int | None:
    """The exit code of a plain-form command, or None when Typer must parse argv."""
    parsed = parse_plain(argv)
    if parsed is None:
        return None
    command, names, values = parsed
    try:
        if command == "status":
            return run_status(values.get("--json", False))
        if command == "up":
            return run_up(names, values.get("--timeout", 60.0))
        return run_down(names)
    except RaictlError as exc:
        if debugging():
            raise
        from raictl import render

        render.error(exc)
        return exc.exit_code


def run_status(as_json: bool) -> int:
    """`raictl status`: 0 when every service is running and healthy, else 3."""
    from raictl import render
    from raictl.supervisor.status import overview
    from raishared.settings import load_settings

    view = overview(load_settings())
    render.service_status(view, as_json)
    return 0 if view.ok else 3


def run_up(names: list[str], timeout: float, replicas: int | None = None) -> int:
    from raictl.supervisor.entrycheck import early_import_checks, reap
    from raishared.settings import load_settings

    settings = load_settings(rai_api_replicas=replicas)  # a flag outranks rai_api.replicas; None: not given
    # the import checks' interpreters (~30 ms) start now, while the rest of raictl is imported
    checks = early_import_checks(settings, names)
    try:
        from raictl.supervisor.launch import up

        return finish_up(up(settings, names, timeout, progress(), checks))
    finally:
        reap(checks)


def run_restart(names: list[str], timeout: float) -> int:
    from raictl.supervisor.launch import restart
    from raishared.settings import load_settings

    return finish_up(restart(load_settings(), names, timeout, progress()))


def run_down(names: list[str]) -> int:
    """`raictl down`. Settings that do not load (a typo made while the stack runs) do not stop it:
    down then acts on what `<home>` records, with one warning line; it fails with the settings
    error only when no home can be found."""
    from raictl import render
    from raictl.supervisor import shutdown
    from raictl.supervisor.spec import all_specs
    from raishared.settings import load_settings

    try:
        settings = load_settings()
        home, known = settings.home, all_specs(settings)
    except RaictlError as exc:
        found = shutdown.home_without_settings()
        if found is None:
            raise
        home, known = found, None
        render.down_warning(f"the settings do not load ({exc.message}); stopping what {home} records")
    render.down_result(shutdown.down_in(home, names, known))
    return 0


def on_terminal() -> bool:
    """The live progress line is drawn (on stderr) only when both streams are a terminal: piped or
    redirected output, a script's or a CI log's, gets no carriage-return redraws."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress() -> Callable[[dict[str, str]], None] | None:
    """The live progress line, only on a terminal."""
    from raictl import render

    return render.up_progress if on_terminal() else None


def finish_up(result: UpResult) -> int:
    from raictl import render

    if on_terminal():
        render.up_progress_done()
    render.up_result(result)
    return 0 if result.ok else 1
