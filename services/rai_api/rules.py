"""The RAI API's input rules: what a request body must hold, checked before anything touches the DB.

Each rule failure is a 400 whose message states the rule, so a client can fix its request; a body
not sent as application/json is a 415.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import request

from services import sse
from services.http_json import request_object
from services.rai_api.errors import ApiError

USERNAME_RULE = "username must be 3-32 characters: ASCII letters, digits, '_', '.' or '-'"
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
MESSAGE_MAX = 8000
SYSTEM_MAX = 8000  # a session's own system prompt
SESSION_ID_MAX = 36
# The form the RAI API gives every session id (str(uuid4())). Anything else names no session: checked
# here because MariaDB's collation would match `ABC ` to `abc` (case and trailing spaces ignored).
SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A stored reply: 16 MiB MEDIUMTEXT on MariaDB holds 4 Mi characters of 4 bytes; keep well within it.
STORED_REPLY_MAX = 1_000_000
TRUNCATED_MARK = "\n\n[… {n} characters cut: the reply was longer than the database keeps]"
# A message of MESSAGE_MAX astral characters is 8000 * 12 bytes as ASCII-escaped JSON; leave room.
MAX_BODY_BYTES = 256 * 1024


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_input", message)


def json_body() -> dict[str, Any]:
    """The request body as a JSON object (413, 415 or 400 `malformed_json` otherwise)."""
    return request_object(syntax_code="malformed_json", kind_code="malformed_json")


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise _invalid(f"{name} is required")
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    return _unicode(value, name)


def _unicode(value: str, name: str) -> str:
    # JSON may escape a lone surrogate ("\ud800"); no database can store it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"{name} must be valid Unicode text (it holds a lone surrogate)") from None
    return value


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never a password in a log line or a traceback
        return f"Credentials(username={self.username!r})"


def credentials(body: dict[str, Any], check_rules: bool = True) -> Credentials:
    """Username (lower-cased) and password; with `check_rules` (register) they must follow the rules.

    Usernames are case-insensitive: MariaDB's collation compares them so, SQLite would not, and a
    user must not find that "Alice" and "alice" are one account on one database and two on the other.
    """
    username, password = _string(body, "username"), _string(body, "password")
    if check_rules and not USERNAME_PATTERN.fullmatch(username):
        raise _invalid(USERNAME_RULE)
    if check_rules and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise _invalid(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    return Credentials(username.lower(), password)


def is_valid_username(username: str) -> bool:
    return USERNAME_PATTERN.fullmatch(username) is not None


def chat_request(body: dict[str, Any]) -> tuple[str, str | None]:
    """(message, session_id or None) of a chat request."""
    message = _string(body, "message")
    if not message.strip():
        raise _invalid(f"message must hold 1-{MESSAGE_MAX} characters, not only whitespace")
    if len(message) > MESSAGE_MAX:
        raise _invalid(f"message must hold 1-{MESSAGE_MAX} characters, got {len(message)}")
    session_id = body.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not 0 < len(session_id) <= SESSION_ID_MAX):
        raise _invalid(f"session_id must be a session id string of at most {SESSION_ID_MAX} characters")
    return message, None if session_id is None else checked_session_id(_unicode(session_id, "session_id"))


def no_session(session_id: str) -> ApiError:
    return ApiError(404, "session_not_found", f"no session {session_id!r} among this user's sessions")


def checked_session_id(value: str) -> str:
    """`value` when it has the form of a session id; 404 `session_not_found` otherwise (no session has it)."""
    if not SESSION_ID_PATTERN.fullmatch(value):
        raise no_session(value)
    return value


def storable_reply(reply: str) -> str:
    """The reply as stored: whole up to STORED_REPLY_MAX characters, else cut there with a visible marker
    (a reply is never lost after it was generated; the client got it whole)."""
    if len(reply) <= STORED_REPLY_MAX:
        return reply
    keep = STORED_REPLY_MAX - len(TRUNCATED_MARK.format(n=len(reply)))  # the mark at its longest
    return reply[:keep] + TRUNCATED_MARK.format(n=len(reply) - keep)


def session_system(body: dict[str, Any], session_id: str | None) -> str | None:
    """The `system` prompt a new session is to keep (None when not given); 400 when it is not a string
    of at most SYSTEM_MAX characters, or comes with a session_id (a session keeps the one it began with)."""
    value = body.get("system")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > SYSTEM_MAX:
        raise _invalid(f"system must be a string of at most {SYSTEM_MAX} characters")
    if session_id is not None:
        raise _invalid("system can only be given when a session starts (without session_id): "
                       "a session keeps the system prompt it began with")
    return _unicode(value, "system").strip() or None


def wants_stream(body: dict[str, Any]) -> bool:
    """Whether the chat is to be streamed: `"stream": true`, or `Accept: text/event-stream` (400
    when `stream` is not a boolean)."""
    if not isinstance(body.get("stream", False), bool):
        raise _invalid("stream must be true or false")
    return sse.wants_stream(body, request.headers.get("Accept"))
