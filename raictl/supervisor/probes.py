"""Ports and probes: does an address accept, does health answer 200, who holds a taken port.

Reused by `raictl doctor`. Every function returns a value and never raises for an expected
network failure (refused, timed out, unreachable): that failure is the result.

- `probe_listen(host, port, timeout) -> ListenResult`      a TCP connect
- `probe_health(host, port, path, timeout) -> HealthResult` a GET that must answer 200
- `port_free(host, port) -> bool | None`                    can we bind it (None: address unusable)
- `port_owner(host, port) -> PortOwner | None`              pid, name, command line of the listener
- `port_connections(host, port) -> list[str]`               other sockets holding the port (TIME_WAIT…)
- `combine_health(answers)`                                 one verdict from each address's health answer
- `probe_all(jobs)`                                          run many probes in parallel
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import psutil

from raishared.settings import connect_host, host_port

LISTEN_TIMEOUT = 0.5
HEALTH_TIMEOUT = 1.0
CMDLINE_CHARS = 400  # of a port holder's command line in one-line messages


@dataclass(frozen=True)
class ListenResult:
    host: str
    port: int
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "ok": self.ok}


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    latency_ms: float | None
    detail: str
    status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": self.latency_ms, "detail": self.detail}


@dataclass(frozen=True)
class PortOwner:
    """The process listening on a port, as far as we may see it (pid None: another user's)."""

    pid: int | None
    name: str | None
    cmdline: str | None

    def describe(self) -> str:
        """One line: pid, name and command line (a `python -c` script's lines joined, a long one cut
        at a word and marked with …)."""
        if self.pid is None:
            return "a process of another user (run as root to see it)"
        line = " ".join((self.cmdline or "").split())
        if len(line) > CMDLINE_CHARS:
            line = line[:CMDLINE_CHARS].rsplit(" ", 1)[0] + " …"
        return f"pid {self.pid} ({self.name}): {line}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def probe_listen(host: str, port: int, timeout: float = LISTEN_TIMEOUT) -> ListenResult:
    """Whether host:port accepts a TCP connection now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except socket.timeout:
            return ListenResult(host, port, False, f"no answer within {timeout:g}s")
        except OSError as exc:
            return ListenResult(host, port, False, exc.strerror or str(exc))
    return ListenResult(host, port, True, "accepts")


def probe_health(host: str, port: int, path: str, timeout: float = HEALTH_TIMEOUT) -> HealthResult:
    """GET `path` on host:port (a wildcard host: its loopback): ok only for status 200; detail is the
    status (and body's "status") or the error.

    A plain HTTP/1.0 exchange on a socket: http.client would add ~15 ms of imports to `status`."""
    host = connect_host(host)
    start = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            reply = _read_reply(sock)
    except OSError as exc:
        return HealthResult(False, None, _error_text(exc, timeout))
    latency = round((time.perf_counter() - start) * 1000, 1)
    head, _, body = reply.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return HealthResult(False, latency, "the answer is not HTTP")
    status = int(parts[1])
    return HealthResult(status == 200, latency, f"HTTP {status}" + _body_status(body), status)


def combine_health(answers: list[tuple[str, HealthResult]]) -> HealthResult | None:
    """One health verdict from each address's answer: ok only when every address says 200;
    otherwise the detail names each address that did not (`::1: HTTP 503 (degraded); ok on 127.0.0.1`)."""
    if not answers:
        return None
    latencies = [r.latency_ms for _, r in answers if r.latency_ms is not None]
    latency = max(latencies) if latencies else None
    bad = [(host, r) for host, r in answers if not r.ok]
    if not bad:
        return HealthResult(True, latency, answers[0][1].detail, answers[0][1].status)
    if len(answers) == 1:
        return bad[0][1]
    good = [host for host, r in answers if r.ok]
    detail = "; ".join(f"{host}: {r.detail}" for host, r in bad) + (f"; ok on {', '.join(good)}" if good else "")
    return HealthResult(False, latency, detail, bad[0][1].status)


def _read_reply(sock: socket.socket, limit: int = 16384) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _error_text(exc: OSError, timeout: float) -> str:
    if isinstance(exc, socket.timeout):
        return f"no answer within {timeout:g}s"
    return exc.strerror.lower() if exc.strerror else (str(exc) or type(exc).__name__)


def _body_status(body: bytes) -> str:
    """`status` from a JSON health body, e.g. ` (degraded)`; nothing when there is none."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    status = doc.get("status") if isinstance(doc, dict) else None
    return f" ({status})" if isinstance(status, str) else ""


def port_free(host: str, port: int) -> bool | None:
    """True when we could bind host:port now (as the service will, SO_REUSEADDR); None when the
    address itself is unusable here (e.g. no IPv6 loopback)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ":" in host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                return None
            raise
    return True


def covers(listen_ip: str, host: str) -> bool:
    """Whether a socket listening on `listen_ip` takes connections meant for `host`."""
    if listen_ip == host:
        return True
    if ":" in host:
        return listen_ip == "::"
    return listen_ip in ("0.0.0.0", "::", f"::ffff:{host}")


def port_owner(host: str, port: int) -> PortOwner | None:
    """The process listening on host:port (or on a wildcard covering it); None when nobody is."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return PortOwner(None, None, None)
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and covers(conn.laddr.ip, host):
            return describe_pid(conn.pid)
    return None


def port_connections(host: str, port: int) -> list[str]:
    """Non-listening TCP sockets bound to host:port (e.g. an outgoing connection's TIME_WAIT),
    which also keep a service from binding it: `TIME_WAIT 127.0.0.1:45102 -> 127.0.0.1:3306`."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return []
    found = []
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and covers(conn.laddr.ip, host):
            peer = f" -> {host_port(conn.raddr.ip, conn.raddr.port)}" if conn.raddr else ""
            who = f" (pid {conn.pid})" if conn.pid else ""
            found.append(f"{conn.status} {host_port(conn.laddr.ip, port)}{peer}{who}")
    return found


def describe_pid(pid: int | None) -> PortOwner:
    """pid, process name and command line, as far as we may read them."""
    if pid is None:
        return PortOwner(None, None, None)
    try:
        proc = psutil.Process(pid)
        return PortOwner(pid, proc.name(), " ".join(proc.cmdline()) or proc.name())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return PortOwner(pid, "(exited)", "")
    except psutil.AccessDenied:
        return PortOwner(pid, None, "(access denied)")


def probe_all(jobs: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run probe callables in parallel, one thread each (probes are few, short and I/O-bound);
    results in the order given. A probe that raises re-raises here."""
    import threading

    jobs = list(jobs)
    results: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        try:
            results[index] = jobs[index]()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller's thread below
            results[index] = _Raised(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, _Raised):
            raise result.exc
    return results


@dataclass(frozen=True)
class _Raised:
    exc: Exception
