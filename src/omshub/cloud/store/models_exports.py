"""Tables of the billing exports (docs/exports.md): export runs and what each delivered, scheduled
export jobs (SFTP), a tenant's code mappings, webhook endpoints, their events and deliveries.

Every row carries `tenant_id` and the services filter by it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omshub.cloud.store.models import Base, BigId, UtcDateTime, _id


class ExportJob(Base):
    """A scheduled export: which format and scope, when (cron in a time zone), and where to (SFTP).
    The private key is kept encrypted with the key store's master key (`key_nonce`, `key_cipher`)."""

    __tablename__ = "export_jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(16))  # v1-csv | v1-json | sap-csv | sap-json
    scope: Mapped[str] = mapped_column(String(32), default="previous_month")  # or a period "2026-11"
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    username: Mapped[str] = mapped_column(String(100))
    directory: Mapped[str] = mapped_column(String(500), default=".")
    host_key: Mapped[str] = mapped_column(Text, default="")  # "ssh-ed25519 AAAA…": the server must show it
    key_nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    key_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ExportRun(Base):
    """One export: a delivery by a job, an export asked for through the API, or a pull. `number`
    counts a tenant's runs (the export id in the files: "<tenant>-<number>"). The file is kept
    (gzip) for download and for the evidence of what was delivered."""

    __tablename__ = "export_runs"
    __table_args__ = (UniqueConstraint("tenant_id", "number"), Index("ix_export_runs_job", "job_id", "started_at"))
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(40))  # "job:<id>" | "manual"
    job_id: Mapped[int | None] = mapped_column(ForeignKey("export_jobs.id"), nullable=True)
    format: Mapped[str] = mapped_column(String(16))
    scope: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="running")  # running | ok | empty | failed
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    file_name: Mapped[str] = mapped_column(String(200), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    content_gz: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    target: Mapped[str] = mapped_column(String(600), default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(200), default="")


class ExportItem(Base):
    """A value an export run delivered: the boundary value or consumption row, the version delivered
    (its `changed_at`/`computed_at` and value), why (`new` | `changed`), and the earlier delivery of
    the same row on the same channel it replaces."""

    __tablename__ = "export_items"
    __table_args__ = (Index("ix_export_items_row", "tenant_id", "channel", "kind", "row_id"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("export_runs.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))  # value | consumption
    row_id: Mapped[int] = mapped_column(BigId)
    version: Mapped[datetime] = mapped_column(UtcDateTime())
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(String(16))  # new | changed
    previous_run_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class ExportSettings(Base):
    """A tenant's code mappings for the SAP IS-U upload (docs/exports.md §SAP): register numbers per
    quantity, reading types, notes; only what differs from the defaults is stored."""

    __tablename__ = "export_settings"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), unique=True)
    sap: Mapped[dict] = mapped_column(JSON, default=dict)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_by: Mapped[str] = mapped_column(String(200), default="")


class WebhookEndpoint(Base):
    """Where a tenant's events are POSTed: URL, the events wanted, the HMAC secret (encrypted with the
    master key) and how long a delivery is retried before it goes to the dead letters."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    url: Mapped[str] = mapped_column(String(1000))
    events: Mapped[list] = mapped_column(JSON, default=list)  # [] = every event
    secret_nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    secret_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    retry_for_s: Mapped[int] = mapped_column(Integer, default=86400)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookEvent(Base):
    """An event of a tenant (period closed, value changed after export, alarm raised or cleared, …).
    `key` makes emitting idempotent: the same happening emitted twice is one event."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookDelivery(Base):
    """One event to one endpoint: pending (next attempt at `next_at`), delivered, or dead (retried
    for the endpoint's `retry_for_s` without success; replay makes it pending again)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "state", "next_at"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class EventCursor(Base):
    """How far the event scanner has looked at a source (alarms, closed periods, changed values),
    per tenant: the largest id or time seen."""

    __tablename__ = "event_cursors"
    __table_args__ = (UniqueConstraint("tenant_id", "source"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    source: Mapped[str] = mapped_column(String(32))
    position: Mapped[str] = mapped_column(String(64), default="")
