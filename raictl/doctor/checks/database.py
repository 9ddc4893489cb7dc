"""Database checks: reachable, Alembic revision known and at head, schema versus the models (log step 29:
`Unknown column 'users.remembered_facts'` and `Can't locate revision 3f2724846ff9`).

The state is read with `raictl.migrate.read_database_state`, which never asks Alembic to resolve a
revision, so an unknown revision is reported rather than crashing doctor. An SQLite file that does
not exist yet is not created by doctor.
"""

from __future__ import annotations

from pathlib import Path

from raictl.doctor.registry import check
from raictl.settings import mask_url

CONNECT_TIMEOUT = 2
DB_TIMEOUT = 6.0
REPAIR = "raictl migrate --repair"


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for other databases or an in-memory one)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def _connect(url: str) -> str | None:
    """None when `SELECT 1` works within CONNECT_TIMEOUT, else the driver's one-line reason."""
    import sqlalchemy as sa

    args = {"connect_timeout": CONNECT_TIMEOUT} if url.startswith("mysql") else {}
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def reachability(ctx) -> tuple[str, str | None]:
    """("missing" | "ok" | "error", reason), once per run."""
    url = ctx.settings.database_url

    def probe():
        path = sqlite_path(url)
        if path is not None and not path.exists():
            return "missing", f"{path} does not exist yet"
        error = _connect(url)
        return ("error", error) if error else ("ok", None)
    return ctx.memo("db:reach", probe, f"connecting to {mask_url(url)}")


def schema_state(ctx):
    from raictl.migrate import read_database_state

    return ctx.memo("db:state", lambda: read_database_state(ctx.settings.database_url),
                    f"reading the schema state of {mask_url(ctx.settings.database_url)}")


@check("db.reachable", "Database reachable", timeout=DB_TIMEOUT)
def reachable(ctx):
    where = mask_url(ctx.settings.database_url)
    status, reason = reachability(ctx)
    if status == "missing":
        return ctx.ok(f"{reason}: `raictl up` creates it and migrates it to head")
    if status == "error":
        return ctx.fail(f"{where}: {reason}", hint="check RAI_DATABASE_URL and that the database server runs")
    return ctx.ok(f"{where} answers")


def _ready(ctx):
    """A skip Result when the database cannot be read, else None."""
    status, _ = reachability(ctx)
    if status == "missing":
        return ctx.skip("the database does not exist yet (see db.reachable)")
    if status == "error":
        return ctx.skip("the database is not reachable (see db.reachable)")
    return None


@check("db.revision", "Alembic revision known and at head", timeout=DB_TIMEOUT)
def revision(ctx):
    not_ready = _ready(ctx)
    if not_ready:
        return not_ready
    st = schema_state(ctx)
    head = ", ".join(st.heads)
    revs = ", ".join(st.revisions)
    if st.state in ("ok", "drift"):
        return ctx.ok(f"at head {head}")
    if st.state in ("behind", "empty"):
        return ctx.fail(f"at {revs or 'no revision (empty database)'}, head is {head}", hint="raictl migrate")
    messages = {
        "unknown_revision": f"alembic_version holds {revs}, which no migration script knows "
                            "(alembic would fail with \"Can't locate revision\")",
        "multiple_rows": f"alembic_version holds several rows ({revs})",
        "multiple_heads": f"the migration scripts have several heads ({head})",
        "unstamped": "the database has tables but no alembic_version row: its revision is unknown",
    }
    return ctx.fail(messages[st.state], hint=REPAIR)


@check("db.schema", "Schema matches the models", timeout=DB_TIMEOUT)
def schema(ctx):
    not_ready = _ready(ctx)
    if not_ready:
        return not_ready
    st = schema_state(ctx)
    if st.missing:
        return ctx.fail(f"missing {', '.join(st.missing)} (queries would fail with \"Unknown column\")",
                        hint=REPAIR, details=[f"missing: {m}" for m in st.missing])
    if st.extras:
        return ctx.warn(f"extra {', '.join(st.extras)}: not in the models (kept; raictl never drops)",
                        details=[f"extra: {e}" for e in st.extras])
    return ctx.ok("every table and column of the models exists")
