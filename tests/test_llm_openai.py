"""The openai engine: the real `openai` client against the fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import logging

import pytest

from raishared.settings import load_settings
from services.llm_api.app import create_app
from services.llm_api.engines import Delta, EngineError, Message, Prompt
from services.llm_api.openai_engine import PLACEHOLDER_KEY, OpenAIEngine
from tests.support import free_port

KEY = "sk-FAKE-test-key-0123456789abcdefghijk"
TIMEOUT_S = 0.5


def openai_client(tmp_path, **env):
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), **env})
    return create_app(settings, gemini_timeout=TIMEOUT_S).test_client()


@pytest.fixture
def fake(fake_openai):
    return fake_openai


@pytest.fixture
def client(tmp_path, fake):
    return openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY=KEY)


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
    fake.reply("Bonjour from a local model")
    response = ask(client)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["text"], body["engine"], body["model"]) == ("Bonjour from a local model", "openai", "gpt-4o-mini")
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + body["usage"]["output_tokens"]
    received = fake.requests[-1]
    assert (received.path, received.api_key, received.stream) == ("/v1/chat/completions", KEY, False)
    assert client.get("/api/health").get_json() == {
        "status": "ok", "service": "llm-api", "engine": "openai", "model": "gpt-4o-mini",
        "fallback_reason": None, "last_error": None}
    assert_no_key(response.get_data(as_text=True), logs.text)


def test_system_prompt_turns_and_temperature_arrive_as_sent(client, fake):
    fake.echo()
    turns = [{"role": "user", "content": "My cat is Miso."}, {"role": "assistant", "content": "Noted."},
             {"role": "user", "content": "What is my cat called?"}]
    response = client.post("/api/generate", json={"messages": turns, "system": "Be brief.", "temperature": 0.2})
    assert response.status_code == 200
    assert json.loads(response.get_json()["text"]) == {
        "model": "gpt-4o-mini", "temperature": 0.2, "stream": False,
        "messages": [["system", "Be brief."], ["user", "My cat is Miso."], ["assistant", "Noted."],
                     ["user", "What is my cat called?"]]}


def test_a_local_server_needs_no_key_and_the_model_is_configurable(tmp_path, fake):
    client = openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url, OPENAI_MODEL="llama3.2")
    body = ask(client).get_json()
    assert (body["engine"], body["model"]) == ("openai", "llama3.2")
    assert fake.requests[-1].model == "llama3.2"
    assert fake.requests[-1].api_key == PLACEHOLDER_KEY  # the SDK insists on one; local servers ignore it


@pytest.mark.parametrize("env,engine", [
    ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, "openai"),
    ({"OPENAI_API_KEY": KEY}, "openai"),
    ({"OPENAI_API_KEY": KEY, "GEMINI_API_KEY": "AIza-gemini-key-0123456789"}, "gemini"),
    ({}, "mock"),
])
def test_auto_picks_gemini_then_openai_then_the_mock(tmp_path, env, engine):
    health = openai_client(tmp_path, **env).get("/api/health").get_json()
    assert health["engine"] == engine
    assert (health["fallback_reason"] is None) == (engine != "mock")


def test_openai_asked_for_without_a_server_or_key_refuses_with_the_reason(tmp_path):
    client = openai_client(tmp_path, LLM_ENGINE="openai")
    health = client.get("/api/health").get_json()
    assert (health["status"], health["engine"]) == ("degraded", "openai")
    assert "OPENAI_BASE_URL" in health["last_error"] and "OPENAI_API_KEY" in health["last_error"]
    response = ask(client)
    assert response.status_code == 503
    assert response.get_json() == {"error": "engine_unavailable", "message": health["last_error"]}


def test_a_wrong_key_is_upstream_auth_and_health_degrades(client, fake, logs):
    fake.require_key("sk-another-key-entirely-0123456789")
    response = ask(client)
    assert response.status_code == 502
    body = response.get_json()
    assert body["error"] == "upstream_auth"
    assert body["message"] == (f"the OpenAI-compatible server at {fake.base_url} rejected the API key (HTTP 401): "
                               "Incorrect API key provided.; check OPENAI_API_KEY")
    health = client.get("/api/health").get_json()
    assert (health["status"], health["last_error"]) == ("degraded", body["message"])
    assert "openai engine failed: upstream_auth" in logs.text
    assert_no_key(response.get_data(as_text=True), logs.text)


def test_a_server_wanting_a_key_when_none_is_set_says_so(tmp_path, fake):
    fake.require_key(KEY)
    body = ask(openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url)).get_json()
    assert body["error"] == "upstream_auth" and body["message"].endswith("it wants a key: set OPENAI_API_KEY")


def test_a_key_echoed_by_upstream_is_masked(client, fake, logs):
    fake.fail(403, f"key {KEY} is blocked")
    response = ask(client)
    assert "sk-F…hijk" in response.get_json()["message"]
    assert_no_key(response.get_data(as_text=True), json.dumps(client.get("/api/health").get_json()), logs.text)


def test_an_unknown_model_names_the_model(tmp_path, fake):
    fake.models = ["llama3.2"]
    body = ask(openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url, OPENAI_MODEL="mistral")).get_json()
    assert body["error"] == "upstream_not_found"
    assert "does not know the model 'mistral' (HTTP 404)" in body["message"]
    assert body["message"].endswith("check OPENAI_MODEL")


def test_ollama_s_way_of_saying_the_model_is_missing(tmp_path, fake):
    """Ollama answers an unpulled model with a 404 that has no code, only the model's name in its message."""
    fake.fail(404, 'model "qwen3" not found, try pulling it first')
    body = ask(openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url, OPENAI_MODEL="qwen3")).get_json()
    assert "does not know the model 'qwen3' (HTTP 404)" in body["message"], body


def test_a_base_url_without_v1_is_told_to_check_it(tmp_path, fake):
    body = ask(openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url.removesuffix("/v1"))).get_json()
    assert body["error"] == "upstream_not_found"
    assert "has no such endpoint (HTTP 404): no such route: POST /chat/completions" in body["message"]
    assert "check OPENAI_BASE_URL (it usually ends in /v1)" in body["message"]


def test_rate_limited(client, fake):
    fake.fail(429, "Rate limit reached for requests")
    response = ask(client)
    assert response.status_code == 502
    assert response.get_json()["error"] == "upstream_rate_limited"
    assert "(HTTP 429): Rate limit reached for requests" in response.get_json()["message"]
    assert len(fake.requests) == 1  # the SDK's retries are off: the caller decides


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_unavailable_is_not_retried(client, fake, status):
    fake.fail(status, "model is loading")
    response = ask(client)
    assert response.status_code == 502
    assert response.get_json() == {
        "error": "upstream_unavailable",
        "message": f"the OpenAI-compatible server at {fake.base_url} is unavailable (HTTP {status}): model is loading"}
    assert len(fake.requests) == 1


def test_a_hang_longer_than_the_timeout_is_a_clear_timeout(client, fake, logs):
    fake.hang(30)
    response = ask(client)
    assert response.status_code == 502
    assert response.get_json() == {
        "error": "upstream_timeout",
        "message": f"the OpenAI-compatible server at {fake.base_url} did not answer within {TIMEOUT_S:g}s"}
    assert len(fake.requests) == 1
    assert client.get("/api/health").get_json()["last_error"] == response.get_json()["message"]
    assert_no_key(logs.text)


def test_nothing_listening_is_upstream_unavailable(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    body = ask(openai_client(tmp_path, OPENAI_BASE_URL=url)).get_json()
    assert body["error"] == "upstream_unavailable"
    assert body["message"].startswith(f"cannot reach the OpenAI-compatible server at {url}: ")


def test_a_server_on_the_ipv6_loopback_answers(tmp_path):
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI(host="::1") as fake:
        assert fake.base_url.startswith("http://[::1]:")
        assert ask(openai_client(tmp_path, OPENAI_BASE_URL=fake.base_url)).get_json()["engine"] == "openai"


# --- the engine's stream, on the same client ------------------------------------------------------

PROMPT = Prompt((Message("user", "hello"),), system="Be brief.")


def test_the_stream_yields_the_reply_in_pieces_then_the_reply_with_its_usage(fake):
    fake.reply("one two three four five")
    *deltas, reply = OpenAIEngine(fake.base_url, None, "gpt-4o-mini", TIMEOUT_S).stream(PROMPT)
    assert len(deltas) > 1 and all(isinstance(d, Delta) for d in deltas)
    assert "".join(d.text for d in deltas) == reply.text == "one two three four five"
    assert reply.usage["output_tokens"] > 0 and reply.usage["total_tokens"] > reply.usage["output_tokens"]
    received = fake.requests[-1]
    assert received.stream and received.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("status,code", [(401, "upstream_auth"), (429, "upstream_rate_limited"),
                                         (503, "upstream_unavailable")])
def test_a_stream_refused_upfront_is_the_same_engine_error(fake, status, code):
    fake.fail(status)
    with pytest.raises(EngineError) as caught:
        next(OpenAIEngine(fake.base_url, KEY, "gpt-4o-mini", TIMEOUT_S).stream(PROMPT))
    assert caught.value.code == code


def test_a_stream_stalling_midway_is_a_timeout(fake):
    fake.reply("a long answer that stalls")
    fake.chunk_delay = 30
    stream = OpenAIEngine(fake.base_url, None, "gpt-4o-mini", TIMEOUT_S).stream(PROMPT)
    assert next(stream) == Delta("a lo")
    with pytest.raises(EngineError) as caught:
        list(stream)
    assert caught.value.code == "upstream_timeout"


# --- /api/generate as server-sent events through the openai engine ---------------------------------

def sse_events(response) -> list[tuple[str, object]]:
    from services.sse import read_events

    assert response.mimetype == "text/event-stream", response.get_data(as_text=True)
    return [(e.name, e.data) for e in read_events(iter(response.get_data().splitlines(keepends=True)))]


def test_the_api_streams_each_piece_as_a_delta_then_done_with_usage(client, fake):
    fake.reply("one two three four five six")
    got = sse_events(ask(client, stream=True))
    assert [name for name, _ in got] == ["delta"] * 7 + ["done"]
    assert "".join(data["text"] for name, data in got if name == "delta") == "one two three four five six"
    done = got[-1][1]
    assert (done["engine"], done["model"]) == ("openai", "gpt-4o-mini")
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["input_tokens"] > 0
    assert fake.requests[-1].stream


def test_a_failure_mid_stream_is_an_error_event_and_degrades_health(client, fake):
    fake.reply("one two three four five six")
    fake.fail_after = 2
    got = sse_events(ask(client, stream=True))
    assert [name for name, _ in got] == ["delta", "delta", "error"]
    assert got[-1][1] == {"error": "upstream_unavailable", "message": f"the OpenAI-compatible server at "
                          f"{fake.base_url} broke off the reply: the model crashed mid-reply"}
    assert client.get("/api/health").get_json()["last_error"] == got[-1][1]["message"]


def test_a_stream_refused_before_the_first_byte_keeps_its_json_status(client, fake):
    fake.require_key("sk-another-key-entirely-0123456789")
    response = ask(client, stream=True)
    assert response.status_code == 502 and response.mimetype == "application/json"
    assert response.get_json()["error"] == "upstream_auth"
