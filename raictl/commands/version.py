"""`raictl version`."""

from __future__ import annotations

import typer

from raictl import __version__


def version() -> None:
    """Print raictl's version."""
    typer.echo(__version__)


def register(app: typer.Typer) -> None:
    """Attach `version` to the raictl app."""
    app.command()(version)
