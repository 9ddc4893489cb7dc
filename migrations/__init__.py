"""The RAI API's Alembic environment, shipped inside the package so it works from a non-editable install.

`alembic_config(url)` is the one way our code builds an Alembic Config; `alembic upgrade head`
from the repository root uses `alembic.ini` there, which points at this same folder.
"""

from __future__ import annotations

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str | None = None, script_location: Path | str | None = None):
    """An Alembic Config for `url` (default: the resolved Settings' database)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location or SCRIPT_LOCATION))
    if url:
        # ConfigParser interpolates '%': escape it so passwords with '%' survive.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
