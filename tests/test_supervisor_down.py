"""`raictl down` when the settings no longer load: a config typo made while the stack runs must
not leave it without a way to stop. Real `raictl` processes and children.

Decision: down then stops what `<home>` records (state.json, desired.json), printing one
`warning:` line that names the settings error, and exits 0; <home> is RAICTL_HOME, else the one
raictl.toml's folder implies (`.raictl` beside it, or in the cwd). Only when no such folder exists
does it fail with the settings error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.supervisor_support import alive, served
from tests.support import free_port, wait_until


def test_down_with_an_invalid_port_setting_still_stops_what_runs(stack, monkeypatch):
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    pids = stack.state()
    web, supervisor = pids["services"]["web"]["pid"], pids["supervisor"]["pid"]
    monkeypatch.setenv("RAI_API_PORT", "70000")
    assert stack.raictl("status").returncode == 1  # the settings really do not load
    down = stack.raictl("down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "■ web stopped"
    assert down.stderr.splitlines() == [
        f"warning: the settings do not load (RAI_API_PORT must be a port number from 1 to 65535, got '70000'); "
        f"stopping what {os.environ['RAICTL_HOME']} records"]
    assert not alive(web)
    wait_until(lambda: not alive(supervisor), what="the supervisor gone")
    assert stack.raictl("down").stdout.strip() == "nothing was running"  # idempotent, still without settings


def test_down_with_a_broken_raictl_toml_uses_the_home_beside_it(stack, monkeypatch):
    monkeypatch.delenv("RAICTL_HOME")  # the default: .raictl beside raictl.toml
    stack.declare("web", served(), free_port())
    assert stack.raictl("up", "web").returncode == 0
    home = stack.folder / ".raictl"
    pid = json.loads((home / "state.json").read_text())["services"]["web"]["pid"]
    (stack.folder / "raictl.toml").write_text((stack.folder / "raictl.toml").read_text() + "[services.broken\n")
    below = stack.folder / "sub" / "dir"
    below.mkdir(parents=True)
    down = subprocess.run([sys.executable, "-m", "raictl", "down"], capture_output=True, text=True, timeout=60,
                          cwd=below)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "■ web stopped"
    lines = down.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the settings do not load (") \
        and "is not valid TOML" in lines[0] and lines[0].endswith(f"stopping what {home} records"), lines
    assert not alive(pid)


def test_down_with_bad_settings_and_no_home_fails_with_the_settings_error(isolated, monkeypatch):
    monkeypatch.setenv("RAI_API_PORT", "70000")
    monkeypatch.setenv("RAICTL_HOME", str(isolated / "never-made"))
    down = subprocess.run([sys.executable, "-m", "raictl", "down"], capture_output=True, text=True, timeout=60)
    assert down.returncode == 1
    assert down.stderr.splitlines() == ["error: RAI_API_PORT must be a port number from 1 to 65535, got '70000'",
                                        "hint: fix RAI_API_PORT in the environment, .env or raictl.toml"]
    assert not (isolated / "never-made").exists()
