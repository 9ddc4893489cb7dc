"""The LLM API as a Flask app: `GET /api/health` and `POST /api/generate` (contracts in DESIGN.md).

Every error is JSON `{"error": code, "message": str}`: 400 bad body, 404/405 unknown route or method,
413 body over MAX_BODY_BYTES, 415 a body not sent as application/json, 502 Gemini failed (the reason,
never the key), 503 engine unavailable.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from raictl.settings import Settings, load_settings
from services.http_json import register_json_errors, request_object
from services.llm_api.engines import DEFAULT_TIMEOUT_S, choose_engine
from services.llm_api.state import EngineState
from services.llm_api.validation import parse_generate

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, *, gemini_timeout: float = DEFAULT_TIMEOUT_S) -> Flask:
    """The app for `settings` (default: loaded from the cwd and environment); the engine is chosen once."""
    settings = settings or load_settings()
    engine, fallback_reason = choose_engine(settings, gemini_timeout)
    state = EngineState(engine, fallback_reason)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["llm_api"] = state
    _add_routes(app, state)
    # EngineError is a JsonError: the shared handlers answer it like every other failure.
    register_json_errors(app, "LLM API", endpoints="GET /api/health, POST /api/generate")
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

