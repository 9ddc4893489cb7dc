"""The RAI API's Alembic environment, shipped inside the package so it works from a non-editable install.

`alembic_config(url)` is the one way our code builds an Alembic Config; `alembic upgrade head`
from the repository root uses `alembic.ini` there, which points at this same folder.
`script_heads()` reads the head revisions from the scripts' text, without importing Alembic: `up`
asks it on every start (~1 ms; importing Alembic's ScriptDirectory measured 0.7-0.9 s: docs/decisions.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str | None = None, script_location: Path | str | None = None) -> Config:
    """An Alembic Config for `url` (default: the resolved Settings' database)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location or SCRIPT_LOCATION))
    if url:
        # ConfigParser interpolates '%': escape it so passwords with '%' survive.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


_REVISION = re.compile(r"""^revision\s*=\s*["']([^"']+)["']""", re.M)
_DOWN = re.compile(r"""^down_revision\s*=\s*(?:None|["']([^"']+)["'])\s*$""", re.M)


def script_heads(script_location: Path | str | None = None) -> list[str] | None:
    """Head revisions from the migration scripts' text; None when a script is not a plain one
    (a merge, a computed revision): then only Alembic can say."""
    versions = Path(script_location or SCRIPT_LOCATION, "versions")
    if not versions.is_dir():
        return None
    revisions, parents = set(), set()
    for script in versions.glob("*.py"):
        text = script.read_text()
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            if script.name != "__init__.py":
                return None
            continue
        revisions.add(revision.group(1))
        parents.add(down.group(1))
    return sorted(revisions - parents)
