"""FAQ query ids are chosen by the bot (random 63-bit), not by a sequence.

The id goes into the answer's buttons, so it must be known before the row is written; the row
is then written with the update's last commit. SQLite's INTEGER primary key is 64-bit already.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 06:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("faq_queries", "id", type_=sa.BigInteger(), existing_nullable=False)
    op.alter_column("faq_queries", "id", server_default=None)
    op.execute("DROP SEQUENCE IF EXISTS faq_queries_id_seq CASCADE")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Ids chosen at random do not fit a 32-bit column: they are renumbered in order.
    op.execute("CREATE SEQUENCE faq_queries_id_seq OWNED BY faq_queries.id")
    op.execute("UPDATE faq_queries SET id = -id")  # no new number meets an old one midway
    op.execute(
        "UPDATE faq_queries SET id = n.rank FROM (SELECT id, row_number() OVER "
        "(ORDER BY created_at, id) AS rank FROM faq_queries) AS n WHERE faq_queries.id = n.id"
    )
    op.execute(
        "SELECT setval('faq_queries_id_seq', COALESCE((SELECT max(id) FROM faq_queries), 0) + 1,"
        " false)"
    )
    op.alter_column(
        "faq_queries",
        "id",
        type_=sa.Integer(),
        existing_nullable=False,
        server_default=sa.text("nextval('faq_queries_id_seq'::regclass)"),
    )
