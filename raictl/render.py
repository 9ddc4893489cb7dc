"""The only module that knows rich: tables, marks and --json documents for every command.

Core modules return values; each command passes them here. Sections below belong to command groups.
rich is imported inside the functions, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MARKS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "skip": "[dim]-[/]"}


def console(stderr: bool = False):
    """A rich Console on stdout (or stderr); plain when the stream is not a terminal."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout, nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def note(message: str) -> None:
    """A dim note on stderr (progress, advice): never mixed into stdout."""
    console(stderr=True).print(f"[dim]{message}[/]")
