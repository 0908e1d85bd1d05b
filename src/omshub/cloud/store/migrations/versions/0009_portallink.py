"""Customer portal e-mail login link: the link's hash and expiry on the portal account, and whether a
portal session was opened with such a link (it may then set a new password without the old one)

Revision ID: 0009_portallink
Revises: 0009_custinfo3
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_portallink"
down_revision = "0009_custinfo3"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("portal_accounts") as batch:
        batch.add_column(sa.Column("link_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("link_expires_at", Stamp, nullable=True))
    op.create_index("ix_portal_accounts_link_hash", "portal_accounts", ["link_hash"], unique=True)
    with op.batch_alter_table("portal_sessions") as batch:
        batch.add_column(sa.Column("via_link", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("portal_sessions") as batch:
        batch.drop_column("via_link")
    op.drop_index("ix_portal_accounts_link_hash", table_name="portal_accounts")
    with op.batch_alter_table("portal_accounts") as batch:
        batch.drop_column("link_expires_at")
        batch.drop_column("link_hash")
