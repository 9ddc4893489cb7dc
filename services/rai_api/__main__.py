"""`python -m services.rai_api`: serve the RAI API with waitress on RAI_API_HOSTS and RAI_API_PORT."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from services.serving import run_service

if TYPE_CHECKING:
    from flask import Flask

    from raishared.settings import Settings

log = logging.getLogger("services.rai_api")


def build_app(settings: Settings) -> Flask:
    """The app, with the schema state (when not at head), the database and the LLM API in the log."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # reading the schema state is not news
    from services.rai_api.app import create_app, schema_state_line

    app = create_app(settings)
    warning = schema_state_line(app)
    if warning:
        log.warning("%s", warning)
    log.info("database %s; LLM API %s", settings.display("database_url"), settings.llm_api_url)
    return app


def main() -> int:
    return run_service(build_app, "rai-api", "rai_api")


if __name__ == "__main__":
    sys.exit(main())
