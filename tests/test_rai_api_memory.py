"""services.rai_api.memory: memory commands, facts, recall and the one prompt builder (plain values)."""

from __future__ import annotations

import pytest

from services.llm_api.engines import count_block_items
from services.rai_api import memory


@pytest.mark.parametrize("message, expected", [
    ("remember that my cat is called Miso", memory.Command("remember", "my cat is called Miso")),
    ("Please remember that  I like\n tea. ", memory.Command("remember", "I like tea")),
    ("forget my cat", memory.Command("forget", "my cat")),
    ("Forget about tea!", memory.Command("forget", "tea")),
    ("What do you remember?", memory.Command("list")),
    ("what do you remember about me", memory.Command("list")),
    ("Do you remember that film?", None),
    ("I never forget a face", None),
    ("remember", None),
    ("remember that ...", None),
    ("forget ?", None),
])
def test_parse_command(message, expected):
    assert memory.parse_command(message) == expected


def test_remember_does_not_repeat_a_fact():
    facts, new = memory.remember(["my cat is called Miso"], "My cat is called Miso")
    assert (facts, new) == (["my cat is called Miso"], False)
    assert memory.remember(facts, "I like tea") == (["my cat is called Miso", "I like tea"], True)


def test_forget_removes_matching_facts_only():
    facts = ["my cat is called Miso", "I like tea", "my cat is grey"]
    assert memory.forget(facts, "my cat") == (["I like tea"], ["my cat is called Miso", "my cat is grey"])
    assert memory.forget(facts, "Miso cat") == (["I like tea", "my cat is grey"], ["my cat is called Miso"])
    assert memory.forget(facts, "coffee") == (facts, [])
    assert memory.forget(facts, "everything") == ([], facts)


def test_recall_ranks_by_shared_keywords():
    earlier = [("user", "I like tea in the morning"), ("assistant", "weather is fine"),
               ("user", "my cat Miso likes tuna"), ("user", "the cat sleeps")]
    assert memory.recall("what does Miso the cat eat?", earlier) == [
        ("user", "my cat Miso likes tuna"), ("user", "the cat sleeps")]
    assert memory.recall("what is it?", earlier) == []  # stopwords only


def test_prompt_blocks_are_what_the_llm_api_counts():
    system, messages = memory.build_prompt(
        "and now?", [("user", "hi"), ("assistant", "hello")], ["my cat is called Miso", "I like\ntea"],
        [("user", "line one\n\nline two")])
    assert count_block_items(system, memory.FACTS_HEADING) == 2
    assert count_block_items(system, memory.RECALL_HEADING) == 1
    assert "- user: line one line two" in system.splitlines()
    assert messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                        {"role": "user", "content": "and now?"}]


def test_prompt_leaves_out_empty_blocks_and_keeps_recent_context_bounded():
    recent = [("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(50)]
    system, messages = memory.build_prompt("last", recent, [], [])
    assert memory.FACTS_HEADING not in system and memory.RECALL_HEADING not in system
    assert len(messages) == memory.RECENT_LIMIT + 1 and messages[0]["content"] == "m30"
