"""Running checks: all at once on daemon threads, each with its own deadline, results in stable order.

A check that hangs (a port that accepts and never answers, an unreachable database) is reported as
failed with the step it was in when its deadline passed; its thread is a daemon, so it can never keep
doctor from exiting. A check that raises is reported as failed with the exception, not a traceback.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from raictl.doctor.context import CheckContext, Context
from raictl.doctor.observe import ServicesUnreadable
from raictl.doctor.registry import Check, Result, select, with_services
from raictl.errors import RaictlError
from raishared.settings import Settings, load_settings


@dataclass
class _Job:
    check: Check
    view: CheckContext
    done: threading.Event = field(default_factory=threading.Event)
    result: Result | None = None
    started: float = 0.0
    finished: float = 0.0


def make_context(settings: Settings | None = None, loader: Callable[[], Settings] = load_settings) -> Context:
    """A Context holding the settings, or the RaictlError that kept them from loading."""
    if settings is not None:
        return Context(settings)
    try:
        return Context(loader())
    except RaictlError as exc:
        return Context(None, exc)


def extra_specs(context: Context) -> list:
    """The `[services.NAME]` specs of raictl.toml (none when settings or a table do not load: the
    per-service checks of the built-ins then report why)."""
    from raictl.doctor.observe import read_specs
    from raictl.supervisor.spec import BUILTINS

    if context.settings is None:
        return []
    try:
        return [s for s in read_specs(context.settings).values() if s.name not in BUILTINS]
    except ServicesUnreadable:
        return []


def available_checks(context: Context) -> dict[str, Check]:
    """Every check of this run: the registered ones and those of each extra service."""
    import raictl.doctor.checks  # noqa: F401 - registers the built-in checks

    return with_services(extra_specs(context))


def _run(job: _Job) -> None:
    job.started = time.monotonic()
    try:
        job.result = job.check.run(job.view)
    except ServicesUnreadable:
        job.result = job.view.skip("the services of raictl.toml do not load (see config.services)")
    except RaictlError as exc:  # an understood failure of what the check talks to
        job.result = job.view.fail(f"{exc.message} (while {job.view.step})", hint=exc.hint)
    except Exception as exc:  # noqa: BLE001 - a crashed check is a finding, shown as such
        job.result = job.view.fail(f"the check crashed while {job.view.step}: {type(exc).__name__}: {exc}",
                                   hint=f"a bug in the check: `raictl doctor -v {job.check.id}` shows where; "
                                        "please report it", details=_where(exc))
    finally:
        job.finished = time.monotonic()
        job.done.set()


def _where(exc: BaseException) -> list[str]:
    """The traceback of a crashed check, innermost frame last, one line per frame (for -v)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)[1:]  # [0] is _run itself
    return [f"{f.filename}:{f.lineno} in {f.name}: {f.line}" for f in frames]


def _collect(job: _Job, start: float) -> Result:
    """The job's result, or a failure naming the step it was stuck in when its deadline passed."""
    deadline = start + job.check.timeout
    if not job.done.wait(max(0.0, deadline - time.monotonic())):
        return job.view.fail(f"timed out after {job.check.timeout:g} s while {job.view.step}",
                             hint="something it talks to accepts connections but never answers; "
                                  "see the other findings").timed(job.check.title, int(job.check.timeout * 1000))
    duration = int((job.finished - job.started) * 1000)
    assert job.result is not None  # _run sets it before `done`
    return job.result.timed(job.check.title, duration)


def run_checks(selectors: Sequence[str] | None = None, context: Context | None = None,
               checks: Sequence[Check] | None = None) -> list[Result]:
    """Run the selected checks in parallel; results in registration order."""
    context = context or make_context()
    chosen = list(checks) if checks is not None else select(list(selectors or ()), available_checks(context))
    jobs = [_Job(c, CheckContext(context, c.id)) for c in chosen]
    start = time.monotonic()
    for job in jobs:
        if job.check.needs_settings and context.settings is None:
            job.result = job.view.skip("settings did not load (see config.settings)")
            job.done.set()
            continue
        threading.Thread(target=_run, args=(job,), name=f"doctor:{job.check.id}", daemon=True).start()
    return [_collect(job, start) for job in jobs]
