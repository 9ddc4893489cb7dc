"""/api/generate as server-sent events: the mock and Gemini (the real google-genai client against the
fake Gemini's streamGenerateContent), failures before and after the first byte, the request rules."""

from __future__ import annotations

import pytest

from raishared.settings import load_settings
from services.llm_api.app import create_app
from services.sse import read_events
from tests.test_llm_gemini import KEY, TIMEOUT_S, assert_no_key

HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def make_client(tmp_path, **env):
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), **env})
    return create_app(settings, gemini_timeout=TIMEOUT_S).test_client()


@pytest.fixture
def gemini(tmp_path, fake_gemini):
    return make_client(tmp_path, GEMINI_API_KEY=KEY, GEMINI_BASE_URL=fake_gemini.base_url)


def events(response) -> list[tuple[str, object]]:
    assert response.mimetype == "text/event-stream", response.get_data(as_text=True)
    return [(e.name, e.data) for e in read_events(iter(response.get_data().splitlines(keepends=True)))]


def test_gemini_streams_each_chunk_as_a_delta_then_done_with_usage(gemini, fake_gemini):
    fake_gemini.reply("one two three four five six", chunks=3)
    response = gemini.post("/api/generate", json={**HELLO, "stream": True})
    assert response.status_code == 200
    got = events(response)
    assert [name for name, _ in got] == ["delta", "delta", "delta", "done"]
    assert "".join(data["text"] for name, data in got if name == "delta") == "one two three four five six"
    done = got[-1][1]
    assert (done["engine"], done["model"]) == ("gemini", "gemini-2.5-flash")
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["total_tokens"] > done["usage"]["output_tokens"]
    assert fake_gemini.requests[-1].path.endswith(":streamGenerateContent") and fake_gemini.requests[-1].streamed
    assert gemini.get("/api/health").get_json()["last_error"] is None


def test_a_failure_mid_stream_is_an_error_event_and_degrades_health(gemini, fake_gemini):
    fake_gemini.reply("one two three four", chunks=4, fail_after=2, status=503, message=f"overloaded {KEY}")
    got = events(gemini.post("/api/generate", json={**HELLO, "stream": True}))
    assert [name for name, _ in got] == ["delta", "delta", "error"]
    error = got[-1][1]
    assert error["error"] == "upstream_unavailable" and "HTTP 503" in error["message"]
    assert_no_key(error["message"])
    assert gemini.get("/api/health").get_json()["last_error"] == error["message"]


def test_a_failure_before_the_first_byte_keeps_its_json_status(gemini, fake_gemini):
    fake_gemini.fail(429, "quota")
    response = gemini.post("/api/generate", json={**HELLO, "stream": True})
    assert response.status_code == 502 and response.mimetype == "application/json"
    assert response.get_json()["error"] == "upstream_rate_limited"


def test_a_stream_that_stalls_past_the_timeout_is_a_clear_timeout(gemini, fake_gemini):
    fake_gemini.reply("slow", chunks=2, delay=TIMEOUT_S * 4)
    response = gemini.post("/api/generate", json={**HELLO, "stream": True})
    assert response.status_code == 502
    assert f"Gemini did not answer within {TIMEOUT_S:g}s" in response.get_json()["message"]


def test_the_mock_streams_its_reply_in_pieces(tmp_path):
    client = make_client(tmp_path, LLM_ENGINE="mock")
    whole = client.post("/api/generate", json=HELLO).get_json()
    got = events(client.post("/api/generate", json={**HELLO, "stream": True}))
    deltas = [data["text"] for name, data in got if name == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == whole["text"]
    assert got[-1] == ("done", {"engine": "mock", "model": "mock", "usage": whole["usage"]})


def test_accept_event_stream_asks_for_a_stream_and_stream_false_wins(tmp_path):
    client = make_client(tmp_path, LLM_ENGINE="mock")
    sse = {"Accept": "text/event-stream"}
    assert client.post("/api/generate", json=HELLO, headers=sse).mimetype == "text/event-stream"
    plain = client.post("/api/generate", json={**HELLO, "stream": False}, headers=sse)
    assert plain.mimetype == "application/json" and plain.get_json()["engine"] == "mock"


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_stream_must_be_a_boolean(tmp_path, value):
    response = make_client(tmp_path, LLM_ENGINE="mock").post("/api/generate", json={**HELLO, "stream": value})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("stream must be true or false")


def test_an_unavailable_engine_refuses_a_stream_with_503(tmp_path):
    response = make_client(tmp_path, LLM_ENGINE="gemini").post("/api/generate", json={**HELLO, "stream": True})
    assert (response.status_code, response.get_json()["error"]) == (503, "engine_unavailable")


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_events_are_read_whole_however_the_network_cuts_them(size):
    from services.sse import encode

    data = (encode("start", {"a": 1}) + encode("delta", {"text": "x\ny ☕"}) + b"event: done\r\ndata: {}\r\n\r\n"
            + b"data: plain\n\n")
    pieces = iter([data[i:i + size] for i in range(0, len(data), size)])
    assert [(e.name, e.data) for e in read_events(pieces)] == [
        ("start", {"a": 1}), ("delta", {"text": "x\ny ☕"}), ("done", {}), ("message", "plain")]
