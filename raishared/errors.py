"""The error the shared layer raises for an expected failure: a bad setting, a database URL the RAI
API would refuse, a secret file that cannot be written.

It carries a one-line message and a hint. raictl renders it once at its edge (its `RaictlError` is
this type, so there is still one user-facing error type); a service logs it and exits 1
(`services.serving.run_service`).
"""

from __future__ import annotations


class HintedError(Exception):
    """An expected failure: a one-line message naming what failed, and a hint saying what to do."""

    def __init__(self, message: str, hint: str | None = None, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"
