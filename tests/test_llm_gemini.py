"""The Gemini engine: the real google-genai client against the fake Gemini server on loopback."""

from __future__ import annotations

import json
import logging

import pytest

from raishared.settings import load_settings
from services.llm_api.app import create_app
from tests.support import free_port

KEY = "AIzaFAKE-test-key-0123456789abcdefghijk"
TIMEOUT_S = 0.5


@pytest.fixture
def fake(fake_gemini):
    return fake_gemini


def gemini_client(tmp_path, base_url, **env):
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), "GEMINI_API_KEY": KEY,
                                      "GEMINI_BASE_URL": base_url, **env})
    return create_app(settings, gemini_timeout=TIMEOUT_S).test_client()


@pytest.fixture
def client(tmp_path, fake):
    return gemini_client(tmp_path, fake.base_url)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)  # everything any library logs, not only what the service shows
    return caplog


def ask(client, text="hello", **extra):
    return client.post("/api/generate", json={"messages": [{"role": "user", "content": text}], **extra})


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


def test_success_through_the_real_client(client, fake, logs):
    fake.reply("Bonjour from Gemini")
    response = ask(client)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["text"], body["engine"], body["model"]) == ("Bonjour from Gemini", "gemini", "gemini-2.5-flash")
    assert body["usage"]["output_tokens"] > 0 and body["usage"]["total_tokens"] > 0
    received = fake.requests[-1]
    assert received.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert received.api_key == KEY
    assert client.get("/api/health").get_json() == {
        "status": "ok", "service": "llm-api", "engine": "gemini", "model": "gemini-2.5-flash",
        "fallback_reason": None, "last_error": None}
    assert "generateContent" in logs.text  # the capture sees the HTTP library's own records
    assert_no_key(response.get_data(as_text=True), logs.text)


def test_multi_turn_with_a_system_instruction_arrives_as_sent(client, fake):
    fake.echo()
    turns = [{"role": "user", "content": "My cat is Miso."}, {"role": "assistant", "content": "Noted."},
             {"role": "user", "content": "What is my cat called?"}]
    response = client.post("/api/generate", json={"messages": turns, "system": "Be brief.", "temperature": 0.2})
    assert response.status_code == 200
    echoed = json.loads(response.get_json()["text"])
    assert echoed == {"model": "gemini-2.5-flash", "api_version": "v1beta", "system": "Be brief.",
                      "contents": [["user", "My cat is Miso."], ["model", "Noted."],
                                   ["user", "What is my cat called?"]],
                      "temperature": 0.2}


def test_the_configured_model_is_used(tmp_path, fake):
    client = gemini_client(tmp_path, fake.base_url, GEMINI_MODEL="gemini-test-model")
    assert ask(client).get_json()["model"] == "gemini-test-model"
    assert fake.requests[-1].model == "gemini-test-model"


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_upstream_auth_and_health_degrades(client, fake, logs, status):
    fake.fail(status, "The caller does not have permission")
    response = ask(client)
    assert response.status_code == 502
    body = response.get_json()
    assert body["error"] == "upstream_auth"
    assert body["message"].startswith(f"Gemini rejected the API key (HTTP {status})")
    health = client.get("/api/health").get_json()
    assert (health["status"], health["engine"], health["last_error"]) == ("degraded", "gemini", body["message"])
    assert "gemini engine failed: upstream_auth" in logs.text
    assert_no_key(response.get_data(as_text=True), logs.text)


def test_a_wrong_key_the_way_the_real_api_answers_it(client, fake, logs):
    fake.require_key("another-key-entirely-0123456789")
    body = ask(client).get_json()
    assert body["error"] == "upstream_auth"
    assert "HTTP 400" in body["message"] and "API key not valid" in body["message"]
    assert_no_key(json.dumps(body), logs.text)


def test_a_key_echoed_by_upstream_is_masked(client, fake, logs):
    fake.fail(403, f"key {KEY} is blocked")
    response = ask(client)
    assert "AIza…hijk" in response.get_json()["message"]
    assert_no_key(response.get_data(as_text=True), json.dumps(client.get("/api/health").get_json()), logs.text)


def test_rate_limited(client, fake):
    fake.fail(429, "Resource has been exhausted (e.g. check quota).")
    response = ask(client)
    assert response.status_code == 502
    assert response.get_json()["error"] == "upstream_rate_limited"
    assert "HTTP 429" in response.get_json()["message"]


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_unavailable_is_not_retried(client, fake, status):
    fake.fail(status, "The model is overloaded.")
    response = ask(client)
    assert response.status_code == 502
    assert response.get_json()["error"] == "upstream_unavailable"
    assert f"Gemini is unavailable (HTTP {status}): The model is overloaded." == response.get_json()["message"]
    assert len(fake.requests) == 1  # the SDK's retries are off: the caller decides


def test_a_hang_longer_than_the_timeout_is_a_clear_timeout(client, fake, logs):
    fake.hang(30)
    response = ask(client)
    assert response.status_code == 502
    assert response.get_json()["error"] == "upstream_timeout"
    assert f"Gemini did not answer within {TIMEOUT_S:g}s" in response.get_json()["message"]
    assert len(fake.requests) == 1
    assert client.get("/api/health").get_json()["last_error"] == response.get_json()["message"]
    assert_no_key(logs.text)


def test_nothing_listening_is_upstream_unavailable(tmp_path):
    client = gemini_client(tmp_path, f"http://127.0.0.1:{free_port()}")
    body = ask(client).get_json()
    assert body["error"] == "upstream_unavailable"
    assert body["message"].startswith("cannot reach Gemini at http://127.0.0.1:")


def test_a_success_after_a_failure_clears_the_degraded_state(client, fake):
    fake.fail(503)
    ask(client)
    assert client.get("/api/health").get_json()["status"] == "degraded"
    fake.reply("back")
    assert ask(client).status_code == 200
    assert client.get("/api/health").get_json()["last_error"] is None


def test_deep_health_probes_again_after_the_interval(tmp_path, fake):
    from services.llm_api.state import PROBE_INTERVAL_S

    clock = FakeClock()
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), "GEMINI_API_KEY": KEY,
                                      "GEMINI_BASE_URL": fake.base_url})
    client = create_app(settings, gemini_timeout=TIMEOUT_S, clock=clock).test_client()
    fake.fail(503, "down for maintenance")
    assert client.get("/api/health?deep=1").get_json()["status"] == "degraded"
    fake.reply("ok")
    clock.now += PROBE_INTERVAL_S
    assert client.get("/api/health?deep=1").get_json()["status"] == "ok"
    assert len(fake.requests) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_never_calls_gemini_but_deep_health_does(client, fake):
    for _ in range(3):
        assert client.get("/api/health").get_json()["status"] == "ok"
    assert fake.requests == []
    fake.fail(503, "down for maintenance")
    deep = client.get("/api/health?deep=1").get_json()
    assert len(fake.requests) == 1
    assert deep["status"] == "degraded"
    assert deep["last_error"] == "Gemini is unavailable (HTTP 503): down for maintenance"
    fake.reply("ok")
    assert client.get("/api/health?deep=1").get_json()["status"] == "degraded"  # within the interval: cached
    assert len(fake.requests) == 1
