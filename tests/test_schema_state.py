"""services.rai_api.schema: the database's standing, read without resolving revisions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from migrations import alembic_config
from services.rai_api.schema import read_state


def _state(url):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return read_state(conn)
    finally:
        engine.dispose()


def _sql(url, *statements):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_empty_then_behind_then_ok(db_url):
    assert _state(db_url).state == "empty"
    command.upgrade(alembic_config(db_url), "0001_initial")
    behind = _state(db_url)
    assert (behind.state, behind.health, behind.revision) == ("behind", "behind", "0001_initial")
    assert behind.missing == ("column users.remembered_facts",)
    command.upgrade(alembic_config(db_url), "head")
    ok = _state(db_url)
    assert (ok.state, ok.revisions, ok.missing, ok.extras) == ("ok", ("0002_remembered_facts",), (), ())


def test_the_incident_unknown_revision_and_missing_column(db_url):
    """Troubleshooting log step 29: alembic_version names a revision that no longer exists."""
    command.upgrade(alembic_config(db_url), "0001_initial")
    _sql(db_url, "UPDATE alembic_version SET version_num = '3f2724846ff9'")
    state = _state(db_url)
    assert (state.state, state.health, state.revision) == ("unknown_revision", "unknown_revision", "3f2724846ff9")
    assert "column users.remembered_facts" in state.missing


def test_unstamped_drift_and_extras(db_url):
    command.upgrade(alembic_config(db_url), "head")
    _sql(db_url, "DELETE FROM alembic_version")
    assert _state(db_url).state == "unstamped"
    command.stamp(alembic_config(db_url), "head")
    _sql(db_url, "ALTER TABLE users ADD COLUMN nickname VARCHAR(20)", "DROP TABLE messages")
    state = _state(db_url)
    assert (state.state, state.health) == ("drift", "drift")
    assert state.missing == ("table messages",) and state.extras == ("column users.nickname",)
