"""The doctor's registry: `Result`, the `@check` and `@fix` decorators, and selection by id prefix.

Check ids are an interface (dotted, stable, documented in README.md's "Doctor checks" table).
Checks run in the order they were registered, which is the order of `raictl.doctor.checks`' modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from raictl.errors import RaictlError

STATUSES = ("ok", "warn", "fail", "skip")
DEFAULT_TIMEOUT = 2.5


@dataclass(frozen=True)
class Result:
    """What one check found: a status, a one-line summary, a hint saying what to do, details for -v."""

    id: str
    status: str
    summary: str
    hint: str | None = None
    details: tuple[str, ...] = ()
    title: str = ""
    duration_ms: int = 0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r} for {self.id}")

    def timed(self, title: str, duration_ms: int) -> "Result":
        return replace(self, title=title, duration_ms=duration_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "summary": self.summary,
                "hint": self.hint, "duration_ms": self.duration_ms}


@dataclass(frozen=True)
class Check:
    """A registered check: `run(ctx)` returns a Result (built with `ctx.ok(...)`, `ctx.fail(...)`, ...)."""

    id: str
    title: str
    run: Callable[..., "Result"]
    timeout: float = DEFAULT_TIMEOUT
    needs_settings: bool = True


@dataclass(frozen=True)
class Fix:
    """A safe fix for a check's finding, run only with --fix; `confirm` fixes ask first unless --yes."""

    check_id: str
    title: str
    apply: Callable[..., str]
    when: tuple[str, ...] = ("fail",)
    confirm: bool = False
    applies: Callable[..., bool] | None = field(default=None, repr=False)


CHECKS: dict[str, Check] = {}
FIXES: dict[str, Fix] = {}


def check(check_id: str, title: str, timeout: float = DEFAULT_TIMEOUT, needs_settings: bool = True):
    """Register `fn(ctx) -> Result` under a stable dotted id."""
    def register(fn):
        if check_id in CHECKS:
            raise ValueError(f"check {check_id} registered twice")
        CHECKS[check_id] = Check(check_id, title, fn, timeout, needs_settings)
        return fn
    return register


def fix(check_id: str, title: str, when: tuple[str, ...] = ("fail",), confirm: bool = False,
        applies: Callable[..., bool] | None = None):
    """Register `fn(ctx, result) -> str` (what it did) as the fix of `check_id`."""
    def register(fn):
        FIXES[check_id] = Fix(check_id, title, fn, when, confirm, applies)
        return fn
    return register


def matches(check_id: str, selector: str) -> bool:
    """`rai_api` selects `rai_api.health` and `rai_api.listen.ipv6`, but not `rai_apix`."""
    selector = selector.strip(".")
    return check_id == selector or check_id.startswith(selector + ".")


def select(selectors: list[str] | tuple[str, ...] | None,
           checks: Mapping[str, Check] | None = None) -> list[Check]:
    """The checks chosen by id prefix, in registration order; an unknown selector is a usage error."""
    checks = CHECKS if checks is None else checks
    if not selectors:
        return list(checks.values())
    unknown = [s for s in selectors if not any(matches(c, s) for c in checks)]
    if unknown:
        groups = sorted({c.split(".")[0] for c in checks})
        raise RaictlError(f"no doctor check matches {', '.join(unknown)}",
                          hint=f"check ids start with one of: {', '.join(groups)} (see `raictl doctor --list`)",
                          exit_code=2)
    return [c for cid, c in checks.items() if any(matches(cid, s) for s in selectors)]
