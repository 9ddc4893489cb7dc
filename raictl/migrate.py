"""Database migrations: upgrade to head, and the additive repair of `raictl migrate --repair`.

The core returns values and prints nothing; `raictl/commands/migrate.py` renders them. SQLAlchemy
and Alembic are imported inside the functions: this module sits on the CLI's start-up path.
"""

from __future__ import annotations

import math
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal

from raictl.errors import RaictlError
from raishared.database import (MYSQL_CONNECT_TIMEOUT_S, UNKNOWN_HINT, driver_problem, ensure_sqlite_folder, mask_url,
                                mysql_error_code, parse_url)
from raishared.private_files import ensure_private_dir

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Dialect

    from raictl.fingerprint import Missing, Shape, Snapshot
    from raishared.settings import Settings
    from services.rai_api.schema import SchemaState

ActionKind = Literal["create_table", "add_column", "create_index", "stamp", "upgrade"]
# the action that adds a missing piece of each kind (raictl.fingerprint.Missing.kind)
ADD_ACTION: dict[str, ActionKind] = {"table": "create_table", "column": "add_column", "index": "create_index"}

REPAIR_HINT = "raictl migrate --repair"
LOCK_FILE = "migrate.lock"
UP_LOCK_WAIT_S = 30.0  # `up` waits this long for a migrate of the same home to finish


@contextmanager
def migrate_lock(home: Path | str, wait: float = 0.0, database_url: str | None = None) -> Iterator[None]:
    """Held while one raictl plans and writes the schema of `home`'s database: a second migrate waits up to
    `wait` seconds, then refuses (the holder may be a repair waiting for its user to confirm). On
    MariaDB/MySQL the server's named lock is taken too, so raictl homes (or machines) sharing one
    database exclude each other as well."""
    with _home_lock(home, wait), _server_lock(database_url, wait):
        yield


def _busy(holder: str) -> RaictlError:
    return RaictlError(f"another raictl migrate is changing this database (it holds {holder}); nothing was changed",
                       hint="wait for it to finish (it may be asking for confirmation), then run again")


@contextmanager
def _home_lock(home: Path | str, wait: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path = Path(home) / LOCK_FILE
    lock = FileLock(str(path), timeout=wait)
    try:
        ensure_private_dir(path.parent)
        lock.acquire()
    except Timeout:  # before OSError: filelock's Timeout is one
        raise _busy(str(path)) from None
    except OSError as exc:
        raise RaictlError(f"cannot take the lock {path}: {exc.strerror}; nothing was changed",
                          hint="RAICTL_HOME must be a folder you can write") from None
    try:
        yield
    finally:
        lock.release()


def server_lock_name(database: str) -> str:
    """The MariaDB/MySQL named lock (GET_LOCK, server-wide, at most 64 characters) for one database."""
    return f"raictl.migrate.{database}"[:64]


@contextmanager
def _server_lock(url: str | None, wait: float) -> Iterator[None]:
    """GET_LOCK on a connection of its own for the length of the block: closing that connection ends its
    server session, which releases the lock (as a raictl that dies does). SQLite needs none (its file
    has one home by default). A server that cannot be reached takes no lock: the migration's own first
    step then reports that failure in its usual words."""
    import sqlalchemy as sa

    if url is None or sa.make_url(resolve_url(url)).get_backend_name() != "mysql":
        yield
        return
    engine = _engine(url)
    try:
        connection = engine.connect()
    except sa.exc.DBAPIError:
        connection = None
    try:
        if connection is not None:
            name = server_lock_name(engine.url.database or "")
            got = connection.exec_driver_sql("SELECT GET_LOCK(%s, %s)", (name, math.ceil(wait))).scalar()
            if got != 1:
                raise _busy(f"the database server's lock {name!r}")
        yield
    finally:
        if connection is not None:
            connection.close()  # back to the engine's pool, which dispose() then closes
        engine.dispose()


@dataclass(frozen=True)
class UpgradeResult:
    """The single revision before and after an upgrade (None: not stamped)."""

    before: str | None
    after: str | None
    backup: str | None = None


def resolve_url(url: str) -> str:
    """`url` checked and normalised the way the RAI API reads it (plain mysql:// is pymysql; an unknown
    scheme or an in-memory SQLite database is a RaictlError)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and (parsed.database in (None, "", ":memory:")
                                                  or parsed.query.get("mode") == "memory"):
        raise RaictlError("RAI_DATABASE_URL names an in-memory SQLite database: a migration would vanish with it",
                          hint="use a file, e.g. sqlite:////path/to/rai.db (the default is <home>/rai.db)")
    return parsed.render_as_string(hide_password=False)


def _engine(url: str, writing: bool = False) -> sa.Engine:
    """An engine for one command: pooled, so its steps share a connection (each new MariaDB connection
    costs pymysql a TLS context); the caller disposes it. Writing to SQLite creates the file's folder (a
    fresh checkout has no <home>); reading a SQLite file that does not exist reads an empty database
    without creating it (so a plan or `--dry-run` leaves no trace)."""
    import sqlalchemy as sa

    parsed = sa.make_url(resolve_url(url))
    if parsed.get_backend_name() == "sqlite":
        if writing:
            ensure_sqlite_folder(parsed)
        elif not parsed.query.get("uri") and not Path(parsed.database or "").exists():
            return sa.create_engine("sqlite://")
        return sa.create_engine(parsed)
    parsed = parsed.update_query_dict({"charset": "utf8mb4"})  # as the RAI API connects
    return sa.create_engine(parsed, connect_args={"connect_timeout": MYSQL_CONNECT_TIMEOUT_S})


def database_error(exc: BaseException, url: str, doing: str) -> RaictlError:
    """A driver error as one line naming the database (password masked) and what was being done."""
    reason, hint = driver_problem(exc)
    return RaictlError(f"{doing} on {mask_url(url)} failed: {reason}", hint=hint or UNKNOWN_HINT)


def read_database_state(url: str, script_location: str | None = None) -> SchemaState:
    """The SchemaState of the database at `url`, as a RaictlError when it cannot be reached."""
    engine = _engine(url)
    try:
        return _state_on(engine, script_location)
    finally:
        engine.dispose()


def _state_on(engine: sa.Engine, script_location: str | None) -> SchemaState:
    import sqlalchemy as sa

    from services.rai_api.schema import read_state, script_directory

    try:
        with engine.connect() as connection:
            return read_state(connection, script_directory(script_location))
    except sa.exc.DBAPIError as exc:
        raise database_error(exc, str(engine.url), "reading the schema state") from None


class Refusal(RaictlError):
    """A state a plain upgrade must not touch; it knows where the database stands (for `--json`)."""

    def __init__(self, message: str, hint: str, before: str | None) -> None:
        super().__init__(message, hint)
        self.before = before


def unresolvable_words(state: SchemaState) -> str | None:
    """The one wording of a schema state a plain upgrade must not touch (None for any other state):
    `raictl migrate` refuses with it, doctor's db.revision reports it."""
    revs = ", ".join(repr(r) for r in state.revisions)
    words = {
        "unknown_revision": f"alembic_version holds revision {revs}, which is not among the migration scripts",
        "multiple_rows": f"alembic_version holds several rows ({revs}); an upgrade cannot tell where it stands",
        "multiple_heads": f"the migration scripts have several heads ({', '.join(state.heads)}); "
                          "merge them with `alembic merge heads`",
        "unstamped": "the database has tables but no alembic_version row: its revision is unknown",
        "drift": f"the database is at head but misses {', '.join(state.missing)}",
    }
    return words.get(state.state)


def refuse_unresolvable(state: SchemaState) -> None:
    """Raise the one-line refusal (a Refusal) for a state a plain upgrade must not touch."""
    words = unresolvable_words(state)
    if words:
        raise Refusal(words, REPAIR_HINT, ", ".join(state.revisions) or None)


def upgrade_to_head(settings: Settings, script_location: str | None = None) -> UpgradeResult:
    """Upgrade the database of `settings` to head (backing it up first when it has tables);
    refuse (RaictlError, hint `raictl migrate --repair`) what only a repair can fix."""
    with migrate_lock(settings.home, wait=UP_LOCK_WAIT_S, database_url=settings.database_url):
        plan = plan_upgrade(settings.database_url, script_location, with_sql=False)
        result = apply_plan(plan, settings.home)
    refuse_unresolvable(read_database_state(settings.database_url, script_location))
    return UpgradeResult(plan.before, result.after, result.backup)


def bring_to_head(settings: Settings) -> str:
    """What `up` does before the RAI API starts: the database at head, said in one phrase;
    RaictlError (hint `raictl migrate --repair`) when only a repair can get it there."""
    head = sqlite_at_head(settings.database_url)
    if head:
        return f"database at head ({head})"
    result = upgrade_to_head(settings)
    if result.before == result.after:
        return f"database at head ({result.after})"
    return f"database upgraded {result.before or 'empty'} -> {result.after}"


def sqlite_at_head(url: str) -> str | None:
    """The head revision when an existing SQLite database is stamped with exactly that one head.

    The common `up` on a database already at head then costs a stdlib sqlite3 read instead of
    importing Alembic and SQLAlchemy (~0.5 s before the RAI API could start). Anything else
    (another database, not at head, several heads) returns None: `upgrade_to_head` decides."""
    from migrations import script_heads
    from raishared.database import sqlite_file

    path = sqlite_file(url)
    if path is None or not path.is_file():
        return None
    heads = script_heads()
    if not heads or len(heads) != 1:
        return None
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    return heads[0] if rows == [(heads[0],)] else None


# --- the repair: plan (read only), then apply -------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One step of a plan: what it does, and the exact SQL it runs (for `upgrade`: Alembic's offline SQL)."""

    kind: ActionKind
    detail: str
    statements: tuple[str, ...] = ()

    @property
    def sql(self) -> str:
        return ";\n".join(s.strip().rstrip(";") for s in self.statements if s.strip()) + (
            ";" if self.statements else "")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail, "sql": self.sql}


@dataclass(frozen=True)
class Plan:
    """What a migrate or repair would do to the database at `url`, computed without writing."""

    url: str
    script_location: str | None
    state: str
    revisions: tuple[str, ...]
    head: str | None
    matched: str | None = None
    actions: tuple[Action, ...] = ()
    refused: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    scratch: str | None = None  # the dialect the revisions were built on for the fingerprint

    @property
    def before(self) -> str | None:
        return ", ".join(self.revisions) or None


@dataclass(frozen=True)
class MigrateResult:
    """The outcome rendered by `raictl migrate` (DESIGN.md's JSON document, plus what the fingerprint matched)."""

    before: str | None
    after: str | None
    actions: tuple[Action, ...]
    refused: tuple[str, ...]
    extras: tuple[str, ...]
    backup: str | None
    dry_run: bool
    matched: str | None = None

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_json(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "actions": [a.as_dict() for a in self.actions],
                "refused": list(self.refused), "extras": list(self.extras), "backup": self.backup,
                "dry_run": self.dry_run}


def _ordered_revisions(script: ScriptDirectory) -> list[str]:
    """The history from base to head (a single head: several are refused before this is asked)."""
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _supports_instant(dialect: Dialect) -> bool:
    """Whether `ADD COLUMN ..., ALGORITHM=INSTANT` exists here: MariaDB 10.3.2+, MySQL 8.0.12+."""
    version = tuple(v for v in dialect.server_version_info or () if isinstance(v, int))
    if dialect.name != "mysql":
        return False
    return version >= ((10, 3, 2) if getattr(dialect, "is_mariadb", False) else (8, 0, 12))


@dataclass(frozen=True)
class _Live:
    """What the planner reads from the live database in one connection."""

    state: SchemaState
    shape: Shape
    has_version_table: bool
    dialect: Dialect
    instant: bool


def _read_live(engine: sa.Engine, script: ScriptDirectory) -> _Live:
    import sqlalchemy as sa

    from raictl.fingerprint import live_shape
    from services.rai_api.schema import VERSION_TABLE, read_state

    try:
        with engine.connect() as conn:
            state = read_state(conn, script)
            has_version = sa.inspect(conn).has_table(VERSION_TABLE)
            return _Live(state, live_shape(conn), has_version, conn.dialect, _supports_instant(conn.dialect))
    except sa.exc.DBAPIError as exc:
        raise database_error(exc, str(engine.url), "reading the schema") from None


def offline_upgrade_sql(url: str, script_location: str | None, start: str | None) -> tuple[str, ...]:
    """The exact SQL Alembic runs to upgrade from `start` (None: base) to head, rendered offline."""
    import io

    from alembic import command

    from migrations import alembic_config

    config = alembic_config(url, script_location)
    config.output_buffer = io.StringIO()
    command.upgrade(config, f"{start}:head" if start else "head", sql=True)
    return _split_sql(config.output_buffer.getvalue())


def _split_sql(text: str) -> tuple[str, ...]:
    """Alembic's offline script as statements, without its comments and blank lines."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("--")]
    return tuple(s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";"))


def plan_upgrade(url: str, script_location: str | None = None, with_sql: bool = True) -> Plan:
    """The plain upgrade to head; a state only a repair can fix is refused (RaictlError)."""
    from services.rai_api.schema import script_directory

    url = resolve_url(url)
    script = script_directory(script_location)
    engine = _engine(url)
    try:
        live = _read_live(engine, script)
        state = live.state
        refuse_unresolvable(state)
        if state.state == "behind":
            _refuse_already_applied(live, _snapshots(engine, _ordered_revisions(script), script_location))
    finally:
        engine.dispose()
    head = state.heads[0]
    actions: tuple[Action, ...] = ()
    if state.revision != head:
        sql = offline_upgrade_sql(url, script_location, state.revision) if with_sql else ()
        actions = (Action("upgrade", f"upgrade {state.revision or 'an empty database'} -> {head}", sql),)
    return Plan(url, script_location, state.state, state.revisions, head, actions=actions, extras=state.extras)


def _refuse_already_applied(live: _Live, snapshots: list[Snapshot]) -> None:
    """A database `behind` whose schema already holds what a later revision adds (a migration half
    applied, or alembic_version set back): the upgrade would add it again and fail ("Duplicate column")."""
    state = live.state
    _, target = _target(state, live.shape, snapshots)
    if target != state.revision:
        raise Refusal(f"alembic_version says {state.revision}, but the database already holds what {target} adds: "
                      "an upgrade would add it again", REPAIR_HINT, state.revision)


def plan_repair(url: str, script_location: str | None = None, metadata: sa.MetaData | None = None) -> Plan:
    """Plan the additive repair: fingerprint, re-stamp, finish a half-applied revision, upgrade,
    then add what the models have and the database lacks. Reads only (the scratch database aside)."""
    from raictl.fingerprint import missing_from
    from services.rai_api.models import Base

    url = resolve_url(url)
    live, snapshots = _survey(url, script_location)
    state = live.state
    if state.state == "multiple_heads":
        return Plan(url, script_location, state.state, state.revisions, None, extras=state.extras, refused=(
            f"{unresolvable_words(state)}, then run the repair (raictl cannot choose which history to follow)",))
    head, (matched, target) = state.heads[0], _target(state, live.shape, snapshots)
    by_revision: dict[str | None, dict[str, sa.Table]] = {s.revision: s.tables for s in snapshots}
    metadata = metadata if metadata is not None else Base.metadata
    steps = _Steps(live, metadata)
    steps.fill(missing_from(live.shape, by_revision.get(target, {})), f"revision {target}")
    steps.stamp(state.revisions, target)
    if target != head:
        steps.add(Action("upgrade", f"upgrade {target or 'base'} -> {head}",
                         offline_upgrade_sql(url, script_location, target)))
    predicted = live.shape.merged(by_revision.get(target, {})).merged(by_revision.get(head, {}))
    steps.fill(missing_from(predicted, dict(metadata.tables)), "the models")
    return Plan(url, script_location, state.state, state.revisions, head, matched, tuple(steps.actions),
                tuple(steps.refused), state.extras, snapshots[0].scratch if snapshots else None)


def _survey(url: str, script_location: str | None) -> tuple[_Live, list[Snapshot]]:
    """The live database, and each revision built on a scratch database when the stamp cannot be trusted
    as it is (not needed at head: there only the models matter)."""
    from services.rai_api.schema import script_directory

    script = script_directory(script_location)
    engine = _engine(url)
    try:
        live = _read_live(engine, script)
        if live.state.state in ("ok", "drift", "multiple_heads"):
            return live, []
        return live, _snapshots(engine, _ordered_revisions(script), script_location)
    finally:
        engine.dispose()


def _target(state: SchemaState, shape: Shape, snapshots: list[Snapshot]) -> tuple[str | None, str | None]:
    """(the revision the fingerprint matched, the revision to stamp before upgrading)."""
    from raictl.fingerprint import matched_revision

    if not snapshots:
        return None, state.heads[0]
    matched = matched_revision(shape, snapshots)
    anchor = _anchor(state, matched, snapshots)
    return matched, _half_applied(shape, snapshots, anchor) or anchor


def _snapshots(engine: sa.Engine, revisions: list[str], script_location: str | None) -> list[Snapshot]:
    import sqlalchemy as sa
    from alembic.util import CommandError

    from raictl.fingerprint import build_snapshots

    try:
        return build_snapshots(engine, revisions, script_location)
    except (sa.exc.DBAPIError, CommandError) as exc:
        raise RaictlError(f"building the revisions on a scratch database failed: {_reason(exc)}",
                          hint="check the migration scripts with `alembic history`; nothing was changed") from None


def _anchor(state: SchemaState, matched: str | None, snapshots: list[Snapshot]) -> str | None:
    """Where to stamp: the fingerprint, unless the recorded (known) revision is later than what it matched."""
    order, recorded = [s.revision for s in snapshots], state.revision
    if state.state == "behind" and recorded and (matched is None or order.index(matched) < order.index(recorded)):
        return recorded
    return matched


def _half_applied(shape: Shape, snapshots: list[Snapshot], target: str | None) -> str | None:
    """The revision after `target` when part of what it adds is already live (MySQL has no transactional DDL)."""
    from raictl.fingerprint import Shape

    order = [s.revision for s in snapshots]
    index = order.index(target) + 1 if target else 0
    if index >= len(snapshots):
        return None
    before = snapshots[index - 1].tables if index else {}
    after = snapshots[index].tables
    added = Shape().merged(after).touches(after) - Shape().merged(before).touches(after)
    return snapshots[index].revision if added & shape.touches(after) else None


class _Steps:
    """Accumulates a plan's actions and refusals, rendering each piece's DDL for the live dialect."""

    def __init__(self, live: _Live, metadata: sa.MetaData) -> None:
        self.live, self.metadata = live, metadata
        self.actions: list[Action] = []
        self.refused: list[str] = []

    def add(self, action: Action) -> None:
        self.actions.append(action)

    def fill(self, missing: Iterable[Missing], source: str) -> None:
        """Add each missing piece, preferring the models' definition (the truth) to the reflected one."""
        for piece in (self._prefer_models(m) for m in missing):
            column = piece.column
            if column is not None and not column.nullable and column.server_default is None:
                self.refused.append(
                    f"{piece.name} is NOT NULL without a server default: adding it would fail on SQLite and "
                    "fill existing rows with '' on MariaDB; give it a server_default, or add it nullable "
                    "and backfill in a migration")
                continue
            self.add(Action(ADD_ACTION[piece.kind],
                            f"{piece.name} (missing, from {source})", self._ddl(piece)))

    def _prefer_models(self, piece: Missing) -> Missing:
        from raictl.fingerprint import Missing

        model = self.metadata.tables.get(piece.table.name)
        if model is None or piece.table is model:
            return piece
        if piece.kind == "table" and set(model.columns.keys()) == set(piece.table.columns.keys()):
            return Missing("table", model)
        if piece.column is not None and piece.column.name in model.columns:
            return Missing("column", model, column=model.columns[piece.column.name])
        return piece

    def _ddl(self, piece: Missing) -> tuple[str, ...]:
        from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

        dialect = self.live.dialect
        if piece.kind == "table":
            indexes = sorted(piece.table.indexes, key=lambda i: i.name or "")
            return (str(CreateTable(piece.table).compile(dialect=dialect)).strip(),
                    *(str(CreateIndex(i).compile(dialect=dialect)) for i in indexes))
        if piece.index is not None:
            return (str(CreateIndex(piece.index).compile(dialect=dialect)),)
        assert piece.column is not None  # neither a table nor an index: a column
        table = dialect.identifier_preparer.format_table(piece.table)
        column = CreateColumn(piece.column).compile(dialect=dialect)
        # In place: MariaDB/MySQL add a column at the end as a metadata change, whatever the row count.
        return (f"ALTER TABLE {table} ADD COLUMN {column}" + (", ALGORITHM=INSTANT" if self.live.instant else ""),)

    def stamp(self, revisions: tuple[str, ...], target: str | None) -> None:
        """Point alembic_version at `target` alone, purging any other row (the unknown revision of the log)."""
        from services.rai_api.schema import VERSION_TABLE

        if tuple(revisions) == ((target,) if target else ()):
            return
        statements = []
        if target and not self.live.has_version_table:
            statements.append(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                              "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
        if revisions:
            statements.append(f"DELETE FROM {VERSION_TABLE}")
        if target:
            statements.append(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{target}')")
        replacing = f", replacing {', '.join(revisions)}" if revisions else ""
        self.add(Action("stamp", f"stamp {target or 'base'}{replacing}", tuple(statements)))


def apply_plan(plan: Plan, home: Path | str) -> MigrateResult:
    """Back up, then run the plan's actions in order on one connection. Nothing to do: no backup, no write."""
    if not plan.actions:
        return dry_run_result(plan, dry_run=False)
    engine = _engine(plan.url, writing=True)
    try:
        backup = _backup(engine, plan, home)
        _run_actions(engine, plan, backup)
        after = _state_on(engine, plan.script_location)
    finally:
        engine.dispose()
    return MigrateResult(plan.before, ", ".join(after.revisions) or None, plan.actions, plan.refused,
                         after.extras, backup, False, plan.matched)


def dry_run_result(plan: Plan, dry_run: bool = True) -> MigrateResult:
    """The plan as a result: the database is where it was (`after` == `before`)."""
    return MigrateResult(plan.before, plan.before, plan.actions, plan.refused, plan.extras, None, dry_run,
                         plan.matched)


def _backup(engine: sa.Engine, plan: Plan, home: Path | str) -> str | None:
    from pathlib import Path

    import sqlalchemy as sa

    from raictl.backup import backup_database

    if plan.state == "empty":  # no table yet: nothing to lose
        return None
    try:
        path = backup_database(engine, Path(home))
    except (sa.exc.DBAPIError, OSError) as exc:
        raise RaictlError(f"backing up the database failed, nothing was changed: {_reason(exc)}",
                          hint=f"make sure {Path(home) / 'backups'} is writable and the database reachable")
    return str(path) if path else None


def _reason(exc: BaseException) -> str:
    return driver_problem(exc)[0]


def _run_actions(engine: sa.Engine, plan: Plan, backup: str | None) -> None:
    import sqlalchemy as sa
    from alembic.util import CommandError

    action = None
    try:
        with engine.connect() as conn:
            for action in plan.actions:
                _run_action(conn, action, plan)
            conn.commit()
    except (sa.exc.DBAPIError, CommandError) as exc:
        reason, hint = driver_problem(exc)
        raise RaictlError(f"{action.detail if action else 'connecting'} failed: {reason}",
                          hint=(f"{hint}; " if hint else "") + f"backup: {backup or 'none'}; see what is left with "
                               f"`{REPAIR_HINT} --dry-run` (MariaDB/MySQL keep the DDL of the steps before it)") from None


def _run_action(conn: sa.Connection, action: Action, plan: Plan) -> None:
    import sqlalchemy as sa
    from alembic import command

    from migrations import alembic_config

    if action.kind == "upgrade":
        config = alembic_config(plan.url, plan.script_location)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return
    for statement in action.statements:
        if conn.dialect.paramstyle in ("format", "pyformat"):  # pymysql reads '%' as a placeholder
            statement = statement.replace("%", "%%")
        try:
            conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            # 1845/1846: this server cannot add that column instantly; let it choose the next best way.
            if "ALGORITHM=INSTANT" not in statement or mysql_error_code(exc) not in (1845, 1846):
                raise
            conn.exec_driver_sql(statement.replace(", ALGORITHM=INSTANT", ""))


# --- restoring a backup -------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreResult:
    """What `raictl migrate --restore FILE` put back: rows per table, and the revision it is at."""

    source: str
    rows: dict
    after: str | None

    def as_json(self) -> dict:
        return {"restored": self.source, "rows": self.rows, "after": self.after}


def restore_backup(settings: Settings, source: Path) -> RestoreResult:
    """Replay a backup of <home>/backups/ into the database of `settings`, which must be empty."""
    import sqlalchemy as sa

    from raictl.backup import restore_mysql, restore_sqlite

    if not source.is_file():
        raise RaictlError(f"no backup file {source}", hint=f"backups are in {Path(settings.home) / 'backups'}")
    with migrate_lock(settings.home, database_url=settings.database_url):
        engine = _engine(settings.database_url, writing=True)
        try:
            restore = restore_sqlite if engine.dialect.name == "sqlite" else restore_mysql
            rows = restore(engine, source)
        except sa.exc.DBAPIError as exc:
            raise database_error(exc, settings.database_url, f"restoring {source}") from None
        finally:
            engine.dispose()
    state = read_database_state(settings.database_url)
    return RestoreResult(str(source), rows, ", ".join(state.revisions) or None)
