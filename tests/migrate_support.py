"""Helpers for the migrate tests: build the broken databases of the troubleshooting log, dump them, copy scripts."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from migrations import SCRIPT_LOCATION, alembic_config
from services.rai_api.models import Base
from tests.support import run_sql as sql

UNKNOWN = "3f2724846ff9"  # the revision alembic_version held in the troubleshooting log


def head_revision() -> str:
    """The head of the shipped migration scripts (tests about "at head" follow it as revisions are added)."""
    from services.rai_api.schema import script_directory

    return script_directory().get_current_head()


HEAD = head_revision()


def seed_rows(url: str) -> None:
    """A user with a session and two messages, in the columns every revision has."""
    sql(url, "INSERT INTO users (id, username, password_hash) VALUES (1, 'old', 'not-a-real-hash')",
        "INSERT INTO chat_sessions (id, user_id, title) VALUES ('s-1', 1, 'before the incident')",
        "INSERT INTO messages (session_id, role, content) VALUES ('s-1', 'user', 'hello'), "
        "('s-1', 'assistant', 'hi there')")


def the_incident(url: str) -> None:
    """Revision 1's schema with rows, and alembic_version naming a revision no script knows."""
    command.upgrade(alembic_config(url), "0001_initial")
    seed_rows(url)
    sql(url, f"UPDATE alembic_version SET version_num = '{UNKNOWN}'")


def dump(url: str) -> dict:
    """The whole database as data: per table, its columns (name, type, nullable) and all its rows, sorted."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {table: {"columns": [(c["name"], str(c["type"]), c["nullable"])
                                        for c in inspector.get_columns(table)],
                            "indexes": sorted(i["name"] for i in inspector.get_indexes(table)),
                            "rows": sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {table}"))), key=repr)}
                    for table in sorted(inspector.get_table_names())}
    finally:
        engine.dispose()


def rows(url: str, table: str, columns: str) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return sorted(map(tuple, conn.execute(sa.text(f"SELECT {columns} FROM {table}"))), key=repr)
    finally:
        engine.dispose()


def differences_from_models(url: str, metadata=Base.metadata) -> list:
    """Alembic's own comparison of the live schema with the models (types included): [] when identical."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def copy_scripts(target: Path, extra: dict[str, str]) -> str:
    """A test-only script directory: the real environment and revisions, plus `extra` revision files."""
    shutil.copytree(SCRIPT_LOCATION, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in extra.items():
        (target / "versions" / name).write_text(text)
    return str(target)


def revision_file(revision: str, down: str, body: str) -> str:
    """The text of a revision script adding `body` (lines of `op.` calls) on top of `down`."""
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return (f'"""Test-only revision {revision}."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f"revision = {revision!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{lines}\n\n\ndef downgrade():\n    pass\n")
