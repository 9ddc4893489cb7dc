"""The watch loop: start what `desired.json` asks for, restart what exits, stop what is withdrawn.

One `Watcher` runs either detached (a process of its own session, forked by `raictl up`) or in
the terminal (`raictl up --foreground`). It is the only writer of `state.json` while it lives.

- An unexpected exit is restarted after a backoff (`spec.RESTARTS`: 0.1 s doubling to 5 s),
  starting over once the service has been ready for 10 s.
- 5 exits within 30 s make the service `fatal`: not restarted, its last exit and log tail kept
  in state.json. Asking `up` for it again re-arms it.
- A service still running from a supervisor that died (killed -9) is adopted, not started twice.
- Liveness: while it runs, a service is probed every `liveness_interval` seconds in the background
  (each address must answer within `liveness_timeout`; a SIGSTOPped process fails at once);
  `liveness_failures` failures in a row make it `unhealthy`, and it is restarted (SIGTERM, grace,
  SIGKILL) with the usual backoff, its last exit saying why.
- Starts wait for dependencies: a dependent is spawned once each dependency is running (ready:
  alive, every address accepts, health 200), or only started when its condition is "started".
- SIGTERM/SIGINT: stop everything in reverse dependency order, then exit.

The loop reads the time through `clock` and touches processes only through `processes`
(`process.Processes`): tests/test_watch_rules.py drives these rules with fakes of both, in
milliseconds, as honcho's manager tests do.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable

import psutil

from raictl.errors import RaictlError
from raictl.supervisor import logs
from raictl.supervisor.identity import ExitInfo, Identity, decode_exit
from raictl.supervisor.process import Handle, Processes
from raictl.supervisor.spec import RESTARTS, ServiceSpec, dependency_order
from raictl.supervisor.state import (DesiredEntry, ServiceRecord, SupervisorState, desired_version,
                                     read_desired, read_state, supervisor_lock, write_desired, write_state)
from raictl.supervisor.states import (ACTIVE, ALIVE, BACKOFF, FATAL, PENDING, RUNNING, STARTING, STOPPED, UNHEALTHY,
                                      State)
from raishared.settings import host_port

TICK = 0.01          # loop period while something is starting or due
IDLE_TICK = 0.1      # loop period when all is steady
ROTATE_EVERY = 2.0


@dataclass
class Child:
    """One supervised service as the loop tracks it. `popen`: what `processes.start` returned;
    `adopted`: its process was left running by a supervisor that died (no Popen to poll)."""

    spec: ServiceSpec
    env: dict[str, str]
    cwd: str
    requested_at: float
    record: ServiceRecord
    popen: Handle | None = None
    adopted: bool = False
    exits: deque = field(default_factory=deque)
    failures: int = 0
    probe: Any = None                   # a liveness probe running in the background (a Future)
    next_probe_at: float | None = None
    live_failures: int = 0              # failed liveness probes in a row


class Watcher:
    def __init__(self, home: Path, logs_dir: Path, foreground: bool = False, *,
                 clock: Callable[[], float] = time.time, processes: Processes | None = None) -> None:
        self.home, self.logs_dir, self.foreground = home, logs_dir, foreground
        self.clock, self.processes = clock, processes or Processes()
        self.children: dict[str, Child] = {}
        self.previous = read_state(home)
        self.state = SupervisorState(None, foreground, dict(self.previous.services))
        self.desired_seen: tuple | None = None
        self.stopping = False
        self.dirty = True
        self.last_rotate = 0.0
        self.last_error: str | None = None

    # -- the loop ---------------------------------------------------------------------------
    def claim(self) -> None:
        """Put this process on record as the supervisor (state.json), before the first tick."""
        me = psutil.Process()
        self.state.supervisor = Identity(me.pid, me.create_time(), "supervisor")
        self.dirty = True
        self._save()

    def run(self) -> None:
        """Watch until asked to stop (signal, or nothing left to run); always stops what it started."""
        if self.state.supervisor is None:
            self.claim()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            while not self.stopping:
                self._safe_tick()
                if self._idle() and self._forget_launches():
                    break
                time.sleep(self.pause())
        finally:
            self.stop_all()
            if self.stopping:
                self._forget_launches()

    def _safe_tick(self) -> None:
        """One tick; an unexpected error is written to supervisor.log (once per distinct error)
        and the loop goes on: a supervisor that dies leaves its services unwatched."""
        try:
            self.tick()
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one bad state
            import sys
            import traceback

            seen = f"{type(exc).__name__}: {exc}"
            if seen != self.last_error:
                self.last_error = seen
                sys.stderr.write(f"raictl supervisor: tick failed, still watching: {seen}\n")
                traceback.print_exc()
                sys.stderr.flush()
            time.sleep(IDLE_TICK)

    def _forget_launches(self) -> bool:
        """Nothing runs any more: empty desired.json, whose launch environments hold the secrets
        (no secret stays on disk once nothing runs). Under `up`'s lock, and only when no `up` has
        handed over something new since the last tick: then False, and the loop goes on."""
        if not read_desired(self.home):  # `down` withdrew everything (and holds the lock meanwhile)
            return True
        try:
            with supervisor_lock(self.home, timeout=0.2):
                if desired_version(self.home) != self.desired_seen:
                    return False
                write_desired(self.home, {})
                self.desired_seen = desired_version(self.home)
        except RaictlError:  # an `up` holds the lock: it is handing something over
            return False
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def tick(self) -> None:
        version = desired_version(self.home)
        if version != self.desired_seen:
            self.desired_seen = version
            self.reconcile(read_desired(self.home))
        now = self.clock()
        for child in self._ordered():
            self._step(child, now)
        if now - self.last_rotate > ROTATE_EVERY:
            self.last_rotate = now
            for name in self.children:
                logs.rotate(logs.log_path(self.logs_dir, name))
        self._save()

    def _busy(self) -> bool:
        return any(c.record.state in PENDING or c.probe is not None for c in self.children.values())

    def pause(self) -> float:
        """How long the loop sleeps before its next tick: TICK while something starts or a probe is
        out (its answer is read on time), else IDLE_TICK or less: a liveness probe starts when due."""
        if self._busy():
            return TICK
        due = [c.next_probe_at for c in self.children.values() if c.record.state in (RUNNING, UNHEALTHY)
               and c.next_probe_at is not None]
        return min([IDLE_TICK, *(max(TICK, at - self.clock()) for at in due)])

    def _idle(self) -> bool:
        """Nothing active and nothing wanted: the detached supervisor has no reason to live."""
        return not any(c.record.state in ACTIVE for c in self.children.values())

    def _ordered(self) -> list[Child]:
        """Dependencies first, by what is wanted now: a dependency withdrawn (`raictl down NAME`)
        is no longer an edge, and its dependents keep running and being restarted."""
        try:
            order = dependency_order([c.spec for c in self.children.values()], strict=False)
        except RaictlError:  # a cycle: the order they were asked for is still an order
            return list(self.children.values())
        return [self.children[s.name] for s in order]

    # -- desired state ------------------------------------------------------------------------
    def reconcile(self, desired: dict[str, DesiredEntry]) -> None:
        """Start what was added; stop what was withdrawn; restart, with its new launch, what was
        asked for again (`up` after fatal, `up` with changed settings, `restart`)."""
        order = list(reversed([c.spec.name for c in self._ordered()]))  # dependents first
        for name in [n for n in order if n not in desired]:
            self.stop_child(self.children.pop(name), "down")
        for name in [n for n in order if n in desired]:
            child, entry = self.children[name], desired[name]
            if entry.requested_at > child.requested_at and (
                    child.record.state in (FATAL, STOPPED) or entry.restart or self._changed(child, entry)):
                self._renew(child, entry)
            elif entry.requested_at > child.requested_at:  # a second `up` of the same: nothing to do
                child.requested_at = entry.requested_at
        for name, entry in desired.items():
            if name not in self.children:
                self.children[name] = self._new_child(name, entry)

    @staticmethod
    def _changed(child: Child, entry: DesiredEntry) -> bool:
        return (entry.spec, entry.env, entry.cwd) != (child.spec, child.env, child.cwd)

    def _renew(self, child: Child, entry: DesiredEntry) -> None:
        """Asked for again: stop what runs (if anything), take the new launch, start afresh."""
        if child.record.identity is not None:
            logs.event(self._log(child), "restart requested: stopping")
        self.stop_child(child, "restart")
        child.spec, child.env, child.cwd = entry.spec, entry.env, entry.cwd
        child.requested_at = entry.requested_at
        child.exits.clear()
        child.failures = 0
        self._change(child, BACKOFF)
        child.record.next_start_at = 0.0

    def _new_child(self, name: str, entry: DesiredEntry) -> Child:
        spec = entry.spec
        old = self.previous.services.get(name)
        record = ServiceRecord(name, BACKOFF, next_start_at=0.0, port=spec.port, hosts=spec.hosts,
                               health=spec.health, last_exit=old.last_exit if old else None)
        child = Child(spec, entry.env, entry.cwd, entry.requested_at, record)
        if old is not None and old.state in ALIVE and self.processes.alive(old.identity):  # its supervisor died
            child.adopted, record.identity, record.state = True, old.identity, old.state  # taken over, not a change
            record.started_at, record.ready_at, record.restarts = old.started_at, old.ready_at, old.restarts
            record.port, record.hosts, record.health = old.port, old.hosts, old.health
        self.state.services[name] = record
        return child

    # -- one service, one tick --------------------------------------------------------------
    def _step(self, child: Child, now: float) -> None:
        rec = child.record
        if rec.state == BACKOFF and now >= (rec.next_start_at or 0) and self._deps_met(child):
            self.start_child(child, now)
        elif rec.state in ALIVE:
            code = self._exit_code(child)
            if code is not None:
                self._exited(child, code, now)
            elif rec.state == STARTING and self.processes.ready(child.spec):
                self._change(child, RUNNING)
                rec.ready_at, rec.reason, child.next_probe_at = now, None, now + child.spec.liveness_interval
                logs.event(self._log(child), f"ready ({self._where(child)})")
            elif rec.state in (RUNNING, UNHEALTHY) and self._watch_liveness(child, now):
                return
            elif rec.state == RUNNING and child.failures and now - (rec.ready_at or now) > RESTARTS.healthy_reset:
                child.failures = 0
                logs.event(self._log(child), f"ready for {RESTARTS.healthy_reset:g}s: the restart delay "
                                             f"starts over at {RESTARTS.backoff_initial:g}s")

    def _exit_code(self, child: Child) -> int | None | bool:
        """The returncode once its process has exited; for an adopted one True (code unknown)."""
        if child.popen is not None:
            return child.popen.poll()
        if child.adopted:
            return None if self.processes.alive(child.record.identity) else True
        return None

    def _deps_met(self, child: Child) -> bool:
        """Whether each wanted dependency is as far as its condition asks: running (ready, the
        default) or spawned ("started"). A dependency not wanted (`down NAME`) is no edge."""
        waiting = [d for d in child.spec.depends_on if d in self.children and self.children[d].record.state
                   not in (ALIVE if child.spec.condition(d) == "started" else (RUNNING,))]
        reason = f"waiting for {', '.join(waiting)} to be {child.spec.condition(waiting[0])}" if waiting else None
        if reason != child.record.reason and (waiting or (child.record.reason or "").startswith("waiting for")):
            child.record.reason, self.dirty = reason, True
        return not waiting

    # -- liveness ---------------------------------------------------------------------------------
    def _watch_liveness(self, child: Child, now: float) -> bool:
        """Start a probe when one is due, read it when done; True when the service was found
        unhealthy and restarted (this tick is over for it)."""
        spec, rec = child.spec, child.record
        if child.probe is None:
            due = child.next_probe_at or 0.0
            if now >= due and rec.identity is not None:
                child.probe = self.processes.probe_live(spec, rec.identity)
                # every interval from when the last was due, however late the tick or long the probe
                # (timed from each answer, the schedule drifted ~0.12 s a probe); a loop that fell
                # behind by a whole interval (a suspended machine) starts over from now, no burst
                next_due = due + spec.liveness_interval
                child.next_probe_at = next_due if next_due > now else now + spec.liveness_interval
            return False
        if not child.probe.done():
            return False
        try:
            problem = child.probe.result()
        except Exception as exc:  # noqa: BLE001 - a probe that breaks is a failed probe, not a stuck loop
            problem = f"the probe failed: {type(exc).__name__}: {exc}"
        child.probe = None  # the next starts when due, or at once if this one outlasted the interval
        if problem is None:
            if child.live_failures:
                logs.event(self._log(child), f"liveness: answers again after {child.live_failures} failed probe(s)")
            child.live_failures = 0
            if rec.state == UNHEALTHY:  # adopted as unhealthy from a supervisor that died: it answers now
                self._change(child, RUNNING)
            return False
        child.live_failures += 1
        logs.event(self._log(child), f"liveness probe failed ({child.live_failures}/{spec.liveness_failures}): {problem}")
        if child.live_failures < spec.liveness_failures:
            return False
        self._restart_unhealthy(child, problem, now)
        return True

    def _restart_unhealthy(self, child: Child, problem: str, now: float) -> None:
        """Unhealthy: on record as such, then stopped (TERM, grace, KILL) and restarted with backoff."""
        rec = child.record
        self._change(child, UNHEALTHY)
        rec.reason = f"failing liveness: {problem}"
        self._save()
        logs.event(self._log(child), f"unhealthy after {child.live_failures} failed liveness probes: restarting")
        assert rec.identity is not None  # found unhealthy by probing its process
        forced = self.processes.stop(rec.identity, child.spec.grace, child.popen)
        code = child.popen.poll() if child.popen else None
        rec.last_exit = decode_exit(code, now).because("liveness")
        logs.event(self._log(child), "stopped" + (" (SIGKILL after the grace period)" if forced else ""))
        child.popen, child.adopted, child.live_failures = None, False, 0
        self._failed(child, now)
        rec.reason = f"restarted for failing liveness: {problem}"

    def start_child(self, child: Child, now: float) -> None:
        log = self._log(child)
        rec = child.record
        try:
            child.popen, rec.identity = self.processes.start(child.spec, child.env, child.cwd, log)
        except OSError as exc:
            logs.event(log, f"cannot start {' '.join(child.spec.command)}: {exc.strerror or exc}")
            rec.reason = f"cannot start {child.spec.command[0]}: {exc.strerror or exc}"
            rec.last_exit = ExitInfo(127, None, now)  # the shell's "command cannot run"
            self._failed(child, now)
            return
        child.adopted, child.probe, child.next_probe_at, child.live_failures = False, None, None, 0
        self._change(child, STARTING)
        rec.started_at, rec.ready_at, rec.next_start_at = now, None, None
        rec.port, rec.hosts, rec.health = child.spec.port, child.spec.hosts, child.spec.health
        logs.event(log, f"started pid {child.popen.pid}: {command_text(child.spec)}")

    def _exited(self, child: Child, code: int | bool | None, now: float) -> None:
        rec = child.record
        rec.last_exit = decode_exit(None if code is True else code, now)
        rec.reason = rec.last_exit.describe()
        if child.popen is not None and rec.identity:
            self.processes.sweep(rec.identity)  # its children must not outlive it
        child.popen, child.adopted = None, False
        logs.event(self._log(child), f"exited: {rec.reason}")
        self._failed(child, now)

    def _failed(self, child: Child, now: float) -> None:
        rec = child.record
        child.exits.append(now)
        while child.exits and now - child.exits[0] > RESTARTS.fatal_window:
            child.exits.popleft()
        rec.identity, self.dirty = None, True
        if len(child.exits) >= RESTARTS.fatal_starts:
            self._change(child, FATAL)
            rec.next_start_at = None
            rec.log_tail = logs.tail(self._log(child))
            logs.event(self._log(child), f"fatal: {len(child.exits)} failed starts within "
                                         f"{RESTARTS.fatal_window:g}s; not restarting")
            return
        delay = RESTARTS.delay(child.failures)
        child.failures += 1
        self._change(child, BACKOFF)
        rec.next_start_at, rec.restarts = now + delay, rec.restarts + 1
        logs.event(self._log(child), f"restart in {delay:g}s")

    # -- stopping -------------------------------------------------------------------------------
    def stop_child(self, child: Child, cause: str) -> None:
        """Stop its process tree (TERM, grace, KILL); last_exit records `cause` (a key of CAUSES)."""
        rec = child.record
        if rec.identity is not None:
            forced = self.processes.stop(rec.identity, child.spec.grace, child.popen)
            code = child.popen.poll() if child.popen else None  # reaps one that died just before
            rec.last_exit = decode_exit(code).because(cause)
            logs.event(self._log(child), "stopped" + (" (SIGKILL after the grace period)" if forced else ""))
        child.popen, child.adopted, child.probe, child.live_failures = None, False, None, 0
        if rec.state in ACTIVE:  # a fatal service stays fatal until asked for again
            self._change(child, STOPPED)
        rec.identity, rec.next_start_at, self.dirty = None, None, True
        self._save()

    def stop_all(self) -> None:
        for child in reversed(self._ordered()):
            try:
                self.stop_child(child, "supervisor")
            except Exception:  # noqa: BLE001 - one that cannot be stopped must not spare the rest
                import traceback

                traceback.print_exc()
        self.state.supervisor = None
        self.dirty = True
        self._save()

    # -- helpers ----------------------------------------------------------------------------------
    def _change(self, child: Child, new: State) -> None:
        """A state change, to be written at the end of the tick (the record checks it is allowed)."""
        child.record.change_state(new)
        self.dirty = True

    def _log(self, child: Child) -> Path:
        return logs.log_path(self.logs_dir, child.spec.name)

    def _where(self, child: Child) -> str:
        return ", ".join(host_port(h, p) for h, p in child.spec.addresses) or "no port"

    def _save(self) -> None:
        if self.dirty:
            write_state(self.home, self.state)
            self.dirty = False


def command_text(spec: ServiceSpec, limit: int = 160) -> str:
    """The command on one line, cut short: a `-c` script must not flood the log."""
    import shlex

    text = shlex.join(spec.command).replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "…"


def name_process(home: Path) -> None:
    """Show in `ps` what this process is and which home it watches, not the command that forked it
    (`raictl doctor --fix --yes`). SPT_NOENV: /proc/PID/environ stays readable (RAICTL_HOME, the
    test suite's leftover check), so the title gets only the room of the original command line: a
    long home keeps its end, the part that tells one project from another."""
    import os

    os.environ["SPT_NOENV"] = "1"  # read when setproctitle is first imported
    from setproctitle import setproctitle

    room = len(os.fsencode("\0".join(psutil.Process().cmdline()))) - 1  # the last NUL stays
    title = f"raictl supervisor {home}"
    if len(os.fsencode(title)) > room:
        head = "raictl supervisor ..."
        title = head + os.fsdecode(os.fsencode(str(home))[-max(room - len(head), 0):])
    setproctitle(title)


if __name__ == "__main__":  # started by daemon.detach from a threaded caller: python -m ... HOME LOGS
    import sys

    Watcher(Path(sys.argv[1]), Path(sys.argv[2])).run()  # its command line already says what it is
