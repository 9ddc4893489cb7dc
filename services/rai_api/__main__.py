"""`python -m services.rai_api`: serve the RAI API with waitress on RAI_API_HOSTS and RAI_API_PORT."""

from __future__ import annotations

import logging
import sys

from raictl.errors import RaictlError
from raictl.settings import load_settings
from services.serving import configure_logging, serve

log = logging.getLogger("services.rai_api")

# Measured with bench/bench_api.py at 16 connections: 8 threads beat 4 and 16 (less GIL contention).
THREADS = 8


def main() -> int:
    configure_logging()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # reading the schema state is not news
    from services.rai_api.app import create_app, schema_state_line

    try:
        settings = load_settings()
        app = create_app(settings)
    except RaictlError as exc:  # a bad setting or database URL: one clear line, no traceback
        log.error("rai-api cannot start: %s", exc)
        return 1
    warning = schema_state_line(app)
    if warning:
        log.warning("%s", warning)
    log.info("database %s; LLM API %s", settings.display("database_url"), settings.llm_api_url)
    serve(app, settings.rai_api_hosts, settings.rai_api_port, "rai-api", threads=THREADS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
