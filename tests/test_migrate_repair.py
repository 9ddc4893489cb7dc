"""raictl.migrate's repair on SQLite and MariaDB: every broken state of the troubleshooting log, additively.

Each scenario checks the plan, applies it, and checks the schema is then exactly the models' (Alembic's
own comparison), the rows are untouched, and a second plan has nothing left to do.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from migrations import alembic_config
from raictl.errors import RaictlError
from raictl.migrate import apply_plan, plan_repair, read_database_state, upgrade_to_head
from raishared.settings import load_settings
from services.rai_api.models import Base
from tests.migrate_support import (HEAD, UNKNOWN, copy_scripts, differences_from_models, dump, revision_file, rows,
                                   seed_rows, sql, the_incident)



def repair(url, home, **kwargs):
    """Plan, apply, and prove the result is final: the same plan again has nothing to do."""
    plan = plan_repair(url, **kwargs)
    result = apply_plan(plan, home)
    again = plan_repair(url, **kwargs)
    assert (again.actions, again.refused) == ((), plan.refused), again
    return plan, result


def kinds(plan):
    return [a.kind for a in plan.actions]


def test_the_incident_unknown_revision_and_revision_1_schema(db_url, tmp_path):
    the_incident(db_url)
    before = dump(db_url)
    plan, result = repair(db_url, tmp_path)
    assert plan.matched == "0001_initial" and kinds(plan) == ["stamp", "upgrade"]
    assert plan.scratch == sa.make_url(db_url).get_backend_name()  # same dialect: a scratch database there
    assert "DELETE FROM alembic_version" in plan.actions[0].sql and "remembered_facts" in plan.actions[1].sql
    assert (result.before, result.after, result.refused) == (UNKNOWN, HEAD, ())
    assert differences_from_models(db_url) == []
    after = dump(db_url)
    for table in ("chat_sessions", "messages"):  # every row kept (0003 widens messages.content, 0004 adds columns)
        kept = len(before[table]["columns"])
        assert [row[:kept] for row in after[table]["rows"]] == before[table]["rows"]
        assert all(value is None for row in after[table]["rows"] for value in row[kept:])
    kept = len(before["chat_sessions"]["columns"])
    assert after["chat_sessions"]["columns"][:kept] == before["chat_sessions"]["columns"]
    assert rows(db_url, "users", "id, username, password_hash, remembered_facts") == [
        (1, "old", "not-a-real-hash", None)]


def test_backup_is_taken_first_and_holds_the_state_before(db_url, tmp_path):
    the_incident(db_url)
    _, result = repair(db_url, tmp_path)
    backup = Path(result.backup)
    assert backup.parent == tmp_path / "backups"
    assert (backup.stat().st_mode & 0o777, backup.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    if db_url.startswith("sqlite"):
        copy = sqlite3.connect(backup)
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(UNKNOWN,)]
        assert copy.execute("SELECT username FROM users").fetchall() == [("old",)]
        assert "remembered_facts" not in {r[1] for r in copy.execute("PRAGMA table_info(users)")}
        copy.close()
    else:
        text = backup.read_text()  # mariadb-dump's or raictl's own SQL: both INSERT with the values quoted
        assert text.endswith("-- end of backup\n") and "'old'" in text
        assert re.search(rf"INSERT INTO `alembic_version`[^;]*'{UNKNOWN}'", text)
        assert "CREATE TABLE `users`" in text and "remembered_facts" not in text


def test_several_version_rows_are_purged(db_url, tmp_path):
    command.upgrade(alembic_config(db_url), "0001_initial")
    sql(db_url, f"INSERT INTO alembic_version VALUES ('{UNKNOWN}')")
    plan, result = repair(db_url, tmp_path)
    assert plan.state == "multiple_rows" and result.after == HEAD
    assert rows(db_url, "alembic_version", "version_num") == [(HEAD,)]


@pytest.mark.parametrize("revision", ["0001_initial", HEAD])
def test_unstamped_database_with_tables(db_url, tmp_path, revision):
    command.upgrade(alembic_config(db_url), revision)
    seed_rows(db_url)
    sql(db_url, "DROP TABLE alembic_version")
    plan, result = repair(db_url, tmp_path)
    assert plan.state == "unstamped" and plan.matched == revision
    assert kinds(plan) == (["stamp"] if revision == HEAD else ["stamp", "upgrade"])
    assert "CREATE TABLE alembic_version" in plan.actions[0].sql
    assert result.after == HEAD and differences_from_models(db_url) == []
    assert rows(db_url, "messages", "content") == [("hello",), ("hi there",)]


def test_a_missing_table_is_created_from_the_models(db_url, tmp_path):
    command.upgrade(alembic_config(db_url), "head")
    seed_rows(db_url)
    sql(db_url, "DROP TABLE messages")
    plan, result = repair(db_url, tmp_path)
    assert plan.state == "drift" and kinds(plan) == ["create_table"]
    assert "CREATE INDEX ix_messages_session_id" in plan.actions[0].sql
    assert differences_from_models(db_url) == [] and result.after == HEAD
    assert rows(db_url, "chat_sessions", "id, title") == [("s-1", "before the incident")]


def test_stamped_at_head_without_the_column_gets_it_added_in_place(db_url, tmp_path):
    """The other road to the log's error: someone stamped head on revision 1's schema."""
    command.upgrade(alembic_config(db_url), "0001_initial")
    seed_rows(db_url)
    command.stamp(alembic_config(db_url), "head")
    plan, result = repair(db_url, tmp_path)
    # 0002's column, 0003's table, 0004's three columns
    assert plan.state == "drift" and kinds(plan) == ["add_column", "create_table"] + ["add_column"] * 3
    assert plan.actions[0].sql.startswith("ALTER TABLE users ADD COLUMN remembered_facts JSON")
    assert plan.actions[0].sql.endswith(", ALGORITHM=INSTANT;") == db_url.startswith("mysql")
    assert "CREATE TABLE login_failures" in plan.actions[1].sql
    # The repair adds, never alters: revision 0003's MEDIUMTEXT (MariaDB) is not made by a false stamp.
    left = [d[0][2:4] if isinstance(d[0], tuple) else d for d in differences_from_models(db_url)]
    assert left == ([("messages", "content")] if db_url.startswith("mysql") else [])
    assert rows(db_url, "users", "username") == [("old",)]


def test_half_applied_revision_is_stamped_not_re_run(db_url, tmp_path):
    """Version at 0001, but 0002's column already there (its DDL ran, the stamp did not): stamp 0002 only."""
    command.upgrade(alembic_config(db_url), "head")
    seed_rows(db_url)
    sql(db_url, "UPDATE alembic_version SET version_num = '0001_initial'",
        "UPDATE users SET remembered_facts = '[\"likes tea\"]'")
    plan, result = repair(db_url, tmp_path)
    assert plan.matched == HEAD and kinds(plan) == ["stamp"]
    assert result.after == HEAD and rows(db_url, "users", "remembered_facts") == [('["likes tea"]',)]


def test_half_applied_revision_gets_only_what_is_missing(db_url, tmp_path):
    """A revision adding a column and a table stopped after the column (MySQL commits each DDL)."""
    scripts = copy_scripts(tmp_path / "scripts", {"0003_tags.py": revision_file("0003_tags", HEAD, """
op.add_column("users", sa.Column("nickname", sa.String(40), nullable=True))
op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("label", sa.String(40)))
op.create_index("ix_tags_label", "tags", ["label"])
""")})
    command.upgrade(alembic_config(db_url), "head")
    seed_rows(db_url)
    sql(db_url, "ALTER TABLE users ADD COLUMN nickname VARCHAR(40)")
    plan, result = repair(db_url, tmp_path, script_location=scripts)
    assert plan.matched == HEAD
    assert [(a.kind, a.detail.split(" (")[0]) for a in plan.actions] == [
        ("create_table", "table tags"), ("stamp", f"stamp 0003_tags, replacing {HEAD}")]
    assert "ix_tags_label" in plan.actions[0].sql and "nickname" not in plan.actions[0].sql
    assert result.after == "0003_tags" and "table tags" in result.extras
    assert rows(db_url, "users", "username") == [("old",)]


def test_an_extra_column_and_table_are_reported_and_left_alone(db_url, tmp_path):
    command.upgrade(alembic_config(db_url), "head")
    seed_rows(db_url)
    sql(db_url, "ALTER TABLE users ADD COLUMN nickname VARCHAR(20)", "UPDATE users SET nickname = 'oldie'",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    before = dump(db_url)
    plan, result = repair(db_url, tmp_path)
    assert (plan.actions, plan.refused, result.backup) == ((), (), None)
    assert set(result.extras) == {"column users.nickname", "table notes"}
    assert dump(db_url) == before


def test_not_null_without_default_is_refused_the_rest_applied(db_url, tmp_path):
    metadata = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    users = metadata.tables["users"]
    users.append_column(sa.Column("plan", sa.String(20), nullable=False))
    users.append_column(sa.Column("tier", sa.String(20), nullable=False, server_default="free"))
    command.upgrade(alembic_config(db_url), "head")
    seed_rows(db_url)
    plan, result = repair(db_url, tmp_path, metadata=metadata)
    assert [a.detail.split(" (")[0] for a in plan.actions] == ["column users.tier"]
    assert len(plan.refused) == 1 and "users.plan is NOT NULL without a server default" in plan.refused[0]
    assert not result.ok and rows(db_url, "users", "username, tier") == [("old", "free")]
    assert "plan" not in dump(db_url)["users"]["columns"]


def test_dry_run_plans_everything_and_changes_nothing(db_url, tmp_path):
    the_incident(db_url)
    sql(db_url, "DROP TABLE messages")
    before = dump(db_url)
    plan = plan_repair(db_url)
    assert kinds(plan) == ["create_table", "stamp", "upgrade"]
    assert all(action.sql for action in plan.actions)
    assert dump(db_url) == before and not (tmp_path / "backups").exists()


def test_several_heads_are_refused_and_explained(db_url, tmp_path):
    branch = "op.add_column('users', sa.Column('{0}', sa.String(10), nullable=True))"
    scripts = copy_scripts(tmp_path / "scripts", {
        "0003_a.py": revision_file("0003_a", HEAD, branch.format("a")),
        "0003_b.py": revision_file("0003_b", HEAD, branch.format("b"))})
    the_incident(db_url)
    before = dump(db_url)
    plan = plan_repair(db_url, script_location=scripts)
    assert plan.actions == () and len(plan.refused) == 1
    assert "several heads (0003_a, 0003_b)" in plan.refused[0] or "several heads (0003_b, 0003_a)" in plan.refused[0]
    assert "alembic merge heads" in plan.refused[0]
    assert not apply_plan(plan, tmp_path).ok and dump(db_url) == before
    settings = load_settings(database_url=db_url)
    with pytest.raises(RaictlError) as caught:
        upgrade_to_head(settings, script_location=scripts)
    assert "several heads" in caught.value.message


def test_upgrade_after_repair_is_at_head(db_url, tmp_path):
    the_incident(db_url)
    repair(db_url, tmp_path)
    result = upgrade_to_head(load_settings(database_url=db_url))
    assert (result.before, result.after) == (HEAD, HEAD)
    assert read_database_state(db_url).state == "ok"


@pytest.mark.mysql
def test_without_create_database_rights_the_fingerprint_uses_sqlite(mysql_url, tmp_path):
    """A MariaDB account limited to its own database cannot make a scratch database: SQLite stands in."""
    user = f"raictl_t_{uuid.uuid4().hex[:8]}"
    live = sa.make_url(mysql_url)
    sql(mysql_url, f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw-{user}'",  # %% : pymysql's paramstyle
        f"GRANT ALL PRIVILEGES ON `{live.database}`.* TO '{user}'@'%%'")
    try:
        limited = live.set(username=user, password=f"pw-{user}").render_as_string(hide_password=False)
        the_incident(limited)
        plan, result = repair(limited, tmp_path)
        assert (plan.scratch, plan.matched, kinds(plan)) == ("sqlite", "0001_initial", ["stamp", "upgrade"])
        assert result.after == HEAD and differences_from_models(limited) == []
    finally:
        sql(mysql_url, f"DROP USER '{user}'@'%%'")


def _scratch_databases(url):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT schema_name FROM information_schema.schemata "
                                            "WHERE schema_name LIKE 'raictl%%scratch%%'")).scalars())
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_a_scratch_database_left_by_a_killed_plan_is_dropped_by_the_next(mysql_url, tmp_path):
    """A real planning process is SIGKILLed while it builds a revision on its scratch database; the next
    plan drops that database (its process is gone) and leaves a live process's one alone."""
    import os
    import subprocess
    import sys

    import psutil

    from raictl.fingerprint import SCRATCH_PREFIX, scratch_name
    from tests.support import wait_until

    building = tmp_path / "building"
    scripts = copy_scripts(tmp_path / "scripts", {"0003_slow.py": revision_file("0003_slow", HEAD, f"""
import pathlib, time
pathlib.Path({str(building)!r}).write_text("building")
time.sleep(600)
""")})
    the_incident(mysql_url)
    ours = scratch_name()  # this test process is alive: its scratch database is not stale
    sql(mysql_url, f"CREATE DATABASE `{ours}`")
    child = subprocess.Popen([sys.executable, "-c", "import sys; from raictl.migrate import plan_repair; "
                              "plan_repair(sys.argv[1], script_location=sys.argv[2])", mysql_url, scripts])
    try:
        wait_until(building.exists, timeout=60, what="the child building revision 0003 on its scratch database")
        left = {n for n in _scratch_databases(mysql_url) if f"_{child.pid}_" in n}  # named after its process
        assert len(left) == 1
        os.kill(child.pid, 9)
        child.wait(timeout=30)
        assert not psutil.pid_exists(child.pid) and left <= _scratch_databases(mysql_url)
        plan_repair(mysql_url)
        remaining = _scratch_databases(mysql_url)
        assert not left & remaining and ours in remaining
        assert all(n.startswith(SCRATCH_PREFIX) for n in left)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        sql(mysql_url, *(f"DROP DATABASE IF EXISTS `{n}`" for n in _scratch_databases(mysql_url)
                         if n == ours or f"_{child.pid}_" in n))


def test_a_dropped_index_is_a_doctor_warning_and_the_repair_adds_it(sqlite_url, tmp_path):
    """Queries still work without ix_messages_session_id (so health says ok), but doctor names it and the
    repair adds it. SQLite only: MariaDB keeps an index its foreign key needs (DROP INDEX is refused)."""
    from tests.doctor_support import doctor

    command.upgrade(alembic_config(sqlite_url), "head")
    sql(sqlite_url, "DROP INDEX ix_messages_session_id")
    found = doctor(None, "db.schema", database_url=sqlite_url)["db.schema"]
    assert (found.status, found.hint) == ("warn", "raictl migrate --repair"), found
    assert "index ix_messages_session_id on messages" in found.summary
    plan, _ = repair(sqlite_url, tmp_path)
    assert kinds(plan) == ["create_index"]
    assert doctor(None, "db.schema", database_url=sqlite_url)["db.schema"].status == "ok"
