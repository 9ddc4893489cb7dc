"""Issue 13, items 3 and 4: body limits before the body, and slow or idle clients, against both
services served for real by waitress.

The attack: a 300 MiB POST to /api/chat with no token was read in full (spooled to disk) before its
401; about 100 half-sent requests stopped both APIs (waitress' default connection limit).
"""

from __future__ import annotations

import json
import select
import socket

import pytest
from alembic import command

from migrations import alembic_config
from tests.support import ServiceProcess, free_port, http, service_env, wait_until

IDLE_TIMEOUT_S = 2


def _start(kind: str, home, **extra) -> ServiceProcess:
    port = free_port()
    if kind == "llm":
        env = service_env(home, LLM_ENGINE="mock", LLM_API_PORT=str(port), **extra)
        return ServiceProcess("services.llm_api", port, env, log=home / "llm_api.log").start()
    db = f"sqlite:///{home / 'rai.db'}"
    command.upgrade(alembic_config(db), "head")
    env = service_env(home, RAI_DATABASE_URL=db, RAI_API_PORT=str(port), LLM_API_URL=f"http://127.0.0.1:{free_port()}",
                      **extra)
    return ServiceProcess("services.rai_api", port, env, log=home / "rai_api.log").start()


@pytest.fixture(params=["rai", "llm"], scope="module")
def service(request, tmp_path_factory):
    svc = _start(request.param, tmp_path_factory.mktemp(request.param), RAICTL_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT_S))
    yield svc
    svc.stop()


def _path(service: ServiceProcess) -> str:
    return "/api/chat" if service.module == "services.rai_api" else "/api/generate"


def _connect(service: ServiceProcess, host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((host, service.port))
    return sock


def _response(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the one response on `sock` (the server closes after it)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:  # what was unread of a refused body makes the close a reset
        assert data, "the connection was reset before any response"
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_huge_content_length_is_refused_from_its_headers(service):
    """300 MiB announced, not one byte of it sent: the 413 comes at once (the server never waits for it)."""
    sock = _connect(service)
    try:
        sock.sendall(f"POST {_path(service)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {300 * 1024 * 1024}\r\n\r\n".encode())
        status, body = _response(sock)  # before the fix: waits for the body, the recv times out
    finally:
        sock.close()
    assert (status, body["error"]) == (413, "payload_too_large") and "larger than" in body["message"]


def test_a_chunked_body_is_refused_as_it_passes_the_limit(service):
    sock = _connect(service, "::1")
    chunk = b"x" * 65536
    sent = 0
    try:
        sock.sendall(f"POST {_path(service)} HTTP/1.1\r\nHost: [::1]\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        # Slowly enough that the server has read everything sent when it answers (no reset).
        while not select.select([sock], [], [], 0.2)[0]:  # until the server answers
            assert sent < 64 * 1024 * 1024, "the server read 64 MiB of a chunked body without refusing it"
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        status, body = _response(sock)
    finally:
        sock.close()
    assert (status, body["error"]) == (413, "payload_too_large")
    assert sent <= 4 * 1024 * 1024  # refused near the limit (256 KiB / 1 MiB), not after the whole body


def test_a_body_within_the_limit_still_reaches_the_app(service):
    status, body = http("POST", service.url(_path(service)), raw=b"{" + b" " * 200_000)
    assert status in (400, 401) and body["error"] in ("malformed_json", "invalid_json", "missing_token")


def test_500_idle_and_half_sent_connections_do_not_stop_health(service):
    socks = []
    try:
        for i in range(500):
            sock = _connect(service, ("127.0.0.1", "::1")[i % 2])
            if i % 4:  # three in four send part of a request and stall
                host = "[::1]" if i % 2 else "127.0.0.1"
                sock.sendall(f"POST {_path(service)} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n".encode())
            socks.append(sock)
        for host in ("127.0.0.1", "::1"):  # before the fix: connection 101 and later are never served
            status, body = http("GET", service.url("/api/health", host), timeout=10)
            assert status == 200, body
    finally:
        for sock in socks:
            sock.close()


def test_an_idle_connection_is_closed_after_the_timeout(service):
    idle, half = _connect(service), _connect(service, "::1")
    try:
        half.sendall(b"GET /api/health HTTP/1.1\r\nHost: [::1]\r\n")
        for sock in (idle, half):
            sock.settimeout(IDLE_TIMEOUT_S + 30)
            assert sock.recv(1) == b""  # closed by the server (waitress' default waits 120 s)
        assert http("GET", service.url("/api/health"))[0] == 200
    finally:
        idle.close()
        half.close()


def test_limits_are_settings(monkeypatch):
    from raictl.errors import RaictlError
    from raishared.settings import load_settings
    from services.serving import waitress_options

    monkeypatch.setenv("RAICTL_MAX_CONNECTIONS", "2000")
    monkeypatch.setenv("RAICTL_IDLE_TIMEOUT_S", "90")
    settings = load_settings()
    assert (settings.max_connections, settings.idle_timeout_s) == (2000, 90)
    assert settings.to_env()["RAICTL_IDLE_TIMEOUT_S"] == "90"
    options = waitress_options(type("App", (), {"config": {"MAX_CONTENT_LENGTH": 1024}})(), settings)
    assert (options["connection_limit"], options["channel_timeout"], options["max_request_body_size"]) == (2000, 90, 1025)
    monkeypatch.setenv("RAICTL_IDLE_TIMEOUT_S", "0")
    with pytest.raises(RaictlError, match="RAICTL_IDLE_TIMEOUT_S must be a positive whole number"):
        load_settings()
