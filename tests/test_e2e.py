"""The whole flow against the two real services: the LLM API (mock engine) and the RAI API.

Register, log in, chat, "remember that …", then a new session whose prompt carries the fact and
recalls the earlier conversation; then the LLM API goes down and chat says so with a 503.
"""

from __future__ import annotations

import re

import pytest
from alembic import command

from migrations import alembic_config
from tests.support import ServiceProcess, free_port, http, service_env, wait_until

PASSWORD = "correct horse"
REPORT = re.compile(r"remembered facts: (\d+), recalled: (\d+)\)$")


@pytest.fixture
def stack(db_url, tmp_path):
    """(llm_api, rai_api) running for real; the RAI API knows the LLM API through LLM_API_URL only."""
    command.upgrade(alembic_config(db_url), "head")
    llm_port, rai_port = free_port(), free_port()
    (tmp_path / "llm").mkdir()
    (tmp_path / "rai").mkdir()
    llm = ServiceProcess("services.llm_api", llm_port, service_env(
        tmp_path / "llm", LLM_ENGINE="mock", LLM_API_PORT=str(llm_port)), log=tmp_path / "llm_api.log")
    rai = ServiceProcess("services.rai_api", rai_port, service_env(
        tmp_path / "rai", RAI_DATABASE_URL=db_url, RAI_API_PORT=str(rai_port), LLM_API_PORT=str(llm_port)),
        log=tmp_path / "rai_api.log")
    try:
        yield llm.start(), rai.start()
    finally:
        rai.stop()
        llm.stop()


def _facts_and_recalled(reply: str) -> tuple[int, int]:
    match = REPORT.search(reply)
    assert match, reply
    return int(match[1]), int(match[2])


def test_register_login_chat_remember_recall_and_llm_outage(stack):
    llm, rai = stack
    v4, v6 = "127.0.0.1", "::1"
    health = http("GET", rai.url("/api/health", v6))[1]
    assert (health["status"], health["llm_status"], health["llm_engine"]) == ("ok", "ok", "mock")
    credentials = {"username": "alice", "password": PASSWORD}
    assert http("POST", rai.url("/api/auth/register", v4), credentials)[0] == 201
    token = http("POST", rai.url("/api/auth/login", v6), credentials)[1]["access_token"]

    status, first = http("POST", rai.url("/api/chat", v4), {"message": "Hello!"}, token=token)
    assert status == 200 and first["response"].startswith('[mock] reply to "Hello!"')
    session = first["session_id"]
    status, body = http("POST", rai.url("/api/chat", v6),
                        {"message": "remember that my cat is called Miso", "session_id": session}, token=token)
    assert status == 200 and body["session_id"] == session

    status, fresh = http("POST", rai.url("/api/chat", v6), {"message": "Good morning"}, token=token)
    assert status == 200 and fresh["session_id"] != session
    assert _facts_and_recalled(fresh["response"]) == (1, 0)
    status, related = http("POST", rai.url("/api/chat", v4),
                           {"message": "What is my cat called?", "session_id": fresh["session_id"]}, token=token)
    facts, recalled = _facts_and_recalled(related["response"])
    assert status == 200 and facts == 1 and recalled > 0
    assert "(messages: 3, earlier: 2," in related["response"]

    llm.stop()
    status, body = http("POST", rai.url("/api/chat", v4), {"message": "still there?"}, token=token)
    assert (status, body["error"]) == (503, "llm_unavailable")
    assert f"127.0.0.1:{llm.port}" in body["message"] and "refused" in body["message"]
    wait_until(lambda: http("GET", rai.url("/api/health"))[1]["llm_status"] == "unreachable",
               timeout=10, what="health to notice the LLM API is gone")
