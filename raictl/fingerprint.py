"""Which known revision a live schema matches, and what it misses against a set of tables.

Each revision of the history is built for real on a scratch database (a throwaway database on the
same MariaDB server when the live one is MariaDB/MySQL, else SQLite in memory) and reflected; the
live schema is compared with each by table and column names. Used by `raictl migrate --repair`.
Imported only by raictl.migrate's functions: SQLAlchemy is not on the CLI's start-up path.
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Mapping

import psutil
import sqlalchemy as sa

from services.rai_api.schema import VERSION_TABLE


@dataclass(frozen=True)
class Shape:
    """A schema as names: table -> columns, table -> index names."""

    columns: dict[str, frozenset[str]] = field(default_factory=dict)
    indexes: dict[str, frozenset[str]] = field(default_factory=dict)

    def contains(self, tables: Mapping[str, sa.Table]) -> bool:
        """Every table and column of `tables` is present here."""
        return all(name in self.columns and set(t.columns.keys()) <= self.columns[name]
                   for name, t in tables.items())

    def touches(self, tables: Mapping[str, sa.Table]) -> set[str]:
        """The `table T` / `column T.C` of `tables` that are present here."""
        found = {f"table {n}" for n in tables if n in self.columns}
        return found | {f"column {n}.{c}" for n, t in tables.items() if n in self.columns
                        for c in t.columns.keys() if c in self.columns[n]}

    def merged(self, tables: Mapping[str, sa.Table]) -> Shape:
        """This shape with `tables` added (what the live schema will be once they are built)."""
        columns, indexes = dict(self.columns), dict(self.indexes)
        for name, table in tables.items():
            columns[name] = columns.get(name, frozenset()) | set(table.columns.keys())
            indexes[name] = indexes.get(name, frozenset()) | {i.name for i in table.indexes if i.name}
        return Shape(columns, indexes)


@dataclass(frozen=True)
class Missing:
    """One piece of `tables` absent from a shape: a whole table, a column of a present table, or an index."""

    kind: Literal["table", "column", "index"]
    table: sa.Table
    column: sa.Column | None = None  # set for a column
    index: sa.Index | None = None    # set for an index

    @property
    def name(self) -> str:
        if self.column is not None:
            return f"column {self.table.name}.{self.column.name}"
        if self.index is not None:
            return f"index {self.index.name} on {self.table.name}"
        return f"table {self.table.name}"


@dataclass(frozen=True)
class Snapshot:
    """The schema one revision builds, reflected from the scratch database (of dialect `scratch`)."""

    revision: str
    tables: dict[str, sa.Table]
    scratch: str


def live_shape(connection: sa.Connection) -> Shape:
    """The live schema's tables, columns and index names (the version table left out)."""
    inspector = sa.inspect(connection)
    names = [n for n in inspector.get_table_names() if n != VERSION_TABLE]
    return Shape({n: frozenset(c["name"] for c in inspector.get_columns(n)) for n in names},
                 {n: frozenset(name for i in inspector.get_indexes(n) if (name := i["name"])) for n in names})


def missing_from(shape: Shape, tables: Mapping[str, sa.Table]) -> list[Missing]:
    """What of `tables` (in dependency order) the shape lacks: tables, then columns and indexes of present ones."""
    ordered = sorted(tables.values(), key=_dependency_order(tables))
    missing: list[Missing] = []
    for table in ordered:
        if table.name not in shape.columns:
            missing.append(Missing("table", table))
            continue
        missing += [Missing("column", table, column=c) for c in table.columns
                    if c.name not in shape.columns[table.name]]
        missing += [Missing("index", table, index=i) for i in sorted(table.indexes, key=lambda i: i.name or "")
                    if i.name and i.name not in shape.indexes.get(table.name, ())]
    return missing


def _dependency_order(tables: Mapping[str, sa.Table]) -> Callable[[sa.Table], int]:
    """A sort key putting referenced tables before the tables whose foreign keys point at them."""
    order = {t.name: i for i, t in enumerate(sa.schema.sort_tables(tables.values()))}
    return lambda table: order[table.name]


def matched_revision(shape: Shape, snapshots: list[Snapshot]) -> str | None:
    """The latest revision whose tables and columns are all present in the live shape."""
    matched = None
    for snapshot in snapshots:
        if shape.contains(snapshot.tables):
            matched = snapshot.revision
    return matched


SCRATCH_PREFIX = "raictl_scratch_"


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def scratch_name() -> str:
    """`raictl_scratch_<host>_<pid>_<start time>_<hex>`: findable as ours, and known stale once the process
    that made it is gone (a SIGKILL mid-plan skips the `finally` that drops it)."""
    me = psutil.Process()
    return f"{SCRATCH_PREFIX}{_host_tag()}_{me.pid}_{int(me.create_time())}_{uuid.uuid4().hex[:6]}"


def is_stale(name: str) -> bool:
    """A scratch database whose creating process, on this host, no longer runs. Another host's, or one named
    by an older raictl, cannot be judged from here and is never called stale."""
    parts = name[len(SCRATCH_PREFIX):].split("_") if name.startswith(SCRATCH_PREFIX) else []
    if len(parts) != 4 or parts[0] != _host_tag() or not (parts[1] + parts[2]).isdigit():
        return False
    try:
        return int(psutil.Process(int(parts[1])).create_time()) != int(parts[2])  # the pid was reused
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def drop_stale_scratch(conn: sa.Connection) -> list[str]:
    """Drop the scratch databases left by raictl processes of this host that were killed mid-plan."""
    names = conn.execute(sa.text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"),
                         {"p": SCRATCH_PREFIX.replace("_", "\\_") + "%"}).scalars().all()
    stale = [n for n in names if is_stale(n)]
    for name in stale:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    return stale


@contextmanager
def scratch_url(live: sa.Engine) -> Iterator[str]:
    """A throwaway database for building revisions (`live`: the live engine, which creates and drops it):
    on the same server when MariaDB/MySQL lets us create one, else SQLite in memory. Stale ones left by a
    killed run are dropped first."""
    if live.dialect.name != "mysql":
        yield "sqlite://"
        return
    name = scratch_name()
    try:
        with live.connect() as conn:
            drop_stale_scratch(conn)
            charset, collation = conn.execute(sa.text(
                "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata"
                " WHERE schema_name = DATABASE()")).one()
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET {charset} COLLATE {collation}")
    except sa.exc.DBAPIError:  # no CREATE privilege: SQLite still tells tables and columns apart
        yield "sqlite://"
        return
    try:
        yield live.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with live.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")


def build_snapshots(live: sa.Engine, revisions: list[str], script_location: str | None = None) -> list[Snapshot]:
    """Upgrade a scratch database one revision at a time (base to head), reflecting it after each."""
    from alembic import command

    from migrations import alembic_config

    snapshots = []
    with scratch_url(live) as url:
        engine = sa.create_engine(url, poolclass=sa.pool.StaticPool if url == "sqlite://" else sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                config = alembic_config(url, script_location)
                config.attributes["connection"] = conn
                for revision in revisions:
                    command.upgrade(config, revision)
                    conn.commit()
                    metadata = sa.MetaData()
                    metadata.reflect(conn)
                    tables = {n: t for n, t in metadata.tables.items() if n != VERSION_TABLE}
                    snapshots.append(Snapshot(revision, tables, engine.dialect.name))
        finally:
            engine.dispose()
    return snapshots
