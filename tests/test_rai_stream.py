"""POST /api/chat as server-sent events through Flask's test client, on SQLite and MariaDB: the events,
memory commands in the same form, what is stored, and failures before the first byte.

The LLM API is the real one (mock engine) on a free port; the real-process cases (Gemini through the
fake, disconnects, timings) are in test_rai_stream_served.py.
"""

from __future__ import annotations

import pytest

from services.rai_api.streaming import interrupted
from services.sse import read_events
from tests.support import free_port
from tests.test_rai_api import _app, app, client, chat, login  # noqa: F401 - fixtures (llm_api: conftest)

__all__ = ["app", "client", "llm_api"]


def stream(client, headers, message, session_id=None, **extra):
    body = {"message": message, "stream": True, **extra}
    if session_id is not None:
        body["session_id"] = session_id
    return client.post("/api/chat", json=body, headers=headers)


def events(response) -> list[tuple[str, dict]]:
    assert (response.status_code, response.mimetype) == (200, "text/event-stream"), response.get_data(as_text=True)
    return [(e.name, e.data) for e in read_events(iter(response.get_data().splitlines(keepends=True)))]


def stored(client, headers, session_id) -> list[tuple[str, str]]:
    messages = client.get(f"/api/sessions/{session_id}/messages", headers=headers).json["messages"]
    return [(m["role"], m["content"]) for m in messages]


def test_a_streamed_reply_is_start_deltas_done_and_stored_whole(client):
    headers = login(client)
    got = events(stream(client, headers, "hello there"))
    names = [name for name, _ in got]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"delta"} and len(names) > 3
    session_id = got[0][1]["session_id"]
    text = "".join(data["text"] for name, data in got if name == "delta")
    done = got[-1][1]
    assert (done["session_id"], done["engine"]) == (session_id, "mock")
    assert done["usage"]["output_chars"] == len(text)
    assert stored(client, headers, session_id) == [("user", "hello there"), ("assistant", text)]
    messages = client.get(f"/api/sessions/{session_id}/messages", headers=headers).json["messages"]
    assert messages[-1]["id"] == done["message_id"]


def test_the_same_turn_streamed_or_not_gives_the_same_reply(client):
    headers = login(client)
    whole = chat(client, headers, "what is a stream?").json
    got = events(stream(client, headers, "what is a stream?", whole["session_id"]))
    streamed = "".join(data["text"] for name, data in got if name == "delta")
    assert streamed == whole["response"].replace("(messages: 1, earlier: 0", "(messages: 3, earlier: 2")


def test_accept_event_stream_streams_and_memory_commands_answer_in_the_same_form(client):
    headers = login(client)
    response = client.post("/api/chat", json={"message": "remember that my cat is Miso"},
                           headers={**headers, "Accept": "text/event-stream"})
    got = events(response)
    session_id = got[0][1]["session_id"]
    assert got[1:] == [("delta", {"text": "OK, I will remember that my cat is Miso."}),
                       ("done", {"session_id": session_id, "message_id": got[-1][1]["message_id"],
                                 "engine": None, "usage": {}})]
    assert stored(client, headers, session_id)[-1] == ("assistant", "OK, I will remember that my cat is Miso.")
    plain = client.post("/api/chat", json={"message": "what do you remember?", "stream": False},
                        headers={**headers, "Accept": "text/event-stream"})
    assert plain.mimetype == "application/json" and "my cat is Miso" in plain.json["response"]


def test_errors_before_the_first_byte_keep_their_json_status(client, app):
    headers = login(client)
    assert stream(client, {}, "hi").status_code == 401
    missing = stream(client, headers, "hi", "no-such-session")
    assert (missing.status_code, missing.json["error"]) == (404, "session_not_found")
    bad = client.post("/api/chat", json={"message": "hi", "stream": "yes"}, headers=headers)
    assert (bad.status_code, bad.json["message"]) == (400, "stream must be true or false")


def test_an_unreachable_llm_api_is_a_json_503_and_stores_nothing(db_url, client):
    headers = login(client)
    dead = _app(db_url, f"http://127.0.0.1:{free_port()}")
    try:
        response = stream(dead.test_client(), headers, "hello")
        assert (response.status_code, response.mimetype) == (503, "application/json")
        assert response.json["error"] == "llm_unavailable" and "unreachable" in response.json["message"]
    finally:
        dead.extensions["rai_db"].dispose()
    assert client.get("/api/sessions", headers=headers).json["sessions"] == []


def test_interrupted_keeps_what_was_produced_and_says_why():
    assert interrupted(["Once upon ", "a time "], "the client disconnected") == (
        "Once upon a time\n\n[interrupted: the client disconnected]")
    assert interrupted([], "the LLM API failed: x") == "[interrupted: the LLM API failed: x]"
