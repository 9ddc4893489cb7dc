"""The RAI API's database: one engine per app, and sessions that never outlive their `with` block.

Handlers copy what they need into plain values inside `session_scope()` (ORM) or `transaction()`
(Core rows, the chat path); no ORM object leaves its session,
so the troubleshooting log's `DetachedInstanceError` (an attribute read after the session closed)
cannot happen. SQLite gets foreign keys, WAL and a busy timeout so waitress' threads can share it;
MySQL/MariaDB gets pymysql with utf8mb4 and pre-ping (a restarted server is not a dead pool).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from raishared.database import MYSQL_CONNECT_TIMEOUT_S, ensure_sqlite_folder, parse_url

SQLITE_BUSY_TIMEOUT_MS = 5000


def _on_sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL never corrupts the database; a power cut may lose the last commits only.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint every WAL_CHECKPOINT_PAGES (not SQLite's 1000) and cut the WAL file back to
    # WAL_SIZE_LIMIT after each: the WAL never holds more than about 1 MiB of the disk's space, so a
    # full disk is full of data, not of an old WAL (issue 13).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


WAL_SIZE_LIMIT = 2**20
WAL_CHECKPOINT_PAGES = 256  # of 4 KiB: 1 MiB


def make_engine(url: str) -> sa.Engine:
    """An engine for `url` set up for a multi-threaded server (see the module docstring)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_folder(parsed)
        engine = sa.create_engine(parsed, connect_args={"check_same_thread": False,
                                                        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return sa.create_engine(parsed, pool_pre_ping=True, pool_recycle=3600, pool_size=16, max_overflow=8,
                            connect_args={"connect_timeout": MYSQL_CONNECT_TIMEOUT_S})


class Database:
    """The app's engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler waits by sleeping (up to 100 ms a
        # round): queueing our own writers on a lock hands the database over at once instead.
        self._write_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A session committed on success, rolled back on any error, and always closed."""
        with self._sessions.begin() as session:  # SQLAlchemy's own commit / rollback / close
            yield session

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[sa.Connection]:
        """A Core connection in a transaction, committed on success: the chat path's cheaper way
        (prebuilt statements on a Connection cost a quarter of the same queries through a Session).
        Say `write=True` when it writes, so SQLite writers queue instead of sleeping."""
        with self._write_lock if write else nullcontext(), self.engine.begin() as connection:
            yield connection

    def release_wal(self) -> None:
        """SQLite only: copy the WAL into the database and truncate it to 0 bytes, giving its space back
        (run after a "database or disk is full"; a no-op elsewhere or when it cannot run)."""
        if self.engine.dialect.name != "sqlite":
            return
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except sa.exc.DBAPIError:
            pass  # still full, or busy: the next failure tries again

    def dispose(self) -> None:
        self.engine.dispose()
