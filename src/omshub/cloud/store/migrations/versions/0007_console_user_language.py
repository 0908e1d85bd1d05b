"""A user's language for the console and the API's messages

`users.language`: "de" or "en", chosen by the user; NULL: not chosen (the console then follows the
browser's Accept-Language, and German for a tenant in a German-speaking zone).

Revision ID: 0007_console
Revises: 0007_ops
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_console"
down_revision = "0007_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("language")
