"""API tokens belong to their creator; failed-login counters for the login throttle

`api_tokens.user_id` now also names the owner of an API token (None: a service token of the
tenant), indexed so disabling a user revokes theirs at once. Tokens created through the API before
this revision get their creator as owner from the audit log (`token.create` by a user of the same
tenant); the others (created by the CLI or by a service token) stay service tokens.
`login_throttle` holds the failure counters of cloud/services/login_throttle.py.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)
    _owners_from_audit()
    op.create_table(
        "login_throttle",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_throttle_last_attempt_at"), ["last_attempt_at"], unique=False)


def _owners_from_audit() -> None:
    """Owner of each API token created through the API: the user (of the token's tenant) named as
    the actor of its `token.create` audit entry."""
    conn = op.get_bind()
    users = {
        (row.tenant_id, row.username): row.id
        for row in conn.execute(sa.text("SELECT id, tenant_id, username FROM users"))
    }
    if not users:
        return
    owners: dict[int, int] = {}
    for row in conn.execute(sa.text("SELECT tenant_id, actor, details FROM audit_log WHERE action = 'token.create'")):
        details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
        user_id = users.get((row.tenant_id, row.actor))
        if user_id is not None and isinstance(details.get("token_id"), int):
            owners[details["token_id"]] = user_id
    for token_id, user_id in owners.items():
        conn.execute(
            sa.text(
                "UPDATE api_tokens SET user_id = :user_id WHERE id = :id AND kind = 'api' "
                "AND user_id IS NULL AND tenant_id = (SELECT tenant_id FROM users WHERE id = :user_id)"
            ),
            {"user_id": user_id, "id": token_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttle_last_attempt_at"))
    op.drop_table("login_throttle")
    # owned API tokens become service tokens again (the revision before knew no owners); those of
    # disabled users end first, as they would have at the disabling
    op.execute(
        "UPDATE api_tokens SET revoked = true WHERE kind = 'api' AND user_id IN "
        "(SELECT id FROM users WHERE disabled = true)"
    )
    op.execute("UPDATE api_tokens SET user_id = NULL WHERE kind = 'api'")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))
