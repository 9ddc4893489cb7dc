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


def test_raictl_debug_shows_the_traceback_on_both_cli_paths_and_0_means_off(isolated, monkeypatch):
    """`status` takes the plain fast path (entry.py), `logs` Typer's (cli.py): one switch for both."""
    (isolated / "raictl.toml").write_text("[services.web]\nport = 8080\n")
    for argv in (["status"], ["logs", "-n", "5"]):
        for value, traceback in (("1", True), ("yes", True), ("0", False), ("", False)):
            monkeypatch.setenv("RAICTL_DEBUG", value)
            result = run("-m", "raictl", *argv)
            assert result.returncode == 1 and ("Traceback" in result.stderr) is traceback, (argv, value, result.stderr)
            assert traceback or result.stderr.splitlines()[0] == "error: [services.web] has no command"


def test_down_with_nothing_running_is_fine(isolated):
    result = run("-m", "raictl", "down")
    assert result.returncode == 0 and "nothing was running" in result.stdout


# -- expected failures: one line and a hint on stderr, the right exit code, never a traceback -------

def _one_error(result: subprocess.CompletedProcess, code: int, *parts: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    for part in parts:
        assert part in result.stderr, (part, result.stderr)


BAD_TABLES = {
    "command = 5": ("[services.web]\ncommand = 5\n", "command must be a string or a list"),
    "port not a number": ("[services.web]\ncommand = 'python -m http.server'\nport = 'abc'\n",
                          "services.web.port must be a port number"),
    "unknown dependency": ("[services.web]\ncommand = 'prog'\ndepends_on = ['nope']\n",
                           "web depends on unknown service 'nope'"),
    "dependency cycle": ("[services.a]\ncommand = 'prog'\ndepends_on = ['b']\n"
                         "[services.b]\ncommand = 'prog'\ndepends_on = ['a']\n", "in a cycle through"),
    "depends_on a string": ("[services.web]\ncommand = 'prog'\ndepends_on = 'rai_api'\n",
                            "depends_on must be a list of service names"),
    "env a list": ("[services.web]\ncommand = 'prog'\nenv = ['A']\n", "env must be a table"),
    "grace a word": ("[services.web]\ncommand = 'prog'\ngrace = 'soon'\n", "grace must be a number of seconds"),
    "health a number": ("[services.web]\ncommand = 'prog'\nhealth = 5\n", "health must be an HTTP path"),
    "a typo'd key": ("[services.web]\ncommand = 'prog'\nprot = 5\n", "unknown key 'prot'"),
    "not a table": ("[services]\nweb = 3\n", "services.web in raictl.toml must be a table"),
    "unclosed quote": ("[services.web]\ncommand = 'prog \"arg'\n", "command cannot be split"),
}


def test_malformed_service_tables_are_one_line_and_a_hint(isolated):
    for case, (toml, message) in BAD_TABLES.items():
        (isolated / "raictl.toml").write_text(toml)
        for argv in (["status"], ["up"]):
            result = run("-m", "raictl", *argv)
            assert "Traceback" not in result.stderr, (case, result.stderr)
            _one_error(result, 1, message)


def test_same_port_for_both_services_is_refused_up_front(isolated, monkeypatch):
    port = free_port()
    monkeypatch.setenv("LLM_API_PORT", str(port))
    monkeypatch.setenv("RAI_API_PORT", str(port))
    for argv in (["up"], ["up", "rai_api"], ["up", "--foreground"], ["restart"]):
        _one_error(run("-m", "raictl", *argv), 1, f"llm_api and rai_api are both set to listen on port {port}",
                   "LLM_API_PORT", "RAI_API_PORT")
    assert not (isolated / ".raictl" / "state.json").exists()  # nothing was started


def test_bad_timeouts_are_usage_errors(isolated, monkeypatch):
    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    for value in ("-1", "0", "nan"):
        _one_error(run("-m", "raictl", "up", "--timeout", value), 2, "--timeout must be a positive number")
    _one_error(run("-m", "raictl", "restart", "--timeout", "0"), 2, "--timeout must be a positive number")
    typed = run("-m", "raictl", "up", "--timeout", "abc")
    assert typed.returncode == 2 and "'--timeout'" in typed.stderr and "Traceback" not in typed.stderr


def test_damaged_state_file_is_one_line_and_older_formats_still_read(isolated, monkeypatch):
    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    home = isolated / ".raictl"
    home.mkdir()
    state = home / "state.json"
    for damaged in ('{"services": {"llm_api": {"st', '{"services": {"llm_api": "running"}}',
                    '{"supervisor": {"pid": "12", "create_time": 1, "marker": "x"}}', '"just a string"'):
        state.write_text(damaged)
        for argv in (["status"], ["up"]):
            _one_error(run("-m", "raictl", *argv), 1, "state.json is damaged", "raictl down")
        assert "state.json" not in run("-m", "raictl", "logs").stderr  # logs need no state
    for older in ('{"version": 0, "pids": {"llm_api": 1234}}',  # before services were recorded
                  '{"services": {"llm_api": {"state": "running", "pid": 1}}}',  # no create time, no marker
                  '{"services": {"llm_api": {"state": "stopped", "last_exit": {"code": 1, "at": 5, "x": 1}}}}'):
        state.write_text(older)
        result = run("-m", "raictl", "status", "--json")
        assert result.returncode == 3 and not result.stderr, result.stderr
        llm = {s["name"]: s for s in json.loads(result.stdout)["services"]}["llm_api"]
        assert llm["state"] == "stopped" and llm["pid"] is None  # pid 1 is never taken on an old file's word
    state.unlink()
    state.mkdir()  # a folder where the file should be
    _one_error(run("-m", "raictl", "status"), 1, "state.json is a folder, not a file")
    assert run("-m", "raictl", "down").returncode == 0 and not state.exists()  # set aside by down


def test_a_home_that_is_a_file_or_cannot_be_created(isolated, monkeypatch):
    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    (isolated / "home").write_text("not a folder")
    monkeypatch.setenv("RAICTL_HOME", str(isolated / "home"))
    for argv in (["status"], ["up"], ["down"], ["logs"], ["restart"]):
        _one_error(run("-m", "raictl", *argv), 1, "is a file, not a folder", "RAICTL_HOME")
    monkeypatch.setenv("RAICTL_HOME", str(isolated / "home" / "below"))
    for argv in (["status"], ["up"], ["down"]):
        _one_error(run("-m", "raictl", *argv), 1, "cannot use the state folder", "RAICTL_HOME")
    monkeypatch.setenv("RAICTL_HOME", "/sys/kernel")  # a folder nobody may create files in, root included
    for argv in (["up"], ["down"]):
        _one_error(run("-m", "raictl", *argv), 1, "cannot use the state folder /sys/kernel", "RAICTL_HOME")


def test_a_program_that_is_not_there_is_refused_before_starting(isolated, monkeypatch):
    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    for command, message in (("no-such-program-xyz --serve", "no-such-program-xyz is not found or not executable "
                                                             "on its PATH"),
                             ("./bin/dev-server", "./bin/dev-server is not found or not executable"),
                             ("prog", "its folder")):
        cwd = "cwd = 'frontend'\n" if command == "prog" else ""
        (isolated / "raictl.toml").write_text(f"[services.web]\ncommand = '{command}'\n{cwd}")
        _one_error(run("-m", "raictl", "up", "web"), 1, "web cannot start: " + message, "[services.web]")
    assert not (isolated / ".raictl" / "state.json").exists()  # nothing was started
