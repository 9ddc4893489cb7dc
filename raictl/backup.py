"""The backup `raictl migrate` takes before it writes anything, into `<home>/backups/`, and its restore.

SQLite: a consistent copy of the whole file (sqlite3's online backup API, safe while others read).
MariaDB/MySQL: every table's DDL (`SHOW CREATE TABLE`) and all its rows, tables in foreign-key order,
one statement per line: restorable into an empty database by `raictl migrate --restore FILE` or by
the `mariadb` client (`mariadb NAME < FILE`). The server quotes the values itself (QUOTE() batched
with GROUP_CONCAT), so a backup costs about what `mariadb-dump` does (bench/bench_migrate.py).

Written atomically: into `NAME.partial`, synced, then linked to its final name, so a backup file that
exists is complete (a kill mid-write leaves only a `.partial`, which the next backup removes).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence, TextIO

import sqlalchemy as sa

from raictl.errors import RaictlError
from raishared.private_files import ensure_private_dir

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import ReflectedColumn

END_MARK = "-- end of backup"
ROWS_PER_STATEMENT = 50000
PARTIAL = ".partial"


def backup_path(home: Path, stem: str, suffix: str) -> Path:
    """The path of a new backup `<home>/backups/<UTC timestamp>-<stem><suffix>` in a 0700 folder."""
    folder = home / "backups"
    ensure_private_dir(folder)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return folder / f"{stamp}-{stem}{suffix}"


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """A 0600 `target.partial` to write; on success synced and linked to `target` (never over an older
    file), on failure removed. Leftover `.partial` files of killed runs are removed first."""
    for stale in target.parent.glob(f"*{PARTIAL}"):
        if _writer_gone(stale):
            stale.unlink(missing_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}{PARTIAL}")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield partial
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.link(partial, target)  # fails rather than replace an existing backup
    finally:
        partial.unlink(missing_ok=True)


def _writer_gone(partial: Path) -> bool:
    pid = partial.name[: -len(PARTIAL)].rsplit(".", 1)[-1]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def backup_database(engine: sa.Engine, home: Path) -> Path | None:
    """Back up the database of `engine`; None for an in-memory SQLite database (nothing outlives it)."""
    database = engine.url.database
    if engine.dialect.name == "sqlite":
        if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
            return None
        return _copy_sqlite(engine, Path(database.removeprefix("file:")), home)
    return dump_mysql(engine, backup_path(home, database or "database", ".sql"))


def _dbapi(proxy: Any) -> Any:
    """The driver's own connection (sqlite3's, pymysql's) under SQLAlchemy's: an open one always has it."""
    raw = proxy.driver_connection
    assert raw is not None
    return raw


def _copy_sqlite(engine: sa.Engine, source: Path, home: Path) -> Path:
    target = backup_path(home, source.stem or "rai", source.suffix or ".db")
    with atomic_file(target) as partial:
        # Read through the engine's own connection: it opens the URL as given (a `file:` URI, mode=ro),
        # where sqlite3.connect(path) would read a `file:` name as a new, empty file.
        live, copy = engine.raw_connection(), sqlite3.connect(partial)
        try:
            _dbapi(live).backup(copy)
        finally:
            copy.close()
            live.close()
    return target


def dump_mysql(engine: sa.Engine, target: Path, statement_bytes: int | None = None) -> Path:
    """Every table of the database with its rows, as one SQL statement per line, written atomically; a
    statement holds at most `statement_bytes` (default: half the server's max_allowed_packet)."""
    with atomic_file(target) as partial, engine.connect() as conn, open(partial, "w", encoding="utf-8") as out:
        raw = _dbapi(conn.connection)
        with raw.cursor() as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            packet = int(cursor.fetchone()[0])
            cursor.execute(f"SET SESSION group_concat_max_len = {packet}")
        # Half the packet at most: the restore sends a statement back whole (with its INSERT prefix).
        cap = min(statement_bytes or packet, packet // 2)
        inspector = sa.inspect(conn)
        tables = [t for t, _ in inspector.get_sorted_table_and_fkc_names() if t]
        out.write(f"-- raictl backup of database `{engine.url.database}`, taken "
                  f"{datetime.now(timezone.utc).isoformat()}: every table with its rows\n"
                  "-- restore into an empty database: raictl migrate --restore FILE (or: mariadb NAME < FILE)\n"
                  "SET NAMES utf8mb4;\nSET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\nSET FOREIGN_KEY_CHECKS = 0;\n")
        for table in tables:
            ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1]
            out.write(" ".join(ddl.split("\n")) + ";\n")
            _dump_rows(raw, inspector, table, out, cap)
        out.write(f"SET FOREIGN_KEY_CHECKS = 1;\n{END_MARK}\n")
    return target


def _value_sql(column: ReflectedColumn) -> str:
    """The server-side SQL literal of one column's value: a number as is, a date quoted, text quoted
    with its newlines escaped (so each statement is one line); NULL as NULL."""
    name, kind = f"`{column['name']}`", column["type"]
    if isinstance(kind, (sa.Integer, sa.Numeric, sa.Boolean)):
        return f"IFNULL({name}, 'NULL')"
    if isinstance(kind, (sa.DateTime, sa.Date, sa.Time)):
        return f"QUOTE({name})"
    return f"REPLACE(REPLACE(QUOTE({name}), '\\n', '\\\\n'), '\\r', '\\\\r')"


def _row_sql(columns: Sequence[ReflectedColumn]) -> str:
    """The server-side expression rendering one row as `('a',1,NULL)` on one line."""
    return f"CONCAT('(', CONCAT_WS(',', {', '.join(_value_sql(c) for c in columns)}), ')')"


def _dump_rows(raw: Any, inspector: sa.Inspector, table: str, out: TextIO, cap: int) -> None:
    columns = inspector.get_columns(table)
    key = inspector.get_pk_constraint(table).get("constrained_columns") or []
    names = ",".join(f"`{c['name']}`" for c in columns)
    insert = f"INSERT INTO `{table}` ({names}) VALUES "
    row = _row_sql(columns)
    with raw.cursor() as cursor:
        if len(key) != 1:  # no single-column key to page by: one row a statement
            cursor.execute(f"SELECT {row} FROM `{table}`")
            out.writelines(f"{insert}{r};\n" for (r,) in cursor.fetchall())
            return
        last, batch = None, ROWS_PER_STATEMENT
        while True:
            where = "" if last is None else f"WHERE `{key[0]}` > %s"
            cursor.execute(f"SELECT GROUP_CONCAT(r SEPARATOR ','), MAX(k), COUNT(*) FROM (SELECT {row} AS r, "
                           f"`{key[0]}` AS k FROM `{table}` {where} ORDER BY `{key[0]}` LIMIT {batch}) b",
                           () if last is None else (last,))
            values, upto, count = cursor.fetchone()
            if not count:
                return
            if len(values.encode()) >= cap:  # long rows (or GROUP_CONCAT cut them): fewer at a time
                if batch == 1:
                    raise RaictlError(f"backing up `{table}`: a row is larger than half the server's max_allowed_packet",
                                      hint="raise max_allowed_packet on the server, or back up with mariadb-dump")
                batch = max(1, batch // 8)
                continue
            out.write(f"{insert}{values};\n")
            last = upto


def restore_mysql(engine: sa.Engine, source: Path) -> dict[str, int]:
    """Replay a backup of `dump_mysql` into the empty database of `engine`; the rows per table restored."""
    text = source.read_text(encoding="utf-8")
    if END_MARK not in text.splitlines()[-3:]:
        raise RaictlError(f"{source} is not a complete raictl backup (no {END_MARK!r} line at its end)",
                          hint="restore another backup of <home>/backups/")
    with engine.connect() as conn:
        existing = sa.inspect(conn).get_table_names()
        if existing:
            raise RaictlError(f"the database `{engine.url.database}` is not empty (it has {', '.join(existing[:5])})",
                              hint="restore into a new, empty database (CREATE DATABASE name CHARACTER SET utf8mb4) "
                                   "and point RAI_DATABASE_URL at it")
        raw = _dbapi(conn.connection)
        with raw.cursor() as cursor:
            for line in text.splitlines():
                if line and not line.startswith("--"):
                    cursor.execute(line.rstrip(";"))
        raw.commit()
        tables = sa.inspect(conn).get_table_names()
        return {t: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{t}`").scalar() or 0) for t in tables}


def restore_sqlite(engine: sa.Engine, source: Path) -> dict[str, int]:
    """Copy a SQLite backup into the database of `engine`, which must be empty (no tables)."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as check:
        try:
            check.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise RaictlError(f"{source} is not a SQLite backup: {exc}", hint="restore a .db file of <home>/backups/") from None
    with engine.connect() as conn:
        existing = sa.inspect(conn).get_table_names()
        if existing:
            raise RaictlError(f"the database {engine.url.database} is not empty (it has {', '.join(existing[:5])})",
                              hint="move it away (or point RAI_DATABASE_URL at a new file) and restore again")
    backup, live = sqlite3.connect(f"file:{source}?mode=ro", uri=True), engine.raw_connection()
    try:
        backup.backup(_dbapi(live))
    finally:
        backup.close()
        live.close()
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        return {t: int(conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{t}"').scalar() or 0) for t in tables}
