"""JSON over HTTP as both services speak it: a POST body comes as application/json and holds a JSON
object, and a value that is not one is named in JSON's words.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request


class JsonError(Exception):
    """An expected failure with its HTTP status, a stable code and a reason for the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def request_object(syntax_code: str, kind_code: str) -> dict[str, Any]:
    """The request body as a JSON object: 413 past MAX_CONTENT_LENGTH, 415 unless sent as
    application/json, 400 `syntax_code` when it does not parse, 400 `kind_code` when it is no object."""
    data = request.get_data(cache=True)  # first, so a body over the limit is a 413 whatever its type
    require_json_type()
    return parse_object(data, syntax_code, kind_code)


def require_json_type() -> None:
    """415 unless the request's body is sent as application/json."""
    # A web page may POST text/plain or a form to 127.0.0.1 without asking the browser first (a
    # "simple" request); application/json needs a CORS preflight, which neither API ever grants.
    # So no open web page can create accounts, try passwords, chat or spend the user's Gemini quota.
    if request.mimetype != "application/json":
        raise JsonError(415, "unsupported_media_type", "send the body with Content-Type: application/json "
                                                       f"(got {request.mimetype or 'none'})")


def parse_object(raw: bytes, syntax_code: str, kind_code: str) -> dict[str, Any]:
    """`raw` parsed as a JSON object, or JsonError(400) saying why it is not one."""
    if not raw.strip():
        raise JsonError(400, syntax_code, "the body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JsonError(400, syntax_code, f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # nesting deeper than the parser goes
        raise JsonError(400, syntax_code, "the body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise JsonError(400, kind_code, f"the body must be a JSON object, not {json_kind(body)}")
    return body


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words ("null", "an array"), not Python's ("NoneType")."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false
    if isinstance(value, list):
        return "an array" if value else "an empty array"
    if isinstance(value, dict):
        return "an object"
    return "a string" if isinstance(value, str) else "a number"
