"""Test helpers: free ports, polling with a useful failure, real service processes, leftovers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

REPO = Path(__file__).resolve().parent.parent
TEST_MARKER = "RAICTL_TEST_ID"


def ctrl_c_as_at_a_terminal() -> None:
    """A Popen `preexec_fn` for a child the test will send SIGINT (Ctrl-C): SIGINT back to its default.
    A test run started in the background (`pytest &` from a script) inherits SIGINT ignored, and
    so would the child; a user's terminal never does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A port that is free on both 127.0.0.1 and ::1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", 0))
            port = s6.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
                try:
                    s4.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no port free on both loopbacks")


def free_ports(count: int) -> list[int]:
    """`count` consecutive ports, each free on both loopbacks right now (replicas listen on consecutive ports)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65536:
            continue
        try:
            for port in range(base + 1, base + count):
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6, \
                        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::1", port))
                    s4.bind(("127.0.0.1", port))
        except OSError:
            continue
        return list(range(base, base + count))
    raise RuntimeError(f"no {count} consecutive ports free on both loopbacks")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll `predicate` until it returns a truthy value; on timeout fail with the last value or error seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - the last error is what the failure must show
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def http(method: str, url: str, body: Any = None, token: str | None = None,
         timeout: float = 10.0, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A real HTTP request; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode(errors="replace")


def run_sql(db_url: str, *statements: str) -> None:
    """Run raw SQL statements in one transaction on a database of its own engine."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def with_connection(db_url: str, read: Callable[[Any], Any]) -> Any:
    """`read(connection)` on a short-lived engine: what a test sees of a database."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return read(connection)
    finally:
        engine.dispose()


def url(host: str, port: int, path: str) -> str:
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


@dataclass
class ServiceProcess:
    """A service (`python -m MODULE`) running for real as a child process."""

    module: str
    port: int
    env: dict[str, str]
    hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    log: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, timeout: float = 20.0) -> "ServiceProcess":
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], cwd=self.env.get("RAICTL_HOME", REPO),
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._ready, timeout, what=f"{self.module} healthy on {self.hosts} port {self.port}")
        except AssertionError:
            self.stop()
            tail = self.log.read_text()[-3000:] if self.log and self.log.exists() else ""
            raise AssertionError(f"{self.module} did not become ready; log tail:\n{tail}") from None
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.module} exited with {self.proc.returncode}")
        return all(http("GET", url(h, self.port, "/api/health"), timeout=2)[0] in (200, 503)
                   for h in self.hosts)

    def url(self, path: str, host: str | None = None) -> str:
        return url(host or self.hosts[0], self.port, path)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def mock_llm_api(home: Path) -> ServiceProcess:
    """The real LLM API on the mock engine, on a free port of 127.0.0.1, started (stop() it after)."""
    port = free_port()
    env = service_env(home, LLM_ENGINE="mock", LLM_API_PORT=str(port), LLM_API_HOSTS="127.0.0.1")
    return ServiceProcess("services.llm_api", port, env, hosts=("127.0.0.1",), log=home / "llm_api.log").start()


def service_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a child service: PATH, the test marker, the given settings."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "HOME", TEST_MARKER, "SYSTEMROOT", "TMPDIR")}
    env["RAICTL_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)  # the tests run from the checkout; the installed package also works
    env.update({k: str(v) for k, v in extra.items()})
    return env


def processes_with_marker(marker: str) -> list[psutil.Process]:
    """Every live process (not zombie) whose environment carries RAICTL_TEST_ID=marker."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(TEST_MARKER) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
