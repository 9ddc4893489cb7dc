"""The LLM API as a Flask app: `GET /api/health` and `POST /api/generate` (contracts in DESIGN.md).

Every error is JSON `{"error": code, "message": str}`: 400 bad body, 404/405 unknown route or method,
413 body over MAX_BODY_BYTES, 415 a body not sent as application/json, 502 Gemini failed (the reason,
never the key), 503 engine unavailable.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from raictl.settings import Settings, load_settings
from services.http_json import JsonError, request_object
from services.llm_api.engines import DEFAULT_TIMEOUT_S, choose_engine
from services.llm_api.state import EngineState
from services.llm_api.validation import parse_generate

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def create_app(settings: Settings | None = None, *, gemini_timeout: float = DEFAULT_TIMEOUT_S) -> Flask:
    """The app for `settings` (default: loaded from the cwd and environment); the engine is chosen once."""
    settings = settings or load_settings()
    engine, fallback_reason = choose_engine(settings, gemini_timeout)
    state = EngineState(engine, fallback_reason)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["llm_api"] = state
    _add_routes(app, state)
    _add_error_handlers(app)
    return app


def _add_routes(app: Flask, state: EngineState) -> None:
    @app.get("/api/health")
    def health():
        if request.args.get("deep") in ("1", "true"):
            state.probe()
        return jsonify(state.health())

    @app.post("/api/generate")
    def generate():
        prompt = parse_generate(request_object(syntax_code="invalid_json", kind_code="invalid_request"))
        reply = state.generate(prompt)
        return jsonify(text=reply.text, engine=state.engine.name, model=state.engine.model,
                       usage=reply.usage)


def _error(status: int, code: str, message: str):
    return jsonify(error=code, message=message), status


def _add_error_handlers(app: Flask) -> None:
    @app.errorhandler(JsonError)  # EngineError and the shared body checks'
    def engine_error(exc: JsonError):
        return _error(exc.status, exc.code, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge):
        return _error(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES // 1024 // 1024} MiB")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = HTTP_CODES.get(exc.code, exc.name.lower().replace(" ", "_"))
        message = f"{request.method} {request.path}: {exc.description}"
        if exc.code == 404:
            message = f"no endpoint {request.path} (endpoints: GET /api/health, POST /api/generate)"
        if exc.code == 405:
            allowed = ", ".join(m for m in exc.valid_methods if m not in ("HEAD", "OPTIONS"))
            message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        return _error(exc.code, code, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # a bug, not an input: keep the traceback in the log, not the response
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal_error", f"unexpected {type(exc).__name__}; see the llm-api log")
