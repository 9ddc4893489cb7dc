"""The rules for a /api/generate body: each broken rule becomes a 400 that names what is wrong."""

from __future__ import annotations

import json
from typing import Any

from services.llm_api.engines import EngineError, Message, Prompt

ROLES = ("user", "assistant")
FIELDS = ("messages", "system", "temperature")
TEMPERATURE_RANGE = (0.0, 2.0)


def invalid(message: str, code: str = "invalid_request") -> EngineError:
    return EngineError(400, code, message)


def parse_generate(raw: bytes) -> Prompt:
    """The Prompt a request body describes; raises EngineError(400) naming the first broken rule."""
    body = _json(raw)
    if not isinstance(body, dict):
        raise invalid(f"the body must be a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(FIELDS)})")
    messages = _messages(body.get("messages"))
    return Prompt(messages, _system(body.get("system")), _temperature(body.get("temperature")))


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise invalid("the body is empty; send a JSON object with messages", "invalid_json")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise invalid(f"the body is not valid JSON: {exc}", "invalid_json") from None
    except RecursionError:
        raise invalid("the body is not acceptable JSON: nested too deeply", "invalid_json") from None


def _messages(value: Any) -> tuple[Message, ...]:
    if value is None:
        raise invalid("messages is missing: send a list of {role, content} objects")
    if not isinstance(value, list) or not value:
        raise invalid(f"messages must be a non-empty list, got {_kind(value)}")
    messages = tuple(_message(i, item) for i, item in enumerate(value))
    if messages[-1].role != "user":
        raise invalid(f"the last message must be from the user, got role {messages[-1].role!r}")
    return messages


def _message(index: int, item: Any) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise invalid(f"{where} must be an object with role and content, got {_kind(item)}")
    role, content = item.get("role"), item.get("content")
    if role not in ROLES:
        raise invalid(f"{where}.role must be 'user' or 'assistant', got {role!r}")
    unknown = sorted(set(item) - {"role", "content"})
    if unknown:
        raise invalid(f"{where} has unknown field(s): {', '.join(unknown)} (allowed: role, content)")
    return Message(role, _text(content, f"{where}.content"))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where} must be a string, got {_kind(value)}")
    if not value.strip():
        raise invalid(f"{where} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{where} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _system(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None  # an empty system prompt is no system prompt
    return _text(value, "system")


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    low, high = TEMPERATURE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"temperature must be a number from {low:g} to {high:g}, got {_kind(value)}")
    # Compared as is: float() of a 400-digit integer overflows, and NaN fails both comparisons.
    if not low <= value <= high:
        raise invalid(f"temperature must be from {low:g} to {high:g}, got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return "an empty list" if value == [] else names.get(type(value), type(value).__name__)
