"""The doctor's registry: `Result`, the `@check` and `@fix` decorators, and selection by id prefix.

Check ids are an interface (dotted, stable, documented in README.md's "Doctor checks" table).
Checks run in the order they were registered, which is the order of `raictl.doctor.checks`' modules.

Per-service checks are templates (`ServiceCheck`, `{name}` in the id and title) registered as a group:
the built-in services get theirs at import, and `with_services(specs)` adds the checks of each extra
`[services.NAME]` of raictl.toml right after the built-ins' checks of the same group, so an extra
service is checked by the very same functions. Their fixes are templates too (`service_fix`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, get_args

from raictl.errors import RaictlError

if TYPE_CHECKING:
    from raictl.doctor.context import CheckContext
    from raictl.supervisor.spec import ServiceSpec
    from raishared.settings import Settings

Status = Literal["ok", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = get_args(Status)
DEFAULT_TIMEOUT = 2.5


@dataclass(frozen=True)
class Result:
    """What one check found: a status, a one-line summary, a hint saying what to do, details for -v."""

    id: str
    status: Status
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


CheckFn = Callable[["CheckContext"], Result]
FixFn = Callable[["Settings"], str]  # a fix: what it did, in one line


@dataclass(frozen=True)
class Check:
    """A registered check: `run(ctx)` returns a Result (built with `ctx.ok(...)`, `ctx.fail(...)`, ...)."""

    id: str
    title: str
    run: CheckFn
    timeout: float = DEFAULT_TIMEOUT
    needs_settings: bool = True
    group: str | None = None  # the ServiceCheck group it was made from, if any


@dataclass(frozen=True)
class ServiceCheck:
    """A per-service check: `run(ctx, name)`, for every service whose spec it `applies` to."""

    id_format: str
    title_format: str
    run: Callable[[CheckContext, str], Result]
    applies: Callable[[ServiceSpec], bool] = lambda spec: True
    timeout: float = DEFAULT_TIMEOUT

    def for_service(self, name: str, group: str) -> Check:
        return Check(self.id_format.format(name=name), self.title_format.format(name=name),
                     lambda ctx: self.run(ctx, name), self.timeout, True, group)


@dataclass(frozen=True)
class Fix:
    """A safe fix for a check's finding, run only with --fix; `confirm` fixes ask first unless --yes."""

    check_id: str
    title: str
    apply: FixFn
    when: tuple[Status, ...] = ("fail",)
    confirm: bool = False


CHECKS: dict[str, Check] = {}
FIXES: dict[str, Fix] = {}
GROUPS: dict[str, list[ServiceCheck]] = {}
SERVICE_FIXES: dict[str, Callable[[str], Fix]] = {}


def check(check_id: str, title: str, timeout: float = DEFAULT_TIMEOUT,
          needs_settings: bool = True) -> Callable[[CheckFn], CheckFn]:
    """Register `fn(ctx) -> Result` under a stable dotted id."""
    def register(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"check {check_id} registered twice")
        CHECKS[check_id] = Check(check_id, title, fn, timeout, needs_settings)
        return fn
    return register


def service_checks(group: str, templates: list[ServiceCheck], builtins: tuple[str, ...]) -> None:
    """Register a group of per-service checks, and its checks for each built-in service (service by service)."""
    GROUPS[group] = list(templates)
    for name in builtins:
        for template in templates:
            made = template.for_service(name, group)
            if made.id in CHECKS:
                raise ValueError(f"check {made.id} registered twice")
            CHECKS[made.id] = made


def with_services(specs: Iterable[ServiceSpec]) -> dict[str, Check]:
    """The registered checks plus, for each extra service spec, the checks of every group that apply to it.

    An extra service's check whose id a built-in check already has (a service named `host` would make
    `host.localhost`) is left out: the built-in keeps its id (docs/decisions.md).
    """
    ordered: dict[str, Check] = {}
    registered = list(CHECKS.values())
    for index, current in enumerate(registered):
        ordered[current.id] = current
        following = registered[index + 1] if index + 1 < len(registered) else None
        if current.group is None or (following is not None and following.group == current.group):
            continue
        for spec in specs:
            made = [t.for_service(spec.name, current.group) for t in GROUPS[current.group] if t.applies(spec)]
            ordered.update((c.id, c) for c in made if c.id not in CHECKS)
    return ordered


def fix(check_id: str, title: str, when: tuple[Status, ...] = ("fail",),
        confirm: bool = False) -> Callable[[FixFn], FixFn]:
    """Register `fn(settings) -> str` (what it did) as the fix of `check_id`."""
    def register(fn: FixFn) -> FixFn:
        FIXES[check_id] = Fix(check_id, title, fn, when, confirm)
        return fn
    return register


def service_fix(id_format: str, title_format: str, builtins: tuple[str, ...], when: tuple[Status, ...] = ("fail",)
                ) -> Callable[[Callable[[str], FixFn]], Callable[[str], FixFn]]:
    """Register `make(name) -> fn(settings)` as the fix of every service's `id_format` check."""
    def register(make: Callable[[str], FixFn]) -> Callable[[str], FixFn]:
        def fix_of(name: str) -> Fix:
            return Fix(id_format.format(name=name), title_format.format(name=name), make(name), when)
        SERVICE_FIXES[id_format] = fix_of
        for name in builtins:
            FIXES[id_format.format(name=name)] = fix_of(name)
        return make
    return register


def fix_for(check_id: str, services: tuple[str, ...] | list[str] = ()) -> Fix | None:
    """The fix of a check: a registered one, or one made from a service template for one of `services`."""
    if check_id in FIXES:
        return FIXES[check_id]
    for id_format, fix_of in SERVICE_FIXES.items():
        for name in services:
            if id_format.format(name=name) == check_id:
                return fix_of(name)
    return None


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
        import difflib

        groups = sorted({c.split(".")[0] for c in checks})
        close = difflib.get_close_matches(unknown[0], list(checks) + groups, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise RaictlError(f"no doctor check matches {', '.join(unknown)}",
                          hint=f"{guess}check ids start with one of: {', '.join(groups)} (see `raictl doctor --list`)",
                          exit_code=2)
    return [c for cid, c in checks.items() if any(matches(cid, s) for s in selectors)]
