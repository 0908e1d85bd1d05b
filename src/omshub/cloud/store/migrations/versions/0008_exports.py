"""Billing exports: export jobs, runs and what each delivered, SAP code mappings, webhook endpoints,
events, deliveries and the event scanner's cursors

Revision ID: 0008_exports
Revises: 0008_custinfo
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_exports"
down_revision = "0008_custinfo"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id"), nullable=False)


def upgrade() -> None:
    _exports()
    _webhooks()


def _exports() -> None:
    op.create_table(
        "export_jobs",
        _id(),
        _tenant(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("directory", sa.String(500), nullable=False),
        sa.Column("host_key", sa.Text(), nullable=False),
        sa.Column("key_nonce", sa.LargeBinary(12), nullable=False),
        sa.Column("key_cipher", sa.LargeBinary(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", Stamp, nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_index("ix_export_jobs_tenant_id", "export_jobs", ["tenant_id"])
    op.create_table(
        "export_runs",
        _id(),
        _tenant(),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("job_id", BigId, sa.ForeignKey("export_jobs.id"), nullable=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp, nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_gz", sa.LargeBinary(), nullable=True),
        sa.Column("target", sa.String(600), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "number"),
    )
    op.create_index("ix_export_runs_tenant_id", "export_runs", ["tenant_id"])
    op.create_index("ix_export_runs_job", "export_runs", ["job_id", "started_at"])
    op.create_table(
        "export_items",
        _id(),
        _tenant(),
        sa.Column("run_id", BigId, sa.ForeignKey("export_runs.id"), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("row_id", BigId, nullable=False),
        sa.Column("version", Stamp, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("previous_run_id", BigId, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_export_items_run_id", "export_items", ["run_id"])
    op.create_index("ix_export_items_row", "export_items", ["tenant_id", "channel", "kind", "row_id"])
    op.create_table(
        "export_settings",
        _id(),
        _tenant(),
        sa.Column("sap", sa.JSON(), nullable=False),
        sa.Column("changed_at", Stamp, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id"),
    )


def _webhooks() -> None:
    op.create_table(
        "webhook_endpoints",
        _id(),
        _tenant(),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_nonce", sa.LargeBinary(12), nullable=False),
        sa.Column("secret_cipher", sa.LargeBinary(), nullable=False),
        sa.Column("retry_for_s", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_endpoints_tenant_id", "webhook_endpoints", ["tenant_id"])
    op.create_table(
        "webhook_events",
        _id(),
        _tenant(),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "key"),
    )
    op.create_index("ix_webhook_events_tenant_id", "webhook_events", ["tenant_id"])
    op.create_table(
        "webhook_deliveries",
        _id(),
        _tenant(),
        sa.Column("endpoint_id", BigId, sa.ForeignKey("webhook_endpoints.id"), nullable=False),
        sa.Column("event_id", BigId, sa.ForeignKey("webhook_events.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_at", Stamp, nullable=False),
        sa.Column("next_at", Stamp, nullable=True),
        sa.Column("last_at", Stamp, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "event_id"),
    )
    op.create_index("ix_webhook_deliveries_tenant_id", "webhook_deliveries", ["tenant_id"])
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_at"])
    op.create_table(
        "event_cursors",
        _id(),
        _tenant(),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("position", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "source"),
    )


def downgrade() -> None:
    for table in ("event_cursors", "webhook_deliveries", "webhook_events", "webhook_endpoints",
                  "export_settings", "export_items", "export_runs", "export_jobs"):  # fmt: skip
        op.drop_table(table)
