"""The inbox says which process holds each update, so another keeps one chat's order.

With several processes behind nginx, one chat's next update can reach a process while another
is still handling the chat's previous one: the newer waits while an older update of its chat
is held by another process (or by none, until it is taken over).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 06:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_inbox_chat", ["chat_id", "update_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_chat")
        batch_op.drop_column("owner")
