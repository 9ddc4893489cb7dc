"""Waiting on the LLM is cheap: the limit of waiting calls and its immediate 503 busy, the health
check that never holds a request, and the LLM timeout naming itself. Fast cases (plain values, the
LLM API's Flask app on the real google-genai client against the fake Gemini); the real-process
cases are in test_rai_stream_served.py."""

from __future__ import annotations

import threading

import pytest

from raishared.settings import load_settings
from services.llm_api.app import create_app
from services.rai_api.health import Cached
from services.waiting import Busy, WaitingLimit
from tests.support import wait_until
from tests.test_llm_gemini import KEY

HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def test_a_limit_refuses_the_next_at_once_and_frees_a_slot_on_leave():
    limit = WaitingLimit(2, "RAI_API_MAX_WAITING")
    limit.enter()
    with limit.slot():
        assert limit.waiting == 2
        with pytest.raises(Busy) as refused:
            limit.enter()
    assert (refused.value.status, refused.value.code, refused.value.headers) == (503, "busy", {"Retry-After": "1"})
    assert "2 requests are already waiting" in refused.value.message and "RAI_API_MAX_WAITING" in refused.value.message
    assert limit.waiting == 1
    limit.enter()
    limit.leave()
    limit.leave()
    assert limit.waiting == 0


def test_a_stale_health_value_is_served_while_one_thread_checks_again():
    """The check blocks (the LLM API hung): requests get the last value at once, never wait on it."""
    release, calls = threading.Event(), []

    def check():
        calls.append(len(calls))
        if len(calls) > 1:
            release.wait(30)
        return len(calls)

    cached = Cached(check, ttl=0.0)
    assert cached.get() == 1  # the first value is computed inline
    assert [cached.get() for _ in range(5)] == [1] * 5  # stale, served while the check hangs
    assert len(calls) == 2  # one check at a time, not one per request
    release.set()
    wait_until(lambda: cached.get() != 1, what="the background check's value")


@pytest.fixture
def gemini(tmp_path, fake_gemini):
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), "GEMINI_API_KEY": KEY,
                                      "GEMINI_BASE_URL": fake_gemini.base_url, "LLM_API_MAX_WAITING": "1",
                                      "LLM_TIMEOUT_S": "5"})
    return create_app(settings).test_client()


def test_the_llm_api_refuses_a_call_over_its_limit_with_503_busy(gemini, fake_gemini):
    fake_gemini.reply("one two three", chunks=3, delay=0.2)
    streaming = gemini.post("/api/generate", json={**HELLO, "stream": True}, buffered=False)
    pieces = iter(streaming.response)
    assert b"event: delta" in next(pieces)  # the stream holds the only slot
    refused = gemini.post("/api/generate", json=HELLO)
    assert (refused.status_code, refused.get_json()["error"], refused.headers["Retry-After"]) == (503, "busy", "1")
    assert "LLM_API_MAX_WAITING" in refused.get_json()["message"]
    assert gemini.get("/api/health").get_json()["last_error"] is None  # busy is not an engine failure
    streaming.close()  # the client is done with it: the slot is free again
    assert gemini.post("/api/generate", json=HELLO).status_code == 200


def test_the_llm_timeout_is_a_setting_and_named_when_exceeded(tmp_path, fake_gemini):
    settings = load_settings(environ={"RAICTL_HOME": str(tmp_path / "home"), "GEMINI_API_KEY": KEY,
                                      "GEMINI_BASE_URL": fake_gemini.base_url, "LLM_TIMEOUT_S": "0.5"})
    fake_gemini.hang(30)
    response = create_app(settings).test_client().post("/api/generate", json=HELLO)
    assert (response.status_code, response.get_json()["error"]) == (502, "upstream_timeout")
    assert "Gemini did not answer within 0.5s" in response.get_json()["message"]


@pytest.mark.parametrize("name, value, words", [
    ("LLM_TIMEOUT_S", "0", "a number of seconds above 0"), ("LLM_TIMEOUT_S", "soon", "a number of seconds"),
    ("RAI_API_MAX_WAITING", "0", "a positive whole number"), ("LLM_API_MAX_WAITING", "many", "whole number")])
def test_bad_waiting_settings_are_one_clear_error(tmp_path, name, value, words):
    from raictl.errors import RaictlError

    with pytest.raises(RaictlError) as error:
        load_settings(environ={"RAICTL_HOME": str(tmp_path), name: value})
    assert name in str(error.value) and words in str(error.value)
