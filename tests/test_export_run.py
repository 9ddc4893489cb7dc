"""The exported compose services run for real, as compose would run them, and doctor inside them.

No container engine here: each service of compose.yaml runs as a process with the environment, command
and folder the file gives it. Compose's own parts are emulated plainly: `${NAME:?...}` interpolated from
the values an operator would put in `.env`, the volume at /data a temporary folder, and the network's
DNS (`llm-api`) this machine's 127.0.0.1. The healthchecks are the file's own `CMD` lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from raictl.export import export
from raishared.settings import load_settings
from tests.doctor_support import cli_env
from tests.support import TEST_MARKER, free_port, http, wait_until

OPERATOR_SECRETS = {"RAI_SECRET_KEY": "a-signing-secret-the-operator-chose-0123456789", "GEMINI_API_KEY": ""}
_REF = re.compile(r"\$\{(\w+)(?::[?-][^}]*)?\}")


def interpolate(value: str, data: Path) -> str:
    value = _REF.sub(lambda m: OPERATOR_SECRETS[m.group(1)], value).replace("$$", "$")
    return value.replace("/data", str(data)).replace("//llm-api:", "//127.0.0.1:")


def container_env(service: dict, data: Path) -> dict[str, str]:
    env = {k: interpolate(str(v), data) for k, v in service["environment"].items()}
    env.update({k: os.environ[k] for k in ("PATH", "LANG", TEST_MARKER) if k in os.environ})
    return env


def argv(command: list[str]) -> list[str]:
    first = {"python": [sys.executable], "raictl": [sys.executable, "-m", "raictl"]}[command[0]]
    return first + command[1:]


def healthy(service: dict, env: dict[str, str]) -> bool:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    return subprocess.run(argv(test[1:]), env=env, capture_output=True, timeout=20).returncode == 0


def doctor(project: Path, env: dict[str, str], *checks: str) -> dict[str, dict]:
    import json

    done = subprocess.run([sys.executable, "-m", "raictl", "doctor", "--json", *checks], cwd=project, env=env,
                          capture_output=True, text=True, timeout=90)
    assert "Traceback" not in done.stderr, done.stderr
    return {c["id"]: c for c in json.loads(done.stdout)["checks"]}


def test_exported_compose_services_run_serve_a_chat_and_doctor_knows_the_container(tmp_path, isolated):
    rai_port, llm_port, data = free_port(), free_port(), tmp_path / "data"
    data.mkdir()
    settings = load_settings(environ={"RAI_API_PORT": str(rai_port), "LLM_API_PORT": str(llm_port),
                                      "LLM_ENGINE": "mock"})
    exported = {f.path: f.text for f in export(settings, "compose", isolated / "deploy").files}
    services = yaml.safe_load(exported["compose.yaml"])["services"]
    envs = {name: container_env(s, data) for name, s in services.items()}
    migrated = subprocess.run(argv(services["migrate"]["command"]), env=envs["migrate"], cwd=isolated,
                              capture_output=True, text=True, timeout=90)
    assert migrated.returncode == 0, migrated.stderr
    procs = []
    try:
        for name in ("llm-api", "rai-api"):  # in depends_on order, each started once the one before is healthy
            procs.append(subprocess.Popen(argv(services[name]["command"]), env=envs[name], cwd=isolated,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            wait_until(lambda: healthy(services[name], envs[name]), timeout=30, what=f"{name}'s healthcheck")
        for host in ("127.0.0.1", "[::1]"):  # every address, both families
            assert http("GET", f"http://{host}:{rai_port}/api/health")[0] == 200
        for name, port in (("llm-api", llm_port), ("rai-api", rai_port)):  # as another container calls it
            assert http("GET", f"http://127.0.0.1:{port}/api/health", headers={"Host": f"{name}:{port}"})[0] == 200
        assert http("GET", f"http://127.0.0.1:{rai_port}/api/health", headers={"Host": "evil.example"})[0] == 400
        base = f"http://127.0.0.1:{rai_port}/api"
        assert http("POST", f"{base}/auth/register", {"username": "ops", "password": "correct horse"})[0] == 201
        token = http("POST", f"{base}/auth/login", {"username": "ops", "password": "correct horse"})[1]["access_token"]
        status, reply = http("POST", f"{base}/chat", {"message": "hello from compose"}, token=token)
        assert status == 200 and reply["status"] == "success", reply

        inside = {**cli_env(), **envs["rai-api"]}
        found = doctor(isolated, inside, "rai_api", "host.container")
        assert found["host.container"]["summary"].startswith("in a container run by compose")
        for check in ("rai_api.running", "rai_api.port", "rai_api.listen.ipv4", "rai_api.listen.ipv6", "rai_api.health"):
            assert found[check]["status"] == "ok", (check, found[check])
        assert "run by compose" in found["rai_api.running"]["summary"]
        laptop = {k: v for k, v in inside.items() if k != "RAICTL_CONTAINER"}  # the same binding, not exported
        found = doctor(isolated, laptop, "rai_api.listen.ipv4", "rai_api.running")
        assert found["rai_api.listen.ipv4"]["status"] == "fail"
        assert "binds 0.0.0.0" in found["rai_api.listen.ipv4"]["summary"]
        assert found["rai_api.running"]["status"] != "ok"
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
