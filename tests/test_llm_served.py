"""`python -m services.llm_api` served for real by waitress, reached on 127.0.0.1 and [::1].

One process for the module: the Gemini engine on the real google-genai client, pointed at the fake
Gemini, so the same run proves serving on both loopbacks and that the key never reaches the log.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fake_gemini import FakeGemini
from tests.support import ServiceProcess, free_port, http, service_env

KEY = "AIzaFAKE-served-key-0123456789abcdefgh"
HOSTS = ["127.0.0.1", "::1"]


@pytest.fixture(scope="module")
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory, fake):
    home = tmp_path_factory.mktemp("llm-served")
    env = service_env(home, LLM_API_PORT=free_port(), GEMINI_API_KEY=KEY, GEMINI_BASE_URL=fake.base_url)
    proc = ServiceProcess("services.llm_api", int(env["LLM_API_PORT"]), env, log=home / "llm_api.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def fresh_fake(fake):
    fake.reset()


def ask(service, host, text="hello"):
    return http("POST", service.url("/api/generate", host), {"messages": [{"role": "user", "content": text}]})


@pytest.mark.parametrize("host", HOSTS)
def test_health_on_both_loopbacks(service, host):
    status, body = http("GET", service.url("/api/health", host))
    assert status == 200
    assert (body["service"], body["engine"], body["model"]) == ("llm-api", "gemini", "gemini-2.5-flash")


@pytest.mark.parametrize("host", HOSTS)
def test_generate_on_both_loopbacks(service, fake, host):
    fake.reply(f"answer over {host}")
    status, body = ask(service, host)
    assert (status, body["text"], body["engine"]) == (200, f"answer over {host}", "gemini")
    assert fake.requests[-1].api_key == KEY


def test_a_failure_degrades_health_and_a_success_restores_it(service, fake):
    fake.fail(403, "Permission denied")
    status, body = ask(service, "::1")
    assert (status, body["error"]) == (502, "upstream_auth")
    assert http("GET", service.url("/api/health", "127.0.0.1"))[1]["last_error"] == body["message"]
    fake.reply("fine again")
    assert ask(service, "127.0.0.1")[0] == 200
    assert http("GET", service.url("/api/health", "::1"))[1]["status"] == "ok"


def test_bad_input_over_the_wire_is_json(service):
    status, body = http("POST", service.url("/api/generate", "::1"), raw=b"{not json")
    assert (status, body["error"]) == (400, "invalid_json")
    status, body = http("POST", service.url("/api/generate"), raw=b"x" * (2 * 1024 * 1024))
    assert (status, body["error"]) == (413, "payload_too_large")


def test_the_log_names_the_engine_and_failures_but_never_the_key(service, fake):
    fake.fail(401, f"bad key {KEY}")
    ask(service, "127.0.0.1")
    log = service.log.read_text()
    assert "llm-api engine gemini, model gemini-2.5-flash" in log
    assert "listening on 127.0.0.1:" in log and f"[::1]:{service.port}" in log
    assert "upstream_auth" in log
    assert KEY not in log


def test_a_bad_setting_stops_the_service_with_one_clear_line(tmp_path):
    env = service_env(tmp_path, LLM_API_PORT="seventy")
    result = subprocess.run([sys.executable, "-m", "services.llm_api"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "LLM_API_PORT must be a port number" in result.stderr
    assert "Traceback" not in result.stderr


def open_stream(service, host, body):
    """A streaming /api/generate over a real connection: (the connection, the response)."""
    import http.client
    import json

    conn = http.client.HTTPConnection(host, service.port, timeout=10)
    conn.request("POST", "/api/generate", body=json.dumps(body), headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


@pytest.mark.parametrize("host", HOSTS)
def test_deltas_arrive_as_gemini_sends_them(service, fake, host):
    """Each chunk is passed on when it arrives, not when the reply is complete: the gap between the first
    delta and `done` spans the fake's later delays (a buffered reply would bring them together)."""
    import time

    from services.sse import read_events

    delay = 0.4
    fake.reply("alpha beta gamma", chunks=3, delay=delay)
    conn, response = open_stream(service, host, {"messages": [{"role": "user", "content": "hi"}], "stream": True})
    try:
        assert (response.status, response.getheader("Content-Type")) == (200, "text/event-stream; charset=utf-8")
        seen = [(event.name, event.data, time.monotonic()) for event in read_events(response)]
    finally:
        conn.close()
    assert [name for name, _, _ in seen] == ["delta", "delta", "delta", "done"]
    assert "".join(data["text"] for name, data, _ in seen[:3]) == "alpha beta gamma"
    assert seen[-1][2] - seen[0][2] >= delay  # two delays apart when passed on at once; ~0 if buffered
    assert seen[-1][1]["usage"]["total_tokens"] > 0
