"""Billing: each metering point's consumption per occupant segment of a closed period

Revision ID: 0008_billing2
Revises: 0008_store2
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_billing2"
down_revision = "0008_store2"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "billing_segments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("metering_point_id", BigId, sa.ForeignKey("metering_points.id"), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("occupancy_id", sa.Integer(), nullable=True),
        sa.Column("quantity", sa.String(16), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("start_at", Stamp, nullable=False),
        sa.Column("end_at", Stamp, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("code", sa.String(2), nullable=True),
        sa.Column("method", sa.String(24), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("computed_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("metering_point_id", "quantity", "period", "first_day"),
    )
    op.create_index("ix_billing_segments_unit_period", "billing_segments", ["unit_id", "period"])
    op.create_index("ix_billing_segments_occupancy", "billing_segments", ["occupancy_id"])


def downgrade() -> None:
    op.drop_table("billing_segments")
