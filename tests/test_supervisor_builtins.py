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
        assert up.stdout.splitlines()[-1] == f"  chat page: http://localhost:{rai_port}/"
        status = raictl("status")
        assert status.returncode == 0, status.stdout  # all running and healthy
        for host in ("127.0.0.1", "::1"):  # both loopbacks, with the settings the supervisor handed over
            code, body = http("GET", url(host, rai_port, "/api/health"))
            assert code == 200 and body["service"] == "rai-chat-api"
            code, page = http("GET", url(host, rai_port, "/"))
            assert code == 200 and "<title>RAI chat</title>" in page
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


def _real_services(monkeypatch) -> tuple[int, int]:
    llm_port, rai_port = free_port(), free_port()
    monkeypatch.setenv("LLM_API_PORT", str(llm_port))
    monkeypatch.setenv("RAI_API_PORT", str(rai_port))
    monkeypatch.setenv("LLM_ENGINE", "mock")
    return llm_port, rai_port


def test_restart_refused_by_the_migration_preflight_leaves_rai_api_serving(isolated, monkeypatch):
    import sqlite3

    _, rai_port = _real_services(monkeypatch)
    try:
        assert raictl("up").returncode == 0
        before = statuses()["rai_api"]
        with sqlite3.connect(isolated / ".raictl" / "rai.db") as conn:  # stamped by another checkout
            conn.execute("UPDATE alembic_version SET version_num = '3f2724846ff9'")
        restart = raictl("restart", "rai_api")
        assert restart.returncode == 1 and "Traceback" not in restart.stderr
        assert "3f2724846ff9" in restart.stderr and "raictl migrate --repair" in restart.stderr
        assert "nothing was stopped: rai_api keeps running as before" in restart.stderr, restart.stderr
        after = statuses()["rai_api"]
        assert after["pid"] == before["pid"] and after["state"] == "running"
        code, body = http("GET", url("127.0.0.1", rai_port, "/api/health"))
        assert code == 200 and body["service"] == "rai-chat-api"  # still serving
    finally:
        assert raictl("down").returncode == 0


def test_up_with_a_changed_port_or_database_restarts_rai_api_only(isolated, monkeypatch, tmp_path):
    import sqlite3

    _, old_port = _real_services(monkeypatch)
    try:
        assert raictl("up").returncode == 0
        before = statuses()
        new_port = free_port()
        monkeypatch.setenv("RAI_API_PORT", str(new_port))
        moved = raictl("up")
        assert moved.returncode == 0, moved.stderr
        assert moved.stdout.splitlines() == ["✓ llm_api already running",
                                             f"↻ rai_api restarted: settings changed (port {old_port} → {new_port})",
                                             f"  chat page: http://localhost:{new_port}/"]
        after = statuses()
        assert after["llm_api"]["pid"] == before["llm_api"]["pid"]  # it reads no RAI_* setting
        assert after["rai_api"]["pid"] != before["rai_api"]["pid"] and after["rai_api"]["health"]["ok"]
        assert [l["port"] for l in after["rai_api"]["listen"]] == [new_port, new_port]
        database = tmp_path / "elsewhere.db"
        monkeypatch.setenv("RAI_DATABASE_URL", f"sqlite:///{database}")
        switched = raictl("up")
        assert switched.returncode == 0, switched.stderr
        assert switched.stdout.splitlines() == ["✓ llm_api already running",
                                                "↻ rai_api restarted: settings changed (RAI_DATABASE_URL)",
                                                f"  chat page: http://localhost:{new_port}/"]
        assert str(database) not in switched.stdout + switched.stderr  # a database URL is a secret
        with sqlite3.connect(database) as conn:  # the new database was migrated before the switch
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall()
        code, body = http("GET", url("::1", new_port, "/api/health"))
        assert code == 200 and body["status"] == "ok", body
        again = raictl("up")
        assert again.stdout.splitlines() == ["✓ llm_api already running", "✓ rai_api already running",
                                             f"  chat page: http://localhost:{new_port}/"]
    finally:
        assert raictl("down").returncode == 0
