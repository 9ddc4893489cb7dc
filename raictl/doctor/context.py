"""What checks share: the resolved settings and memoised probes, plus each check's own progress.

Several checks need the same observation (a service's health, the database's schema state); the
first to ask computes it, the others wait for it, so doctor asks each question once per run.
Each check also says what it is doing (`ctx.doing(...)`), so a check that times out is reported
with the step it was stuck in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from raictl.doctor.registry import Result
from raictl.errors import RaictlError
from raishared.settings import Settings


@dataclass
class _Memo:
    event: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class Context:
    """Shared by every check of one doctor run."""

    def __init__(self, settings: Settings | None, settings_error: RaictlError | None = None) -> None:
        self.settings = settings
        self.settings_error = settings_error
        self._memos: dict[str, _Memo] = {}
        self._lock = threading.Lock()

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per run for `key`; concurrent callers wait for the first one's answer."""
        with self._lock:
            memo = self._memos.get(key)
            owner = memo is None
            if memo is None:
                memo = self._memos[key] = _Memo()
        if owner:
            try:
                memo.value = compute()
            except Exception as exc:  # noqa: BLE001 - re-raised in every caller below
                memo.error = exc
            finally:
                memo.event.set()
        memo.event.wait()
        if memo.error is not None:
            raise memo.error
        return memo.value


class CheckContext:
    """One check's view: the shared context, its own id and what it is doing right now."""

    def __init__(self, shared: Context, check_id: str) -> None:
        self.shared = shared
        self.id = check_id
        self.step = "starting"

    @property
    def settings(self) -> Settings:
        settings = self.shared.settings
        assert settings is not None, "a check that needs the settings runs only when they loaded (runner.py)"
        return settings

    def memo(self, key: str, compute: Callable[[], Any], doing: str | None = None) -> Any:
        self.doing(doing or key)
        return self.shared.memo(key, compute)

    def doing(self, step: str) -> None:
        self.step = step

    def ok(self, summary: str, hint: str | None = None, details: Iterable[str] = ()) -> Result:
        return Result(self.id, "ok", summary, hint, tuple(details))

    def warn(self, summary: str, hint: str | None = None, details: Iterable[str] = ()) -> Result:
        return Result(self.id, "warn", summary, hint, tuple(details))

    def fail(self, summary: str, hint: str | None = None, details: Iterable[str] = ()) -> Result:
        return Result(self.id, "fail", summary, hint, tuple(details))

    def skip(self, summary: str, hint: str | None = None, details: Iterable[str] = ()) -> Result:
        return Result(self.id, "skip", summary, hint, tuple(details))
