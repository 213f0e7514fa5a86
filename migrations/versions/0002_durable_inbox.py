"""Durable intake: the inbox of received updates and the urgent replies owed for them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 23:48:19.155260
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_lease", ["parked", "lease_until"], unique=False)

    op.create_table(
        "urgent_replies",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("noticed", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'unreachable')", name=op.f("ck_urgent_replies_state")
        ),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_urgent_replies")),
    )
    with op.batch_alter_table("urgent_replies", schema=None) as batch_op:
        batch_op.create_index("ix_urgent_replies_state", ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("urgent_replies", schema=None) as batch_op:
        batch_op.drop_index("ix_urgent_replies_state")

    op.drop_table("urgent_replies")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_lease")

    op.drop_table("inbox")
