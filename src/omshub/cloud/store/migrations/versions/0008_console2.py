"""Alarm acknowledgements

`alarms.acknowledged_at`, `acknowledged_by`, `ack_note`: a person acknowledged the alarm (when, who,
with a note); NULL: not acknowledged. Plain ADD COLUMN (nullable), on SQLite and PostgreSQL alike.

Revision ID: 0008_console2
Revises: 0008_billing2
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_console2"
down_revision = "0008_billing2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alarms", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarms", sa.Column("acknowledged_by", sa.String(length=200), nullable=True))
    op.add_column("alarms", sa.Column("ack_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_column("ack_note")
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
