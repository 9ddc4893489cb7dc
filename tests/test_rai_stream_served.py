"""Streamed chats through both real services (`python -m services.rai_api` and `services.llm_api`, the
Gemini engine on the real google-genai client against the fake Gemini), on 127.0.0.1 and [::1]:
pieces arrive as Gemini sends them, a failure mid-reply, and a client that goes away (the database
state the disconnect rule promises)."""

from __future__ import annotations

import http.client as httpclient
import json
import socket
import threading
import time
import urllib.error
import urllib.request

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


def _chat_in_background(service, token_, results, message="wait for me", stream=False):
    def run():
        results.append(http("POST", service.url("/api/chat"), {"message": message, "stream": stream},
                            token=token_, timeout=60))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_health_login_sessions_and_memory_answer_while_chats_wait_and_one_more_is_busy(tmp_path, llm_api, fake):
    """Chats waiting on a stalled model hold RAI_API_MAX_WAITING threads, no more: everything else is
    served, and a chat over the limit is refused at once with 503 busy and Retry-After."""
    service = rai_api(tmp_path, f"sqlite:///{tmp_path / 'rai.db'}", llm_api, RAI_API_MAX_WAITING="2")
    results: list = []
    try:
        token_ = token(service)
        fake.hang(60)
        waiting = [_chat_in_background(service, token_, results, stream=stream) for stream in (False, True)]
        fake.wait_for_requests(2)
        for host in HOSTS:
            assert http("GET", service.url("/api/health", host), timeout=10)[0] == 200
            assert http("POST", service.url("/api/auth/login", host), CREDENTIALS, timeout=10)[0] == 200
            assert http("GET", service.url("/api/sessions", host), token=token_, timeout=10)[0] == 200
            status, body = http("POST", service.url("/api/chat", host), {"message": "what do you remember?"},
                                token=token_, timeout=10)
            assert status == 200 and body["response"].startswith("I don't remember anything")
        request = urllib.request.Request(service.url("/api/chat"), method="POST",
                                         data=json.dumps({"message": "one too many"}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {token_}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert (refused.value.code, refused.value.headers["Retry-After"]) == (503, "1")
        body = json.loads(refused.value.read())
        assert body["error"] == "busy" and "RAI_API_MAX_WAITING" in body["message"]
    finally:
        fake.stop_hanging()  # the waiting chats get their answer: Gemini failed
        for thread in locals().get("waiting", []):
            thread.join(30)
        service.stop()
    assert [(status, body["error"]) for status, body in results] == [(503, "llm_unavailable")] * 2


def test_the_llm_apis_busy_and_timeout_reach_the_chat_as_such(tmp_path, fake):
    """The LLM API's own limit (503 busy) is passed on as busy, and its timeout (LLM_TIMEOUT_S) as a
    503 llm_unavailable naming it."""
    home = tmp_path / "llm"
    home.mkdir()
    env = service_env(home, LLM_API_PORT=free_port(), GEMINI_API_KEY=KEY, GEMINI_BASE_URL=fake.base_url,
                      LLM_API_MAX_WAITING="1", LLM_TIMEOUT_S="3")
    llm = ServiceProcess("services.llm_api", int(env["LLM_API_PORT"]), env, log=home / "llm_api.log").start()
    results: list = []
    try:
        service = rai_api(tmp_path, f"sqlite:///{tmp_path / 'rai.db'}", llm)
        try:
            token_ = token(service)
            fake.hang(60)
            waiting = _chat_in_background(service, token_, results)
            fake.wait_for_requests(1)
            status, body = http("POST", service.url("/api/chat"), {"message": "me too", "stream": True},
                                token=token_, timeout=10)
            assert (status, body["error"]) == (503, "busy") and "is busy" in body["message"]
            assert "LLM_API_MAX_WAITING" in body["message"]
            waiting.join(30)
        finally:
            service.stop()
    finally:
        fake.stop_hanging()
        llm.stop()
    [(status, body)] = results
    assert (status, body["error"]) == (503, "llm_unavailable")
    assert "Gemini did not answer within 3s" in body["message"]
