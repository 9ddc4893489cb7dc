"""The watch loop's rules in milliseconds: restart backoff, the fatal window, when the delay starts
over, and each state transition. A fake clock and a fake process factory stand in for time and
processes (honcho's tests/test_manager.py does the same); what the loop writes is read back through
state.json and the service's log, as `status` and `logs` read them. The real-process tests
(test_supervisor*.py) run the same loop end to end."""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from pathlib import Path

import pytest

from raictl.supervisor import states, watch
from raictl.supervisor.identity import Identity
from raictl.supervisor.spec import RESTARTS, ServiceSpec
from raictl.supervisor.state import DesiredEntry, ServiceRecord, read_state, write_desired
from raictl.supervisor.watch import Watcher

T0 = 1_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """What the factory's start returns: a pid, poll() and wait() like a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


class FakeProcesses:
    """The loop's process factory, scripted by the test: what cannot run, what serves, what exits."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.starts: list[tuple[str, float]] = []  # (service, when)
        self.stops: list[str] = []
        self.latest: dict[str, FakeProcess] = {}
        self.serving: set[str] = set()
        self.missing: set[str] = set()
        self.hung: dict[str, str] = {}  # service -> why its liveness probe fails
        self.probes: list[str] = []
        self.pids = itertools.count(50_000)

    def start(self, spec: ServiceSpec, env, cwd, log_path) -> tuple[FakeProcess, Identity]:
        if spec.name in self.missing:
            raise FileNotFoundError(2, "No such file or directory")
        proc = self.latest[spec.name] = FakeProcess(next(self.pids))
        self.starts.append((spec.name, self.clock()))
        return proc, Identity(proc.pid, self.clock(), f"run-{proc.pid}")

    def alive(self, identity: Identity | None) -> bool:
        return identity is not None and any(p.pid == identity.pid and p.returncode is None
                                            for p in self.latest.values())

    def ready(self, spec: ServiceSpec) -> bool:
        return spec.name in self.serving

    def probe_live(self, spec: ServiceSpec, identity: Identity) -> Future:
        """A probe already answered: the test decides, through `hung`, what it finds."""
        self.probes.append(spec.name)
        done: Future = Future()
        done.set_result(self.hung.get(spec.name))
        return done

    def stop(self, identity: Identity, grace: float, popen) -> bool:
        name = next(n for n, p in self.latest.items() if p.pid == identity.pid)
        self.latest[name].returncode = -15
        self.stops.append(name)
        return False

    def sweep(self, identity: Identity) -> None:
        pass

    def exit(self, name: str, code: int = 1) -> None:
        self.latest[name].returncode = code


class Loop:
    """A Watcher on a temporary home with both fakes; `want` writes desired.json as `up` does."""

    def __init__(self, home: Path) -> None:
        self.home, self.clock = home, FakeClock()
        self.processes = FakeProcesses(self.clock)
        self.watcher = Watcher(home, home / "logs", clock=self.clock, processes=self.processes)

    def want(self, *specs: ServiceSpec, restart: bool = False) -> None:
        write_desired(self.home, {s.name: DesiredEntry(s, {}, str(self.home), self.clock(), restart)
                                  for s in specs})

    def tick(self, after: float = 0.0) -> None:
        self.clock.advance(after)
        self.watcher.tick()

    def record(self, name: str) -> ServiceRecord:
        return read_state(self.home).services[name]  # as written to state.json

    def delay(self, name: str) -> float:
        return round(self.record(name).next_start_at - self.clock(), 6)

    def events(self, name: str) -> list[str]:
        text = (self.home / "logs" / f"{name}.log").read_text()
        return [line.split("] ", 1)[1] for line in text.splitlines()]

    def started(self, name: str) -> int:
        return sum(1 for n, _ in self.processes.starts if n == name)


WEB = ServiceSpec("web", ("web-server",), 5173)


@pytest.fixture
def loop(tmp_path) -> Loop:
    return Loop(tmp_path / "home")


def crash_and_tick(loop: Loop, name: str = "web") -> None:
    loop.processes.exit(name)
    loop.tick()


def test_a_service_goes_starting_then_running_once_ready(loop):
    loop.want(WEB)
    loop.tick()
    assert loop.record("web").state == states.STARTING and loop.started("web") == 1
    loop.tick(0.5)
    assert loop.record("web").state == states.STARTING  # alive, not serving yet
    loop.processes.serving.add("web")
    loop.tick(0.5)
    record = loop.record("web")
    assert (record.state, record.started_at, record.ready_at) == (states.RUNNING, T0, T0 + 1.0)
    assert record.identity.pid == loop.processes.latest["web"].pid
    assert loop.events("web")[-1] == "ready (127.0.0.1:5173, [::1]:5173)"


def test_restart_delay_doubles_then_five_exits_within_30s_are_fatal(loop):
    loop.want(WEB)
    loop.tick()
    delays = []
    for _ in range(RESTARTS.fatal_starts - 1):
        crash_and_tick(loop)
        assert loop.record("web").state == states.BACKOFF
        delays.append(loop.delay("web"))
        loop.tick(delays[-1] - 0.01)
        assert loop.record("web").state == states.BACKOFF  # not a moment early
        loop.tick(0.01)
        assert loop.record("web").state == states.STARTING
    assert delays == [0.1, 0.2, 0.4, 0.8]
    crash_and_tick(loop)
    record = loop.record("web")
    assert (record.state, record.next_start_at, record.restarts) == (states.FATAL, None, 4)
    assert (record.last_exit.code, record.reason) == (1, "exited with code 1")
    assert loop.events("web")[-1] == "fatal: 5 failed starts within 30s; not restarting"
    assert record.log_tail and record.log_tail[-1].endswith("exited: exited with code 1")
    loop.tick(3600)
    assert loop.record("web").state == states.FATAL and loop.started("web") == 5  # given up for good


def test_the_delay_is_capped_and_exits_spread_beyond_the_window_are_never_fatal(loop):
    loop.want(WEB)
    loop.tick()
    delays = []
    for _ in range(9):  # each start lives 8 s: no five exits ever fall within 30 s
        loop.tick(8.0)
        crash_and_tick(loop)
        delays.append(loop.delay("web"))
        loop.tick(delays[-1])
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert loop.record("web").state == states.STARTING and loop.record("web").restarts == 9


@pytest.mark.parametrize("ready_for, next_delay", [(RESTARTS.healthy_reset + 0.1, 0.1), (5.0, 0.4)])
def test_the_delay_starts_over_only_after_ready_long_enough(loop, ready_for, next_delay):
    loop.want(WEB)
    loop.tick()
    for delay in (0.1, 0.2):  # two failed starts build the delay up
        crash_and_tick(loop)
        loop.tick(delay)
    loop.processes.serving.add("web")
    loop.tick()
    assert loop.record("web").state == states.RUNNING
    loop.tick(ready_for)
    crash_and_tick(loop)
    assert loop.delay("web") == next_delay
    starts_over = "ready for 10s: the restart delay starts over at 0.1s"
    assert (starts_over in loop.events("web")) == (next_delay == 0.1)


def test_a_program_that_cannot_run_backs_off_then_ends_fatal_with_the_shells_127(loop):
    loop.processes.missing.add("web")
    loop.want(WEB)
    for delay in (0.0, 0.1, 0.2, 0.4, 0.8):
        loop.tick(delay)
    record = loop.record("web")
    assert (record.state, record.last_exit.code) == (states.FATAL, 127)
    assert record.reason == "cannot start web-server: No such file or directory"
    assert loop.started("web") == 0


def test_a_dependent_is_spawned_once_its_dependency_is_ready(loop):
    api, ui = ServiceSpec("api", ("api",), 7001), ServiceSpec("ui", ("ui",), 7002, depends_on=("api",))
    loop.processes.missing.add("api")
    loop.want(ui, api)
    loop.tick()
    assert loop.record("api").state == states.BACKOFF and loop.record("ui").state == states.BACKOFF
    assert loop.started("ui") == 0  # its dependency could not be spawned: it waits
    loop.processes.missing.clear()
    loop.tick(0.1)
    assert [n for n, _ in loop.processes.starts] == ["api"]  # spawned, not ready: ui still waits
    assert loop.record("ui").reason == "waiting for api to be ready"
    loop.tick(5.0)
    assert loop.started("ui") == 0
    loop.processes.serving.add("api")
    loop.tick()
    loop.tick()
    assert [n for n, _ in loop.processes.starts] == ["api", "ui"] and loop.record("api").state == states.RUNNING
    assert loop.record("ui").state == states.STARTING and loop.record("ui").reason is None


def test_a_dependency_with_the_started_condition_is_only_waited_for_to_be_spawned(loop):
    api = ServiceSpec("api", ("api",), 7001)
    ui = ServiceSpec("ui", ("ui",), 7002, depends_on=("api",), started_deps=("api",))
    loop.want(ui, api)
    loop.tick()
    loop.tick()
    assert [n for n, _ in loop.processes.starts] == ["api", "ui"]  # api starting, not ready: enough
    assert loop.record("api").state == states.STARTING


def test_a_withdrawn_service_is_stopped_and_one_asked_for_again_after_fatal_is_rearmed(loop):
    other = ServiceSpec("other", ("other",), 7003)
    loop.want(WEB, other)
    loop.tick()
    loop.want(other)  # `raictl down web`
    loop.tick()
    assert loop.processes.stops == ["web"] and loop.record("web").state == states.STOPPED
    assert loop.record("web").identity is None and loop.events("web")[-1] == "stopped"
    for delay in (0.0, 0.1, 0.2, 0.4, 0.8):
        loop.tick(delay)
        crash_and_tick(loop, "other")
    assert loop.record("other").state == states.FATAL
    loop.want(other)  # `raictl up other`: asked for again
    loop.tick()
    assert loop.record("other").state == states.STARTING and loop.started("other") == 6


def test_up_again_leaves_a_running_service_alone_and_restart_restarts_it(loop):
    loop.processes.serving.add("web")
    loop.want(WEB)
    loop.tick()
    loop.tick(0.1)
    first = loop.processes.latest["web"].pid
    loop.want(WEB)  # a second `up`, nothing changed
    loop.tick(1.0)
    assert loop.processes.latest["web"].pid == first and loop.record("web").state == states.RUNNING
    loop.want(WEB, restart=True)  # `raictl restart web`
    loop.tick(1.0)
    loop.tick()
    assert loop.processes.stops == ["web"] and loop.processes.latest["web"].pid != first
    assert loop.record("web").state == states.RUNNING and "restart requested: stopping" in loop.events("web")


# ---------------------------------------------------------------- liveness (issue 11)

def running_web(loop: Loop, spec: ServiceSpec = WEB) -> int:
    loop.processes.serving.add(spec.name)
    loop.want(spec)
    loop.tick()
    loop.tick()
    assert loop.record(spec.name).state == states.RUNNING
    return loop.processes.latest[spec.name].pid


def test_a_running_service_is_probed_every_interval(loop):
    running_web(loop)
    assert loop.processes.probes == []  # not before an interval has passed since it became ready
    loop.tick(WEB.liveness_interval - 0.01)
    assert loop.processes.probes == []
    loop.tick(0.01)
    loop.tick()
    assert loop.processes.probes == ["web"]
    loop.tick(WEB.liveness_interval)
    loop.tick()
    assert loop.processes.probes == ["web", "web"] and loop.record("web").state == states.RUNNING


def test_failing_liveness_threshold_times_in_a_row_makes_it_unhealthy_then_restarted(loop):
    first = running_web(loop)
    loop.processes.hung["web"] = "127.0.0.1:5173: no answer within 2s"
    for n in range(1, WEB.liveness_failures):
        loop.tick(WEB.liveness_interval)
        loop.tick()
        assert loop.record("web").state == states.RUNNING  # below the threshold: still running
        assert loop.events("web")[-1] == f"liveness probe failed ({n}/3): 127.0.0.1:5173: no answer within 2s"
    loop.tick(WEB.liveness_interval)
    loop.tick()
    record = loop.record("web")
    assert loop.processes.stops == ["web"] and record.state == states.BACKOFF and record.restarts == 1
    assert record.reason == "restarted for failing liveness: 127.0.0.1:5173: no answer within 2s"
    assert (record.last_exit.signal, record.last_exit.cause) == ("SIGTERM", "liveness")
    assert "unhealthy after 3 failed liveness probes: restarting" in loop.events("web")
    assert loop.delay("web") == RESTARTS.backoff_initial  # the usual backoff
    del loop.processes.hung["web"]
    loop.tick(RESTARTS.backoff_initial)
    loop.tick()
    assert loop.record("web").state == states.RUNNING and loop.processes.latest["web"].pid != first


def test_one_answer_between_failures_starts_the_count_over(loop):
    running_web(loop)
    for hung in (True, True, False, True, True):
        if hung:
            loop.processes.hung["web"] = "no answer"
        else:
            loop.processes.hung.pop("web")
        loop.tick(WEB.liveness_interval)
        loop.tick()
    assert loop.record("web").state == states.RUNNING and loop.processes.stops == []
    assert "liveness: answers again after 2 failed probe(s)" in loop.events("web")


def test_liveness_keys_set_the_interval_and_the_threshold(loop):
    quick = ServiceSpec("web", ("web-server",), 5173, liveness_interval=0.5, liveness_failures=1)
    running_web(loop, quick)
    loop.processes.hung["web"] = "no answer"
    loop.tick(0.5)
    loop.tick()
    assert loop.processes.stops == ["web"] and loop.record("web").state == states.BACKOFF


def test_probes_start_every_interval_from_when_they_were_due_not_from_each_answer(loop):
    """A tick that comes late and a probe that takes its time do not push the next probe back: the
    third failure of a hung service comes at 3 intervals, not 3 intervals plus each delay."""
    running_web(loop)
    late, slow, just = 0.0625, 1.5, 0.015625  # binary fractions: the sums below are exact
    loop.tick(WEB.liveness_interval + late)  # the loop wakes 62.5 ms after the probe was due
    assert loop.processes.probes == ["web"]
    loop.tick(slow)  # its answer is read 1.5 s later
    loop.tick(WEB.liveness_interval - late - slow - just)
    assert loop.processes.probes == ["web"]
    loop.tick(just)  # two intervals after the service became ready
    assert loop.processes.probes == ["web", "web"]


def test_the_loop_sleeps_no_longer_than_until_the_next_probe_is_due(loop):
    running_web(loop)
    assert loop.watcher.pause() == watch.IDLE_TICK  # steady, the next probe far away
    loop.tick(WEB.liveness_interval - 0.03125)
    assert loop.watcher.pause() == pytest.approx(0.03125)
    loop.tick(0.03125)  # the probe starts: the loop ticks fast until its answer is read
    assert loop.processes.probes == ["web"] and loop.watcher.pause() == watch.TICK
