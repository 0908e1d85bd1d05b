"""Customer consents: a customer's recorded consent to export their history to an energy-service
provider they name (FFVAV §5(4), HeizkostenV §6b)

Revision ID: 0009_custinfo3
Revises: 0008_exports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_custinfo3"
down_revision = "0008_exports"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customer_consents",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("occupant_id", BigId, sa.ForeignKey("occupants.id"), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("provider_contact", sa.String(500), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("given_at", Stamp, nullable=False),
        sa.Column("given_by", sa.String(200), nullable=False),
        sa.Column("withdrawn_at", Stamp, nullable=True),
        sa.Column("withdrawn_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_customer_consents_occupant", "customer_consents", ["tenant_id", "occupant_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_consents_occupant", table_name="customer_consents")
    op.drop_table("customer_consents")
