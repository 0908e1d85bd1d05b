"""Tables of the billing master data: properties, their units, occupants and their occupancies, and
weather stations with their daily mean temperatures (docs/billing.md §Master data).

Tenant-scoped like every table: each row carries `tenant_id`, and the services filter by it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omshub.cloud.store.models import Base, UtcDateTime, _id


class Property(Base):
    """A property (Liegenschaft): one building or estate billed together, with the facts the
    consumption comparisons group by (energy carrier, building size class) and its billing due date."""

    __tablename__ = "properties"
    __table_args__ = (UniqueConstraint("tenant_id", "ref"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    ref: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    street: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(10), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2), default="DE")
    heating_system: Mapped[str] = mapped_column(String(32), default="")
    energy_carrier: Mapped[str] = mapped_column(String(32), default="district_heat")
    size_class: Mapped[str] = mapped_column(String(16), default="")  # building size class, e.g. "3-6"
    due_month: Mapped[int] = mapped_column(Integer, default=12)
    due_day: Mapped[int] = mapped_column(Integer, default=31)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    weather_station_id: Mapped[int | None] = mapped_column(ForeignKey("weather_stations.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Unit(Base):
    """A unit (Nutzeinheit) of a property: a flat or a commercial unit, with its living area."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("property_id", "ref"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id"), index=True)
    ref: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    area_m2: Mapped[float] = mapped_column(Float)
    usage: Mapped[str] = mapped_column(String(16), default="residential")  # residential | commercial
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Occupant(Base):
    """A customer who occupies units: how to reach them and in which language."""

    __tablename__ = "occupants"
    __table_args__ = (UniqueConstraint("tenant_id", "customer_ref"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    customer_ref: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    postal_address: Mapped[str] = mapped_column(String(500), default="")
    channel: Mapped[str] = mapped_column(String(8), default="portal")  # portal | email | post
    language: Mapped[str] = mapped_column(String(2), default="de")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Occupancy(Base):
    """An occupant in a unit from `moved_in` to `moved_out` inclusive (NULL: still there). The
    occupancies of a unit never overlap (checked by the services)."""

    __tablename__ = "occupancies"
    __table_args__ = (Index("ix_occupancies_unit_in", "unit_id", "moved_in"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    occupant_id: Mapped[int] = mapped_column(ForeignKey("occupants.id"), index=True)
    moved_in: Mapped[date] = mapped_column(Date)
    moved_out: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WeatherStation(Base):
    """A weather station whose daily means give the degree days of the properties assigned to it."""

    __tablename__ = "weather_stations"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WeatherDay(Base):
    """A station's daily mean temperature (°C) of a local day."""

    __tablename__ = "weather_days"
    __table_args__ = (UniqueConstraint("station_id", "day"),)
    id: Mapped[int] = _id()
    station_id: Mapped[int] = mapped_column(ForeignKey("weather_stations.id"))
    day: Mapped[date] = mapped_column(Date)
    mean_c: Mapped[float] = mapped_column(Float)


class BillingValue(Base):
    """A register value of a metering point at a boundary (docs/billing.md §Boundary values): the
    value billing uses (`value`, `origin`), and what omshub computed from the readings (`computed_*`),
    which stays next to an operator's edit. `export_stale`: the value changed after it was exported."""

    __tablename__ = "billing_values"
    __table_args__ = (
        UniqueConstraint("metering_point_id", "quantity", "boundary_at"),
        # a tenant's values of a time range (exports, the review queue's context)
        Index("ix_billing_values_tenant_time", "tenant_id", "boundary_at"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"))
    quantity: Mapped[str] = mapped_column(String(16))
    boundary_at: Mapped[datetime] = mapped_column(UtcDateTime())
    boundary_day: Mapped[date] = mapped_column(Date)  # the local day the boundary starts
    reason: Mapped[str] = mapped_column(String(16))  # month | due_date | move_in | move_out
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    origin: Mapped[str] = mapped_column(String(16))
    quality: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(2), nullable=True)  # Tabelle S
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)  # estimation method
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    computed_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    computed_origin: Mapped[str] = mapped_column(String(16))
    computed_details: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="ok")  # ok | review | pending
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    exported_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    export_stale: Mapped[bool] = mapped_column(Boolean, default=False)


class BillingConsumption(Base):
    """A metering point's consumption of a period, from its boundary values, with the runs per meter."""

    __tablename__ = "billing_consumption"
    __table_args__ = (UniqueConstraint("metering_point_id", "quantity", "period"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"))
    quantity: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))  # "2026-11", or "year:2026" for a billing year
    start_at: Mapped[datetime] = mapped_column(UtcDateTime())
    end_at: Mapped[datetime] = mapped_column(UtcDateTime())
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality: Mapped[str] = mapped_column(String(16))
    runs: Mapped[list] = mapped_column(JSON, default=list)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BillingFinding(Base):
    """A validation finding in the review queue (docs/billing.md §Validation rules). `state`: open,
    then accepted | rejected | edited | estimated by an operator (`decided_by`, `decided_at`, `note`),
    or cleared when a later run no longer finds it."""

    __tablename__ = "billing_findings"
    __table_args__ = (
        UniqueConstraint("metering_point_id", "quantity", "period", "rule"),
        # the review queue: a tenant's findings by state
        Index("ix_billing_findings_tenant_state", "tenant_id", "state"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"))
    quantity: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    german: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class BillingSettings(Base):
    """A tenant's validation thresholds and boundary distances (docs/billing.md §Validation rules);
    `rules` holds only what differs from the documented defaults."""

    __tablename__ = "billing_settings"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), unique=True)
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_by: Mapped[str] = mapped_column(String(200), default="")


class BillingSegment(Base):
    """A metering point's consumption in one occupant's part of a closed period (or a vacant part),
    cut at move-in and move-out days (docs/billing.md §Occupant segments). `occupancy_id` NULL:
    vacant. `method`: readings (the register at both ends) or the period's consumption split by
    days or degree days; `code`: Tabelle S (12, 13, 14, or an estimate's)."""

    __tablename__ = "billing_segments"
    __table_args__ = (
        UniqueConstraint("metering_point_id", "quantity", "period", "first_day"),
        # a unit's and an occupant's segments of a period (the API, customer information)
        Index("ix_billing_segments_unit_period", "unit_id", "period"),
        Index("ix_billing_segments_occupancy", "occupancy_id"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    metering_point_id: Mapped[int] = mapped_column(ForeignKey("metering_points.id"))
    unit_id: Mapped[int] = mapped_column(Integer)
    occupancy_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quantity: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    start_at: Mapped[datetime] = mapped_column(UtcDateTime())
    end_at: Mapped[datetime] = mapped_column(UtcDateTime())
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    method: Mapped[str] = mapped_column(String(24))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())
