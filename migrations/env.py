"""Alembic environment: the database comes from raictl Settings unless the caller gave one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from services.rai_api.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """`-x url=...` on the alembic command line, else sqlalchemy.url (our code sets it), else Settings."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from raishared.settings import load_settings

    return load_settings().database_url


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True,
                      render_as_batch=True, **kwargs)


def _run_on(connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # our code's: raictl migrate and the fingerprint's scratch database
        _run_on(connection)
        return
    from alembic.util import CommandError

    from raishared.database import ensure_sqlite_folder, parse_url
    from raishared.errors import HintedError

    try:
        url = parse_url(_url())
        ensure_sqlite_folder(url)
    except HintedError as exc:  # the alembic CLI prints a CommandError as one `FAILED:` line
        raise CommandError(str(exc)) from None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run_on(connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
