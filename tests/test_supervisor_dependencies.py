"""Stopping or restarting a service that others depend on: the supervisor keeps watching the rest.

Decision: a dependent keeps running while what it depends on is down (the RAI API's health then
says degraded); the watch loop orders only by the dependencies that are wanted. Real `raictl`
processes, real children, SIGKILL for real.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.supervisor_support import alive, served
from tests.support import free_port, wait_until


def _supervisor_log() -> str:
    path = Path(os.environ["RAICTL_HOME"]) / "logs" / "supervisor.log"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("command", ["down", "restart"])
def test_down_or_restart_of_a_dependency_keeps_the_dependent_supervised(stack, command):
    stack.declare("base", served(), free_port())
    stack.declare("dep", served(), free_port(), depends_on=["base"])
    assert stack.raictl("up", "dep").returncode == 0
    supervisor = stack.state()["supervisor"]["pid"]
    result = stack.raictl(command, "base")
    assert result.returncode == 0, result.stderr
    assert alive(supervisor), _supervisor_log()
    first = stack.status()["dep"]["pid"]
    assert first is not None and alive(first)  # the dependent was not stopped with its dependency
    os.kill(first, signal.SIGKILL)
    # status probes health itself, so it can answer before the supervisor records the restart as ready:
    # wait for the recorded state too, not a snapshot in between.
    dep = wait_until(lambda: (d := stack.status()["dep"])["pid"] not in (None, first) and d["health"]["ok"]
                     and d["state"] == "running" and d, timeout=15, what="dep restarted after SIGKILL")
    assert dep["state"] == "running" and dep["last_exit"]["signal"] == "SIGKILL"
    assert stack.state()["supervisor"]["pid"] == supervisor and alive(supervisor)
    assert "Traceback" not in _supervisor_log()
    down = stack.raictl("down")  # and the supervisor still stops everything it watches
    assert down.returncode == 0 and "dep stopped" in down.stdout, down.stderr
    assert not alive(dep["pid"])
    wait_until(lambda: not alive(supervisor), what="the supervisor gone after down")
    assert "Traceback" not in _supervisor_log()
