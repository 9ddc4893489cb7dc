"""Memory, kept in the database only, and the one place the LLM prompt is built.

Three kinds: the session's recent messages (context), remembered facts in `users.remembered_facts`
("remember that …", "forget …", "what do you remember?"), and episodic recall: messages of the
user's earlier sessions that share words with the new message, best overlap first.
The functions here work on plain values; `services.rai_api.conversation` reads and writes the rows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

SYSTEM_PROMPT = ("You are RAI, a helpful assistant. Answer the user's last message; use what you "
                 "remember about them when it is relevant.")
SESSION_HEADING = "Instructions for this session:"
FACTS_HEADING = "Remembered facts about the user:"
RECALL_HEADING = "Relevant earlier conversations:"
RECENT_LIMIT = 20          # messages of the current session sent as context
RECALL_SCAN_LIMIT = 50     # newest messages of earlier sessions sharing a keyword, scored for recall
# Recall searches the newest RECALL_WINDOW messages of the database (the user's among them): a LIKE
# cannot use an index, so without a bound a rare word scanned all history (measured: 150 ms on
# SQLite and 160 ms on MariaDB per chat turn at 60k/40k messages; bounded: 2 ms and 1.3 ms).
RECALL_WINDOW = 1000
RECALL_QUERY_WORDS = 8     # the longest keywords of the message the database prefilters on
RECALL_LIMIT = 3
RECALL_LINE_CHARS = 200
FACT_MAX_CHARS = 500
FACTS_MAX = 200
# The LLM API refuses a body over 1 MiB (413). The prompt (system + messages as the JSON the RAI API
# sends, UTF-8) is kept within this budget; ENVELOPE_BYTES covers the rest of the body ("stream").
# Measured before: 11 turns of 8,000-emoji messages made the 12th turn's body larger than 1 MiB.
PROMPT_BUDGET_BYTES = 900 * 1024
ENVELOPE_BYTES = 64

# Prefixes only: the rest is taken as is and its trailing punctuation stripped (a lazy group before
# a trailing class would cost quadratic time on a long message).
_REMEMBER = re.compile(r"\s*(?:please\s+)?remember\s+that\s+", re.I)
_FORGET = re.compile(r"\s*(?:please\s+)?forget\s+(?:that\s+|about\s+)?", re.I)
_LIST = re.compile(r"\s*what\s+do\s+you\s+remember(?:\s+about\s+me)?[\s?.!]*", re.I)
_FORGET_ALL = {"everything", "all", "all facts", "everything you remember"}
_WORD = re.compile(r"[^\W_]+", re.U)
STOPWORDS = frozenset(
    "a an and are as at be but by can did do does for from had has have he her his how i i'm if in is "
    "it its me my no not of on or our she so that the their them then there they this to was we were "
    "what when where which who why will with you your yours about just tell please".split())


@dataclass(frozen=True)
class Command:
    """A memory command found in a message: kind is remember, forget or list."""

    kind: str
    argument: str = ""


def parse_command(message: str) -> Command | None:
    """The memory command `message` states, or None for an ordinary chat message."""
    if _LIST.fullmatch(message):
        return Command("list")
    if (match := _REMEMBER.match(message)) and (fact := message[match.end():].rstrip(" \t\r\n.!")):
        return Command("remember", one_line(fact)[:FACT_MAX_CHARS])
    if (match := _FORGET.match(message)) and (what := message[match.end():].rstrip(" \t\r\n.!?")):
        return Command("forget", one_line(what))
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


@lru_cache(maxsize=2048)  # the same earlier messages are scored again on every turn
def keywords(text: str) -> frozenset[str]:
    """The words of `text` that carry meaning: lower-cased, no stopwords, no single letters."""
    return frozenset(w for w in (m.lower() for m in _WORD.findall(text)) if len(w) > 1 and w not in STOPWORDS)


def remember(facts: list[str], fact: str) -> tuple[list[str], bool]:
    """(facts with `fact` added, whether it was new); a fact already known is not repeated."""
    if any(f.casefold() == fact.casefold() for f in facts):
        return facts, False
    return [*facts, fact][-FACTS_MAX:], True


def forget(facts: list[str], what: str) -> tuple[list[str], list[str]]:
    """(facts kept, facts removed): a fact goes when it contains `what` or all of its keywords."""
    if what.casefold() in _FORGET_ALL:
        return [], list(facts)
    wanted = keywords(what)
    def matches(fact: str) -> bool:
        return what.casefold() in fact.casefold() or bool(wanted) and wanted <= keywords(fact)
    return [f for f in facts if not matches(f)], [f for f in facts if matches(f)]


def search_words(message: str) -> list[str]:
    """The keywords the database looks for (a LIKE prefilter), longest first: rarer words narrow more."""
    return sorted(keywords(message), key=lambda w: (-len(w), w))[:RECALL_QUERY_WORDS]


def recall(message: str, earlier: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (role, content) pairs of `earlier` sharing most keywords with `message`, best first."""
    wanted = keywords(message)
    if not wanted:
        return []
    scored = [(len(wanted & keywords(content)), -i, role, content) for i, (role, content) in enumerate(earlier)]
    best = sorted((s for s in scored if s[0] > 0), reverse=True)[:RECALL_LIMIT]
    return [(role, content) for _, _, role, content in best]


def prompt_size(system: str, messages: list[dict[str, str]]) -> int:
    """Bytes of the prompt as the LLM API receives it (llm_client.request_body, without its envelope)."""
    return len(json.dumps({"messages": messages, "system": system}, ensure_ascii=False).encode())


def _system_prompt(facts: list[str], recalled: list[tuple[str, str]], session_prompt: str | None) -> str:
    """The system prompt: the persona, the session's own prompt under SESSION_HEADING, then each memory
    block (a heading line, then one `- ` line per item); an empty block is left out."""
    blocks = [SYSTEM_PROMPT]
    if session_prompt:
        blocks.append(f"{SESSION_HEADING}\n{session_prompt}")
    if facts:
        blocks.append("\n".join([FACTS_HEADING, *(f"- {one_line(f)}" for f in facts)]))
    if recalled:
        lines = (f"- {role}: {one_line(content)[:RECALL_LINE_CHARS]}" for role, content in recalled)
        blocks.append("\n".join([RECALL_HEADING, *lines]))
    return "\n\n".join(blocks)


def build_prompt(message: str, recent: list[tuple[str, str]], facts: list[str], recalled: list[tuple[str, str]],
                 session_prompt: str | None = None,
                 budget: int = PROMPT_BUDGET_BYTES) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, messages) for the LLM API: the one place a prompt is put together, within
    `budget` bytes (prompt_size). The session's own system prompt (`raictl chat -s`, or the default
    of the settings) follows the persona on every turn. The system prompt, the remembered facts and
    the new message always stay; the context gives way, oldest first: the recalled lines when even
    they do not fit, then the session's oldest messages. (Facts alone cannot fill it within
    FACTS_MAX and FACT_MAX_CHARS; if they ever did, the oldest would go.)"""
    new = [{"role": "user", "content": message}]
    facts = list(facts)
    while facts and prompt_size(_system_prompt(facts, [], session_prompt), new) > budget:
        facts.pop(0)
    system = _system_prompt(facts, recalled, session_prompt)
    if prompt_size(system, new) > budget:
        system = _system_prompt(facts, [], session_prompt)
    spare = budget - prompt_size(system, new)
    kept: list[dict[str, str]] = []
    for role, content in reversed(recent[-RECENT_LIMIT:]):
        item = {"role": role, "content": content}
        cost = len(json.dumps(item, ensure_ascii=False).encode()) + 2  # and its ", " in the list
        if cost > spare:
            break
        spare -= cost
        kept.append(item)
    return system, [*reversed(kept), *new]


def describe_facts(facts: list[str]) -> str:
    """The answer to "what do you remember?", straight from the database."""
    if not facts:
        return "I don't remember anything about you yet. Tell me \"remember that …\" and I will."
    return "Here is what I remember about you:\n" + "\n".join(f"- {f}" for f in facts)
