"""`raictl up` with the two real built-in services (LLM API, RAI API) on free ports, SQLite, mock engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil

from tests.support import free_port, http, url, wait_until


def raictl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], capture_output=True, text=True, timeout=120)


def statuses() -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(raictl("status", "--json").stdout)["services"]}


def test_up_status_kill_down_with_the_real_services(isolated, monkeypatch):
    llm_port, rai_port = free_port(), free_port()
    monkeypatch.setenv("LLM_API_PORT", str(llm_port))
    monkeypatch.setenv("RAI_API_PORT", str(rai_port))
    monkeypatch.setenv("LLM_ENGINE", "mock")
    try:
        up = raictl("up")
        assert up.returncode == 0, up.stderr
        assert "llm_api ready" in up.stdout and "rai_api ready" in up.stdout
        status = raictl("status")
        assert status.returncode == 0, status.stdout  # all running and healthy
        for host in ("127.0.0.1", "::1"):  # both loopbacks, with the settings the supervisor handed over
            code, body = http("GET", url(host, rai_port, "/api/health"))
            assert code == 200 and body["service"] == "rai-chat-api"
        llm = statuses()["llm_api"]
        os.kill(llm["pid"], signal.SIGKILL)
        wait_until(lambda: (s := statuses()["llm_api"])["health"]["ok"] and s["pid"] != llm["pid"],
                   timeout=30, what="llm_api restarted and healthy")
        again = statuses()["llm_api"]
        assert again["restarts"] == 1 and again["last_exit"]["signal"] == "SIGKILL"
        pids = [s["pid"] for s in statuses().values()]
    finally:
        down = raictl("down")
    assert down.returncode == 0
    assert "rai_api stopped" in down.stdout and "llm_api stopped" in down.stdout
    assert down.stdout.index("rai_api") < down.stdout.index("llm_api")  # reverse dependency order
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert raictl("status").returncode == 3


def test_unknown_revision_refuses_with_the_repair_hint_and_starts_nothing(isolated, monkeypatch):
    import sqlite3

    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    home = isolated / ".raictl"
    home.mkdir()
    with sqlite3.connect(home / "rai.db") as conn:  # the troubleshooting log's stray revision
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('5d1c8e2a9f01')")
    up = raictl("up")
    assert up.returncode == 1
    assert "rai_api" in up.stderr and "raictl migrate --repair" in up.stderr
    assert "Traceback" not in up.stderr
    assert {n: s["state"] for n, s in statuses().items()} == {"llm_api": "stopped", "rai_api": "stopped"}
    assert raictl("down").stdout.strip() == "nothing was running"
