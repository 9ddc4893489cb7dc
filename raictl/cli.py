"""The raictl command line: thin commands that parse, call one core function, render and exit.

Command groups live in `raictl/commands/`; each module's `register(app)` attaches its commands,
called below in the order `--help` lists them (importing a module registers nothing).
Only stdlib, typer and psutil are imported at start-up: anything heavier (rich tables, Flask,
SQLAlchemy, Alembic, google-genai) is imported inside the command that needs it.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from raictl import render
from raictl.commands import chat, completion, doctor, export, migrate, service, version
from raictl.commands.completion import COMPLETE_VAR
from raictl.errors import RaictlError, debugging


class _Group(TyperGroup):
    """Renders a RaictlError once, here at the edge, whichever command raised it."""

    def invoke(self, ctx: Any) -> Any:  # click's Context: typer vendors its own copy of click since 0.2x
        try:
            return super().invoke(ctx)
        except RaictlError as exc:
            if debugging():
                raise
            render.error(exc)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="raictl",
    cls=_Group,
    help="Run the local LLM chat stack (LLM API + RAI API): up, down, status, migrate, doctor, chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer costs ~100 ms of `raictl --help`
)


@app.callback()
def _root() -> None:
    """Run the local LLM chat stack (LLM API + RAI API): up, down, status, migrate, doctor, chat."""


for _group in (chat, completion, doctor, export, migrate, service, version):
    _group.register(app)


def main() -> None:
    """Run the Typer app (the console entry point is raictl.entry.main, which may answer first)."""
    if os.environ.get(COMPLETE_VAR):  # a shell asks for completions: Typer's classes answer it
        from typer.completion import completion_init

        completion_init()
    app(complete_var=COMPLETE_VAR)  # the same variable under `python -m raictl`
