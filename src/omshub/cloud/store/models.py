"""The head-end's database schema (SQLAlchemy 2 declarative; migrations in cloud/store/migrations).

Every tenant-owned row carries `tenant_id`; every query filters on it (see cloud/api).
Raw uplinks and raw telegrams are immutable: rows are inserted, never updated in their raw
columns. Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from omshub.cloud.store.reading_values import summary_data

DEFAULT_ZONE = "Europe/Berlin"

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database. SQLite keeps no zone, so values are
    normalised to UTC on the way in and get `tzinfo=UTC` back on the way out; naive datetimes
    passed in are taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        elif value is not None and dialect.name != "sqlite":
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON, datetime: UtcDateTime}


def _id() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = _id()
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # IANA zone of the tenant's local dates (import dates without a zone, billing periods)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_ZONE, server_default=DEFAULT_ZONE)
    # zone the tenant's meters' own date-times are in, unless a model or meter says otherwise;
    # NULL: the server setting `meter_timezone` (tenants created before tenants had one, see 0004)
    meter_timezone: Mapped[str | None] = mapped_column(String(64), nullable=True, default=DEFAULT_ZONE)


class MeterModelZone(Base):
    """A tenant's meter time zone for a meter model: a manufacturer, optionally narrowed to a
    version and/or device type (the most specific match wins; a meter's own zone wins over it)."""

    __tablename__ = "meter_model_zones"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    manufacturer: Mapped[str] = mapped_column(String(3))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    device_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | viewer
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # "de" | "en" as the user chose it; None: not chosen (Accept-Language, then the tenant's default)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True, default=None)


class ApiToken(Base):
    """Bearer tokens: login sessions (kind 'session', expiring) and long-lived API tokens for
    billing systems (kind 'api'). Only a SHA-256 of the token is stored; it is shown once.
    `user_id`: the session's user, or the API token's owner (None: a service token of the tenant)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginThrottle(Base):
    """Failed-login counters (cloud/services/login_throttle.py), shared by every head-end process: one row
    per (account, address) pair, account or address, found by `key`, a SHA-256 of scope and
    values (what people type as a username, sometimes a password, is not stored)."""

    __tablename__ = "login_throttle"
    id: Mapped[int] = _id()
    key: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scope: Mapped[str] = mapped_column(String(8))  # pair | account | address
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime())
    last_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    credential_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # reported status (last uplink)
    last_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[dict] = mapped_column(JSON, default=dict)
    applied_config_version: Mapped[int] = mapped_column(Integer, default=0)
    next_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # desired configuration (latest version in gateway_configs)
    desired_config_version: Mapped[int] = mapped_column(Integer, default=0)


class GatewayConfigVersion(Base):
    """Every desired configuration ever set, versioned per gateway."""

    __tablename__ = "gateway_configs"
    __table_args__ = (UniqueConstraint("gateway_id", "version"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(200), default="")


class Operation(Base):
    """A remote configuration change: PENDING -> DELIVERED -> SUCCESSFUL | FAILED, or SUPERSEDED."""

    __tablename__ = "operations"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="config")
    config_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(200), default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    superseded_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expected_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Uplink(Base):
    """One raw uplink body as received, committed before the gateway gets its acknowledgement.
    The gateway credential a CoAP/MQTT envelope carries is overwritten with `*` before it is
    stored (`body_redactions`: the [offset, length] spans; every other byte is as received).
    One row per gateway, seq and content: a gateway that lost its state reuses seqs for new
    telegrams (`content_hash`: ingest.content_hash; NULL in rows stored before it was kept).
    The raw telegrams are stored once: when every frame of the body became a telegram row, their
    bytes are cut out of `body` at `frames_cut_at` (the telegrams, in id order above
    `frames_after_id`, hold them); store/uplink_bodies.full_body puts the body back together."""

    __tablename__ = "uplinks"
    __table_args__ = (UniqueConstraint("gateway_id", "seq", "content_hash", name="uq_uplinks_gateway_seq_content"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    transport: Mapped[str] = mapped_column(String(16), default="https")
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    telegram_count: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[dict] = mapped_column(JSON, default=dict)
    content_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    body_redactions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # when retention emptied `body` (store/retention.py; the telegrams it carried stay stored)
    body_dropped_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # where the frames' bytes were cut out of `body` (NULL: `body` is whole), and an id below all
    # of this uplink's telegrams (ids are handed out after it, in the frames' order)
    frames_cut_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frames_after_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Telegrams that may be decoded again (waiting for a key or a meter, or invalid: a format may come).
# The partial index of these is found only by queries that carry this very predicate, as a constant.
REDECODABLE_STATES = ("no_key", "wrong_key", "unknown_meter", "invalid")
REDECODABLE_SQL = "state IN ('no_key', 'wrong_key', 'unknown_meter', 'invalid')"


# PostgreSQL: the monthly partitions of telegrams (store/partitions.py), no tables of the model
_PARTITION = re.compile(r"telegrams_(p\d{4}_\d{2}|default)")


def include_name(name: str | None, type_: str, parent_names) -> bool:
    """Alembic's filter when comparing the database with the model: partitions are not compared
    (their partitioned table is)."""
    return not (type_ == "table" and name is not None and _PARTITION.fullmatch(name))


class Telegram(Base):
    """One raw telegram (immutable `raw`) and its decode state:
    new | decoded | no_key | wrong_key | unknown_meter | invalid | duplicate."""

    __tablename__ = "telegrams"
    __table_args__ = (
        # ingest's dedup (ON CONFLICT of ingest/uplink.py: the same bytes from the same gateway at
        # the same time). Receive time first: new keys append at the index's right edge instead of
        # landing on a random leaf of a hash-ordered index
        UniqueConstraint("received_at", "gateway_id", "raw_hash", name="uq_telegrams_time_gateway_hash"),
        # decode's batch selection: `WHERE state = 'new' ORDER BY id` (decode/batch.py select_new);
        # partial: the decoded history (nearly every row) is not in it
        Index("ix_telegrams_new", "id", sqlite_where=text("state = 'new'"), postgresql_where=text("state = 'new'")),
        # a meter's telegrams to decode again, without visiting its decoded history (which
        # grows every day); decoded telegrams never enter it
        Index(
            "ix_telegrams_redecodable",
            "tenant_id",
            "meter_id",
            sqlite_where=text(REDECODABLE_SQL),
            postgresql_where=text(REDECODABLE_SQL),
        ),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"))
    uplink_id: Mapped[int] = mapped_column(ForeignKey("uplinks.id"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    link_mode: Mapped[str] = mapped_column(String(8), default="unknown")
    rssi: Mapped[int | None] = mapped_column(Integer, nullable=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # the first 8 bytes of the SHA-256 of `raw` (ingest's dedup key, with receive time and gateway)
    raw_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # link/TPL header as peeked without a key (null when the frame is unreadable)
    manufacturer: Mapped[str | None] = mapped_column(String(3), nullable=True)
    meter_id: Mapped[str | None] = mapped_column(String(8), nullable=True)
    meter_pk: Mapped[int | None] = mapped_column(ForeignKey("meters.id"), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), default="new")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    decoded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class MeteringPoint(Base):
    """The billing key: a place where consumption is measured, across meter swaps."""

    __tablename__ = "metering_points"
    __table_args__ = (UniqueConstraint("tenant_id", "ref"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    ref: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(500), default="")
    customer_ref: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # the unit (models_billing.Unit) whose consumption this point measures; NULL: not assigned yet
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), nullable=True, index=True)


class Meter(Base):
    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("tenant_id", "manufacturer", "meter_id"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    manufacturer: Mapped[str] = mapped_column(String(3))
    meter_id: Mapped[str] = mapped_column(String(8))
    device_type: Mapped[str] = mapped_column(String(32), default="")
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id"), nullable=True)
    key_status: Mapped[str] = mapped_column(String(16), default="missing")  # missing | present | suspect | wrong
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_heard_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_reading_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # of that latest reading: its time and cumulative registers ({quantity: value}), so the decode
    # pipeline compares a new reading with it without loading the reading
    last_reading_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_registers: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # that reading's whole decoded dict (readings keep typed values only): the latest readings route
    # shows it without decoding every meter's telegram again; NULL: decode it again (deferred: the
    # meter pages do not load it)
    last_data: Mapped[dict | None] = mapped_column(JSON, nullable=True, deferred=True)
    # zone of this meter's own date-times (NULL: its model's, else the tenant's)
    meter_timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)


class MeterKey(Base):
    """A meter's AES key, encrypted at rest (AES-GCM under the master key). Never read back
    through the API; only the decode pipeline and the audited key export decrypt it."""

    __tablename__ = "meter_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "manufacturer", "meter_id"),
        Index("ix_meter_keys_tenant_meter", "tenant_id", "meter_id"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    manufacturer: Mapped[str | None] = mapped_column(String(3), nullable=True)
    meter_id: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Installation(Base):
    """A meter installed at a metering point from `installed_at` until `removed_at` (a swap
    closes one and opens the next, with final and initial register values)."""

    __tablename__ = "installations"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"), index=True)
    meter_pk: Mapped[int] = mapped_column(ForeignKey("meters.id"), index=True)
    installed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # "given" (installed_at is the installation time) or "first_reading" (no date was given: the
    # meter counts as installed from its first reading; installed_at is when it was registered)
    installed_from: Mapped[str] = mapped_column(String(16), default="given", server_default="given")
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    initial_values: Mapped[dict] = mapped_column(JSON, default=dict)
    final_values: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Reading(Base):
    """One decoded telegram of a meter, as billing and charts read it: the current registers and
    instantaneous values as typed columns (canonical units: kWh, m3, HCA units, kW, m3/h, degrees
    C), the status byte and error flags, the meter's own clock text and the stored (due-date,
    month-end) values. The full uniform dict is decoded again from the raw telegram on demand
    (decode/redecode.py); `data` gives the part these columns hold (store/reading_values.py).
    `telegram_id` is NULL once retention removed the raw telegram (store/retention.py)."""

    __tablename__ = "readings"
    __table_args__ = (
        # a meter's readings by time: its history, consumption's registers at a date, and decode's
        # duplicate check (the meter's readings within an hour of the new one, decode/rows.py)
        Index("ix_readings_meter_time", "meter_pk", "timestamp"),
        # exports and retention: a tenant's readings of a period; appends in time order
        Index("ix_readings_tenant_time", "tenant_id", "timestamp"),
        # retention: the readings of the telegrams it removes (their telegram_id set NULL).
        # PostgreSQL: BRIN — readings are written in telegram id order, a few kB for millions
        Index("ix_readings_telegram", "telegram_id", postgresql_using="brin"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    meter_pk: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    # the telegram it was decoded from: no foreign key and no unique index (a partitioned
    # telegrams table has no unique key on id alone, and an index only to enforce what the decode
    # batch already guarantees — a telegram is claimed while `new` and leaves `new` in the same
    # transaction — cost 20 B per reading); it may point at a telegram retention removed
    telegram_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # hash of (access number, plaintext records): a repeat of the same transmission (another
    # gateway, a repeater) has the same one and is filed as a `duplicate` telegram (8 bytes; 16 in
    # rows stored before 0007, compared by their first 8)
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    energy: Mapped[float | None] = mapped_column(Float, nullable=True)
    volume: Mapped[float | None] = mapped_column(Float, nullable=True)
    hca: Mapped[float | None] = mapped_column(Float, nullable=True)
    power: Mapped[float | None] = mapped_column(Float, nullable=True)
    volume_flow: Mapped[float | None] = mapped_column(Float, nullable=True)
    flow_temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    return_temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_flags: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    # the meter's own current date-time text and its version byte: re-timing after a zone change
    meter_clock: Mapped[str | None] = mapped_column(String(40), nullable=True)
    meter_version: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    # the stored registers and their dates, packed (reading_values.stored_values reads them)
    stored: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    @property
    def data(self) -> dict:
        """`status` and the current records of the typed columns (reading_values.summary_data)."""
        return summary_data(self)


class CompactFormat(Base):
    """Per-meter compact-frame formats learned from full frames."""

    __tablename__ = "compact_formats"
    __table_args__ = (
        UniqueConstraint("tenant_id", "manufacturer", "meter_id", "signature"),
        Index("ix_compact_formats_tenant_meter", "tenant_id", "meter_id"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    manufacturer: Mapped[str] = mapped_column(String(3))
    meter_id: Mapped[str] = mapped_column(String(8))
    signature: Mapped[int] = mapped_column(Integer)
    fmt: Mapped[bytes] = mapped_column(LargeBinary)


class Alarm(Base):
    """kind: gateway_missed_contact | gateway_seq_reset | meter_silent | meter_error | wrong_key |
    negative_consumption. Active until its cause goes away (cleared_at set)."""

    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_tenant_active", "tenant_id", "active"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(16))  # gateway | meter
    subject_id: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # acknowledged by a person (who, when, a note; audited): it stays active until its cause goes away
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ack_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEntry(Base):
    """Who did what security-relevant thing (key import/export, token creation, ...)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class RetentionPolicy(Base):
    """How long a tenant keeps one kind of data (store/retention.py): `uplink_bodies`,
    `telegrams` or `readings`, in days. No row: the defaults of retention.DEFAULT_DAYS."""

    __tablename__ = "retention_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "kind"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(16))
    keep_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
