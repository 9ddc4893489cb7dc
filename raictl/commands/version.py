"""`raictl version`."""

from __future__ import annotations

import typer

from raictl import __version__
from raictl.cli import app


@app.command()
def version() -> None:
    """Print raictl's version."""
    typer.echo(__version__)
