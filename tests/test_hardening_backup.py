"""Issue 13, item 8: the backup `raictl migrate --repair` takes restores every row, and is never left
half-written. Replayed with the real `raictl` on SQLite and MariaDB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.migrate_support import UNKNOWN, dump, the_incident
from tests.support import run_sql, wait_until, with_connection


def raictl(db_url: str, *args: str, path: str | None = None, **popen) -> subprocess.CompletedProcess:
    """`raictl ARGS` on `db_url`; `path` replaces PATH (to hide MariaDB's client programs)."""
    env = dict(os.environ, RAI_DATABASE_URL=db_url, **({"PATH": path} if path is not None else {}))
    return subprocess.run([sys.executable, "-m", "raictl", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, **popen)


@pytest.fixture
def empty_twin(db_url, tmp_path):
    """Another empty database of the same kind, to restore into."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    server = sa.make_url(db_url)
    name = f"rai_r_{uuid.uuid4().hex[:12]}"
    run_sql(db_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        run_sql(db_url, f"DROP DATABASE IF EXISTS `{name}`")


@contextmanager
def twin_database(mysql_url: str):
    """Another empty MariaDB database on the same server: (its name, its URL)."""
    name = f"rai_r_{uuid.uuid4().hex[:12]}"
    run_sql(mysql_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield name, sa.make_url(mysql_url).set(database=name).render_as_string(hide_password=False)
    finally:
        run_sql(mysql_url, f"DROP DATABASE IF EXISTS `{name}`")


def no_tools(tmp_path: Path) -> str:
    """A PATH without MariaDB's client programs (raictl runs as `python -m raictl`: it needs no PATH)."""
    folder = tmp_path / "no-mariadb-tools"
    folder.mkdir(exist_ok=True)
    return str(folder)


def add_awkward_message(db_url: str) -> str:
    """A message with line breaks of every kind: a restore that reads a statement a line must end one
    at "\n" only (str.splitlines also splits at U+2028, U+0085, ...)."""
    awkward = ("line one\nline two;\r\n-- not a comment\\ 'quoted' \"double\" 100% ünïcödé 🎉 "
               "next\u2028line\u2029para\x85nel\x0bvt\x0cff\x1cfs")
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO messages (session_id, role, content) VALUES ('s-1', 'user', :c)"),
                     {"c": awkward})
    engine.dispose()
    return awkward


def test_the_repairs_backup_restores_every_row_into_an_empty_database(db_url, empty_twin):
    the_incident(db_url)
    awkward = add_awkward_message(db_url)
    before = dump(db_url)
    repaired = raictl(db_url, "migrate", "--repair", "--yes", "--json")
    assert repaired.returncode == 0, repaired.stderr
    backup = json.loads(repaired.stdout)["backup"]
    restored = raictl(empty_twin, "migrate", "--restore", backup, "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["after"] == UNKNOWN
    assert dump(empty_twin) == before  # every table, column and row, as before the repair
    assert any(awkward in row for row in before["messages"]["rows"])


def test_a_restore_refuses_a_database_that_is_not_empty(db_url, tmp_path):
    the_incident(db_url)
    repaired = raictl(db_url, "migrate", "--repair", "--yes", "--json")
    backup = json.loads(repaired.stdout)["backup"]
    refused = raictl(db_url, "migrate", "--restore", backup)
    assert refused.returncode == 1 and "is not empty" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.mysql
def test_the_mariadb_backup_restores_with_the_mariadb_client(mysql_url, tmp_path):
    import shutil

    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        pytest.skip("no mariadb client on PATH")
    the_incident(mysql_url)
    before = dump(mysql_url)
    backup = json.loads(raictl(mysql_url, "migrate", "--repair", "--yes", "--json").stdout)["backup"]
    url = sa.make_url(mysql_url)
    target = f"rai_c_{uuid.uuid4().hex[:12]}"
    run_sql(mysql_url, f"CREATE DATABASE `{target}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        with open(backup, "rb") as handle:
            done = subprocess.run([client, "--protocol=tcp", f"-h{url.host}", f"-P{url.port or 3306}",
                                   f"-u{url.username}", target], stdin=handle, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert dump(url.set(database=target).render_as_string(hide_password=False)) == before
    finally:
        run_sql(mysql_url, f"DROP DATABASE IF EXISTS `{target}`")


@pytest.mark.mysql
def test_a_kill_while_the_backup_is_written_leaves_no_backup_file_that_is_not_whole(mysql_url, tmp_path):
    """SIGKILL the repair as soon as anything appears in <home>/backups: whatever has a backup's name
    there is complete (before: the final name was created first, 0 bytes, then filled)."""
    the_incident(mysql_url)
    run_sql(mysql_url, "INSERT INTO users (username, password_hash) SELECT CONCAT('u', seq), REPEAT('h', 200) "
                       "FROM seq_2_to_60000")
    home = Path(os.environ["RAICTL_HOME"])
    proc = subprocess.Popen([sys.executable, "-m", "raictl", "migrate", "--repair", "--yes"],
                            env=dict(os.environ, RAI_DATABASE_URL=mysql_url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: any((home / "backups").glob("*")) if (home / "backups").exists() else False,
                   timeout=60, interval=0.001, what="a file in the backups folder")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    finished = [p for p in (home / "backups").iterdir() if not p.name.endswith(".partial")]
    for path in finished:
        assert path.read_text().endswith("-- end of backup\n"), f"{path.name}: {path.stat().st_size} bytes"


@pytest.mark.mysql
def test_rows_longer_than_a_statement_allows_are_backed_up_in_smaller_statements(mysql_url, tmp_path):
    """Long replies (MEDIUMTEXT since revision 0003): a batch of rows would pass what one statement may
    hold (half of max_allowed_packet; 64 KiB here), so the backup takes fewer rows a statement."""
    from raictl.backup import dump_mysql, restore_mysql

    assert raictl(mysql_url, "migrate").returncode == 0
    run_sql(mysql_url, "INSERT INTO users (id, username, password_hash) VALUES (1, 'long', 'h')",
            "INSERT INTO chat_sessions (id, user_id) VALUES ('s-1', 1)",
            "INSERT INTO messages (session_id, role, content) SELECT 's-1', 'assistant', "
            "REPEAT(CONCAT('line ', seq, '\\n'), 2000) FROM seq_1_to_30")
    engine = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    try:
        backup = dump_mysql(engine, tmp_path / "long.sql", statement_bytes=64 * 1024)
    finally:
        engine.dispose()
    inserts = [line for line in backup.read_text().splitlines() if line.startswith("INSERT INTO `messages`")]
    assert len(inserts) > 1 and all(len(line.encode()) < 64 * 1024 for line in inserts)
    name = f"rai_r_{uuid.uuid4().hex[:12]}"
    run_sql(mysql_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    twin = sa.make_url(mysql_url).set(database=name).render_as_string(hide_password=False)
    target = sa.create_engine(twin, poolclass=sa.pool.NullPool)
    try:
        assert restore_mysql(target, backup)["messages"] == 30
        assert dump(twin) == dump(mysql_url)
    finally:
        target.dispose()
        run_sql(mysql_url, f"DROP DATABASE IF EXISTS `{name}`")


def _header(path: str) -> bytes:
    with open(path, "rb") as backup:
        return backup.read(16)


@pytest.mark.mysql
@pytest.mark.parametrize("tools", ["mariadb-dump", "raictl's own SQL"])
def test_a_user_with_a_password_and_no_lock_privilege_backs_up_and_restores(mysql_url, tmp_path, tools):
    """Both writers, with a password full of quoting characters (given to the MariaDB programs in their
    environment, never on a command line) and a user without LOCK TABLES (raictl's own writer then
    reads with one connection instead of two)."""
    import shutil

    if tools == "mariadb-dump" and not (shutil.which("mariadb-dump") or shutil.which("mysqldump")):
        if os.environ.get("CI") == "true":
            pytest.fail("mariadb-dump is not installed: CI must test the backup it writes")
        pytest.skip("mariadb-dump is not installed")
    path = no_tools(tmp_path) if tools != "mariadb-dump" else None
    the_incident(mysql_url)
    add_awkward_message(mysql_url)
    before = dump(mysql_url)
    user, password = f"rai_b_{uuid.uuid4().hex[:8]}", "p\"a's$w\\rd #1;--"
    server = sa.make_url(mysql_url)
    with twin_database(mysql_url) as (twin_name, _):
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        # '%%': pymysql formats a statement run through SQLAlchemy (with no parameters) with `%`.
        run_sql(mysql_url, f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{quoted}'",
                *(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES ON `{db}`.* "
                  f"TO '{user}'@'%%'" for db in (server.database, twin_name)))
        try:
            as_user = server.set(username=user, password=password)
            source = as_user.render_as_string(hide_password=False)
            target = as_user.set(database=twin_name).render_as_string(hide_password=False)
            repaired = raictl(source, "migrate", "--repair", "--yes", "--json", path=path)
            assert repaired.returncode == 0, repaired.stderr
            backup = json.loads(repaired.stdout)["backup"]
            assert (_header(backup) == b"-- raictl backup") == (tools != "mariadb-dump")
            restored = raictl(target, "migrate", "--restore", backup, "--json", path=path)
            assert restored.returncode == 0, restored.stderr
            assert password not in repaired.stdout + repaired.stderr + restored.stdout + restored.stderr
            assert dump(target) == before
        finally:
            run_sql(mysql_url, f"DROP USER IF EXISTS '{user}'@'%%'")


@pytest.mark.mysql
def test_a_mariadb_dump_backup_without_the_mariadb_client_is_refused_with_a_hint(mysql_url, tmp_path):
    import shutil

    if not (shutil.which("mariadb-dump") or shutil.which("mysqldump")):
        if os.environ.get("CI") == "true":
            pytest.fail("mariadb-dump is not installed: CI must test the backup it writes")
        pytest.skip("mariadb-dump is not installed")
    the_incident(mysql_url)
    backup = json.loads(raictl(mysql_url, "migrate", "--repair", "--yes", "--json").stdout)["backup"]
    assert _header(backup) != b"-- raictl backup"
    with twin_database(mysql_url) as (_, twin):
        refused = raictl(twin, "migrate", "--restore", backup, path=no_tools(tmp_path))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "mariadb client" in refused.stderr and "mariadb-client" in refused.stderr
        assert dump(twin) == {}  # nothing half-restored


@pytest.mark.mysql
@pytest.mark.parametrize("writer", ["raictl", "mariadb-dump"])
def test_a_damaged_backup_fails_the_restore_in_one_line_naming_what_to_do(mysql_url, tmp_path, writer):
    """A statement the server refuses (a hand-edited or damaged file that still ends with the mark): one
    line naming where it failed and that the database holds a partial restore; no traceback."""
    import shutil

    if writer == "mariadb-dump" and not (shutil.which("mariadb") or shutil.which("mysql")):
        if os.environ.get("CI") == "true":
            pytest.fail("the mariadb client is not installed: CI must test the restore it runs")
        pytest.skip("the mariadb client is not installed")
    header = "-- raictl backup of database `x`\n" if writer == "raictl" else "-- MariaDB dump\n"
    damaged = tmp_path / "damaged.sql"
    damaged.write_text(f"{header}CREATE TABLE kept (id INT PRIMARY KEY);\nnot sql at all;\n-- end of backup\n")
    with twin_database(mysql_url) as (name, twin):
        failed = raictl(twin, "migrate", "--restore", str(damaged))
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
        first, hint = failed.stderr.splitlines()[:2]
        assert "not sql at all" in first or "syntax" in first, first
        assert hint.startswith("hint:") and f"`{name}`" in hint and "drop and create" in hint
        assert "kept" in dump(twin)  # what ran before the error is there, as the hint says
