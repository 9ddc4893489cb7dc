"""raictl.migrate.upgrade_to_head: upgrades what it can, refuses the rest with one line and the repair hint."""

from __future__ import annotations

import pytest
from alembic import command

from migrations import alembic_config
from raictl.errors import RaictlError
from raictl.migrate import upgrade_to_head
from raishared.settings import load_settings
from tests.migrate_support import HEAD
from tests.support import run_sql
from tests.migrate_support import HEAD


@pytest.fixture
def settings(db_url, monkeypatch):
    monkeypatch.setenv("RAI_DATABASE_URL", db_url)
    return load_settings()


def test_empty_database_upgrades_to_head_and_again_is_a_no_op(settings):
    first = upgrade_to_head(settings)
    assert (first.before, first.after) == (None, HEAD)
    result = upgrade_to_head(settings)
    assert (result.before, result.after) == (HEAD, HEAD)


def test_behind_upgrades(settings):
    command.upgrade(alembic_config(settings.database_url), "0001_initial")
    result = upgrade_to_head(settings)
    assert (result.before, result.after) == ("0001_initial", HEAD)


@pytest.mark.parametrize("setup, words", [
    ("UPDATE alembic_version SET version_num = '3f2724846ff9'", "'3f2724846ff9'"),
    ("INSERT INTO alembic_version VALUES ('0002_remembered_facts')", "several rows"),
    ("DELETE FROM alembic_version", "no alembic_version row"),
])
def test_refuses_with_the_repair_hint(settings, setup, words):
    command.upgrade(alembic_config(settings.database_url), "0001_initial")
    run_sql(settings.database_url, setup)
    with pytest.raises(RaictlError) as caught:
        upgrade_to_head(settings)
    assert words in caught.value.message and caught.value.hint == "raictl migrate --repair"
    assert "\n" not in caught.value.message


def test_unreachable_database_is_one_line(monkeypatch):
    monkeypatch.setenv("RAI_DATABASE_URL", "mysql+pymysql://root:s3cret@127.0.0.1:1/none")
    with pytest.raises(RaictlError) as caught:
        upgrade_to_head(load_settings())
    assert "s3cret" not in str(caught.value) and "127.0.0.1" in caught.value.message


def test_a_revision_set_back_under_a_head_schema_is_refused_not_applied_twice(settings):
    """The tester's case: the column of 0002 is there, alembic_version says 0001. Upgrading would add
    the column again ("Duplicate column name"), taking a backup on every try: refuse, name the repair."""
    from tests.doctor_support import doctor
    from tests.migrate_support import dump

    upgrade_to_head(settings)
    run_sql(settings.database_url, "UPDATE alembic_version SET version_num = '0001_initial'")
    before = dump(settings.database_url)
    with pytest.raises(RaictlError) as caught:
        upgrade_to_head(settings)
    assert caught.value.message == ("alembic_version says 0001_initial, but the database already holds what "
                                    f"{HEAD} adds: an upgrade would add it again")
    assert caught.value.hint == "raictl migrate --repair"
    assert dump(settings.database_url) == before
    assert not (settings.home / "backups").exists()
    found = doctor(None, "db.revision", database_url=settings.database_url)["db.revision"]
    assert (found.status, found.hint) == ("fail", "raictl migrate --repair"), found  # not "raictl migrate"
