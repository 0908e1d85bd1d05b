"""time zones: tenants' local and meter time zones, per-model and per-meter overrides; installations
that count from the meter's first reading

Existing tenants keep what their readings were decoded with: `tenants.meter_timezone` stays NULL,
which means the server setting `meter_timezone` (default UTC), so nothing stored changes meaning
and new readings are timed like the old ones until an admin sets the tenant's zone (and, if
wanted, re-times the stored readings: POST /api/v1/tenant/time/retime). Their local zone
(`tenants.timezone`, for dates given without a zone) becomes Europe/Berlin: such dates were refused
before, so no stored value depends on it.

Installations that a meter import created without a date (installed_at is exactly the meter's
registration time and no initial values were given: only the import wrote such rows) are marked
`first_reading`: the meter counts as installed from its first reading, so the consumption before
the import is no longer lost. All other installations keep their date (`given`).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=False, server_default="Europe/Berlin"))
        batch.add_column(sa.Column("meter_timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("meters") as batch:
        batch.add_column(sa.Column("meter_timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("installations") as batch:
        batch.add_column(sa.Column("installed_from", sa.String(length=16), nullable=False, server_default="given"))
    op.create_table(
        "meter_model_zones",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("manufacturer", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("device_type", sa.String(length=32), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_meter_model_zones_tenant_id"), "meter_model_zones", ["tenant_id"], unique=False)
    empty = "initial_values = '{}'" if op.get_bind().dialect.name == "sqlite" else "initial_values::text = '{}'"
    op.execute(
        "UPDATE installations SET installed_from = 'first_reading' WHERE "
        + empty
        + " AND installed_at = (SELECT created_at FROM meters WHERE meters.id = installations.meter_pk)"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_meter_model_zones_tenant_id"), table_name="meter_model_zones")
    op.drop_table("meter_model_zones")
    with op.batch_alter_table("installations") as batch:
        batch.drop_column("installed_from")
    with op.batch_alter_table("meters") as batch:
        batch.drop_column("meter_timezone")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("meter_timezone")
        batch.drop_column("timezone")
