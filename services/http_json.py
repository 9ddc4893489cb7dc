"""JSON over HTTP as both services speak it: a POST body comes as application/json and holds a JSON
object, a value that is not one is named in JSON's words, and every failure is answered as
`{"error": code, "message": str}` with its status (never Flask's HTML page).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger(__name__)

# Werkzeug's own names, snake-cased, except where HTTP's name reads better than Werkzeug's
# ("Request Entity Too Large") or "internal_error" was already the contract.
HTTP_CODES = {413: "payload_too_large", 500: "internal_error"}


class JsonError(Exception):
    """An expected failure with its HTTP status, a stable code and a reason for the client (and any
    headers the answer needs, e.g. Retry-After)."""

    headers: dict[str, str] = {}

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}  # e.g. Retry-After of a 429 or a 503


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


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def register_json_errors(app: Flask, service: str, endpoints: str = "") -> None:
    """Answer JsonError, every HTTP error (404, 405, 413, 415, ...) and any unexpected exception of
    `app` as JSON; `service` names it in a 500, `endpoints` (if given) is listed in a 404."""
    app.register_error_handler(JsonError, _json_error)
    app.register_error_handler(HTTPException, partial(_http_error, endpoints=endpoints))
    app.register_error_handler(Exception, partial(_unexpected, service=service))


def _json_error(exc: JsonError) -> Response:
    response = error_response(exc.status, exc.code, exc.message)
    response.headers.update(exc.headers)
    return response


def _http_error(exc: HTTPException, endpoints: str) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
    response = error_response(status, code, _http_message(exc, status, endpoints))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _http_message(exc: HTTPException, status: int, endpoints: str) -> str:
    if status == 404:
        return f"no endpoint {request.path}" + (f" (endpoints: {endpoints})" if endpoints else "")
    if status == 405:
        methods = exc.valid_methods if isinstance(exc, MethodNotAllowed) else None
        allowed = ", ".join(m for m in methods or () if m not in ("HEAD", "OPTIONS"))
        return f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    if status == 413:
        return f"the body is larger than {_size(current_app.config['MAX_CONTENT_LENGTH'])}"
    return f"{request.method} {request.path}: {exc.description or exc.name}"


def _size(limit: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def _unexpected(exc: Exception, service: str) -> Response:
    # A bug, not an input (every expected failure has its own code): the traceback goes to the
    # service's log, the client gets where it happened.
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__} in the {service} on "
                                                 f"{request.method} {request.path}: its log has the traceback")
