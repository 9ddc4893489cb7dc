"""The RAI API's app factory: `create_app(settings)` wires the database, the LLM client and the routes.

The app never changes the schema: `raictl up` (or `alembic upgrade head` by hand) does that before
it starts. `schema_state_line()` is what `python -m services.rai_api` logs when the schema is not at
head; the health reports the same state.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

from flask import Flask, Request, Response
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface, SessionMixin

from services import request_guard
from services.rai_api import rules
from services.rai_api.auth import HashGate
from services.rai_api.db import Database
from services.rai_api.errors import register_error_handlers
from services.rai_api.health import HealthReport
from services.rai_api.llm_client import LlmClient
from services.rai_api.page import register_page
from services.rai_api.schema import HEALTH_HINT
from services.rai_api.throttle import LoginThrottle
from services.rai_api.views import api
from services.waiting import WaitingLimit

if TYPE_CHECKING:
    from raishared.settings import Settings

log = logging.getLogger(__name__)



def create_app(settings: Settings | None = None, *, clock: Callable[[], float] = time.time) -> Flask:
    """A Flask app for `settings` (default: `raishared.settings.load_settings()`); `clock` times the login
    limits (tests pass a fake one)."""
    if settings is None:
        from raishared.settings import load_settings

        settings = load_settings()
    app = Flask(__name__, static_folder="static", static_url_path="/static")  # the chat page's files
    app.config.update(SECRET_KEY=settings.secret_key(), MAX_CONTENT_LENGTH=rules.MAX_BODY_BYTES,
                      SEND_FILE_MAX_AGE_DEFAULT=0, RAI_SYSTEM_PROMPT=settings.system_prompt)
    if isinstance(app.json, DefaultJSONProvider):  # Flask's own provider: keep the documents' key order
        app.json.sort_keys = False
    app.session_interface = NoCookieSessions()
    db = Database(settings.database_url)
    llm = LlmClient(settings.llm_api_url, settings.llm_timeout_s,
                    WaitingLimit(settings.rai_api_max_waiting, "RAI_API_MAX_WAITING"))
    app.extensions.update(rai_db=db, rai_llm=llm, rai_health=HealthReport(db, llm),
                          rai_login_throttle=LoginThrottle(db, clock), rai_hash_gate=HashGate.for_this_machine())
    register_error_handlers(app)
    request_guard.install(app, request_guard.guard_for(settings, settings.rai_api_hosts))
    app.register_blueprint(api)
    register_page(app)
    return app


class NoCookieSessions(SessionInterface):
    """The API is stateless (bearer tokens): Flask's cookie session, which SECRET_KEY would switch
    on, is never used, so no request pays for opening and signing one (measured under the bench)."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None  # Flask then uses its null session, and saves nothing

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def schema_state_line(app: Flask) -> str | None:
    """One log line naming the schema state and the command to run, or None when it is at head."""
    state = app.extensions["rai_health"].database.get()
    if state["database_status"] == "ok" and state["schema"] == "ok":
        return None
    schema = state["schema"] if state["database_status"] == "ok" else "unknown"
    return (f"database schema is {schema!r}, not at head: {HEALTH_HINT[schema]}; "
            "serving anyway, /api/health reports the state")
