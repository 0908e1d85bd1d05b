"""the decode pipeline's batch look-ups: meter-id indexes, the latest reading's registers on the meter

Keys, compact formats and telegrams are found by (tenant, meter id) for a batch of ids; the unique
(tenant, manufacturer, meter id) indexes cannot answer that (manufacturer comes first), so every
such query scanned the tenant's rows. Meters keep their latest reading's time and cumulative
registers, so a new reading is compared with them without loading that reading.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_reading_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_registers", sa.JSON(), nullable=True))
    with op.batch_alter_table("meter_keys", schema=None) as batch_op:
        batch_op.create_index("ix_meter_keys_tenant_meter", ["tenant_id", "meter_id"], unique=False)
    with op.batch_alter_table("compact_formats", schema=None) as batch_op:
        batch_op.create_index("ix_compact_formats_tenant_meter", ["tenant_id", "meter_id"], unique=False)
    # (tenant, meter id, manufacturer) answers both the id-only and the full look-ups
    with op.batch_alter_table("telegrams", schema=None) as batch_op:
        batch_op.drop_index("ix_telegrams_tenant_meter")
        batch_op.create_index("ix_telegrams_tenant_meter", ["tenant_id", "meter_id", "manufacturer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("telegrams", schema=None) as batch_op:
        batch_op.drop_index("ix_telegrams_tenant_meter")
        batch_op.create_index("ix_telegrams_tenant_meter", ["tenant_id", "manufacturer", "meter_id"], unique=False)
    with op.batch_alter_table("compact_formats", schema=None) as batch_op:
        batch_op.drop_index("ix_compact_formats_tenant_meter")
    with op.batch_alter_table("meter_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_meter_keys_tenant_meter")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_column("last_registers")
        batch_op.drop_column("last_reading_at")
