"""The fast path's parser (`raictl.entry.parse_plain`) and Typer agree on every command line both
accept: whatever the fast path answers without Typer, Typer would have parsed the same way. Every
line of up to three words from an alphabet of names, options, values and traps is tried."""

from __future__ import annotations

import functools
import itertools

import pytest
import typer

from raictl.cli import app
from raictl.entry import PLAIN_FORMS, parse_plain

WORDS = ("llm_api", "web", "-", "--json", "--timeout", "5", "2.5", "1_0", "nan", "-1", "inf", "soon",
         "--", "--foreground", "--help", "-h", "--timeout=5", "--js")
DEFAULT_TIMEOUT = 60.0


@functools.cache
def typer_command(name: str):
    return typer.main.get_command(app).get_command(None, name)


def typer_params(argv: list[str]) -> dict | None:
    """What Typer's command would be called with; None when it refuses the line (or only helps)."""
    command = typer_command(argv[0])
    try:
        return command.make_context(argv[0], list(argv[1:]), resilient_parsing=False).params
    except (typer.Exit, SystemExit, Exception):  # click's UsageError, BadParameter, Exit for --help
        return None


def as_typer_would(command: str, names: list[str], values: dict) -> dict:
    """The fast path's parse in the shape of the Typer command's parameters."""
    if command == "status":
        return {"as_json": values.get("--json", False)}
    if command == "up":
        return {"services": names, "timeout": values.get("--timeout", DEFAULT_TIMEOUT), "foreground": False,
                "replicas": None}
    return {"services": names}


def comparable(params: dict) -> dict:
    """Lists for Typer's tuples, and floats by repr (nan equals nan)."""
    out = {}
    for key, value in params.items():
        out[key] = list(value or []) if key == "services" else repr(value) if isinstance(value, float) else value
    return out


@pytest.mark.parametrize("command", sorted(PLAIN_FORMS))
def test_the_fast_path_parses_every_line_it_takes_as_typer_does(command):
    taken, disagreements = 0, []
    for length in range(4):
        for rest in itertools.product(WORDS, repeat=length):
            argv = [command, *rest]
            parsed = parse_plain(argv)
            if parsed is None:  # Typer parses it: nothing to agree on
                continue
            taken += 1
            typed = typer_params(argv)
            fast = comparable(as_typer_would(*parsed))
            if typed is None or comparable(typed) != fast:
                disagreements.append((argv, fast, typed))
    assert not disagreements, disagreements[:5]
    assert taken >= 3  # the plain form itself at least, with and without its option or a name
