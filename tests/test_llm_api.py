"""The LLM API through Flask's test client: health per engine choice, the mock's reply, every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from raishared.settings import load_settings
from services.llm_api.app import MAX_BODY_BYTES, create_app
from tests.support import REPO


def make_client(tmp_path, **env):
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), **env})
    return create_app(settings).test_client()


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)


def generate(client, *messages, **extra):
    body = {"messages": [{"role": r, "content": c} for r, c in messages], **extra}
    return client.post("/api/generate", json=body)


# --- health per engine choice ---------------------------------------------------------------------

def test_auto_without_key_is_the_mock_and_health_says_why(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"status": "ok", "service": "llm-api", "engine": "mock", "model": "mock",
                    "fallback_reason": body["fallback_reason"], "last_error": None}
    assert body["fallback_reason"] == ("no GEMINI_API_KEY (or GOOGLE_API_KEY), OPENAI_BASE_URL or "
                                       "OPENAI_API_KEY set: LLM_ENGINE=auto uses the mock")


def test_explicit_mock_has_no_fallback_reason(tmp_path):
    body = make_client(tmp_path, LLM_ENGINE="mock", GEMINI_API_KEY="AIza-unused-key-123456").get("/api/health").get_json()
    assert (body["status"], body["engine"], body["fallback_reason"]) == ("ok", "mock", None)


def test_gemini_without_key_starts_degraded_and_refuses_with_the_reason(tmp_path):
    client = make_client(tmp_path, LLM_ENGINE="gemini")
    health = client.get("/api/health").get_json()
    assert (health["status"], health["engine"], health["fallback_reason"]) == ("degraded", "gemini", None)
    assert "GEMINI_API_KEY" in health["last_error"]
    response = generate(client, ("user", "hello"))
    assert response.status_code == 503
    assert response.get_json() == {"error": "engine_unavailable", "message": health["last_error"]}
    assert client.get("/api/health").get_json()["status"] == "degraded"


# --- the mock's reply (a contract the RAI API and chat tests rely on) -------------------------------

SYSTEM = """You are a helpful assistant.

Remembered facts about the user:
- likes tea
- lives in Lyon
  (a continuation line, not a fact)
- has a cat

Relevant earlier conversations:
- user: what is my cat called?
- assistant: Miso

- this line is after the blank line and counts for nothing
"""


def test_mock_reply_shows_what_it_received(client):
    response = generate(client, ("user", "hi"), ("assistant", "hello"), ("user", "what do you remember?"),
                        system=SYSTEM, temperature=0.5)
    assert response.status_code == 200
    body = response.get_json()
    assert body["text"] == ('[mock] reply to "what do you remember?" (messages: 3, earlier: 2, '
                            'system prompt: yes, remembered facts: 3, recalled: 2)')
    assert (body["engine"], body["model"]) == ("mock", "mock")
    expected_input = len(SYSTEM) + len("hi") + len("hello") + len("what do you remember?")
    assert body["usage"] == {"input_chars": expected_input, "output_chars": len(body["text"])}


def test_mock_without_system_prompt_and_truncation_to_80_chars(client):
    long = "x" * 79 + "yz" + " tail"
    body = generate(client, ("user", long)).get_json()
    assert body["text"] == (f'[mock] reply to "{"x" * 79}y" (messages: 1, earlier: 0, '
                            'system prompt: no, remembered facts: 0, recalled: 0)')


def test_mock_counts_only_blocks_under_the_exact_headers(client):
    system = "remembered facts about the user:\n- no\n\nRemembered facts about the user: inline\n- no\n"
    text = generate(client, ("user", "q"), system=system).get_json()["text"]
    assert text.endswith("(messages: 1, earlier: 0, system prompt: yes, remembered facts: 0, recalled: 0)")


def test_mock_is_deterministic(client):
    first = generate(client, ("user", "same"), system=SYSTEM).get_json()
    assert generate(client, ("user", "same"), system=SYSTEM).get_json() == first


def test_the_mock_path_never_imports_google_genai(tmp_path):
    code = ("import sys; from services.llm_api.app import create_app; app = create_app(); "
            "app.test_client().post('/api/generate', json={'messages': [{'role': 'user', 'content': 'hi'}]}); "
            "print('google.genai' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "RAICTL_HOME": str(tmp_path / "home")}, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr


# --- bad input: every rule gets a 4xx with a reason, never a 500 ------------------------------------

def msg(role="user", content="hi"):
    return {"role": role, "content": content}


BAD_BODIES = [
    (b"", "invalid_json", "the body is empty"),
    (b"{bad", "invalid_json", "not valid JSON"),
    (b"\xff\xfe\x00", "invalid_json", "not valid JSON"),
    (b"[" * 100_000, "invalid_json", "nested too deeply"),
    (b"[]", "invalid_request", "must be a JSON object"),
    (b'"text"', "invalid_request", "must be a JSON object"),
    ({}, "invalid_request", "messages is missing"),
    ({"messages": []}, "invalid_request", "messages must be a non-empty list"),
    ({"messages": "hi"}, "invalid_request", "messages must be a non-empty list"),
    ({"messages": ["hi"]}, "invalid_request", "messages[0] must be an object"),
    ({"messages": [{"content": "hi"}]}, "invalid_request", "messages[0].role must be 'user' or 'assistant'"),
    ({"messages": [msg("system")]}, "invalid_request", "messages[0].role must be 'user' or 'assistant', got 'system'"),
    ({"messages": [msg(content=5)]}, "invalid_request", "messages[0].content must be a string"),
    ({"messages": [msg(content=None)]}, "invalid_request", "messages[0].content must be a string"),
    ({"messages": [msg(), msg(content="  ")]}, "invalid_request", "messages[1].content is empty"),
    (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "invalid_request", "not valid Unicode"),
    ({"messages": [msg() | {"name": "bob"}]}, "invalid_request", "messages[0] has unknown field(s): name"),
    ({"messages": [msg(), msg("assistant")]}, "invalid_request", "the last message must be from the user"),
    ({"messages": [msg()], "system": 5}, "invalid_request", "system must be a string"),
    ({"messages": [msg()], "temperature": 2.5}, "invalid_request", "temperature must be from 0 to 2"),
    ({"messages": [msg()], "temperature": -0.1}, "invalid_request", "temperature must be from 0 to 2"),
    ({"messages": [msg()], "temperature": "hot"}, "invalid_request", "temperature must be a number"),
    ({"messages": [msg()], "temperature": True}, "invalid_request", "temperature must be a number"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "invalid_request",
     "temperature must be from 0 to 2"),
    ({"messages": [msg()], "model": "gpt"}, "invalid_request", "unknown field(s): model"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1' + b"0" * 400 + b"}", "invalid_request",
     "temperature must be from 0 to 2, got 10000000000000000000…(401 characters)"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": -Infinity}', "invalid_request",
     "temperature must be from 0 to 2, got -inf"),
]


@pytest.mark.parametrize("body, code, reason", BAD_BODIES)
def test_bad_body_is_a_400_naming_the_rule(client, body, code, reason):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/api/generate", data=raw, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == code
    assert reason in response.get_json()["message"]


def test_a_body_over_the_limit_is_413(client):
    raw = json.dumps({"messages": [msg(content="x" * MAX_BODY_BYTES)]}).encode()
    response = client.post("/api/generate", data=raw, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json() == {"error": "payload_too_large", "message": "the body is larger than 1 MiB"}


def test_a_body_just_under_the_limit_is_accepted(client):
    raw = json.dumps({"messages": [msg(content="x" * (MAX_BODY_BYTES - 100))]}).encode()
    assert client.post("/api/generate", data=raw, content_type="application/json").status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_a_body_not_sent_as_json_is_415_so_no_web_page_can_post_it(client, content_type):
    raw = json.dumps({"messages": [msg()]}).encode()
    response = client.post("/api/generate", data=raw, content_type=content_type)
    assert response.status_code == 415, response.get_data(as_text=True)
    assert response.get_json()["error"] == "unsupported_media_type"
    assert "Content-Type: application/json" in response.get_json()["message"]
    assert client.post("/api/generate", data=raw, content_type="application/json; charset=utf-8").status_code == 200


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/nope", 404, "not_found"),
    ("GET", "/api/generate", 405, "method_not_allowed"),
    ("POST", "/api/health", 405, "method_not_allowed"),
    ("DELETE", "/api/generate", 405, "method_not_allowed"),
])
def test_unknown_routes_and_methods_are_json(client, method, path, status, code):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.get_json()["error"] == code
    assert path in response.get_json()["message"]
