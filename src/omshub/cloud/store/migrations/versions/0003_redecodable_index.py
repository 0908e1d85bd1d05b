"""a partial index of the telegrams that may be decoded again, by (tenant, meter id)

Re-queueing a meter's waiting telegrams (a key import, a meter registered, a compact format
learned) looked them up through (tenant, meter id, manufacturer) and so visited every telegram the
meter ever sent: a cost that grew every day. Decoded telegrams never enter this index.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

REDECODABLE_SQL = "state IN ('no_key', 'wrong_key', 'unknown_meter', 'invalid')"  # as models.REDECODABLE_SQL


def upgrade() -> None:
    op.create_index(
        "ix_telegrams_redecodable",
        "telegrams",
        ["tenant_id", "meter_id"],
        unique=False,
        sqlite_where=sa.text(REDECODABLE_SQL),
        postgresql_where=sa.text(REDECODABLE_SQL),
    )


def downgrade() -> None:
    op.drop_index("ix_telegrams_redecodable", table_name="telegrams")
