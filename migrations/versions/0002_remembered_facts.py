"""Add users.remembered_facts (JSON, nullable): the column of the troubleshooting log, step 29.

Revision ID: 0002_remembered_facts
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_remembered_facts"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("remembered_facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("remembered_facts")
