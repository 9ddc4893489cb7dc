"""The backup `raictl migrate` takes before it writes anything, into `<home>/backups/`.

SQLite: a consistent copy of the whole file (sqlite3's online backup API, safe while others read).
MariaDB/MySQL: the DDL of every table (`SHOW CREATE TABLE`) and the rows of `alembic_version` -
the only things a migrate or repair changes, since it never modifies a row of the application's data.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from raishared.private_files import ensure_private_dir
from services.rai_api.schema import VERSION_TABLE


def backup_path(home: Path, stem: str, suffix: str) -> Path:
    """A new, empty file `<home>/backups/<UTC timestamp>-<stem><suffix>`, mode 0600 in a 0700 folder:
    a SQLite copy holds password hashes and every chat."""
    folder = home / "backups"
    ensure_private_dir(folder)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = folder / f"{stamp}-{stem}{suffix}"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # O_EXCL: never over an older backup
    return path


def backup_database(engine, home: Path) -> Path | None:
    """Back up the database of `engine`; None for an in-memory SQLite database (nothing outlives it)."""
    database = engine.url.database
    if engine.dialect.name == "sqlite":
        if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
            return None
        return _copy_sqlite(engine, Path(database.removeprefix("file:")), home)
    return _dump_ddl(engine, home, database or "database")


def _copy_sqlite(engine, source: Path, home: Path) -> Path:
    target = backup_path(home, source.stem or "rai", source.suffix or ".db")
    # Read through the engine's own connection: it opens the URL as given (a `file:` URI, mode=ro),
    # where sqlite3.connect(path) would read a `file:` name as a new, empty file.
    live, copy = engine.raw_connection(), sqlite3.connect(target)
    try:
        live.driver_connection.backup(copy)
    finally:
        copy.close()
        live.close()
    return target


def _dump_ddl(engine, home: Path, name: str) -> Path:
    target = backup_path(home, name, ".sql")
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        lines = [f"-- raictl migrate backup of database `{name}`, taken {datetime.now(timezone.utc).isoformat()}",
                 "-- A migrate or repair changes only table definitions and alembic_version: it modifies no rows,",
                 "-- so this file holds the DDL of every table and the alembic_version rows, not the data.", ""]
        for table in tables:
            ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1]
            lines += [f"{ddl};", ""]
        if VERSION_TABLE in tables:
            for (version,) in conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}"):
                lines.append(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{version}');")
    target.write_text("\n".join(lines) + "\n")
    return target
