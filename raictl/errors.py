"""The one user-facing error type, raised where a failure is understood, rendered once at the CLI edge."""

from __future__ import annotations


class RaictlError(Exception):
    """An expected failure: a one-line message naming what failed, and a hint saying what to do."""

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"
