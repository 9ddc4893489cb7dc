"""Wildcard binds, the troubleshooting log's root cause, caught by `up` and `status` (issue 11, items 3
and 4), and `up` naming an LLM_API_URL with nothing behind it: the real LLM API on free ports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import free_port


def raictl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.fixture
def llm_port(isolated, monkeypatch):
    port = free_port()
    monkeypatch.setenv("LLM_API_PORT", str(port))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    monkeypatch.setenv("LLM_ENGINE", "mock")
    yield port
    raictl("down")


@pytest.mark.parametrize("wildcard, refused, accepted", [("0.0.0.0", "::1", "127.0.0.1"),
                                                         ("::", "127.0.0.1", "::1"),
                                                         ("::0", "127.0.0.1", "::1")])
def test_up_on_a_wildcard_starts_it_and_warns_in_the_words_a_client_shows(llm_port, monkeypatch, wildcard,
                                                                          refused, accepted):
    monkeypatch.setenv("LLM_API_HOSTS", wildcard)
    up = raictl("up", "llm_api")
    assert up.returncode == 0, up.stderr  # a user may want the LAN: started, not refused
    assert "llm_api ready" in up.stdout
    assert f"ECONNREFUSED {refused}:{llm_port}" in up.stderr, up.stderr
    assert "network" in up.stderr and "hint: bind both loopbacks, the default: LLM_API_HOSTS=127.0.0.1,::1" in up.stderr
    status = raictl("status", "--json")
    llm = {s["name"]: s for s in json.loads(status.stdout)["services"]}["llm_api"]
    assert {(l["host"], l["ok"]) for l in llm["listen"]} == {(accepted, True), (refused, False)}
    assert status.returncode == 3  # a client of localhost can be refused: not all is well
    text = raictl("status").stdout
    assert f"ECONNREFUSED {refused}:{llm_port}" in text and "network" in text


@pytest.mark.parametrize("command", ["up", "restart"])
def test_going_back_from_a_wildcard_to_the_default_works(llm_port, monkeypatch, command):
    """The fix doctor recommends: the pre-flight knows the wildcard listener is the service's own."""
    monkeypatch.setenv("LLM_API_HOSTS", "0.0.0.0")
    assert raictl("up", "llm_api").returncode == 0
    monkeypatch.delenv("LLM_API_HOSTS")
    again = raictl(command, "llm_api")
    assert again.returncode == 0, again.stderr
    assert "ECONNREFUSED" not in again.stderr
    status = json.loads(raictl("status", "--json").stdout)
    llm = {s["name"]: s for s in status["services"]}["llm_api"]
    assert [(l["host"], l["ok"]) for l in llm["listen"]] == [("127.0.0.1", True), ("::1", True)]


def test_up_says_when_llm_api_url_has_no_llm_api_behind_it_and_chat_does_not_say_start_it(llm_port, monkeypatch):
    nowhere = free_port()
    monkeypatch.setenv("LLM_API_URL", f"http://127.0.0.1:{nowhere}")
    monkeypatch.setenv("RAI_USER", "watcher")
    monkeypatch.setenv("RAI_PASSWORD", "a-long-enough-password")
    up = raictl("up")
    assert up.returncode == 0, up.stderr
    assert f"LLM_API_URL=http://127.0.0.1:{nowhere}" in up.stderr and "no LLM API answers" in up.stderr, up.stderr
    chat = raictl("chat", "hello")
    assert chat.returncode == 1
    assert "raictl up" not in chat.stderr and "LLM_API_URL" in chat.stderr, chat.stderr
