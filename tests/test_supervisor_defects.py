"""Defects a scenario run found (issue 11, item 5), each staged for real: tiny real servers as extra
services, the real built-ins where the defect is theirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests.supervisor_support import alive, served
from tests.support import free_port, http, url, wait_until


def home() -> Path:
    return Path(os.environ["RAICTL_HOME"])


def test_a_plain_down_says_it_stopped_the_service_not_that_it_was_killed(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    assert stack.raictl("down").returncode == 0
    last = stack.status()["web"]["last_exit"]
    assert last["signal"] == "SIGTERM" and last["cause"] == "down"
    text = stack.raictl("status").stdout
    assert "stopped by raictl down" in text and "killed by SIGTERM" not in text


def test_logs_need_no_state_file(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    assert stack.raictl("down").returncode == 0
    (home() / "state.json").write_text("{ damaged")
    logs = stack.raictl("logs", "web")
    assert logs.returncode == 0, logs.stderr
    assert "serving on" in logs.stdout
    assert stack.raictl("logs").returncode == 0


def test_no_secret_is_left_on_disk_once_nothing_runs(stack, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-a-secret-that-must-not-stay-on-disk")
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    desired = (home() / "desired.json").read_text()
    assert "AIza-a-secret" in desired  # while it runs, the supervisor needs the launch environment
    assert stack.raictl("down", "web").returncode == 0
    for path in home().rglob("*"):
        if path.is_file():
            assert b"AIza-a-secret" not in path.read_bytes(), path


def test_a_fatal_service_leaves_no_secret_behind_once_the_supervisor_exits(stack, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-a-secret-that-must-not-stay-on-disk")
    stack.declare("crash", "import sys; sys.exit(3)", free_port())  # fatal after 5 quick exits
    assert stack.raictl("up", "crash", "--timeout", "20").returncode == 1
    supervisor = stack.state()["supervisor"]
    assert supervisor is None or wait_until(lambda: not alive(supervisor["pid"]), what="the idle supervisor gone")
    assert b"AIza-a-secret" not in (home() / "desired.json").read_bytes()


def test_the_supervisor_says_what_it_is_in_ps(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    pid = stack.state()["supervisor"]["pid"]
    title = " ".join(psutil.Process(pid).cmdline())
    # the room is the command line that forked it: a long home keeps its distinctive end
    assert title.startswith("raictl supervisor") and "/work/.raictl" in title, title
    assert psutil.Process(pid).environ()["RAICTL_TEST_ID"] == os.environ["RAICTL_TEST_ID"]  # environ intact


def test_a_services_folder_where_up_runs_does_not_shadow_the_builtins(isolated, monkeypatch):
    # someone's own project beside raictl.toml: a `services` package (shadows raictl's in a regular
    # install; an editable one maps `services` first) and a module named like a library the API uses
    (isolated / "services").mkdir()
    (isolated / "services" / "__init__.py").write_text("")
    (isolated / "waitress.py").write_text("raise ImportError('the project folder was on sys.path')\n")
    port = free_port()
    monkeypatch.setenv("LLM_API_PORT", str(port))
    monkeypatch.setenv("LLM_ENGINE", "mock")
    raictl = [sys.executable, "-m", "raictl"]
    try:
        up = subprocess.run([*raictl, "up", "llm_api"], capture_output=True, text=True, timeout=90)
        assert up.returncode == 0, up.stderr
        assert http("GET", url("::1", port, "/api/health"))[0] == 200
    finally:
        subprocess.run([*raictl, "down"], capture_output=True, timeout=60)


def test_an_extra_service_removed_from_raictl_toml_leaves_status_once_stopped(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    (stack.folder / "raictl.toml").write_text("")
    assert stack.status()["web"]["state"] == "running"  # still running: shown, and `down` stops it
    down = stack.raictl("down")
    assert down.returncode == 0 and "web stopped" in down.stdout
    assert "web" not in stack.status()
    assert "web" not in json.loads(stack.raictl("status", "--json").stdout)["services"]


def test_doctor_warns_about_a_readable_env_holding_a_key(isolated):
    from tests.doctor_support import doctor

    dotenv = isolated / ".env"
    dotenv.write_text("GEMINI_API_KEY=AIzaSyD-ENV-MODE-0123456789abcdefghijk\n")
    dotenv.chmod(0o644)
    found = doctor(isolated, "config.env_secrets")["config.env_secrets"]
    assert found.status == "warn" and "GEMINI_API_KEY" in found.summary and "0644" in found.summary
    assert found.hint == f"chmod 600 {dotenv}" and "AIzaSyD" not in found.summary
    dotenv.chmod(0o600)
    assert doctor(isolated, "config.env_secrets")["config.env_secrets"].status == "ok"


ONE_LOOPBACK = """
import http.server, os
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def test_an_extra_service_on_one_loopback_only_fails_up_early_naming_the_other(stack):
    port = stack.declare("web", ONE_LOOPBACK, free_port())
    up = stack.raictl("up", "web", "--timeout", "60")
    assert up.returncode == 1
    assert f"[::1]:{port} refuses" in up.stderr and f"127.0.0.1:{port} has accepted" in up.stderr, up.stderr
    assert "hosts" in up.stderr
    assert "not ready after 60s" not in up.stderr  # named early, not at the timeout


def _without_google_genai(folder: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes `from google import genai` fail as it does when
    google-genai is not installed beside other google packages (a regular `google` without `genai`)."""
    (folder / "google").mkdir(parents=True)
    (folder / "google" / "__init__.py").write_text("")
    return folder


def test_gemini_check_names_a_missing_google_genai_instead_of_crashing(isolated, tmp_path):
    from tests.doctor_support import cli_env

    shadow = _without_google_genai(tmp_path / "no-genai")
    env = cli_env(GEMINI_API_KEY="AIzaSyD-NO-GENAI-0123456789abcdefghijk", LLM_API_PORT=str(free_port()),
                  RAICTL_HOME=str(home()), PYTHONPATH=str(shadow))
    done = subprocess.run([sys.executable, "-m", "raictl", "doctor", "--json", "llm.gemini"], capture_output=True,
                          text=True, timeout=60, env=env)
    gemini = json.loads(done.stdout)["checks"][0]
    assert gemini["status"] == "fail" and "crashed" not in gemini["summary"], gemini
    assert "ImportError" in gemini["summary"] and "genai" in gemini["summary"]
    assert "google-genai" in gemini["hint"]


def test_the_llm_api_log_check_reports_the_import_error_not_an_older_sigkill(isolated, tmp_path):
    from raictl.supervisor import logs
    from tests.doctor_support import doctor
    from tests.support import REPO, service_env

    log = home() / "logs" / "llm_api.log"
    logs.event(log, "started pid 11: python -m services.llm_api")
    logs.event(log, "exited: killed by SIGKILL")  # an earlier run, killed
    logs.event(log, "started pid 12: python -m services.llm_api")
    shadow = _without_google_genai(tmp_path / "no-genai")
    env = service_env(home(), PYTHONPATH=f"{shadow}:{REPO}", GEMINI_API_KEY="AIzaSyD-NO-GENAI-0123456789abcdefghijk",
                      LLM_API_PORT=str(free_port()))
    with open(log, "ab") as out:  # the real LLM API, started with a key and no google-genai
        code = subprocess.run([sys.executable, "-m", "services.llm_api"], env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=60).returncode
    assert code != 0
    found = doctor(isolated, "logs.llm_api")["logs.llm_api"]
    assert found.status == "fail" and "genai" in found.summary and "SIGKILL" not in found.summary, found
    assert "google-genai" in found.hint
