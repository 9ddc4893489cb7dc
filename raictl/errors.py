"""The one user-facing error type, raised where a failure is understood, rendered once at the CLI edge."""

from __future__ import annotations

import os


class RaictlError(Exception):
    """An expected failure: a one-line message naming what failed, and a hint saying what to do."""

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


def debugging() -> bool:
    """RAICTL_DEBUG is on (set, and neither empty nor 0): a RaictlError then keeps its traceback
    instead of being rendered as one line. The one place both CLI paths (entry.py, cli.py) ask."""
    return os.environ.get("RAICTL_DEBUG", "") not in ("", "0")
