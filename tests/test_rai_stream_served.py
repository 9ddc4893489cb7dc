"""Streamed chats through both real services (`python -m services.rai_api` and `services.llm_api`, the
Gemini engine on the real google-genai client against the fake Gemini), on 127.0.0.1 and [::1]:
pieces arrive as Gemini sends them, a failure mid-reply, and a client that goes away (the database
state the disconnect rule promises)."""

from __future__ import annotations

import http.client as httpclient
import json
import socket
import time

import pytest
from alembic import command

from migrations import alembic_config
from services.sse import read_events
from tests.fake_gemini import FakeGemini
from tests.support import ServiceProcess, free_port, http, service_env, wait_until

KEY = "AIzaFAKE-stream-key-0123456789abcdefgh"
HOSTS = ["127.0.0.1", "::1"]
CREDENTIALS = {"username": "streamer", "password": "correct horse"}


@pytest.fixture(scope="module")
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture(scope="module")
def llm_api(tmp_path_factory, fake):
    home = tmp_path_factory.mktemp("llm-stream")
    env = service_env(home, LLM_API_PORT=free_port(), GEMINI_API_KEY=KEY, GEMINI_BASE_URL=fake.base_url)
    service = ServiceProcess("services.llm_api", int(env["LLM_API_PORT"]), env, log=home / "llm_api.log").start()
    yield service
    service.stop()


def rai_api(home, database_url, llm_api, **extra) -> ServiceProcess:
    command.upgrade(alembic_config(database_url), "head")
    port = free_port()
    env = service_env(home, RAI_DATABASE_URL=database_url, RAI_API_PORT=port, LLM_API_URL=llm_api.url(""), **extra)
    return ServiceProcess("services.rai_api", port, env, log=home / "rai_api.log").start()


@pytest.fixture(scope="module")
def rai(tmp_path_factory, llm_api):
    home = tmp_path_factory.mktemp("rai-stream")
    service = rai_api(home, f"sqlite:///{home / 'rai.db'}", llm_api)
    yield service
    service.stop()


@pytest.fixture(autouse=True)
def fresh_fake(fake):
    fake.reset()


def token(service) -> str:
    http("POST", service.url("/api/auth/register"), CREDENTIALS)
    return http("POST", service.url("/api/auth/login"), CREDENTIALS)[1]["access_token"]


def open_chat(service, host, token_, message="tell me a story"):
    """A streamed chat on a real connection: (its socket, the response with its headers read)."""
    conn = httpclient.HTTPConnection(host, service.port, timeout=10)
    conn.sock = sock = socket.create_connection((host, service.port), timeout=10)
    conn.request("POST", "/api/chat", body=json.dumps({"message": message, "stream": True}),
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token_}"})
    return sock, conn.getresponse()


def stored_reply(service, token_, session_id) -> tuple[list[tuple[str, str]], str]:
    status, body = http("GET", service.url(f"/api/sessions/{session_id}/messages"), token=token_)
    assert status == 200, body
    messages = [(m["role"], m["content"]) for m in body["messages"]]
    return messages, messages[-1][1]


@pytest.mark.parametrize("host", HOSTS)
def test_pieces_arrive_as_gemini_sends_them_and_done_carries_usage(rai, fake, host):
    """The gap between the first delta and `done` spans the fake's later delays: nothing is buffered
    on the way (a buffered reply would bring them together)."""
    delay = 0.4
    fake.reply("alpha beta gamma", chunks=3, delay=delay)
    sock, response = open_chat(rai, host, token(rai))
    try:
        assert (response.status, response.getheader("Content-Type")) == (200, "text/event-stream; charset=utf-8")
        seen = [(event.name, event.data, time.monotonic()) for event in read_events(response)]
    finally:
        sock.close()
    assert [name for name, _, _ in seen] == ["start", "delta", "delta", "delta", "done"]
    assert seen[-1][2] - seen[1][2] >= delay  # two delays apart when passed on at once; ~0 if buffered
    done = seen[-1][1]
    assert (done["engine"], done["session_id"]) == ("gemini", seen[0][1]["session_id"])
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["total_tokens"] > 0
    messages, reply = stored_reply(rai, token(rai), done["session_id"])
    assert messages == [("user", "tell me a story"), ("assistant", "alpha beta gamma")]


def test_a_gemini_failure_mid_reply_is_an_error_event_and_stored_as_interrupted(rai, fake):
    fake.reply("one two three four", chunks=4, fail_after=2, status=503, message="overloaded")
    sock, response = open_chat(rai, "::1", token(rai))
    try:
        seen = [(event.name, event.data) for event in read_events(response)]
    finally:
        sock.close()
    assert [name for name, _ in seen] == ["start", "delta", "delta", "error"]
    error = seen[-1][1]
    assert error["error"] == "llm_unavailable" and "HTTP 503" in error["message"]
    produced = seen[1][1]["text"] + seen[2][1]["text"]
    _, reply = stored_reply(rai, token(rai), seen[0][1]["session_id"])
    assert reply.startswith(produced.rstrip() + "\n\n[interrupted: the LLM API failed: ")
    assert "overloaded" in reply


def test_a_client_that_goes_away_mid_reply_leaves_its_message_and_what_was_produced(tmp_path, db_url, llm_api, fake):
    """The disconnect rule: the reply stops and what was produced is stored, marked interrupted."""
    service = rai_api(tmp_path, db_url, llm_api)
    try:
        text = " ".join(f"word{i}" for i in range(40))
        fake.reply(text, chunks=20, delay=0.25)
        token_ = token(service)
        sock, response = open_chat(service, "127.0.0.1", token_)
        events = read_events(response)
        start, first = next(events), next(events)
        sock.shutdown(socket.SHUT_RDWR)
        response.close()
        sock.close()
        session_id = start.data["session_id"]
        reply = wait_until(lambda: (r := stored_reply(service, token_, session_id)[1]).endswith(
            "[interrupted: the client disconnected]") and r, timeout=15, what="the interrupted reply stored")
        messages, _ = stored_reply(service, token_, session_id)
        assert messages[0] == ("user", "tell me a story") and len(messages) == 2
        assert reply.startswith(first.data["text"]) and text not in reply
        # The LLM API's stream was closed too: Gemini's stream ended before its last chunk.
        assert wait_until(lambda: fake.streamed, what="the fake's stream to end")[0] < 20
    finally:
        service.stop()


def test_a_long_conversation_drops_its_oldest_context_to_stay_under_the_body_limit(rai, fake):
    """Long Gemini replies fill the context past the budget: the oldest turns give way, the new message
    and the system prompt stay, and every turn is answered."""
    from services.rai_api import memory

    token_ = token(rai)
    fake.reply("\U0001F600" * 30_000)  # 120 KB of UTF-8 per reply
    session_id = None
    for turn in range(9):
        body = {"message": f"turn {turn}"} | ({"session_id": session_id} if session_id else {})
        status, answer = http("POST", rai.url("/api/chat"), body, token=token_, timeout=30)
        assert status == 200, (turn, answer)
        session_id = answer["session_id"]
    last = fake.requests[-1]
    sent = [text for _, text in last.contents]
    assert sent[-1] == "turn 8" and "turn 0" not in sent and last.system.startswith(memory.SYSTEM_PROMPT)
    assert memory.prompt_size(last.system, [{"role": "user", "content": t} for t in sent]) <= memory.PROMPT_BUDGET_BYTES
