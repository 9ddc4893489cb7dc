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
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from raictl.errors import RaictlError
from raictl.private_files import create_private
from raictl.settings import mask_url

SQLITE_BUSY_TIMEOUT_MS = 5000
SHIPPED_DRIVERS = ("sqlite", "sqlite+pysqlite", "mysql+pymysql")
_SSL_FILES = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath")  # paths a mysql+pymysql URL may name
MYSQL_CONNECT_TIMEOUT_S = 5  # an unreachable server: health and requests answer 503 within this


def _on_sqlite_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL never corrupts the database; a power cut may lose the last commits only.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def mysql_error_code(exc: BaseException) -> int | None:
    """The MariaDB/MySQL error number of a driver error (pymysql's `(code, message)` args, wrapped by
    SQLAlchemy or not); None for SQLite's errors and anything else."""
    args = getattr(getattr(exc, "orig", None) or exc, "args", ())
    return args[0] if len(args) == 2 and isinstance(args[0], int) else None


def parse_url(url: str) -> sa.URL:
    """`url` as a SQLAlchemy URL; plain `mysql://` means pymysql, the driver we ship."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise RaictlError(f"RAI_DATABASE_URL is not a database URL: {mask_url(url)!r}",
                          hint="e.g. sqlite:////path/rai.db or mysql+pymysql://user:pw@127.0.0.1/rai") from None
    if parsed.drivername in ("mysql", "mariadb", "mariadb+pymysql"):  # one dialect: it detects MariaDB itself
        parsed = parsed.set(drivername="mysql+pymysql")
    if parsed.get_backend_name() not in ("sqlite", "mysql", "mariadb"):
        raise RaictlError(f"RAI_DATABASE_URL names an unsupported database: {parsed.get_backend_name()}",
                          hint="use SQLite (the default) or MariaDB/MySQL through mysql+pymysql://")
    if parsed.drivername not in SHIPPED_DRIVERS:  # another driver is not installed, or not tested with us
        raise RaictlError(f"RAI_DATABASE_URL names the driver {parsed.drivername!r}, which raictl does not ship",
                          hint="use mysql+pymysql:// (or plain mysql://) for MariaDB/MySQL, sqlite:/// for SQLite")
    unknown = sorted(set(parsed.query) - _pymysql_options()) if parsed.drivername == "mysql+pymysql" else []
    if unknown:  # else pymysql's connect() raises TypeError ("unexpected keyword argument") on first use
        raise RaictlError(f"RAI_DATABASE_URL has a query parameter pymysql does not take: {', '.join(unknown)}",
                          hint="remove it; pymysql takes e.g. charset, connect_timeout, ssl_ca, ssl_verify_cert")
    for key in _SSL_FILES:  # else ssl.create_default_context raises FileNotFoundError when connecting
        if parsed.query.get(key) and not Path(str(parsed.query[key])).exists():
            raise RaictlError(f"RAI_DATABASE_URL's {key} names {parsed.query[key]}, which does not exist",
                              hint="point it at the server's CA certificate (or your client certificate/key)")
    return parsed


@lru_cache(maxsize=1)
def _pymysql_options() -> frozenset[str]:
    """The `?key=value` names a mysql+pymysql URL may carry: pymysql.connect()'s string-valued keyword
    arguments, and the ssl_* keys SQLAlchemy gathers into its `ssl` argument."""
    import inspect

    import pymysql

    taken = set(inspect.signature(pymysql.connections.Connection.__init__).parameters)
    return frozenset(taken - {"self", "conv", "cursorclass", "auth_plugin_map", "ssl"}
                     | {"ssl_capath", "ssl_cipher", "ssl_check_hostname"})


def ensure_sqlite_folder(parsed: sa.URL) -> None:
    """Create the folder (0700) and the empty file (0600) of a SQLite file database when missing:
    SQLite creates the file but not its folder (a fresh checkout has no <home> yet), and it would
    create it 0644, readable by every local user, though it holds password hashes and every message.
    The one place for this (the RAI API, `raictl migrate`, Alembic's env)."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.query.get("uri"):  # a `file:` URI names its own path and mode (mode=ro must create nothing)
        return
    path = Path(parsed.database)
    # An empty file opens as an empty database, and SQLite gives its -wal and -shm the file's mode.
    # An existing database (or whatever is there: SQLite will say) keeps its mode; create_private
    # makes missing folders 0700 (raictl.private_files.ensure_private_dir).
    try:
        create_private(path, "")
    except OSError as exc:
        raise RaictlError(f"cannot create the SQLite database {path}: {exc.strerror}",
                          hint="point RAICTL_HOME or RAI_DATABASE_URL at a writable place") from None


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

    def dispose(self) -> None:
        self.engine.dispose()
