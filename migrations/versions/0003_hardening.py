"""Hardening (issue 13): user ids never reused on SQLite, long replies stored on MariaDB, failed logins counted.

- `users` on SQLite is rebuilt with AUTOINCREMENT: without it SQLite gives a deleted highest id to the
  next account (MariaDB/MySQL never reuse an AUTO_INCREMENT value).
- `messages.content` becomes MEDIUMTEXT on MariaDB/MySQL: TEXT holds 64 KiB, and a longer reply from
  the model was lost after it was generated (SQLite's TEXT has no such limit).
- `login_failures` counts failed logins per username and per client address, shared by every RAI API
  process of the database (429 `rate_limited`).

Revision ID: 0003_hardening
Revises: 0002_remembered_facts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003_hardening"
down_revision = "0002_remembered_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        # Batch mode copies the table into a new one and drops the old: with foreign keys enforced, that
        # drop would delete every chat session (ON DELETE CASCADE). raictl and Alembic's env never turn
        # them on for a migration; refuse rather than lose data if someone did.
        if not op.get_context().as_sql and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise RuntimeError("revision 0003 rebuilds `users` on SQLite: run it with PRAGMA foreign_keys=OFF")
        # Online, the live table is reflected (columns a repair kept are copied too); offline (`--sql`,
        # raictl's plan) batch mode needs the table as revision 0002 left it.
        copy_from = _users_at_0002() if op.get_context().as_sql else None
        with op.batch_alter_table("users", recreate="always", copy_from=copy_from,
                                  table_kwargs={"sqlite_autoincrement": True}):
            pass
    elif dialect in ("mysql", "mariadb"):
        op.alter_column("messages", "content", existing_type=sa.Text(), type_=mysql.MEDIUMTEXT(),
                        existing_nullable=False)
    # Last: on MariaDB/MySQL (no transactional DDL) the table's presence means the steps above ran.
    op.create_table(
        "login_failures",
        sa.Column("subject", sa.String(120), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
    )


def _users_at_0002() -> sa.Table:
    return sa.Table(
        "users", sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("remembered_facts", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
    dialect = op.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        op.alter_column("messages", "content", existing_type=mysql.MEDIUMTEXT(), type_=sa.Text(),
                        existing_nullable=False)
    elif dialect == "sqlite":
        with op.batch_alter_table("users", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
