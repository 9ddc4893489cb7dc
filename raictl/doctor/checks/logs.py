"""Log checks: the recent lines of each `<home>/logs/NAME.log` scanned for known failure signatures.

Findings since the service's last start (the supervisor's `[raictl …] started pid N` line) fail;
findings from earlier runs still in the tail only warn: they may already be fixed.
"""

from __future__ import annotations

from raictl.doctor.checks.database import DB_TIMEOUT, database
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, ServiceCheck, service_checks
from raictl.doctor.signatures import Finding, scan
from raictl.supervisor.spec import BUILTINS

TAIL_LINES = 400
START_MARK = "] started pid "


def split_runs(lines: list[str]) -> tuple[list[str], list[str]]:
    """(lines before the service's last start, lines since it)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("[raictl ") and START_MARK in line]
    cut = starts[-1] if starts else 0
    return lines[:cut], lines[cut:]


def _schema_complete(ctx: CheckContext) -> bool:
    status, state = database(ctx)
    return status == "ok" and not state.missing


def _revision_known(ctx: CheckContext) -> bool:
    status, state = database(ctx)
    return status == "ok" and state.state in ("ok", "drift", "behind")


# A finding whose cause doctor can see is gone (e.g. after `doctor --fix` repaired the database) only warns.
GONE = {"Unknown column": (_schema_complete, "db.schema"), "Can't locate revision": (_revision_known, "db.revision")}


def _still_true(ctx: CheckContext, finding: Finding) -> bool:
    gone = GONE.get(finding.signature.name)
    return gone is None or not gone[0](ctx)


def log_check(ctx: CheckContext, name: str) -> Result:
    from raictl.supervisor.logs import log_path, tail

    path = log_path(ctx.settings.logs_dir, name)
    ctx.doing(f"reading {path}")
    lines = tail(path, TAIL_LINES)
    if not lines:
        return ctx.skip(f"{path} is empty or missing")
    earlier, current = split_runs(lines)
    found, before = scan(current), scan(earlier)
    ctx.doing("checking whether the causes found are still there")
    now = [f for f in found if _still_true(ctx, f)]
    fixed = [f for f in found if f not in now]
    details = [f"{f.describe()}  | {f.text[:160]}" for f in now]
    details += [f"(fixed since: {GONE[f.signature.name][1]} passes) {f.describe()}" for f in fixed]
    details += [f"(earlier run) {f.describe()}  | {f.text[:160]}" for f in before]
    if now:
        more = f" (and {len(now) - 1} more, -v)" if len(now) > 1 else ""
        return ctx.fail(f"{now[-1].describe()}{more}", hint=now[-1].signature.hint, details=details)
    if fixed:
        return ctx.warn(f"{fixed[-1].describe()}; fixed since ({GONE[fixed[-1].signature.name][1]} passes now)",
                        hint=f"`raictl restart {name}` starts a clean log", details=details)
    if before:
        return ctx.warn(f"in an earlier run: {before[-1].describe()}", hint=before[-1].signature.hint,
                        details=details)
    return ctx.ok(f"no known failure in the last {len(lines)} lines of {path.name}")


service_checks("logs", [ServiceCheck("logs.{name}", "{name} log free of known failures", log_check,
                                     timeout=DB_TIMEOUT + 0.5)], BUILTINS)
