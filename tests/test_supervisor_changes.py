"""`raictl up` when a running service's settings changed, and `raictl restart` whose pre-flight
refuses: real `raictl` processes, real children, real sockets on both loopbacks.

Decisions: `up` restarts a running service whose launch (command, port, hosts, cwd, the settings
it reads, its own env table) differs from what it was started with, after the same pre-flight as
a start, and says so in one line that names what changed, never a secret value. `restart` runs
the pre-flight (ports other than the service's own, imports, database) before stopping anything:
a refusal exits 1, says "nothing was stopped", and leaves the running process alone.
"""

from __future__ import annotations

import subprocess
import sys

from tests.supervisor_support import alive, served
from tests.support import free_port
from tests.test_supervisor import SQUAT


def _redeclare(stack, *tables: tuple) -> None:
    stack.tables = []
    for name, script, port, keys in tables:
        stack.declare(name, script, port, **keys)


def _listening(stack, name: str) -> list[tuple[str, int, bool]]:
    return [(l["host"], l["port"], l["ok"]) for l in stack.status()[name]["listen"]]


def test_up_restarts_a_service_whose_port_changed_and_leaves_an_unchanged_one(stack):
    old, new = free_port(), free_port()
    other = free_port()
    stack.declare("web", served(), old)
    stack.declare("other", served(), other)
    assert stack.raictl("up", "web", "other").returncode == 0
    first, other_pid = stack.status()["web"]["pid"], stack.status()["other"]["pid"]
    _redeclare(stack, ("web", served(), new, {}), ("other", served(), other, {}))
    again = stack.raictl("up", "web", "other")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"↻ web restarted: settings changed (port {old} → {new})",
                                         "✓ other already running"]
    web = stack.status()["web"]
    assert web["pid"] != first and not alive(first) and web["state"] == "running" and web["health"]["ok"]
    assert _listening(stack, "web") == [("127.0.0.1", new, True), ("::1", new, True)]
    assert stack.status()["other"]["pid"] == other_pid  # unchanged: untouched
    same = stack.raictl("up", "web", "other")  # idempotent once more
    assert same.stdout.splitlines() == ["✓ web already running", "✓ other already running"]
    assert stack.status()["web"]["pid"] == web["pid"]


def test_a_changed_env_value_is_named_never_shown(stack):
    port = free_port()
    stack.declare("web", served(), port, env={"API_TOKEN": "s3cret-one"})
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    _redeclare(stack, ("web", served(), port, {"env": {"API_TOKEN": "s3cret-two"}}))
    again = stack.raictl("up", "web")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "↻ web restarted: settings changed (API_TOKEN)"
    assert "s3cret" not in again.stdout + again.stderr
    assert stack.status()["web"]["pid"] != first


def test_changed_port_taken_by_another_process_is_refused_and_nothing_stopped(stack):
    old, taken = free_port(), free_port()
    stack.declare("web", served(), old)
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    squatter = subprocess.Popen([sys.executable, "-c", SQUAT, "127.0.0.1", str(taken)], stdout=subprocess.PIPE,
                                text=True)
    try:
        assert squatter.stdout.readline().strip() == "squatting"
        _redeclare(stack, ("web", served(), taken, {}))
        refused = stack.raictl("up", "web")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.startswith(f"error: web cannot listen on 127.0.0.1:{taken}: taken by pid {squatter.pid}")
        assert "; nothing was stopped: web keeps running as before\nhint: " in refused.stderr, refused.stderr
        assert stack.status()["web"]["pid"] == first and alive(first)
        assert _listening(stack, "web") == [("127.0.0.1", old, True), ("::1", old, True)]
    finally:
        squatter.kill()
        squatter.wait()


def test_restart_refused_by_the_import_preflight_leaves_the_running_service_alone(stack):
    app = stack.folder / "app"
    app.mkdir()
    (app / "webmod.py").write_text(served())
    port = free_port()
    (stack.folder / "raictl.toml").write_text(
        f"[services.web]\ncommand = ['python', '-m', 'webmod']\ncwd = 'app'\nport = {port}\nhealth = '/api/health'\n")
    assert stack.raictl("up", "web").returncode == 0
    first = stack.status()["web"]["pid"]
    (app / "webmod.py").rename(app / "webmod_gone.py")  # the running process has it loaded already
    refused = stack.raictl("restart", "web")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "ModuleNotFoundError" in refused.stderr and "nothing was stopped: web keeps running" in refused.stderr
    web = stack.status()["web"]
    assert web["pid"] == first and web["state"] == "running" and web["health"]["ok"]
    (app / "webmod_gone.py").rename(app / "webmod.py")
    restarted = stack.raictl("restart", "web")  # its own port in use is no reason to refuse
    assert restarted.returncode == 0 and restarted.stdout.strip() == "✓ web ready", restarted.stderr
    assert stack.status()["web"]["pid"] != first and not alive(first)
