"""The backup `raictl migrate` takes before it writes anything, into `<home>/backups/`, and its restore.

SQLite: a consistent copy of the whole file (sqlite3's online backup API, safe while others read).
MariaDB/MySQL: every table's DDL and all its rows, read in one consistent snapshot. Written by
`mariadb-dump` when it is installed (raictl.mariadb_tools), else by our own writer: `SHOW CREATE
TABLE` and INSERTs, tables in foreign-key order, one statement per line, the server quoting the
values (QUOTE() batched with GROUP_CONCAT) over two connections whose snapshots are lined up.
Either restores into an empty database by `raictl migrate --restore FILE` or by the `mariadb`
client (`mariadb NAME < FILE`). bench/bench_migrate.py compares both writers with `mariadb-dump`.

Written atomically: into `NAME.partial`, synced, then linked to its final name, so a backup file that
exists is complete (a kill mid-write leaves only a `.partial`, which the next backup removes).
"""

from __future__ import annotations

import os
import queue
import sqlite3
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Sequence

import sqlalchemy as sa

from raictl import mariadb_tools
from raictl.errors import RaictlError
from raishared.private_files import ensure_private_dir

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import ReflectedColumn

END_MARK = "-- end of backup"
RAICTL_HEADER = b"-- raictl backup"
ROWS_PER_STATEMENT = 50000
PROBE_ROWS = 1000  # rows of a table's first ranges, read before its row size is known
READERS = 3  # connections reading at once: the server renders the rows, one core per connection
LOCK_WAIT_S = 5  # how long the brief read lock that lines up their snapshots may wait for writers
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
    target = backup_path(home, database or "database", ".sql")
    tool = mariadb_tools.find(mariadb_tools.DUMPS) if mariadb_tools.usable_for(engine.url) else None
    return dump_mysql(engine, target) if tool is None else dump_with_tool(tool, engine.url, target)


def dump_with_tool(tool: str, url: sa.URL, target: Path) -> Path:
    """The backup written by `mariadb-dump`, with END_MARK after its last line, written atomically."""
    with atomic_file(target) as partial:
        mariadb_tools.dump(tool, url, partial)
        with open(partial, "ab") as out:
            out.write(f"{END_MARK}\n".encode())
    return target


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
    with atomic_file(target) as partial, engine.connect() as conn, open(partial, "wb") as out:
        packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar() or 0)
        # Half the packet at most: the restore sends a statement back whole (with its INSERT prefix).
        cap = min(statement_bytes or packet, packet // 2)
        inspector = sa.inspect(conn)
        tables = [_TableDump.read(inspector, conn, t) for t, _ in inspector.get_sorted_table_and_fkc_names() if t]
        taken = datetime.now(timezone.utc).isoformat()
        out.write(RAICTL_HEADER + f" of database `{engine.url.database}`, taken {taken}: every table with its rows\n"
                  "-- restore into an empty database: raictl migrate --restore FILE (or: mariadb NAME < FILE)\n"
                  "SET NAMES utf8mb4;\nSET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n"
                  "SET FOREIGN_KEY_CHECKS = 0;\n".encode())
        with _snapshot(engine, conn, [t.name for t in tables], packet) as readers:
            for table in tables:
                out.write(f"{table.ddl};\n".encode())
                table.dump_rows(readers, out, cap)
        out.write(f"SET FOREIGN_KEY_CHECKS = 1;\n{END_MARK}\n".encode())
    return target


@contextmanager
def _snapshot(engine: sa.Engine, locker: sa.Connection, tables: list[str], packet: int) -> Iterator[list[Any]]:
    """READERS driver connections that all read one consistent snapshot of `tables`: their snapshots
    are opened while `locker` holds a brief read lock on the tables (so no write commits between
    them). Without that lock (no LOCK TABLES privilege, or a writer holding a table past LOCK_WAIT_S)
    a single reader, whose snapshot is consistent on its own."""
    connections = [engine.connect() for _ in range(READERS)]
    try:
        readers = [_dbapi(c.connection) for c in connections]
        for raw in readers:
            with raw.cursor() as cursor:
                cursor.execute(f"SET SESSION group_concat_max_len = {packet}")
        locked = _lock_tables(locker, tables) if len(readers) > 1 else False
        if not locked:
            readers = readers[:1]
        try:
            for raw in readers:
                with raw.cursor() as cursor:
                    cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        finally:
            if locked:
                locker.exec_driver_sql("UNLOCK TABLES")
        yield readers
    finally:
        for connection in connections:
            connection.close()


def _lock_tables(locker: sa.Connection, tables: list[str]) -> bool:
    """Whether `locker` now holds a read lock on every table (it waits for open writes to commit, at
    most LOCK_WAIT_S: the connection's own wait is restored after, a repair's DDL runs on it next)."""
    if not tables:
        return False
    wait = locker.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar_one()
    locker.exec_driver_sql(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_S}")
    try:
        locker.exec_driver_sql("LOCK TABLES " + ", ".join(f"`{t}` READ" for t in tables))
    except sa.exc.DBAPIError:
        return False
    finally:
        locker.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(wait)}")
    return True


class _TableDump:
    """One table's definition and how to read its rows as SQL: the server renders each row as a
    `(...)` literal and GROUP_CONCAT joins a batch of them into one INSERT's VALUES, handed over as
    UTF-8 bytes (written as they come: nothing decoded or encoded on our side)."""

    def __init__(self, name: str, ddl: str, columns: Sequence[ReflectedColumn], key: list[str]) -> None:
        self.name, self.ddl, self.key = name, ddl, key
        names = ",".join(f"`{c['name']}`" for c in columns)
        self.insert = f"INSERT INTO `{name}` ({names}) VALUES ".encode()
        self.row = _row_sql(columns)
        self.values = _as_utf8_bytes(f"GROUP_CONCAT({self.row} SEPARATOR ',')")
        self.integer_key = len(key) == 1 and isinstance(
            next(c["type"] for c in columns if c["name"] == key[0]), sa.Integer)

    @classmethod
    def read(cls, inspector: sa.Inspector, conn: sa.Connection, name: str) -> _TableDump:
        ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`").one()[1]
        key = inspector.get_pk_constraint(name).get("constrained_columns") or []
        return cls(name, " ".join(ddl.split("\n")), inspector.get_columns(name), key)

    def dump_rows(self, readers: list[Any], out: BinaryIO, cap: int) -> None:
        if self.integer_key:
            self._dump_by_key_ranges(readers, out, cap)
        else:
            self._dump_paged(readers[0], out, cap)

    def _statement(self, values: bytes) -> bytes:
        """One line: QUOTE() leaves line breaks in a text as they are, and a raw line break can only be
        inside a quoted text (UTF-8 never uses these bytes within a character), so escaping every one
        here is exact (and far cheaper than REPLACE() on the server, which compares characters)."""
        return b"%s%s;\n" % (self.insert, values.replace(b"\n", b"\\n").replace(b"\r", b"\\r"))

    def _dump_by_key_ranges(self, readers: list[Any], out: BinaryIO, cap: int) -> None:
        """Key ranges read by all readers at once (the server renders the rows, one of its cores per
        connection) and written in key order. A range holds about ROWS_PER_STATEMENT rows, or as many
        as fill a quarter of `cap` at the row size seen so far (PROBE_ROWS until a range was read)."""
        key = self.key[0]
        with readers[0].cursor() as cursor:
            cursor.execute(f"SELECT MIN(`{key}`), MAX(`{key}`), COUNT(*) FROM `{self.name}`")
            low, high, count = cursor.fetchone()
        if not count:
            return
        keys_per_row = (high - low + 1) / count
        row_bytes: list[float] = []  # the latest range's bytes per row, once one was read
        free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for raw in readers:
            free.put(raw)

        def read(bounds: tuple[int, int]) -> list[bytes]:
            raw = free.get()  # as many threads as readers: one is always free here
            try:
                statements, rows = self._range_statements(raw, *bounds, cap)
            finally:
                free.put(raw)
            if rows:
                row_bytes[:] = [sum(map(len, statements)) / rows]
            return statements

        def ranges() -> Iterator[tuple[int, int]]:
            start = low - 1
            while start < high:
                rows = min(ROWS_PER_STATEMENT, int(cap / 4 / row_bytes[0])) if row_bytes else PROBE_ROWS
                end = min(high, start + max(1, int(rows * keys_per_row)))
                yield start, end
                start = end

        with ThreadPoolExecutor(len(readers), thread_name_prefix="backup") as pool:
            pending: deque[Future[list[bytes]]] = deque()
            for bounds in ranges():
                pending.append(pool.submit(read, bounds))
                if len(pending) > 2 * len(readers):  # bounded: the file is written while rows are read
                    out.writelines(pending.popleft().result())
            while pending:
                out.writelines(pending.popleft().result())

    def _range_statements(self, raw: Any, low: int, high: int, cap: int) -> tuple[list[bytes], int]:
        """INSERT statements for the rows with low < key <= high, none of `cap` bytes or more (the
        range split in eighths where its rows do not fit one), and how many rows they hold."""
        key = self.key[0]
        with raw.cursor() as cursor:
            cursor.execute(f"SELECT {self.values}, COUNT(*) FROM `{self.name}` WHERE `{key}` > %s AND `{key}` <= %s",
                           (low, high))
            values, count = cursor.fetchone()
        if not count:
            return [], 0
        statement = self._statement(values)
        if len(statement) < cap:
            return [statement], count
        if high - low == 1:
            raise self._too_large()
        step = -(-(high - low) // 8)
        parts = [self._range_statements(raw, start, min(start + step, high), cap) for start in range(low, high, step)]
        return [s for statements, _ in parts for s in statements], count

    def _dump_paged(self, raw: Any, out: BinaryIO, cap: int) -> None:
        """Without an integer key: pages in key order (or one row a statement without a one-column key)."""
        with raw.cursor() as cursor:
            if len(self.key) != 1:
                cursor.execute(f"SELECT {_as_utf8_bytes(self.row)} FROM `{self.name}`")
                out.writelines(self._statement(values) for (values,) in cursor.fetchall())
                return
            key, last, batch = self.key[0], None, ROWS_PER_STATEMENT
            while True:
                where = "" if last is None else f"WHERE `{key}` > %s"
                cursor.execute(f"SELECT {self.values}, MAX(`{key}`), COUNT(*) FROM (SELECT * FROM `{self.name}` {where} "
                               f"ORDER BY `{key}` LIMIT {batch}) b", () if last is None else (last,))
                values, upto, count = cursor.fetchone()
                if not count:
                    return
                statement = self._statement(values)
                if len(statement) >= cap:  # long rows (or GROUP_CONCAT cut them): fewer at a time
                    if batch == 1:
                        raise self._too_large()
                    batch = max(1, batch // 8)
                    continue
                out.write(statement)
                last = upto

    def _too_large(self) -> RaictlError:
        return RaictlError(f"backing up `{self.name}`: a row is larger than half the server's max_allowed_packet",
                           hint="raise max_allowed_packet on the server, or back up with mariadb-dump")


def _value_sql(column: ReflectedColumn) -> str:
    """The server-side SQL literal of one column's value: a number as is, anything else quoted (its
    line breaks are escaped on our side: `_TableDump._statement`); NULL as NULL."""
    name, kind = f"`{column['name']}`", column["type"]
    if isinstance(kind, (sa.Integer, sa.Numeric, sa.Boolean)):
        return f"IFNULL({name}, 'NULL')"
    return f"QUOTE({name})"


def _as_utf8_bytes(expression: str) -> str:
    """`expression` handed over as its UTF-8 bytes (the backup file's encoding), whatever the table's."""
    return f"CAST(CONVERT({expression} USING utf8mb4) AS BINARY)"


def _row_sql(columns: Sequence[ReflectedColumn]) -> str:
    """The server-side expression rendering one row as `('a',1,NULL)` on one line."""
    return f"CONCAT('(', CONCAT_WS(',', {', '.join(_value_sql(c) for c in columns)}), ')')"


def restore_mysql(engine: sa.Engine, source: Path) -> dict[str, int]:
    """Replay a MariaDB backup (raictl's own SQL, or `mariadb-dump`'s through the `mariadb` client) into
    the empty database of `engine`; the rows per table restored."""
    if not _ends_with_mark(source):
        raise RaictlError(f"{source} is not a complete raictl backup (no {END_MARK!r} line at its end)",
                          hint="restore another backup of <home>/backups/")
    with engine.connect() as conn:
        existing = sa.inspect(conn).get_table_names()
        if existing:
            raise RaictlError(f"the database `{engine.url.database}` is not empty (it has {', '.join(existing[:5])})",
                              hint="restore into a new, empty database (CREATE DATABASE name CHARACTER SET utf8mb4) "
                                   "and point RAI_DATABASE_URL at it")
        if not _written_by_raictl(source):
            _replay_with_client(engine.url, source)
            return _row_counts(conn)
        raw = _dbapi(conn.connection)
        # Line by line, as bytes: a statement ends at b"\n" only (the backup escapes newlines in values;
        # str.splitlines would also split at U+2028 and others, which values may hold as they are).
        with raw.cursor() as cursor, open(source, "rb") as backup:
            for number, line in enumerate(backup, 1):
                statement = line.rstrip(b"\n")
                if statement and not statement.startswith(b"--"):
                    try:
                        cursor.execute(statement.rstrip(b";"))
                    except engine.dialect.loaded_dbapi.Error as exc:
                        raise RaictlError(f"line {number} of {source} failed: {exc.args[-1]}",
                                          hint=partial_restore_hint(engine.url)) from None
        raw.commit()
        return _row_counts(conn)


def partial_restore_hint(url: sa.URL) -> str:
    return (f"what ran before the error is in `{url.database}`: drop and create that database again before "
            "another restore (of another backup, if this file is damaged)")


def _written_by_raictl(source: Path) -> bool:
    """Whether the backup is raictl's own SQL (else `mariadb-dump`'s)."""
    with open(source, "rb") as backup:
        return backup.read(len(RAICTL_HEADER)) == RAICTL_HEADER


def _replay_with_client(url: sa.URL, source: Path) -> None:
    client = mariadb_tools.find(mariadb_tools.CLIENTS)
    if client is None or not mariadb_tools.usable_for(url):
        raise RaictlError(f"{source} was written by mariadb-dump: it is restored by the mariadb client, "
                          + ("which is not installed" if client is None else "which cannot take this URL's options"),
                          hint=f"install the MariaDB client (Debian: mariadb-client), or run: mariadb {url.database} < {source}")
    mariadb_tools.replay(client, url, source, hint=partial_restore_hint(url))


def _row_counts(conn: sa.Connection) -> dict[str, int]:
    tables = sa.inspect(conn).get_table_names()
    return {t: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{t}`").scalar() or 0) for t in tables}


def _ends_with_mark(source: Path) -> bool:
    """Whether the file's last lines hold END_MARK (a backup cut short has no such line)."""
    with open(source, "rb") as backup:
        backup.seek(max(0, source.stat().st_size - 256))
        return END_MARK.encode() in backup.read().splitlines()[-3:]


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
