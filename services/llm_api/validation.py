"""The rules for a /api/generate body: each broken rule becomes a 400 that names what is wrong."""

from __future__ import annotations

from typing import Any

from services.http_json import json_kind
from services.llm_api.engines import EngineError, Message, Prompt

ROLES = ("user", "assistant")
FIELDS = ("messages", "system", "temperature", "stream")
TEMPERATURE_RANGE = (0.0, 2.0)


def invalid(message: str) -> EngineError:
    return EngineError(400, "invalid_request", message)


def parse_generate(body: dict[str, Any]) -> Prompt:
    """The Prompt a request body (a JSON object) describes; raises EngineError(400) naming the first broken rule."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(FIELDS)})")
    if not isinstance(body.get("stream", False), bool):
        raise invalid(f"stream must be true or false, got {json_kind(body['stream'])}")
    messages = _messages(body.get("messages"))
    return Prompt(messages, _system(body.get("system")), _temperature(body.get("temperature")))


def _messages(value: Any) -> tuple[Message, ...]:
    if value is None:
        raise invalid("messages is missing: send a list of {role, content} objects")
    if not isinstance(value, list) or not value:
        raise invalid(f"messages must be a non-empty list, got {json_kind(value)}")
    messages = tuple(_message(i, item) for i, item in enumerate(value))
    if messages[-1].role != "user":
        raise invalid(f"the last message must be from the user, got role {messages[-1].role!r}")
    return messages


def _message(index: int, item: Any) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise invalid(f"{where} must be an object with role and content, got {json_kind(item)}")
    role, content = item.get("role"), item.get("content")
    if role not in ROLES:
        raise invalid(f"{where}.role must be 'user' or 'assistant', got {role!r}")
    unknown = sorted(set(item) - {"role", "content"})
    if unknown:
        raise invalid(f"{where} has unknown field(s): {', '.join(unknown)} (allowed: role, content)")
    return Message(role, _text(content, f"{where}.content"))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where} must be a string, got {json_kind(value)}")
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
        raise invalid(f"temperature must be a number from {low:g} to {high:g}, got {json_kind(value)}")
    # Compared as is: float() of a 400-digit integer overflows, and NaN fails both comparisons.
    if not low <= value <= high:
        raise invalid(f"temperature must be from {low:g} to {high:g}, got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"

