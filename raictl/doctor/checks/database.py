"""Database checks: reachable, Alembic revision known and at head, schema versus the models (log step 29:
`Unknown column 'users.remembered_facts'` and `Can't locate revision 3f2724846ff9`).

The state is read with `services.rai_api.schema.read_state` (as `raictl migrate` does), which never
asks Alembic to resolve a revision, so an unknown revision is reported rather than crashing doctor;
one connection, made with a connect timeout, serves all three checks. An SQLite file that does
not exist yet is not created by doctor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check
from raictl.errors import RaictlError
from raictl.migrate import REPAIR_HINT, unresolvable_words
from raishared.database import UNKNOWN_HINT, driver_problem, mask_url, parse_url, sqlite_file

if TYPE_CHECKING:
    import sqlalchemy as sa

    from services.rai_api.schema import SchemaState

CONNECT_TIMEOUT = 2
READ_TIMEOUT = 2  # pymysql drops connect_timeout once connected: a server that never greets would hang
DB_TIMEOUT = 6.0


def _read(url: str) -> tuple[str, SchemaState | RaictlError]:
    """("ok", SchemaState) from one connection made within the timeouts, else ("error", RaictlError)
    naming the database and what to do (the driver's hints, as `raictl migrate` gives them)."""
    import sqlalchemy as sa

    from services.rai_api.schema import read_state, script_directory

    parsed = parse_url(url)  # as the RAI API reads it: plain mysql:// is pymysql; another database is refused
    mysql = parsed.get_backend_name() != "sqlite"
    args = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT} if mysql else {}
    engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool, connect_args=args)
    try:
        with engine.connect() as conn:
            return "ok", _with_indexes(conn, read_state(conn, script_directory()))
    except sa.exc.SQLAlchemyError as exc:
        reason, hint = driver_problem(exc)
        return "error", RaictlError(f"{mask_url(url)}: {reason}", hint=hint or UNKNOWN_HINT)
    finally:
        engine.dispose()


def _with_indexes(conn: sa.Connection, state: SchemaState) -> SchemaState:
    """`state` with the models' indexes the database lacks (what `raictl migrate --repair` would add)."""
    import dataclasses

    from raictl.fingerprint import live_shape, missing_from
    from services.rai_api.models import Base

    lacking = [m.name for m in missing_from(live_shape(conn), Base.metadata.tables) if m.kind == "index"]
    return dataclasses.replace(state, missing_indexes=tuple(lacking))


def database(ctx: CheckContext) -> tuple[str, Any]:
    """("missing", str), ("error", RaictlError) or ("ok", SchemaState): the database read once per run."""
    url = ctx.settings.database_url

    def probe() -> tuple[str, Any]:
        path = sqlite_file(url)
        if path is not None and not path.exists():
            return "missing", f"{path} does not exist yet"
        try:
            return _read(url)
        except RaictlError as exc:  # a URL the RAI API would refuse too
            return "error", RaictlError(exc.message, exc.hint)
    return ctx.memo("db", probe, f"reading the schema state of {mask_url(url)}")


@check("db.reachable", "Database reachable", timeout=DB_TIMEOUT)
def reachable(ctx: CheckContext) -> Result:
    where = mask_url(ctx.settings.database_url)
    status, reason = database(ctx)
    if status == "missing":
        return ctx.ok(f"{reason}: `raictl up` creates it and migrates it to head")
    if isinstance(reason, RaictlError):
        return ctx.fail(reason.message, hint=reason.hint)
    return ctx.ok(f"{where} answers")


def _read_state(ctx: CheckContext) -> SchemaState | Result:
    """The SchemaState when the database was read; a skip Result when it cannot be."""
    status, found = database(ctx)
    if status == "missing":
        return ctx.skip("the database does not exist yet (see db.reachable)")
    if status == "error":
        return ctx.skip("the database is not reachable (see db.reachable)")
    return found


@check("db.revision", "Alembic revision known and at head", timeout=DB_TIMEOUT)
def revision(ctx: CheckContext) -> Result:
    st = _read_state(ctx)
    if isinstance(st, Result):
        return st
    head = ", ".join(st.heads)
    revs = ", ".join(st.revisions)
    if st.state in ("ok", "drift"):
        return ctx.ok(f"at head {head}")
    if st.state == "behind" and not st.missing:  # set back, or half applied: an upgrade would add it twice
        return ctx.fail(f"at {revs}, head is {head}, but the schema already has every table and column of head",
                        hint=REPAIR_HINT)
    if st.state in ("behind", "empty"):
        return ctx.fail(f"at {revs or 'no revision (empty database)'}, head is {head}", hint="raictl migrate")
    return ctx.fail(unresolvable_words(st) or st.state, hint=REPAIR_HINT)  # the words `raictl migrate` refuses with


@check("db.schema", "Schema matches the models", timeout=DB_TIMEOUT)
def schema(ctx: CheckContext) -> Result:
    st = _read_state(ctx)
    if isinstance(st, Result):
        return st
    if st.missing:
        error = "Unknown column" if all(m.startswith("column") for m in st.missing) else "no such table"
        upgrade = st.state in ("behind", "empty")  # the migrations create them: no repair needed
        return ctx.fail(f"missing {', '.join(st.missing)} (queries would fail with \"{error}\")",
                        hint="raictl migrate" if upgrade else REPAIR_HINT,
                        details=[f"missing: {m}" for m in st.missing])
    if st.missing_indexes:
        return ctx.warn(f"missing {', '.join(st.missing_indexes)} (queries work, slower as data grows)",
                        hint=REPAIR_HINT, details=[f"missing: {m}" for m in st.missing_indexes])
    if st.extras:
        return ctx.warn(f"extra {', '.join(st.extras)}: not in the models (kept; raictl never drops)",
                        details=[f"extra: {e}" for e in st.extras])
    return ctx.ok("every table, column and index of the models exists")
