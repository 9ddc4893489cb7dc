"""services.rai_api.schema: the database's standing, read without resolving revisions."""

from __future__ import annotations

from alembic import command

from migrations import alembic_config
from services.rai_api.schema import read_state
from tests.migrate_support import HEAD
from tests.support import run_sql, with_connection


def test_empty_then_behind_then_ok(db_url):
    assert with_connection(db_url, read_state).state == "empty"
    command.upgrade(alembic_config(db_url), "0001_initial")
    behind = with_connection(db_url, read_state)
    assert (behind.state, behind.health, behind.revision) == ("behind", "behind", "0001_initial")
    assert behind.missing == ("column users.remembered_facts", "column chat_sessions.system_prompt",
                              "column messages.input_tokens", "column messages.output_tokens",
                              "table login_failures")
    command.upgrade(alembic_config(db_url), "head")
    ok = with_connection(db_url, read_state)
    assert (ok.state, ok.revisions, ok.missing, ok.extras) == ("ok", (HEAD,), (), ())


def test_the_incident_unknown_revision_and_missing_column(db_url):
    """Troubleshooting log step 29: alembic_version names a revision that no longer exists."""
    command.upgrade(alembic_config(db_url), "0001_initial")
    run_sql(db_url, "UPDATE alembic_version SET version_num = '3f2724846ff9'")
    state = with_connection(db_url, read_state)
    assert (state.state, state.health, state.revision) == ("unknown_revision", "unknown_revision", "3f2724846ff9")
    assert "column users.remembered_facts" in state.missing


def test_unstamped_drift_and_extras(db_url):
    command.upgrade(alembic_config(db_url), "head")
    run_sql(db_url, "DELETE FROM alembic_version")
    assert with_connection(db_url, read_state).state == "unstamped"
    command.stamp(alembic_config(db_url), "head")
    run_sql(db_url, "ALTER TABLE users ADD COLUMN nickname VARCHAR(20)", "DROP TABLE messages")
    state = with_connection(db_url, read_state)
    assert (state.state, state.health) == ("drift", "drift")
    assert state.missing == ("table messages",) and state.extras == ("column users.nickname",)
