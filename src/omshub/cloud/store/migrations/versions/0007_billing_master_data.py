"""Billing master data: properties, units, occupants, occupancies, weather stations and their days;
metering points belong to a unit

Revision ID: 0007_billing
Revises: 0007_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_billing"
down_revision = "0007_console"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False, index=True)


def upgrade() -> None:
    _weather()
    _properties_and_units()
    _occupants()
    # ADD COLUMN, not a batch copy of the table: on SQLite a copy of metering_points fails while
    # installations refer to it (foreign keys are on)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE metering_points ADD COLUMN unit_id INTEGER REFERENCES units (id)")
    else:
        op.add_column("metering_points", sa.Column("unit_id", BigId, nullable=True))
        op.create_foreign_key("fk_metering_points_unit_id", "metering_points", "units", ["unit_id"], ["id"])
    op.create_index("ix_metering_points_unit_id", "metering_points", ["unit_id"])


def _weather() -> None:
    op.create_table(
        "weather_stations",
        _id(),
        _tenant(),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "code"),
    )
    op.create_table(
        "weather_days",
        _id(),
        sa.Column("station_id", BigId, sa.ForeignKey("weather_stations.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("mean_c", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("station_id", "day"),
    )


def _properties_and_units() -> None:
    op.create_table(
        "properties",
        _id(),
        _tenant(),
        sa.Column("ref", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("street", sa.String(200), nullable=False),
        sa.Column("postcode", sa.String(10), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("heating_system", sa.String(32), nullable=False),
        sa.Column("energy_carrier", sa.String(32), nullable=False),
        sa.Column("size_class", sa.String(16), nullable=False),
        sa.Column("due_month", sa.Integer(), nullable=False),
        sa.Column("due_day", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("weather_station_id", BigId, sa.ForeignKey("weather_stations.id"), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "ref"),
    )
    op.create_table(
        "units",
        _id(),
        _tenant(),
        sa.Column("property_id", BigId, sa.ForeignKey("properties.id"), nullable=False, index=True),
        sa.Column("ref", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("usage", sa.String(16), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("property_id", "ref"),
    )


def _occupants() -> None:
    op.create_table(
        "occupants",
        _id(),
        _tenant(),
        sa.Column("customer_ref", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(50), nullable=False),
        sa.Column("postal_address", sa.String(500), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "customer_ref"),
    )
    op.create_table(
        "occupancies",
        _id(),
        _tenant(),
        sa.Column("unit_id", BigId, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("occupant_id", BigId, sa.ForeignKey("occupants.id"), nullable=False, index=True),
        sa.Column("moved_in", sa.Date(), nullable=False),
        sa.Column("moved_out", sa.Date(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_occupancies_unit_in", "occupancies", ["unit_id", "moved_in"])


def downgrade() -> None:
    with op.batch_alter_table("metering_points", schema=None) as batch_op:
        batch_op.drop_index("ix_metering_points_unit_id")
        batch_op.drop_constraint("fk_metering_points_unit_id", type_="foreignkey")
        batch_op.drop_column("unit_id")
    for table in ("occupancies", "occupants", "units", "properties", "weather_days", "weather_stations"):
        op.drop_table(table)
