"""RAI API replicas that share nothing but the database: each in its own network namespace.

Where the machine allows it (root, `ip netns`), three namespaces are joined to this one by veth pairs.
Each replica runs inside its own (`ip netns exec`), listening on its namespace's address, on the same
port as the others; it reaches the LLM API and MariaDB across its veth (MariaDB listens on 127.0.0.1
here, so a small relay on this side of each veth carries its connections: the database traffic really
crosses the link). A token from one replica works on the others and a session written through one is
read through another: nothing depends on sharing a loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from contextlib import ExitStack, closing

import pytest

from tests.support import free_port, http, service_env, wait_until

PASSWORD = "correct horse"


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


def _netns_possible() -> str | None:
    """None when namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the ip command is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"rxp{os.getpid() % 100000}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add fails here: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


_WHY_NOT = _netns_possible()
pytestmark = [pytest.mark.mysql, pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))]


class Namespace:
    """A namespace joined to this one by a veth pair: `outside` here, `inside` in it (a /30)."""

    def __init__(self, tag: str, subnet: str) -> None:
        self.name, self.host_if, self.ns_if = f"rx{tag}", f"rx{tag}h", f"rx{tag}n"
        self.outside, self.inside = f"{subnet}.1", f"{subnet}.2"

    def create(self) -> "Namespace":
        steps = [("netns", "add", self.name), ("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if),
                 ("link", "set", self.ns_if, "netns", self.name), ("addr", "add", f"{self.outside}/30", "dev", self.host_if),
                 ("link", "set", self.host_if, "up"),
                 ("netns", "exec", self.name, "ip", "addr", "add", f"{self.inside}/30", "dev", self.ns_if),
                 ("netns", "exec", self.name, "ip", "link", "set", self.ns_if, "up"),
                 ("netns", "exec", self.name, "ip", "link", "set", "lo", "up")]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        return self

    def delete(self) -> None:
        _ip("link", "del", self.host_if)
        _ip("netns", "del", self.name)


class Relay:
    """Accepts on (host, port) and carries each connection to `target`, both ways."""

    def __init__(self, host: str, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((host, port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with closing(source), closing(sink):
            while data := source.recv(65536):
                sink.sendall(data)

    def close(self) -> None:
        self.server.close()


def _start(argv: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def test_replicas_in_their_own_namespaces_share_tokens_and_sessions(tmp_path, mysql_url):
    import sqlalchemy as sa

    tag, octet = f"{os.getpid() % 1000:03d}", 100 + os.getpid() % 100
    namespaces = [Namespace(f"{tag}{k}", f"10.{octet}.{k}") for k in (1, 2, 3)]
    db = sa.make_url(mysql_url)
    port, llm_port = free_port(), free_port()
    with ExitStack() as stack, open(tmp_path / "services.log", "ab") as log:
        for ns in namespaces:
            stack.callback(ns.delete)
            ns.create()
            stack.callback(Relay(ns.outside, db.port or 3306, (db.host, db.port or 3306)).close)
        hosts = ",".join(["127.0.0.1", *(ns.outside for ns in namespaces)])
        llm = _start([sys.executable, "-m", "services.llm_api"],
                     service_env(tmp_path, LLM_ENGINE="mock", LLM_API_PORT=str(llm_port), LLM_API_HOSTS=hosts), log)
        stack.callback(_stop, llm)
        migrate = subprocess.run([sys.executable, "-m", "raictl", "migrate"], capture_output=True, text=True,
                                 env=service_env(tmp_path, RAI_DATABASE_URL=mysql_url), timeout=120)
        assert migrate.returncode == 0, migrate.stderr
        for ns in namespaces:  # the same port in each namespace: nothing shared but the database
            env = service_env(tmp_path, RAI_API_PORT=str(port), RAI_API_HOSTS=ns.inside,
                              LLM_API_URL=f"http://{ns.outside}:{llm_port}",
                              RAI_DATABASE_URL=db.set(host=ns.outside).render_as_string(hide_password=False),
                              RAI_SECRET_KEY="one-secret-for-every-namespace-0123456789")
            replica = _start(["ip", "netns", "exec", ns.name, sys.executable, "-m", "services.rai_api"], env, log)
            stack.callback(_stop, replica)
        bases = [f"http://{ns.inside}:{port}/api" for ns in namespaces]
        for base in bases:
            wait_until(lambda: http("GET", f"{base}/health", timeout=2)[1].get("status") == "ok", timeout=60,
                       what=f"{base}/health ok across its veth (database and LLM API reached)")

        user = {"username": "netns", "password": PASSWORD}
        assert http("POST", f"{bases[0]}/auth/register", user)[0] == 201
        token = http("POST", f"{bases[1]}/auth/login", user)[1]["access_token"]
        reply = http("POST", f"{bases[2]}/chat", {"message": "remember that my cat is called Miso"}, token=token)[1]
        session = reply["session_id"]
        status, messages = http("GET", f"{bases[0]}/sessions/{session}/messages", token=token)
        assert status == 200 and messages["messages"][0]["content"] == "remember that my cat is called Miso"
        listed = http("POST", f"{bases[1]}/chat", {"message": "what do you remember?"}, token=token)[1]
        assert "my cat is called Miso" in listed["response"]
