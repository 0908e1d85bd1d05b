"""Tables of the customer consumption information (docs/customer-information.md): each tenant's
settings for it, the monthly information record per unit and occupant, its deliveries (e-mail, post)
and the customer portal's accounts, sessions and read log.

Tenant-scoped like every table: each row carries `tenant_id`, and the services filter by it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from omshub.cloud.store.models import Base, UtcDateTime, _id


class CustomerSettings(Base):
    """A tenant's settings of the customer information: supplier name and logo, SMTP server, how an
    e-mail carries the letter, the portal's address, the deadline day, the cohort definition, the
    declared conversion of heat cost allocator units and the annual content blocks. `smtp_password` is
    never returned by the API."""

    __tablename__ = "customer_settings"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), unique=True)
    values: Mapped[dict] = mapped_column(JSON, default=dict)  # only what differs from the defaults
    logo_png: Mapped[str] = mapped_column(Text, default="")  # base64 PNG
    smtp_password: Mapped[str] = mapped_column(String(200), default="")
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_by: Mapped[str] = mapped_column(String(200), default="")


class CustomerRecord(Base):
    """The monthly consumption information of one unit for one occupant's stay (`stay_key`: the
    occupancy's id; 0: nobody lived there in the month) in `month` ("2026-11"): the lines (heat, hot
    water, allocator units) with M−1, the same month last year, the benchmarks and the 13 months of the
    chart. `revision` grows whenever the content changes after the first computation."""

    __tablename__ = "customer_records"
    __table_args__ = (
        UniqueConstraint("unit_id", "stay_key", "month"),
        Index("ix_customer_records_tenant_month", "tenant_id", "month"),
        Index("ix_customer_records_occupant", "occupant_id", "month"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    occupant_id: Mapped[int | None] = mapped_column(ForeignKey("occupants.id"), nullable=True)
    stay_key: Mapped[int] = mapped_column(Integer, default=0)
    month: Mapped[str] = mapped_column(String(7))
    day_from: Mapped[date] = mapped_column(Date)  # the part of the month the record covers
    day_to: Mapped[date] = mapped_column(Date)
    content: Mapped[dict] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64))
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    gaps: Mapped[list] = mapped_column(JSON, default=list)  # why the information is not complete
    revision: Mapped[int] = mapped_column(Integer, default=1)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CustomerDelivery(Base):
    """One channel's delivery of a record: `email` (state pending → sent, or failed after a refusal
    or invalid address; a server that is down leaves it pending with `next_attempt_at`) or `post`
    (printed in a batch). `revision`: the record's revision that was delivered."""

    __tablename__ = "customer_deliveries"
    __table_args__ = (
        UniqueConstraint("record_id", "channel"),
        Index("ix_customer_deliveries_tenant_state", "tenant_id", "state"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    record_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"))
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    errors: Mapped[list] = mapped_column(JSON, default=list)  # every failed attempt: when, what
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PortalAccount(Base):
    """An occupant's customer portal login: invited by e-mail with a one-time link (only its hash is
    kept), then a password (argon2 hash). `locked_at`: no login any more (e.g. after moving out)."""

    __tablename__ = "portal_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    occupant_id: Mapped[int] = mapped_column(ForeignKey("occupants.id"), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200), default="")
    invite_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    language: Mapped[str] = mapped_column(String(2), default="de")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # the e-mail login link (30 minutes, once; only its hash; a new request replaces it)
    link_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True, index=True)
    link_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PortalSession(Base):
    """A logged-in portal session: the hash of its cookie token. `via_link`: opened with an e-mail
    login link (the occupant proved the mailbox: may set a new password without the old one)."""

    __tablename__ = "portal_sessions"
    id: Mapped[int] = _id()
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    via_link: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PortalRead(Base):
    """One read in the customer portal (HeizkostenV §6b: who saw which data when)."""

    __tablename__ = "portal_reads"
    __table_args__ = (Index("ix_portal_reads_tenant_at", "tenant_id", "at"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_accounts.id"))
    what: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class CustomerConsent(Base):
    """A customer's consent to pass their billing and consumption history to an energy-service
    provider they name (FFVAV §5(4); HeizkostenV §6b: any other use needs its own basis): who
    (`occupant_id`), when and how it was given (`given_at`, `given_by`: an operator or the occupant in
    the portal, `evidence`), to whom (`provider`, `provider_contact`) and for what (`scope`: months
    from/to, kinds). Withdrawn: `withdrawn_at`; the row stays as evidence of what was allowed when."""

    __tablename__ = "customer_consents"
    __table_args__ = (Index("ix_customer_consents_occupant", "tenant_id", "occupant_id"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    occupant_id: Mapped[int] = mapped_column(ForeignKey("occupants.id"))
    provider: Mapped[str] = mapped_column(String(200))
    provider_contact: Mapped[str] = mapped_column(String(500), default="")
    scope: Mapped[dict] = mapped_column(JSON, default=dict)  # {"from": "2025-01", "to": "2026-11", "kinds": [...]}
    evidence: Mapped[str] = mapped_column(Text, default="")
    given_at: Mapped[datetime] = mapped_column(UtcDateTime())
    given_by: Mapped[str] = mapped_column(String(200))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    withdrawn_by: Mapped[str] = mapped_column(String(200), default="")
