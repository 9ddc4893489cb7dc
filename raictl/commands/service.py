"""`raictl up`, `down`, `restart`, `status`, `logs`: parse, call raictl.supervisor, render, exit code.

Exit codes: 0 ok, 1 a start or stop failed, 2 usage, 3 (status only) something is not running
or not healthy.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from raictl.cli import app
from raictl.settings import load_settings

Services = Annotated[Optional[list[str]], typer.Argument(help="Services (default: all).", show_default=False)]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for every service to be ready.")]


def _progress():
    from raictl import render

    return render.up_progress if sys.stderr.isatty() else None


def _finish_up(result) -> int:
    from raictl import render

    if sys.stderr.isatty():
        render.up_progress_done()
    render.up_result(result)
    return 0 if result.ok else 1


@app.command()
def up(services: Services = None,
       foreground: Annotated[bool, typer.Option("--foreground", help="Stay in the terminal, logs "
                                                "multiplexed; Ctrl-C stops everything.")] = False,
       timeout: Timeout = 60.0) -> None:
    """Pre-flight, start the services (detached), and return when every one is ready."""
    if foreground:
        _foreground(load_settings(), services or [])
        return
    raise typer.Exit(_up(services or [], timeout))


def _up(names: list[str], timeout: float) -> int:
    from raictl.supervisor import control

    return _finish_up(control.up(load_settings(), names, timeout, _progress()))


def _foreground(settings, names: list[str]) -> None:
    from raictl import render
    from raictl.supervisor import control

    width = max(len(n) for n in names or ["llm_api", "rai_api"])
    colours: dict[str, int] = {}

    def on_line(name: str, line: str) -> None:
        colours.setdefault(name, len(colours))
        render.log_line(name, line, max(width, len(name)), colours[name], prefixed=True)

    control.run_foreground(settings, names, on_line)


@app.command()
def down(services: Services = None) -> None:
    """Stop the services (all by default): SIGTERM, grace period, SIGKILL, no process left."""
    raise typer.Exit(_down(services or []))


def _down(names: list[str]) -> int:
    from raictl import render
    from raictl.supervisor import control

    render.down_result(control.down(load_settings(), names))
    return 0


@app.command()
def restart(services: Services = None, timeout: Timeout = 60.0) -> None:
    """Stop, then start, the services (all by default)."""
    from raictl.supervisor import control

    raise typer.Exit(_finish_up(control.restart(load_settings(), services or [], timeout, _progress())))


def _simple_args(argv: list[str], options: dict[str, type]) -> tuple[list[str], dict] | None:
    """Positional names and `--option VALUE`s when argv holds nothing else; None otherwise."""
    names, values, rest = [], {}, list(argv)
    while rest:
        token = rest.pop(0)
        if token in options and options[token] is bool:
            values[token] = True
        elif token in options and rest:
            try:
                values[token] = options[token](rest.pop(0))
            except ValueError:
                return None
        elif token.startswith("-"):
            return None
        else:
            names.append(token)
    return names, values


def fast_path(argv: list[str]) -> int | None:
    """`raictl status [--json]`, `up [SERVICE…] [--timeout S]`, `down [SERVICE…]` answered without
    Typer's parameter machinery, which imports pydantic: ~70 ms (more on a loaded machine) that
    `status` (to beat supervisorctl) and `up` (within 1.15x of bare Popen) cannot afford. Same core,
    rendering and errors as the commands below; any other command line (--help, a bad value, other
    options) returns None and Typer parses it as usual."""
    command = argv[0] if argv else None
    grammar = {"status": {"--json": bool}, "up": {"--timeout": float}, "down": {}}.get(command)
    parsed = _simple_args(argv[1:], grammar) if grammar is not None else None
    if parsed is None or (command == "status" and parsed[0]):
        return None
    from raictl.cli import render_error
    from raictl.errors import RaictlError

    names, values = parsed
    try:
        if command == "status":
            return _status(values.get("--json", False))
        if command == "up":
            return _up(names, values.get("--timeout", 60.0))
        return _down(names)
    except RaictlError as exc:
        if os.environ.get("RAICTL_DEBUG"):
            raise
        render_error(exc)
        return exc.exit_code


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False) -> None:
    """Each service's state, pid, uptime, restarts, last exit, listen addresses and health."""
    raise typer.Exit(_status(as_json))


def _status(as_json: bool) -> int:
    from raictl import render
    from raictl.supervisor.status import overview

    view = overview(load_settings())
    render.service_status(view, as_json)
    return 0 if view.ok else 3


@app.command()
def logs(service: Annotated[Optional[str], typer.Argument(help="One service (default: all, by time).")] = None,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines to show first.")] = 50) -> None:
    """Show a service's log, or all of them interleaved by time."""
    from raictl import render
    from raictl.supervisor import logs as service_logs

    paths = service_logs.log_files(load_settings(), service)
    width = max((len(n) for n in paths), default=0)
    index = {name: i for i, name in enumerate(paths)}
    prefixed = service is None
    for name, line in service_logs.interleave(paths, lines):
        render.log_line(name, line, width, index[name], prefixed)
    if follow:
        try:
            for name, line in service_logs.follow(paths):
                render.log_line(name, line, width, index[name], prefixed)
        except KeyboardInterrupt:
            pass
