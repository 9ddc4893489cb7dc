"""The supervisor end to end: real `raictl` processes supervising tiny real HTTP servers.

Extra services are declared in a raictl.toml in the test's folder, so these tests do not depend
on the LLM API or the RAI API; one test at the end runs the two real built-in services.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.supervisor_support import alive, served
from raictl.supervisor.process import RELAY_VAR
from tests.support import free_port, wait_until

IGNORE_TERM = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
GRANDCHILD = """import subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"])
open(os.environ["GRANDCHILD_FILE"], "w").write(str(grandchild.pid))"""
CRASH = 'import sys; print("boom: the widget is missing", flush=True); sys.exit(3)'


def test_up_starts_ready_on_both_loopbacks_and_down_stops(stack):
    port = stack.declare("web", served(), free_port())
    result = stack.raictl("up", "web")
    assert result.returncode == 0, result.stderr
    home = Path(os.environ["RAICTL_HOME"])  # fresh: up made it, and logs/ with every service's output
    assert [stat.S_IMODE(p.stat().st_mode) for p in (home, home / "logs")] == [0o700, 0o700]
    web = stack.status()["web"]
    assert web["state"] == "running" and web["health"]["ok"]
    assert [(l["host"], l["port"], l["ok"]) for l in web["listen"]] == [("127.0.0.1", port, True), ("::1", port, True)]
    pid = web["pid"]
    assert stack.raictl("up", "web").returncode == 0  # idempotent: nothing started twice
    assert stack.status()["web"]["pid"] == pid
    down = stack.raictl("down")
    assert down.returncode == 0 and "web stopped" in down.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert stack.status()["web"]["state"] == "stopped"
    assert stack.raictl("down").returncode == 0  # idempotent


def test_kill_9_is_restarted_and_status_shows_sigkill(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    os.kill(first, signal.SIGKILL)
    web = wait_until(lambda: (w := stack.status()["web"])["pid"] not in (None, first) and w["health"]["ok"]
                     and w["state"] == "running" and w, timeout=15, what="web restarted, running and healthy")
    assert web["restarts"] == 1
    assert web["last_exit"]["signal"] == "SIGKILL" and web["last_exit"]["code"] is None
    text = stack.raictl("status")
    assert text.returncode == 3  # the built-ins are not running
    assert "killed by SIGKILL" in text.stdout


def test_child_ignoring_sigterm_is_killed_after_grace(stack):
    stack.declare("stubborn", served(IGNORE_TERM), free_port(), grace=0.5)
    assert stack.raictl("up", "stubborn").returncode == 0
    pid = stack.status()["stubborn"]["pid"]
    down = stack.raictl("down", "stubborn")
    assert down.returncode == 0
    assert "SIGKILL after the grace period" in down.stdout
    assert not alive(pid)
    assert stack.state()["services"]["stubborn"]["last_exit"]["signal"] == "SIGKILL"


def test_grandchild_that_left_the_group_is_not_orphaned(stack, tmp_path):
    marker_file = tmp_path / "grandchild.pid"
    stack.declare("parent", served(GRANDCHILD), free_port(), env={"GRANDCHILD_FILE": str(marker_file)})
    assert stack.raictl("up", "parent").returncode == 0
    grandchild = int(wait_until(marker_file.read_text, what="the grandchild's pid"))
    assert alive(grandchild)
    parent = stack.status()["parent"]["pid"]
    wait_until(lambda: os.getpgid(grandchild) != os.getpgid(parent), what="the grandchild's setsid")  # it left the group
    assert stack.raictl("down").returncode == 0
    assert not alive(grandchild)


SQUAT = """import socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()
print("squatting", flush=True); time.sleep(600)"""


def test_a_port_holders_command_line_is_one_line_cut_at_a_word():
    from raictl.supervisor.probes import CMDLINE_CHARS, PortOwner

    line = PortOwner(7, "python", "python -c 'import x\nprint(1)'\t" + "word " * 200).describe()
    assert line.startswith("pid 7 (python): python -c 'import x print(1)' word word") and "\n" not in line
    assert line.endswith(" word …") and len(line) <= len("pid 7 (python): ") + CMDLINE_CHARS + 2


@pytest.mark.parametrize("host", ["::1", "127.0.0.1"])
def test_port_squatted_on_one_loopback_is_refused_and_named(stack, host):
    port = stack.declare("web", served(), free_port())
    squatter = subprocess.Popen([sys.executable, "-c", SQUAT, host, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "squatting"
        result = stack.raictl("up", "web")
        assert result.returncode == 1
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        assert f"web cannot listen on {where}" in result.stderr
        assert f"pid {squatter.pid}" in result.stderr and "squatting" in result.stderr  # its command line
        error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(error) == 1 and "family = socket.AF_INET6" in error[0], result.stderr  # its lines joined
        assert "Traceback" not in result.stderr
        assert stack.status()["web"]["state"] == "stopped"
        table = stack.raictl("status").stdout  # a stopped service whose port accepts: not a ✓
        assert f"{host} taken" in table and f"web is not running, yet {where} accepts connections" in table
    finally:
        squatter.kill()
        squatter.wait()


def test_crash_loop_ends_fatal_with_log_tail(stack):
    stack.declare("crashy", CRASH, free_port())
    result = stack.raictl("up", "crashy")
    assert result.returncode == 1
    assert "crashy" in result.stderr and "fatal" in result.stderr
    assert "boom: the widget is missing" in result.stderr  # the log tail is on screen
    crashy = stack.status()["crashy"]
    assert crashy["state"] == "fatal" and crashy["pid"] is None
    assert crashy["last_exit"]["code"] == 3 and crashy["last_exit"]["signal"] is None
    assert any("boom" in line for line in stack.state()["services"]["crashy"]["log_tail"])
    assert stack.raictl("status").returncode == 3


def test_two_concurrent_ups_start_one_set(stack):
    stack.declare("web", served(), free_port())
    ups = [subprocess.Popen([sys.executable, "-m", "raictl", "up", "web"], cwd=stack.folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in ups]
    assert [p.returncode for p in ups] == [0, 0], outputs
    webs = _marked(os.environ["RAICTL_TEST_ID"], service="web")
    assert len(webs) == 1, webs
    supervisors = [p for p in _marked(os.environ["RAICTL_TEST_ID"]) if "raictl" in " ".join(p.cmdline())]
    assert len(supervisors) == 1, supervisors


def test_supervisor_killed_then_status_and_down_tell_the_truth(stack):
    stack.declare("web", served(), free_port())
    stack.declare("other", served(), free_port())
    assert stack.raictl("up", "web", "other").returncode == 0
    state = stack.state()
    os.kill(state["supervisor"]["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(state["supervisor"]["pid"]), what="the supervisor gone")
    os.kill(state["services"]["other"]["pid"], signal.SIGKILL)
    wait_until(lambda: stack.status()["other"]["state"] == "stopped", what="other reported stopped")
    result = json.loads(stack.raictl("status", "--json").stdout)
    assert result["supervisor"] == {"running": False, "pid": None}
    services = {s["name"]: s for s in result["services"]}
    assert services["web"]["state"] == "running" and services["web"]["health"]["ok"]
    assert services["other"]["state"] == "stopped"  # not "backoff": nothing will restart it
    web_pid = services["web"]["pid"]
    assert stack.raictl("down").returncode == 0
    assert not alive(web_pid)
    assert stack.status()["web"]["state"] == "stopped"


def test_up_after_the_supervisor_died_adopts_what_still_runs(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    before = stack.state()
    os.kill(before["supervisor"]["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(before["supervisor"]["pid"]), what="the supervisor gone")
    assert _doctor_running(stack, "web") == ("warn", "raictl up")  # it runs, but nothing would restart it
    again = stack.raictl("up", "web")
    assert again.returncode == 0 and "web already running" in again.stdout
    after = stack.state()
    assert after["supervisor"]["pid"] != before["supervisor"]["pid"]
    assert after["services"]["web"]["pid"] == before["services"]["web"]["pid"]  # adopted, not doubled
    os.kill(before["services"]["web"]["pid"], signal.SIGKILL)  # the new supervisor watches it
    wait_until(lambda: (w := stack.status()["web"])["health"]["ok"] and w["pid"] != before["services"]["web"]["pid"],
               timeout=15, what="web restarted by the new supervisor")


def _doctor_running(stack, name: str) -> tuple[str, str]:
    """(status, the command its hint starts with) of doctor's NAME.running, run for real."""
    done = stack.raictl("doctor", f"{name}.running", "--json")
    found = json.loads(done.stdout)["checks"][0]
    if found["status"] == "warn":
        assert "no raictl supervisor watches it" in found["summary"], found
    return found["status"], (found["hint"] or "").strip("`").split("`")[0]


def test_reused_pid_is_neither_trusted_nor_signalled(stack):
    """A state.json naming a live process whose create time differs: a reused pid."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        home = Path(os.environ["RAICTL_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        record = {"state": "running", "pid": stranger.pid, "create_time": 1.0, "marker": "not-a-real-marker",
                  "restarts": 0, "port": free_port(), "hosts": ["127.0.0.1"], "health": "/api/health"}
        supervisor = {"pid": stranger.pid, "create_time": 1.0, "marker": "supervisor"}
        (home / "state.json").write_text(json.dumps({"supervisor": supervisor, "services": {"ghost": record}}))
        assert "ghost" not in stack.status()  # not configured and not running: trusted, it would show running
        assert stack.raictl("down").returncode == 0
        assert stranger.poll() is None  # untouched
    finally:
        stranger.kill()
        stranger.wait()


def test_entry_module_that_does_not_import_is_refused_with_sys_path(stack):
    (stack.folder / "raictl.toml").write_text("[services.broken]\ncommand = ['python', '-m', 'no_such_module_xyz']\n")
    result = stack.raictl("up", "broken")
    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr and "no_such_module_xyz" in result.stderr
    assert "sys.path searched" in result.stderr
    assert result.stderr.splitlines()[-1] == ("hint: install the package that provides no_such_module_xyz into that "
                                              "interpreter, or set cwd in [services.broken] to the folder that holds it")
    assert stack.status()["broken"]["state"] == "stopped"


def test_unknown_service_is_a_usage_error(stack):
    result = stack.raictl("up", "nosuch")
    assert result.returncode == 2
    assert "unknown service 'nosuch'" in result.stderr and "llm_api" in result.stderr


def test_logs_show_one_service_or_all_interleaved(stack):
    stack.declare("web", served(), free_port())
    stack.declare("api", served(), free_port())
    assert stack.raictl("up", "web", "api").returncode == 0
    one = stack.raictl("logs", "web", "-n", "20")
    assert one.returncode == 0 and "serving on" in one.stdout and "api |" not in one.stdout
    both = stack.raictl("logs", "-n", "50").stdout.splitlines()
    assert {line.split(" | ")[0] for line in both} == {"web", "api"}  # only logs that exist
    stamps = [line.split("[raictl ")[1][:23] for line in both if "[raictl " in line]
    assert len(stamps) >= 4 and stamps == sorted(stamps)  # interleaved by time


def test_foreground_multiplexes_logs_and_ctrl_c_stops_everything(stack):
    stack.declare("web", served(), free_port())
    fg = subprocess.Popen([sys.executable, "-m", "raictl", "up", "web", "--foreground"], cwd=stack.folder,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: stack.status()["web"]["health"]["ok"], timeout=30, what="web healthy in foreground")
        pid = stack.status()["web"]["pid"]
        fg.send_signal(signal.SIGINT)
        out, err = fg.communicate(timeout=30)
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.communicate()
    assert fg.returncode == 0, err
    assert "web" in out and "| " in out and "serving on" in out
    assert not alive(pid)


def _marked(test_id: str, service: str | None = None) -> list[psutil.Process]:
    """The live processes of this test (of one service), the log relays of extra services left out."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if env.get("RAICTL_TEST_ID") == test_id and proc.pid != os.getpid() and not env.get(RELAY_VAR) \
                and (service is None or env.get("RAICTL_SERVICE") == service) and alive(proc.pid):
            found.append(proc)
    return found


def test_up_from_a_threaded_caller_starts_the_supervisor_without_fork(stack):
    """`raictl doctor --fix` calls control.up from a process running check threads."""
    import threading

    from raictl.supervisor import control
    from raishared.settings import load_settings

    stack.declare("web", served(), free_port())
    release = threading.Event()
    busy = threading.Thread(target=release.wait, daemon=True)
    busy.start()
    try:
        result = control.up(load_settings(), ["web"], timeout=30)
        assert result.ok, result.failures
        supervisor = psutil.Process(stack.state()["supervisor"]["pid"])
        assert "raictl.supervisor.watch" in " ".join(supervisor.cmdline())
        assert stack.status()["web"]["health"]["ok"]
    finally:
        release.set()
        control.down(load_settings(), [])
    wait_until(lambda: not alive(supervisor.pid), what="the supervisor gone after down")


def test_restart_gives_a_new_process_ready_again(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    result = stack.raictl("restart", "web", "--timeout", "30")  # parsed by Typer, not the plain path
    assert result.returncode == 0 and "web ready" in result.stdout, result.stderr
    web = stack.status()["web"]
    assert web["pid"] != first and web["state"] == "running" and web["health"]["ok"]
    assert not alive(first)


def test_log_rotation_keeps_the_newest_lines_and_the_writer_appending(tmp_path):
    from raictl.supervisor import logs

    path = tmp_path / "web.log"
    writer = open(path, "a")  # a child's O_APPEND stdout
    try:
        for n in range(4):
            writer.write(f"round {n} " + "x" * 100 + "\n")
            writer.flush()
            assert logs.rotate(path, max_bytes=50, backups=2)
        writer.write("after the last rotation\n")
        writer.flush()
    finally:
        writer.close()
    assert path.read_text() == "after the last rotation\n"  # appended at the start, no hole of NULs
    assert path.with_name("web.log.1").read_text().startswith("round 3")
    assert path.with_name("web.log.2").read_text().startswith("round 2")
    assert not path.with_name("web.log.3").exists()
    assert not logs.rotate(path, max_bytes=10_000)


def test_down_repairs_a_damaged_state_file_and_stops_what_runs(stack):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    before = stack.state()
    state_file = Path(os.environ["RAICTL_HOME"]) / "state.json"
    state_file.write_text(state_file.read_text()[:40])  # truncated, as a full disk would leave it
    status = stack.raictl("status")
    assert status.returncode == 1 and "state.json is damaged" in status.stderr and "raictl down" in status.stderr
    down = stack.raictl("down")
    assert down.returncode == 0 and "web stopped" in down.stdout, down.stderr
    assert not alive(before["services"]["web"]["pid"])
    wait_until(lambda: not alive(before["supervisor"]["pid"]), what="the supervisor gone")
    assert stack.state()["services"]["web"]["last_exit"]["signal"] == "SIGTERM"  # recorded, not "unknown"
    after = stack.raictl("status", "--json")
    assert after.returncode == 3 and {s["name"]: s for s in json.loads(after.stdout)["services"]}["web"]["state"] == "stopped"
    assert stack.raictl("up", "web").returncode == 0  # and it starts again from the repaired state


def test_port_held_by_a_service_of_another_home_names_that_home(stack, tmp_path):
    port = stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    other_home = tmp_path / "other-home"
    result = subprocess.run([sys.executable, "-m", "raictl", "up", "web"], capture_output=True, text=True,
                            timeout=60, cwd=stack.folder, env={**os.environ, "RAICTL_HOME": str(other_home)})
    assert result.returncode == 1 and f"web cannot listen on 127.0.0.1:{port}" in result.stderr
    assert f"hint: a service of another raictl home: `RAICTL_HOME={os.environ['RAICTL_HOME']} raictl down`" \
        in result.stderr  # not "run `raictl down`", which in this home would stop nothing
