"""Every RAI API error as JSON `{"error": code, "message": str}` with the right status.

`ApiError` is raised where a failure is understood; Werkzeug's HTTP errors (404, 405, 413, ...)
and database outages are turned into the same shape, so no input ever gets an HTML page or a 500.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from services.http_json import JsonError

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
              413: "body_too_large", 415: "unsupported_media_type", 500: "internal_error"}
MESSAGES = {404: "no such endpoint: {path}", 405: "{method} is not allowed on {path}",
            413: "the request body is larger than {limit} bytes",
            # Only a bug gets here (its traceback is in the RAI API's log); every expected failure has its own code.
            500: "unexpected error in the RAI API on {method} {path}: its log has the traceback"}


class ApiError(JsonError):
    """An expected failure of the RAI API with its HTTP status, a stable code and a reason for the client."""


def error_response(status: int, code: str, message: str):
    response = jsonify(error=code, message=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _api_error(exc: JsonError):
    return error_response(exc.status, exc.code, exc.message)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    code = HTTP_CODES.get(status, (exc.name or "error").lower().replace(" ", "_"))
    message = exc.description or exc.name
    if status in MESSAGES:
        message = MESSAGES[status].format(path=request.path, method=request.method,
                                          limit=current_app.config.get("MAX_CONTENT_LENGTH"))
    response = error_response(status, code, message)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _database_error(exc: Exception):
    # The log's "Unknown column 'users.remembered_facts'" surfaced as a login failure; say what it is.
    # Only the driver's reason: the statement's parameters may hold a password hash or a message.
    reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0][:300]
    log.error("database error: %s", reason)
    return error_response(503, "database_unavailable",
                          f"the database failed: {reason} (check `raictl doctor`; if the schema is "
                          "behind, run `raictl migrate` or `alembic upgrade head`)")


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on `app`."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    app.register_error_handler(JsonError, _api_error)  # ApiError and the shared body checks'
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(DBAPIError, _database_error)
