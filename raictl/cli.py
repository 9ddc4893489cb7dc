"""The raictl command line: thin commands that parse, call one core function, render and exit.

Command groups live in `raictl/commands/`; each attaches its commands to `app` when imported.
Only stdlib, typer and psutil are imported at start-up: anything heavier (rich tables, Flask,
SQLAlchemy, Alembic, google-genai) is imported inside the command that needs it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import typer
from typer.core import TyperGroup

from raictl import commands, render
from raictl.errors import RaictlError, debugging

COMPLETE_VAR = "_RAICTL_COMPLETE"  # set by the scripts of `raictl completion` when the shell asks

class _Group(TyperGroup):
    """Renders a RaictlError once, here at the edge, whichever command raised it."""

    def invoke(self, ctx):
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


for _module in pkgutil.iter_modules(commands.__path__):
    importlib.import_module(f"{commands.__name__}.{_module.name}")


def main() -> None:
    """Run the Typer app (the console entry point is raictl.entry.main, which may answer first)."""
    if os.environ.get(COMPLETE_VAR):  # a shell asks for completions: Typer's classes answer it
        from typer.completion import completion_init

        completion_init()
    app(complete_var=COMPLETE_VAR)  # the same variable under `python -m raictl`
