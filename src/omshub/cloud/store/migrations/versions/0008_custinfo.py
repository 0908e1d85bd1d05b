"""Customer consumption information: each tenant's settings, the monthly records per unit and
occupant, their deliveries, and the customer portal's accounts, sessions and read log

Revision ID: 0008_custinfo
Revises: 0008_console2
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_custinfo"
down_revision = "0008_console2"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False)


def upgrade() -> None:
    _information()
    _portal()


def _information() -> None:
    op.create_table(
        "customer_settings",
        _id(),
        _tenant(),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("logo_png", sa.Text(), nullable=False),
        sa.Column("smtp_password", sa.String(200), nullable=False),
        sa.Column("changed_at", Stamp, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id"),
    )
    op.create_table(
        "customer_records",
        _id(),
        _tenant(),
        sa.Column("property_id", BigId, sa.ForeignKey("properties.id"), nullable=False),
        sa.Column("unit_id", BigId, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("occupant_id", BigId, sa.ForeignKey("occupants.id"), nullable=True),
        sa.Column("stay_key", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("day_from", sa.Date(), nullable=False),
        sa.Column("day_to", sa.Date(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("computed_at", Stamp, nullable=False),
        sa.Column("changed_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id", "stay_key", "month"),
    )
    op.create_index("ix_customer_records_tenant_month", "customer_records", ["tenant_id", "month"])
    op.create_index("ix_customer_records_occupant", "customer_records", ["occupant_id", "month"])
    op.create_table(
        "customer_deliveries",
        _id(),
        _tenant(),
        sa.Column("record_id", BigId, sa.ForeignKey("customer_records.id"), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Stamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("sent_at", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "channel"),
    )
    op.create_index("ix_customer_deliveries_tenant_state", "customer_deliveries", ["tenant_id", "state"])


def _portal() -> None:
    op.create_table(
        "portal_accounts",
        _id(),
        _tenant(),
        sa.Column("occupant_id", BigId, sa.ForeignKey("occupants.id"), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("invite_hash", sa.String(64), nullable=True),
        sa.Column("invite_expires_at", Stamp, nullable=True),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("locked_at", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "email"),
        sa.UniqueConstraint("occupant_id"),
        sa.UniqueConstraint("invite_hash"),
    )
    op.create_index("ix_portal_accounts_tenant_id", "portal_accounts", ["tenant_id"])
    op.create_table(
        "portal_sessions",
        _id(),
        sa.Column("account_id", BigId, sa.ForeignKey("portal_accounts.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("expires_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_portal_sessions_account_id", "portal_sessions", ["account_id"])
    op.create_table(
        "portal_reads",
        _id(),
        _tenant(),
        sa.Column("account_id", BigId, sa.ForeignKey("portal_accounts.id"), nullable=False),
        sa.Column("what", sa.String(200), nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portal_reads_tenant_at", "portal_reads", ["tenant_id", "at"])


def downgrade() -> None:
    for table in (
        "portal_reads",
        "portal_sessions",
        "portal_accounts",
        "customer_deliveries",
        "customer_records",
        "customer_settings",
    ):
        op.drop_table(table)
