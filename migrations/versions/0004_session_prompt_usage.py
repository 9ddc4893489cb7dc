"""A session's own system prompt, and the tokens each assistant message cost (issue 16).

Adds chat_sessions.system_prompt (TEXT, nullable: the session's instructions, sent on every turn;
NULL means the default persona) and messages.input_tokens / messages.output_tokens (INTEGER,
nullable: what the engine reported for the reply; NULL for user messages and for engines that
report no tokens, like the mock). Additive only, so `raictl migrate --repair` can add any of them.

Revision ID: 0004_session_prompt_usage
Revises: 0003_hardening
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_session_prompt_usage"
down_revision = "0003_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chat_sessions", sa.Column("system_prompt", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("input_tokens", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("output_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("output_tokens")
        batch.drop_column("input_tokens")
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_column("system_prompt")
