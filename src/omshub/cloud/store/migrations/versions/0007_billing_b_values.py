"""Billing values: register values at boundaries with their origin, period consumption, and the
review queue of validation findings, each tenant's validation settings

Revision ID: 0007_billing_b
Revises: 0007_billing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_billing_b"
down_revision = "0007_billing"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def _common() -> list:
    return [
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("metering_point_id", BigId, sa.ForeignKey("metering_points.id"), nullable=False),
        sa.Column("quantity", sa.String(16), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "billing_values",
        *_common(),
        sa.Column("boundary_at", Stamp, nullable=False),
        sa.Column("boundary_day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("quality", sa.String(16), nullable=False),
        sa.Column("code", sa.String(2), nullable=True),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("computed_value", sa.Float(), nullable=True),
        sa.Column("computed_origin", sa.String(16), nullable=False),
        sa.Column("computed_details", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("computed_at", Stamp, nullable=False),
        sa.Column("changed_at", Stamp, nullable=False),
        sa.Column("exported_at", Stamp, nullable=True),
        sa.Column("export_stale", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("metering_point_id", "quantity", "boundary_at"),
    )
    op.create_index("ix_billing_values_tenant_time", "billing_values", ["tenant_id", "boundary_at"])
    op.create_table(
        "billing_consumption",
        *_common(),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("start_at", Stamp, nullable=False),
        sa.Column("end_at", Stamp, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("quality", sa.String(16), nullable=False),
        sa.Column("runs", sa.JSON(), nullable=False),
        sa.Column("computed_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("metering_point_id", "quantity", "period"),
    )
    op.create_index("ix_billing_consumption_tenant_id", "billing_consumption", ["tenant_id"])
    op.create_table(
        "billing_findings",
        *_common(),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("german", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("decided_at", Stamp, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("metering_point_id", "quantity", "period", "rule"),
    )
    op.create_index("ix_billing_findings_tenant_state", "billing_findings", ["tenant_id", "state"])
    op.create_table(
        "billing_settings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("changed_at", Stamp, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id"),
    )


def downgrade() -> None:
    for table in ("billing_settings", "billing_findings", "billing_consumption", "billing_values"):
        op.drop_table(table)
