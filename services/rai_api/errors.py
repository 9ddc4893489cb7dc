"""The RAI API's own error types as JSON `{"error": code, "message": str}` with the right status.

`ApiError` is raised where a failure is understood; database outages become a 503 saying so. Werkzeug's
HTTP errors (404, 405, 413, ...) and bugs are answered by services.http_json, as in the LLM API, so no
input ever gets an HTML page.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app

from raishared.database import is_schema_error, mysql_error_code
from services.http_json import JsonError, error_response, register_json_errors
from services.rai_api.schema import HEALTH_HINT

log = logging.getLogger(__name__)


class ApiError(JsonError):
    """An expected failure of the RAI API with its HTTP status, a stable code and a reason for the client."""


def _api_error(exc: ApiError) -> Response:
    response = error_response(exc.status, exc.code, exc.message)
    response.headers.update(exc.headers)
    if exc.status == 401:  # HTTP wants a 401 to name the scheme it asks for
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _database_error(exc: Exception) -> Response:
    # The log's "Unknown column 'users.remembered_facts'" surfaced as a login failure; say what it is.
    # The log gets the driver's reason (never the statement's parameters: a password hash, a message);
    # the client gets no database, table or column name (issue 13), only what kind of failure it is.
    reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0][:300]
    log.error("database error: %s", reason)
    if reason.startswith("database or disk is full"):  # SQLite: give the WAL's space back (issue 13)
        current_app.extensions["rai_db"].release_wal()
    if is_schema_error(exc):
        return error_response(503, "schema_mismatch", "the database schema does not match this RAI API (a table "
                                                      f"or column it uses is missing); {_schema_advice()}")
    return error_response(503, "database_unavailable",
                          f"the database failed: {_public_reason(exc, reason)} (the RAI API's log has the details; "
                          "check `raictl doctor`)")


# SQLite reasons that name no table or column (others, e.g. "NOT NULL constraint failed: t.c", do).
_SQLITE_PUBLIC = ("database is locked", "database or disk is full", "disk I/O error", "unable to open database file",
                  "attempt to write a readonly database", "database disk image is malformed")


def _public_reason(exc: Exception, reason: str) -> str:
    """The failure in words fit for a client: a MariaDB/MySQL client error (2000-2999: cannot connect,
    server gone) or a listed SQLite reason as is, anything else as its error number or type only."""
    code = mysql_error_code(exc)
    if code is not None:
        return reason if 2000 <= code < 3000 else f"MariaDB/MySQL error {code}"
    if reason.startswith(_SQLITE_PUBLIC):
        return reason
    return type(getattr(exc, "orig", None) or exc).__name__


def _schema_advice() -> str:
    """Where the schema stands, read now (the health's copy may be seconds old), and what to run."""
    from services.rai_api.health import check_database

    schema = check_database(current_app.extensions["rai_db"])["schema"]
    if schema not in HEALTH_HINT:  # "ok": the models ask for what the head revision lacks
        return "run `raictl doctor`; `raictl migrate --repair` adds what is missing"
    return f"the schema is {schema!r}: {HEALTH_HINT[schema]}"


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on `app`: the shared ones, then the RAI API's own."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    register_json_errors(app, "RAI API")
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(DBAPIError, _database_error)
