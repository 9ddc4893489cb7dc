"""`python -m services.llm_api`: serve the LLM API with waitress on every configured address."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from services.serving import run_service

if TYPE_CHECKING:
    from flask import Flask

    from raishared.settings import Settings

log = logging.getLogger("services.llm_api")


def build_app(settings: Settings) -> Flask:
    """The app, its engine named in the log (and why it is degraded, if it is)."""
    from services.llm_api.app import create_app

    app = create_app(settings)
    state = app.extensions["llm_api"]
    log.info("llm-api engine %s, model %s%s", state.engine.name, state.engine.model,
             f" ({state.fallback_reason})" if state.fallback_reason else "")
    if state.last_error:
        log.warning("llm-api is degraded: %s", state.last_error)
    return app


def main() -> int:
    return run_service(build_app, "llm-api", "llm_api")


if __name__ == "__main__":
    sys.exit(main())
