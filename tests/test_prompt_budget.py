"""The prompt stays within its byte budget (issue 12 item 5): the oldest context goes first; the system
prompt, the remembered facts and the new message always stay. Plain values, at the limits."""

from __future__ import annotations

import json

from services.rai_api import memory
from services.rai_api.llm_client import request_body

EMOJI = "\U0001F600"  # 4 bytes of UTF-8, 12 as an ASCII-escaped JSON string


def turns(count: int, size: int) -> list[tuple[str, str]]:
    return [("user" if i % 2 == 0 else "assistant", f"{i:03d}" + EMOJI * size) for i in range(count)]


def test_the_size_is_that_of_the_body_the_llm_api_receives():
    system, messages = memory.build_prompt("hello " + EMOJI, turns(4, 10), ["I like tea"], [])
    for stream in (False, True):
        body = request_body(system, messages, stream=stream)
        assert json.loads(body) == {"messages": messages, "system": system, **({"stream": True} if stream else {})}
        assert 0 <= len(body) - memory.prompt_size(system, messages) <= memory.ENVELOPE_BYTES


def test_eleven_turns_of_8000_emoji_fit_under_the_llm_apis_limit():
    """The measured failure: the 12th turn's prompt was over the LLM API's 1 MiB body limit."""
    recent = turns(22, 8000)
    system, messages = memory.build_prompt(EMOJI * 8000, recent, ["my cat is Miso"], [])
    assert len(request_body(system, messages, stream=True)) <= memory.PROMPT_BUDGET_BYTES + memory.ENVELOPE_BYTES
    assert memory.PROMPT_BUDGET_BYTES + memory.ENVELOPE_BYTES < 1024 * 1024
    assert messages[-1]["content"] == EMOJI * 8000 and "- my cat is Miso" in system


def test_within_the_budget_nothing_is_dropped_and_one_byte_less_drops_the_oldest_message():
    recent = turns(6, 50)
    system, everything = memory.build_prompt("now", recent, ["fact one"], [("user", "earlier words")])
    exact = memory.prompt_size(system, everything)
    assert memory.build_prompt("now", recent, ["fact one"], [("user", "earlier words")], budget=exact) == (
        system, everything)
    trimmed_system, trimmed = memory.build_prompt("now", recent, ["fact one"], [("user", "earlier words")],
                                                  budget=exact - 1)
    assert trimmed_system == system  # the facts and the recalled lines stay
    assert trimmed == everything[1:]  # the oldest message went, nothing else
    assert memory.prompt_size(trimmed_system, trimmed) <= exact - 1


def test_the_newest_context_is_kept_and_order_is_preserved():
    recent = turns(20, 1000)
    budget = memory.prompt_size(*memory.build_prompt("q", recent[-5:], [], [])) + 10
    system, messages = memory.build_prompt("q", recent, [], [], budget=budget)
    assert [m["content"][:3] for m in messages[:-1]] == ["015", "016", "017", "018", "019"]
    assert messages[-1] == {"role": "user", "content": "q"}


def test_the_system_prompt_facts_and_new_message_stay_even_when_no_context_fits():
    facts = [f"fact {i}" for i in range(10)]
    floor = memory.prompt_size(*memory.build_prompt("the new message", [], facts, []))
    system, messages = memory.build_prompt("the new message", turns(4, 100), facts,
                                           [("user", "recalled")], budget=floor)
    assert messages == [{"role": "user", "content": "the new message"}]
    assert system.startswith(memory.SYSTEM_PROMPT) and all(f"- {f}" in system for f in facts)
    assert memory.RECALL_HEADING not in system  # recalled lines are context: they went too


def test_facts_that_alone_overflow_lose_their_oldest_first():
    facts = [f"fact {i} " + "x" * 100 for i in range(50)]
    budget = memory.prompt_size(*memory.build_prompt("m", [], facts[-10:], []))
    system, messages = memory.build_prompt("m", turns(2, 10), facts, [], budget=budget)
    assert messages == [{"role": "user", "content": "m"}]
    kept = [line[2:] for line in system.splitlines() if line.startswith("- ")]
    assert kept == facts[-10:]


# ---------------------------------------------------------------- through the RAI API and the real LLM API

from tests.test_rai_api import app, chat, client, login, mock_report  # noqa: E402,F401 - fixtures (llm_api: conftest)


def test_twelve_turns_of_8000_emoji_all_get_a_reply(client):
    """The measured failure: the 12th turn got 503 llm_unavailable ("answered 413") from a healthy LLM API."""
    headers = login(client)
    session_id = None
    for turn in range(12):
        response = chat(client, headers, f"{turn} " + EMOJI * 7990, session_id)
        assert response.status_code == 200, (turn, response.json)
        session_id = response.json["session_id"]
    assert int(mock_report(response)["messages"]) == memory.RECENT_LIMIT + 1
