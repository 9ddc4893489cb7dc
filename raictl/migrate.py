"""Database migrations: upgrade to head, and the additive repair of `raictl migrate --repair`.

The core returns values and prints nothing; `raictl/commands/migrate.py` renders them. SQLAlchemy
and Alembic are imported inside the functions: this module sits on the CLI's start-up path.
"""

from __future__ import annotations

from dataclasses import dataclass

from raictl.errors import RaictlError

REPAIR_HINT = "raictl migrate --repair"


@dataclass(frozen=True)
class UpgradeResult:
    """The single revision before and after an upgrade (None: not stamped)."""

    before: str | None
    after: str | None


def _engine(url: str):
    import sqlalchemy as sa

    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def database_error(exc, url: str, doing: str) -> RaictlError:
    """A driver error as one line naming the database (password masked) and what was being done."""
    from raictl.settings import mask_url

    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return RaictlError(f"{doing} on {mask_url(url)} failed: {reason}",
                       hint="check RAI_DATABASE_URL and that the database server is running")


def read_database_state(url: str, script_location: str | None = None):
    """The SchemaState of the database at `url`, as a RaictlError when it cannot be reached."""
    import sqlalchemy as sa

    from services.rai_api.schema import read_state, script_directory

    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return read_state(connection, script_directory(script_location))
    except sa.exc.DBAPIError as exc:
        raise database_error(exc, url, "reading the schema state") from None
    finally:
        engine.dispose()


def refuse_unresolvable(state) -> None:
    """Raise the one-line refusal for a state a plain upgrade must not touch."""
    revs = ", ".join(repr(r) for r in state.revisions)
    reasons = {
        "unknown_revision": f"alembic_version holds revision {revs}, which is not among the migration scripts",
        "multiple_rows": f"alembic_version holds several rows ({revs}); an upgrade cannot tell where it stands",
        "multiple_heads": f"the migration scripts have several heads ({', '.join(state.heads)})",
        "unstamped": "the database has tables but no alembic_version row: its revision is unknown",
        "drift": f"the database is at head but misses {', '.join(state.missing)}",
    }
    if state.state in reasons:
        hint = ("merge the heads with `alembic merge heads`, then run raictl migrate"
                if state.state == "multiple_heads" else REPAIR_HINT)
        raise RaictlError(reasons[state.state], hint=hint)


def upgrade_to_head(settings, script_location: str | None = None) -> UpgradeResult:
    """Upgrade the database of `settings` to head; refuse (RaictlError) what only a repair can fix."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.util import CommandError

    from migrations import alembic_config

    url = settings.database_url
    before = read_database_state(url, script_location)
    refuse_unresolvable(before)
    try:
        command.upgrade(alembic_config(url, script_location), "head")
    except (sa.exc.DBAPIError, CommandError) as exc:
        raise RaictlError(f"upgrading from {before.revision or 'an empty database'} to head failed: "
                          f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}",
                          hint=REPAIR_HINT) from None
    after = read_database_state(url, script_location)
    refuse_unresolvable(after)
    return UpgradeResult(before.revision, after.revision)
