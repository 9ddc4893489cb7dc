"""The database as both sides see it: the URL (parsed, masked, its SQLite file), the driver's errors
(their codes, and the one table of what to do about each), and SQLite's file created private.

The RAI API, `raictl migrate`, `raictl up` and doctor all read RAI_DATABASE_URL through `parse_url`, so
a URL one of them refuses, all refuse in the same words. SQLAlchemy is imported inside the functions
that need it: `mask_url` and `sqlite_file` are on the CLI's start-up path.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raishared.errors import HintedError
from raishared.private_files import create_private

if TYPE_CHECKING:
    import sqlalchemy as sa

SHIPPED_DRIVERS = ("sqlite", "sqlite+pysqlite", "mysql+pymysql")
MYSQL_CONNECT_TIMEOUT_S = 5  # an unreachable server: health and requests answer 503 within this
_SSL_FILES = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath")  # paths a mysql+pymysql URL may name
_SECRET_QUERY_WORDS = ("pass", "pwd", "secret", "token")  # `?password=…` reaches pymysql's connect() too

# What to do about a driver error, by pymysql's error code or by words of SQLite's message.
DRIVER_HINTS: dict[int | str, str] = {
    1044: "grant this user rights on the database, or use another user in RAI_DATABASE_URL",
    1045: "check the user name and password in RAI_DATABASE_URL",
    1049: "create the database (CREATE DATABASE name CHARACTER SET utf8mb4) or fix its name in RAI_DATABASE_URL",
    2003: "start the database server, or fix the host and port in RAI_DATABASE_URL",
    2005: "fix the host name in RAI_DATABASE_URL",
    2013: "the server takes connections but does not answer: check that it is MariaDB/MySQL and runs, "
          "and the host and port in RAI_DATABASE_URL",
    "file is not a database": "RAI_DATABASE_URL must name a SQLite database file, or a new one (default <home>/rai.db)",
    "unable to open database file": "RAI_DATABASE_URL must name a file (not a folder) SQLite can open",
    "readonly database": "SQLite cannot write this database: make the file and its folder writable",
}
UNKNOWN_HINT = "check RAI_DATABASE_URL and that the database server is running"
# A statement naming a table or column the database lacks: MySQL's error codes, SQLite's words.
SCHEMA_ERROR_CODES = (1054, 1146)  # unknown column, table does not exist
SCHEMA_ERROR_WORDS = ("no such table", "no such column", "has no column named")


def mask_url(url: str | None) -> str:
    """A database URL with its password replaced by ***, in the user part and in the query string."""
    if not url or "://" not in url:
        return url or ""
    url, _, query = url.partition("?")
    if query:
        pairs = (pair.partition("=") for pair in query.split("&"))
        query = "&".join(f"{key}{eq}***" if eq and any(w in key.lower() for w in _SECRET_QUERY_WORDS)
                         else f"{key}{eq}{value}" for key, eq, value in pairs)
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            url = f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return f"{url}?{query}" if query else url


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL (None for other databases or an in-memory one), read without
    SQLAlchemy: `raictl up` and doctor ask before anything heavier is imported."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def parse_url(url: str) -> sa.URL:
    """`url` as a SQLAlchemy URL; plain `mysql://` means pymysql, the driver we ship."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise HintedError(f"RAI_DATABASE_URL is not a database URL: {mask_url(url)!r}",
                          hint="e.g. sqlite:////path/rai.db or mysql+pymysql://user:pw@127.0.0.1/rai") from None
    if parsed.drivername in ("mysql", "mariadb", "mariadb+pymysql"):  # one dialect: it detects MariaDB itself
        parsed = parsed.set(drivername="mysql+pymysql")
    if parsed.get_backend_name() not in ("sqlite", "mysql", "mariadb"):
        raise HintedError(f"RAI_DATABASE_URL names an unsupported database: {parsed.get_backend_name()}",
                          hint="use SQLite (the default) or MariaDB/MySQL through mysql+pymysql://")
    if parsed.drivername not in SHIPPED_DRIVERS:  # another driver is not installed, or not tested with us
        raise HintedError(f"RAI_DATABASE_URL names the driver {parsed.drivername!r}, which raictl does not ship",
                          hint="use mysql+pymysql:// (or plain mysql://) for MariaDB/MySQL, sqlite:/// for SQLite")
    _check_pymysql_query(parsed)
    return parsed


def _check_pymysql_query(parsed: sa.URL) -> None:
    """Refuse what pymysql would fail on at the first connection, with the key named."""
    unknown = sorted(set(parsed.query) - _pymysql_options()) if parsed.drivername == "mysql+pymysql" else []
    if unknown:  # else pymysql's connect() raises TypeError ("unexpected keyword argument") on first use
        raise HintedError(f"RAI_DATABASE_URL has a query parameter pymysql does not take: {', '.join(unknown)}",
                          hint="remove it; pymysql takes e.g. charset, connect_timeout, ssl_ca, ssl_verify_cert")
    for key in _SSL_FILES:  # else ssl.create_default_context raises FileNotFoundError when connecting
        if parsed.query.get(key) and not Path(str(parsed.query[key])).exists():
            raise HintedError(f"RAI_DATABASE_URL's {key} names {parsed.query[key]}, which does not exist",
                              hint="point it at the server's CA certificate (or your client certificate/key)")


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
    path = Path(str(parsed.database))
    # An empty file opens as an empty database, and SQLite gives its -wal and -shm the file's mode.
    # An existing database (or whatever is there: SQLite will say) keeps its mode; create_private
    # makes missing folders 0700 (raishared.private_files.ensure_private_dir).
    try:
        create_private(path, "")
    except OSError as exc:
        raise HintedError(f"cannot create the SQLite database {path}: {exc.strerror}",
                          hint="point RAICTL_HOME or RAI_DATABASE_URL at a writable place") from None


def mysql_error_code(exc: BaseException) -> int | None:
    """The MariaDB/MySQL error number of a driver error (pymysql's `(code, message)` args, wrapped by
    SQLAlchemy or not); None for SQLite's errors and anything else."""
    args: tuple[Any, ...] = getattr(getattr(exc, "orig", None) or exc, "args", ())
    return args[0] if len(args) == 2 and isinstance(args[0], int) else None


def driver_problem(exc: BaseException) -> tuple[str, str | None]:
    """A driver error (wrapped by SQLAlchemy or not) as its one-line reason and what to do about it
    (None when not known: the caller says what fits, e.g. UNKNOWN_HINT)."""
    orig = getattr(exc, "orig", None) or exc
    code = mysql_error_code(orig)
    if code is not None:
        return f"{orig.args[1]} (error {code})", DRIVER_HINTS.get(code)
    reason = (str(orig).strip() or type(orig).__name__).splitlines()[0]
    return reason, next((h for key, h in DRIVER_HINTS.items() if isinstance(key, str) and key in reason), None)


def is_schema_error(exc: BaseException) -> bool:
    """A statement failed because the database lacks a table or column the models name."""
    code = mysql_error_code(exc)
    if code is not None:
        return code in SCHEMA_ERROR_CODES
    return any(word in str(getattr(exc, "orig", None)) for word in SCHEMA_ERROR_WORDS)
