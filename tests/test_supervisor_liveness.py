"""Liveness and starts gated on readiness with real processes (issue 11, items 1 and 2). The rules
themselves (interval, threshold, backoff) are driven in milliseconds in test_watch_rules.py; here
only what needs a real process: a SIGSTOPped child, and dependents waiting for a real server."""

from __future__ import annotations

import os
import signal

from tests.supervisor_support import alive, served
from tests.support import free_port, wait_until

QUICK = {"liveness_interval": 2.0, "liveness_timeout": 0.3, "liveness_failures": 2}  # >= 2 s stopped before the restart
SLOW_START = "import time; time.sleep(1.0)"  # then serves: ready a second after it was spawned


def test_a_sigstopped_service_is_shown_unhealthy_then_restarted_for_failing_liveness(stack):
    stack.declare("web", served(), free_port(), **QUICK)
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    os.kill(first, signal.SIGSTOP)
    try:
        seen = wait_until(lambda: (w := stack.status()["web"])["state"] == "unhealthy" and w, timeout=10,
                          what="status showing the stopped process unhealthy")
        assert "SIGSTOP" in seen["health"]["detail"] and not seen["health"]["ok"]
        assert stack.raictl("status").returncode == 3
        web = wait_until(lambda: (w := stack.status()["web"])["pid"] not in (None, first) and w["state"] == "running"
                         and w["health"]["ok"] and w, timeout=30, what="web restarted and serving")
    finally:
        if alive(first):
            os.kill(first, signal.SIGCONT)
    assert not alive(first)
    assert web["restarts"] == 1 and web["last_exit"]["cause"] == "liveness"
    assert "restarted for failing liveness" in stack.raictl("status").stdout
    log = stack.raictl("logs", "web").stdout
    assert "liveness probe failed (2/2)" in log and "unhealthy after 2 failed liveness probes: restarting" in log


def test_a_dependent_starts_only_once_its_dependency_is_ready(stack):
    stack.declare("api", served(SLOW_START), free_port())
    stack.declare("ui", served(), free_port(), depends_on=["api"])
    assert stack.raictl("up", "ui").returncode == 0
    api, ui = stack.state()["services"]["api"], stack.state()["services"]["ui"]
    assert ui["started_at"] >= api["ready_at"] >= api["started_at"] + 1.0


def test_a_dependency_that_never_becomes_ready_fails_up_with_its_reason(stack):
    stack.declare("api", served(path="/elsewhere"), free_port())  # health answers 404 forever
    stack.declare("ui", served(), free_port(), depends_on={"api": "ready"})
    up = stack.raictl("up", "ui", "--timeout", "3")
    assert up.returncode == 1
    assert "api: not ready after 3s: health 127.0.0.1: HTTP 404" in up.stderr, up.stderr
    assert "ui: not started: it waits for api to be ready, and api failed: not ready after 3s" in up.stderr
    assert "ui" not in [n for n, s in stack.state()["services"].items() if s.get("pid")]


def test_the_started_condition_spawns_the_dependent_without_waiting_for_ready(stack):
    stack.declare("api", served(SLOW_START), free_port())
    stack.declare("ui", served(), free_port(), depends_on={"api": "started"})
    assert stack.raictl("up", "ui").returncode == 0
    api, ui = stack.state()["services"]["api"], stack.state()["services"]["ui"]
    assert ui["started_at"] < api["ready_at"]


def test_rai_api_starts_once_llm_api_is_ready(isolated, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    monkeypatch.setenv("LLM_ENGINE", "mock")
    raictl = [sys.executable, "-m", "raictl"]
    try:
        up = subprocess.run([*raictl, "up"], capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        import json

        services = json.loads((isolated / ".raictl" / "state.json").read_text())["services"]
        assert services["rai_api"]["started_at"] >= services["llm_api"]["ready_at"]
    finally:
        subprocess.run([*raictl, "down"], capture_output=True, timeout=60)


def test_doctor_fix_offers_the_restart_of_a_stopped_service(stack):
    stack.declare("web", served(), free_port(), liveness_interval=600)  # the supervisor would wait long
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    os.kill(first, signal.SIGSTOP)
    try:
        found = stack.raictl("doctor", "web.running")
        assert found.returncode == 1 and "unhealthy" in found.stdout and "SIGSTOP" in found.stdout, found.stdout
        fixed = stack.raictl("doctor", "--fix", "--yes", "web.running")
        assert "restarted web" in fixed.stderr, fixed.stdout + fixed.stderr  # the fixes report on stderr
    finally:
        if alive(first):
            os.kill(first, signal.SIGCONT)
    web = stack.status()["web"]
    assert web["state"] == "running" and web["pid"] != first and not alive(first)
