"""The service commands' CLI edge: start-up imports, usage errors, JSON shape, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import free_port

HEAVY = ("flask", "sqlalchemy", "alembic", "google", "rich")
TYPER = ("typer", "pydantic")  # Typer parses options with pydantic: the plain forms avoid both


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)


def imported_by(*argv: str) -> set[str]:
    result = run("-X", "importtime", "-m", "raictl", *argv)
    return {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}


def test_start_up_imports_nothing_heavy(isolated, monkeypatch):
    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    for argv in (["status"], ["status", "--json"], ["down"]):
        roots = imported_by(*argv)
        assert not roots & set(HEAVY + TYPER), f"raictl {' '.join(argv)} imported {roots & set(HEAVY + TYPER)}"
    for argv in (["--help"], ["logs", "-n", "5"]):
        roots = imported_by(*argv)
        assert "typer" in roots and not roots & set(HEAVY), f"raictl {' '.join(argv)} imported {roots & set(HEAVY)}"


def test_status_json_shape_and_exit_code_when_nothing_runs(isolated, monkeypatch):
    llm, rai = free_port(), free_port()
    monkeypatch.setenv("LLM_API_PORT", str(llm))
    monkeypatch.setenv("RAI_API_PORT", str(rai))
    result = run("-m", "raictl", "status", "--json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    services = {s["name"]: s for s in doc["services"]}
    assert set(services) == {"llm_api", "rai_api"}
    llm_api = services["llm_api"]
    assert set(llm_api) == {"name", "state", "pid", "uptime_s", "restarts", "last_exit", "listen", "health"}
    assert llm_api["state"] == "stopped" and llm_api["pid"] is None and llm_api["last_exit"] is None
    assert llm_api["listen"] == [{"host": "127.0.0.1", "port": llm, "ok": False}, {"host": "::1", "port": llm, "ok": False}]
    assert set(llm_api["health"]) == {"ok", "latency_ms", "detail"} and llm_api["health"]["ok"] is False


def test_bad_service_table_is_one_line_and_a_hint(isolated):
    (isolated / "raictl.toml").write_text("[services.web]\nport = 8080\n")
    result = run("-m", "raictl", "status")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: [services.web] has no command",
                                          'hint: add command = ["prog", "arg"]']


def test_down_with_nothing_running_is_fine(isolated):
    result = run("-m", "raictl", "down")
    assert result.returncode == 0 and "nothing was running" in result.stdout
