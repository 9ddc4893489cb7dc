"""`python -m services.llm_api`: serve the LLM API with waitress on every configured address."""

from __future__ import annotations

import logging
import sys

from raictl.errors import RaictlError
from raictl.settings import load_settings
from services.serving import configure_logging, serve

log = logging.getLogger("services.llm_api")


def main() -> None:
    configure_logging()
    try:
        settings = load_settings()
    except RaictlError as exc:  # a bad setting: one clear line in the log, not a traceback
        log.error("llm-api cannot start: %s", exc)
        sys.exit(1)
    from services.llm_api.app import create_app

    app = create_app(settings)
    state = app.extensions["llm_api"]
    log.info("llm-api engine %s, model %s%s", state.engine.name, state.engine.model,
             f" ({state.fallback_reason})" if state.fallback_reason else "")
    if state.last_error:
        log.warning("llm-api is degraded: %s", state.last_error)
    serve(app, settings.llm_api_hosts, settings.llm_api_port, "llm-api")


if __name__ == "__main__":
    main()
