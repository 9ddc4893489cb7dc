"""Several RAI API replicas on one machine (`raictl up --replicas N`, `rai_api.replicas`), for real.

Three replicas on consecutive ports share one MariaDB database and one token secret: a token from one
works on the others, a session written through one is read through another, remembered facts and recall
are the same through each; a replica killed with SIGKILL leaves the others serving and the supervisor
restarts it. SQLite with replicas is refused before anything starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_rai_api import MOCK_REPLY
from tests.support import free_port, free_ports, http, wait_until

PASSWORD = "correct horse"


def raictl(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)


def status(folder: Path, env: dict[str, str]) -> dict[str, dict]:
    done = raictl(folder, "status", "--json", env=env)
    return {s["name"]: s for s in json.loads(done.stdout)["services"]}


def api(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}/api{path}"


@pytest.mark.mysql
def test_three_replicas_share_tokens_sessions_and_memory_and_survive_a_kill(isolated, mysql_url):
    ports = free_ports(3)
    env = {**os.environ, "RAI_DATABASE_URL": mysql_url, "RAI_API_PORT": str(ports[0]),
           "LLM_API_PORT": str(free_port()), "LLM_ENGINE": "mock"}
    up = raictl(isolated, "up", "--replicas", "3", env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        services = status(isolated, env)
        names = ["rai_api", "rai_api@2", "rai_api@3"]
        for name, port in zip(names, ports):  # status shows each replica, on its own port
            assert services[name]["state"] == "running", services[name]
            assert {entry["port"] for entry in services[name]["listen"]} == {port}

        user = {"username": "replica", "password": PASSWORD}
        assert http("POST", api(ports[0], "/auth/register"), user)[0] == 201
        token = http("POST", api(ports[1], "/auth/login"), user)[1]["access_token"]
        for port in ports:  # signed by one replica, accepted by every one: one secret
            assert http("GET", api(port, "/sessions"), token=token)[0] == 200

        first = http("POST", api(ports[0], "/chat"), {"message": "remember that my cat is called Miso"}, token=token)[1]
        session = first["session_id"]
        second = http("POST", api(ports[1], "/chat"), {"message": "my cat Miso likes tuna", "session_id": session},
                      token=token)[1]
        assert second["session_id"] == session
        status_code, messages = http("GET", api(ports[2], f"/sessions/{session}/messages"), token=token)
        assert status_code == 200 and [m["content"] for m in messages["messages"]][::2] == [
            "remember that my cat is called Miso", "my cat Miso likes tuna"]
        listed = http("POST", api(ports[2], "/chat"), {"message": "what do you remember?"}, token=token)[1]
        assert "my cat is called Miso" in listed["response"]
        fresh = http("POST", api(ports[1], "/chat"), {"message": "what does Miso the cat eat?"}, token=token)[1]
        report = MOCK_REPLY.search(fresh["response"])
        assert fresh["session_id"] != session and report["facts"] == "1" and int(report["recalled"]) > 0, fresh

        victim = services["rai_api@2"]["pid"]
        os.kill(victim, signal.SIGKILL)
        for port in (ports[0], ports[2]):  # the others keep serving while it is down
            assert http("GET", api(port, "/sessions"), token=token)[0] == 200

        def restarted():
            again = status(isolated, env)["rai_api@2"]
            return again["state"] == "running" and again["pid"] != victim and again["restarts"] >= 1 \
                and again["health"]["ok"] and again
        wait_until(restarted, timeout=60, what="the supervisor to restart rai_api@2")
        assert http("GET", api(ports[1], "/sessions"), token=token)[0] == 200
    finally:
        down = raictl(isolated, "down", env=env)
        assert down.returncode == 0, down.stderr


def test_replicas_on_sqlite_are_refused_before_anything_starts(isolated):
    env = {**os.environ, "RAI_API_PORT": str(free_ports(2)[0]), "LLM_API_PORT": str(free_port())}
    done = raictl(isolated, "up", "--replicas", "2", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: 2 RAI API replicas need MySQL/MariaDB"), done.stderr
    assert "\nhint: " in done.stderr
    assert all(s["state"] == "stopped" for s in status(isolated, env).values())
