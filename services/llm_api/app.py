"""The LLM API as a Flask app: `GET /api/health` and `POST /api/generate` (contracts in DESIGN.md).

With `"stream": true` (or `Accept: text/event-stream`) /api/generate answers server-sent events:
`delta {"text"}` per piece, then `done {"engine", "model", "usage"}`; a failure after the first piece
is an `error {"error", "message"}` event that ends the stream.

Every error is JSON `{"error": code, "message": str}`: 400 bad body, 404/405 unknown route or method,
413 body over MAX_BODY_BYTES, 415 a body not sent as application/json, 502 Gemini failed (the reason,
never the key), 503 engine unavailable, 503 busy (with Retry-After) when LLM_API_MAX_WAITING calls
already wait on the engine.
"""

from __future__ import annotations

import time
from typing import Callable, Generator, Iterator

from flask import Flask, Response, jsonify, request

from raishared.settings import Settings, load_settings
from services import request_guard, sse
from services.http_json import register_json_errors, request_object
from services.llm_api.engines import Delta, EngineError, Reply, choose_engine
from services.llm_api.state import EngineState
from services.waiting import WaitingLimit
from services.llm_api.validation import parse_generate

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, *, gemini_timeout: float | None = None,
               clock: Callable[[], float] = time.monotonic) -> Flask:
    """The app for `settings` (default: loaded from the cwd and environment); the engine is chosen once.
    Gemini's timeout is LLM_TIMEOUT_S unless `gemini_timeout` says otherwise."""
    settings = settings or load_settings()
    engine, fallback_reason = choose_engine(settings, gemini_timeout or settings.llm_timeout_s)
    limit = WaitingLimit(settings.llm_api_max_waiting, "LLM_API_MAX_WAITING")
    state = EngineState(engine, fallback_reason, limit, clock)  # `clock` times deep health's probes
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["llm_api"] = state
    _add_routes(app, state)
    # EngineError is a JsonError: the shared handlers answer it like every other failure.
    register_json_errors(app, "LLM API", endpoints="GET /api/health, POST /api/generate")
    # The RAI API calls it by LLM_API_URL, whose host (a remote LLM API's name) is served too.
    request_guard.install(app, request_guard.guard_for(settings, settings.llm_api_hosts, settings.llm_api_url))
    return app


def _add_routes(app: Flask, state: EngineState) -> None:
    @app.get("/api/health")
    def health() -> Response:
        if request.args.get("deep") in ("1", "true"):
            state.probe()
        return jsonify(state.health())

    @app.post("/api/generate")
    def generate() -> Response:
        body = request_object(syntax_code="invalid_json", kind_code="invalid_request")
        prompt = parse_generate(body)
        if sse.wants_stream(body, request.headers.get("Accept")):
            return _streamed(state, state.stream(prompt))
        reply = state.generate(prompt)
        return jsonify(text=reply.text, engine=state.engine.name, model=state.engine.model,
                       usage=reply.usage)



Items = Generator["Delta | Reply", None, None]


def _streamed(state: EngineState, items: Items) -> Response:
    """The SSE response for an engine stream. Its first piece is awaited here, so a failure before
    it is still answered as JSON with its status (the error handlers); later ones become an event."""
    first = next(items)
    return Response(_events(state, first, items), mimetype=sse.MIMETYPE, headers=sse.HEADERS)


def _events(state: EngineState, first: Delta | Reply, items: Items) -> Iterator[bytes]:
    item: Delta | Reply | None = first
    try:
        while item is not None:
            if isinstance(item, Reply):
                yield sse.encode("done", {"engine": state.engine.name, "model": state.engine.model,
                                          "usage": item.usage})
                return
            yield sse.encode("delta", {"text": item.text})
            item = next(items, None)
    except EngineError as exc:
        yield sse.encode("error", {"error": exc.code, "message": exc.message})
    finally:
        items.close()  # the client went away, or the stream ended: let the engine close upstream
