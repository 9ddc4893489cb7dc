"""Where a live database stands against the Alembic history and the models.

Read without resolving revisions (an unknown revision must be reported, not crash the reader as
`alembic upgrade` did in the troubleshooting log). Used by the RAI API's health, `raictl up`'s
pre-flight, `raictl migrate` and `raictl doctor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from services.rai_api.models import Base

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

VERSION_TABLE = "alembic_version"

State = Literal["ok", "behind", "empty", "unknown_revision", "multiple_rows", "multiple_heads", "unstamped", "drift"]
HealthWord = Literal["ok", "behind", "unknown_revision", "drift"]
# The finer states, and the four words the RAI API's health reports for them (DESIGN.md).
HEALTH_WORD: dict[State, HealthWord] = {
    "ok": "ok",
    "behind": "behind",
    "empty": "behind",
    "unknown_revision": "unknown_revision",
    "multiple_rows": "unknown_revision",
    "multiple_heads": "unknown_revision",
    "unstamped": "drift",
    "drift": "drift",
}

# What to run for each health word: the RAI API's start-up log line and its 503 for a schema error.
HEALTH_HINT = {
    "behind": "run `raictl migrate` (or `alembic upgrade head` from the repository root)",
    "drift": "run `raictl migrate --repair` to add what is missing",
    "unknown_revision": "run `raictl migrate --repair`",
    "unknown": "check RAI_DATABASE_URL and that the database server runs (`raictl doctor`)",
}


@dataclass(frozen=True)
class SchemaState:
    """The database's revision rows, the scripts' heads, and the tables/columns missing or extra."""

    state: State
    revisions: tuple[str, ...]
    heads: tuple[str, ...]
    missing: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    # `index I on T` of the models the database lacks: filled by doctor only (queries work without
    # them, so they do not make `drift`, and health and `up` skip reading them).
    missing_indexes: tuple[str, ...] = ()

    @property
    def health(self) -> HealthWord:
        return HEALTH_WORD[self.state]

    @property
    def revision(self) -> str | None:
        return self.revisions[0] if len(self.revisions) == 1 else None


@lru_cache(maxsize=4)
def script_directory(script_location: str | None = None) -> ScriptDirectory:
    """The Alembic ScriptDirectory of our migrations (or of another location, for tests)."""
    from alembic.script import ScriptDirectory

    from migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config(script_location=script_location))


def compare_with_models(inspector: sa.Inspector, tables: set[str], metadata: sa.MetaData = Base.metadata
                        ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(missing, extras) as `table T` / `column T.C` strings, the live schema against the models."""
    missing: list[str] = []
    extras = [f"table {t}" for t in sorted(tables - set(metadata.tables) - {VERSION_TABLE})]
    for name, table in metadata.tables.items():
        if name not in tables:
            missing.append(f"table {name}")
            continue
        live = {c["name"] for c in inspector.get_columns(name)}
        missing += [f"column {name}.{c.name}" for c in table.columns if c.name not in live]
        extras += [f"column {name}.{c}" for c in sorted(live - set(table.columns.keys()))]
    return tuple(missing), tuple(extras)


def read_revisions(connection: sa.Connection, tables: set[str]) -> tuple[str, ...]:
    """The rows of alembic_version, as they are, without asking Alembic to resolve them."""
    if VERSION_TABLE not in tables:
        return ()
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return tuple(row[0] for row in rows)


def read_state(connection: sa.Connection, script: ScriptDirectory | None = None) -> SchemaState:
    """Classify the database on `connection`: ok, behind, empty, unstamped, unknown_revision, ..."""
    script = script or script_directory()
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    revisions = read_revisions(connection, tables)
    heads = tuple(script.get_heads())
    missing, extras = compare_with_models(inspector, tables)
    known = {rev.revision for rev in script.walk_revisions()}
    return SchemaState(_classify(revisions, heads, known, tables, missing), revisions, heads, missing, extras)


def _classify(revisions: tuple[str, ...], heads: tuple[str, ...], known: set[str], tables: set[str],
              missing: tuple[str, ...]) -> State:
    if len(heads) > 1:
        return "multiple_heads"
    if not revisions:
        return "empty" if not (tables - {VERSION_TABLE}) else "unstamped"
    if len(revisions) > 1:
        return "multiple_rows"
    if revisions[0] not in known:
        return "unknown_revision"
    if revisions[0] not in heads:
        return "behind"
    return "drift" if missing else "ok"
