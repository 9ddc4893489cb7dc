"""A session's own system prompt and each reply's tokens, through the RAI API and the real LLM API (openai
engine) against the fake OpenAI server, whose `echo` shows the prompt exactly as it arrived: on SQLite and
MariaDB, JSON and streamed."""

from __future__ import annotations

import json

import pytest
from alembic import command

from migrations import alembic_config
from raishared.settings import load_settings
from services.rai_api.app import create_app
from services.rai_api.memory import SESSION_HEADING, SYSTEM_PROMPT
from services.sse import read_events
from tests.fake_openai import FakeOpenAI
from tests.support import ServiceProcess, free_port, service_env
from tests.test_rai_api import login

FRENCH = "Always answer in French."


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def llm_api(tmp_path_factory, fake):
    home, port = tmp_path_factory.mktemp("llm_api"), free_port()
    env = service_env(home, LLM_API_PORT=port, LLM_API_HOSTS="127.0.0.1", OPENAI_BASE_URL=fake.base_url)
    service = ServiceProcess("services.llm_api", port, env, hosts=("127.0.0.1",), log=home / "llm_api.log").start()
    yield service
    service.stop()


def make_app(db_url, llm_api, **settings):
    command.upgrade(alembic_config(db_url), "head")
    return create_app(load_settings(database_url=db_url, llm_api_url=llm_api.url(""), **settings))


@pytest.fixture
def client(db_url, llm_api, fake):
    fake.echo()
    app = make_app(db_url, llm_api)
    yield app.test_client()
    app.extensions["rai_db"].dispose()


def system_sent(response) -> str:
    """The system message the fake OpenAI server received for this reply (its echo)."""
    echoed = json.loads(response.json["response"])
    assert echoed["messages"][0][0] == "system"
    return echoed["messages"][0][1]


def test_a_session_keeps_its_system_prompt_and_sends_it_every_turn(client):
    headers = login(client)
    first = client.post("/api/chat", json={"message": "hello", "system": FRENCH}, headers=headers)
    assert first.status_code == 200, first.json
    assert system_sent(first) == f"{SYSTEM_PROMPT}\n\n{SESSION_HEADING}\n{FRENCH}"
    sid = first.json["session_id"]
    second = client.post("/api/chat", json={"message": "and again", "session_id": sid}, headers=headers)
    assert system_sent(second) == system_sent(first)
    other = client.post("/api/chat", json={"message": "a new session"}, headers=headers)
    assert system_sent(other).startswith(SYSTEM_PROMPT)  # no prompt given, none in the settings
    assert SESSION_HEADING not in system_sent(other)
    shown = client.get(f"/api/sessions/{sid}/messages", headers=headers).json
    assert shown["system_prompt"] == FRENCH


def test_a_system_prompt_for_an_existing_session_is_refused(client):
    headers = login(client)
    sid = client.post("/api/chat", json={"message": "hello"}, headers=headers).json["session_id"]
    refused = client.post("/api/chat", json={"message": "hi", "session_id": sid, "system": FRENCH}, headers=headers)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_input"
    assert "system can only be given when a session starts" in refused.json["message"]
    for bad in (5, "x" * 8001):
        response = client.post("/api/chat", json={"message": "hi", "system": bad}, headers=headers)
        assert response.status_code == 400 and "at most 8000 characters" in response.json["message"]


def test_the_settings_default_system_prompt_is_kept_by_new_sessions(db_url, llm_api, fake):
    fake.echo()
    app = make_app(db_url, llm_api, system_prompt="Be terse.")
    try:
        client = app.test_client()
        headers = login(client)
        default = client.post("/api/chat", json={"message": "hello"}, headers=headers)
        assert system_sent(default) == f"{SYSTEM_PROMPT}\n\n{SESSION_HEADING}\nBe terse.", default.json
        own = client.post("/api/chat", json={"message": "hello", "system": FRENCH}, headers=headers)
        sent = system_sent(own)  # a given prompt wins (a recall block of the first turn may follow it)
        assert f"{SESSION_HEADING}\n{FRENCH}\n" in sent + "\n" and "Be terse." not in sent
    finally:
        app.extensions["rai_db"].dispose()


def test_each_reply_keeps_its_tokens_and_the_session_totals_them(client, fake):
    fake.reply("Bonjour, je suis un modèle local.")
    headers = login(client)
    first = client.post("/api/chat", json={"message": "hello"}, headers=headers)
    usage = first.json["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    sid = first.json["session_id"]
    client.post("/api/chat", json={"message": "remember that I like tea", "session_id": sid}, headers=headers)
    third = client.post("/api/chat", json={"message": "again", "session_id": sid, "stream": True}, headers=headers)
    events = [(e.name, e.data) for e in read_events(iter(third.get_data().splitlines(keepends=True)))]
    streamed = events[-1][1]["usage"]
    assert streamed["output_tokens"] > 0
    shown = client.get(f"/api/sessions/{sid}/messages", headers=headers).json
    replies = [m for m in shown["messages"] if m["role"] == "assistant"]
    assert [m["usage"] for m in replies] == [
        {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]},
        {"input_tokens": None, "output_tokens": None},  # a memory command: answered by the database
        {"input_tokens": streamed["input_tokens"], "output_tokens": streamed["output_tokens"]}]
    assert all("usage" not in m for m in shown["messages"] if m["role"] == "user")
    assert shown["usage"] == {"input_tokens": usage["input_tokens"] + streamed["input_tokens"],
                              "output_tokens": usage["output_tokens"] + streamed["output_tokens"]}
