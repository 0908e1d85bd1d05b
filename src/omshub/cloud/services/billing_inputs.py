"""What a billing run reads for a batch of metering points, in a few queries per batch: the points and
their units' properties, installations, occupancies, and the readings of their meters around the
period (docs/billing.md). Turns readings into the domain's `Sample`s and `StoredValue`s.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.boundary import Sample, StoredValue, resolve_day_month
from omshub.cloud.domain.billing.periods import Occupancy as Stay
from omshub.cloud.domain.registers import cumulative_quantity
from omshub.cloud.store.database import one_of
from omshub.cloud.store.models import Installation, Meter, MeteringPoint, Reading, Tenant
from omshub.cloud.store.models_billing import Occupancy, Property, Unit
from omshub.cloud.store.reading_values import stored_values


@dataclass
class MeterRun:
    """One installation of a meter at the point, as billing needs it."""

    meter_pk: int
    label: str
    quantity: str | None
    installed_at: datetime
    removed_at: datetime | None
    initial_values: dict
    final_values: dict | None
    installed_from: str = "given"  # or "first_reading": installed_at is the meter's first reading


@dataclass
class PointInputs:
    point_id: int
    point_ref: str
    unit_id: int | None
    property_id: int | None
    zone: str
    due: tuple[int, int]  # (month, day)
    station_id: int | None
    runs: list[MeterRun] = field(default_factory=list)
    samples: dict[int, list[Sample]] = field(default_factory=dict)  # per meter, by time
    received: dict[int, list[datetime]] = field(default_factory=dict)  # receive time of each sample
    stored: dict[int, list[StoredValue]] = field(default_factory=dict)
    bad_dates: dict[int, list[str]] = field(default_factory=dict)  # stored dates that are no dates
    stays: list[Stay] = field(default_factory=list)
    # boundary values already computed for this point (billing_compute.py): (at, day) -> value
    memo: dict = field(default_factory=dict, repr=False, compare=False)


def _stored_day(text: str, reading_day: date) -> date | None:
    """The day a stored value belongs to: a date names its own day; a date-time at 00:00 is the end
    of the day before; day-month dates resolve to the latest such day; ValueError for no valid date."""
    if text.startswith("--") and not text.startswith("---"):
        month, day = int(text[2:4]), int(text[5:7])
        resolved = resolve_day_month(day, month, reading_day)
        if resolved is None:
            raise ValueError(text)
        return resolved
    if text.startswith("---"):
        return None  # a day of every month: too vague to place
    if "T" in text:
        moment = datetime.fromisoformat(text)
        return moment.date() - timedelta(days=1) if (moment.hour, moment.minute) == (0, 0) else moment.date()
    return date.fromisoformat(text)


def stored_of(reading, quantity: str, zone: ZoneInfo) -> tuple[list[StoredValue], list[str]]:
    """A reading's stored values of `quantity` with their days (storage ≥ 1, tariff and subunit 0),
    and the stored date texts that are no valid date."""
    dates: dict[int, str] = {}
    values: dict[int, float] = {}
    for storage, tariff, subunit, q, _unit, value in stored_values(reading):
        if storage < 1 or tariff or subunit:
            continue
        if q in ("date", "datetime"):
            dates.setdefault(storage, value)
        elif q == quantity:
            values.setdefault(storage, value)
    reading_day = reading.timestamp.astimezone(zone).date()
    total = getattr(reading, quantity, None)
    out, bad = [], []
    for storage, value in values.items():
        text = dates.get(storage)
        if text is None:
            continue
        try:
            day = _stored_day(text, reading_day)
        except ValueError:
            bad.append(text)
            continue
        if day is not None:
            out.append(StoredValue(day, value, storage, reading.telegram_id, reading.received_at, total))
    return out, bad


def load_points(
    session: Session, tenant_id: int, point_ids: list[int], first: datetime, last: datetime, *, with_readings=True
):
    """Inputs of these points for readings in [first, last] (without the readings if not
    `with_readings`: billing_readings.py picks them)."""
    tenant_zone = session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)) or "Europe/Berlin"
    rows = session.connection().execute(
        select(
            MeteringPoint.id,
            MeteringPoint.ref,
            MeteringPoint.unit_id,
            Unit.property_id,
            Property.timezone,
            Property.due_month,
            Property.due_day,
            Property.weather_station_id,
        )
        .outerjoin(Unit, Unit.id == MeteringPoint.unit_id)
        .outerjoin(Property, Property.id == Unit.property_id)
        .where(MeteringPoint.tenant_id == tenant_id, one_of(session, MeteringPoint.id, point_ids))
    )
    points: dict[int, PointInputs] = {}
    for pid, ref, unit_id, property_id, zone, due_month, due_day, station in rows:
        if property_id is None:  # not in a property: the tenant's zone and the calendar year
            zone, due_month, due_day, station = tenant_zone, 12, 31, None
        points[pid] = PointInputs(pid, ref, unit_id, property_id, zone, (due_month, due_day), station)
    _load_runs(session, points, first, last)
    if with_readings:
        load_all_readings(session, points, first, last)
    _load_stays(session, points)
    return points


def _load_runs(session: Session, points: dict[int, PointInputs], first: datetime, last: datetime) -> None:
    rows = session.execute(
        select(Installation, Meter.manufacturer, Meter.meter_id, Meter.device_type)
        .join(Meter, Meter.id == Installation.meter_pk)
        .where(
            one_of(session, Installation.metering_point_id, points),
            # an installation without a date counts from the first reading, which may be earlier
            (Installation.installed_at <= last) | (Installation.installed_from == "first_reading"),
            (Installation.removed_at.is_(None)) | (Installation.removed_at >= first),
        )
        .order_by(Installation.installed_at)
    ).all()
    # an installation without a date counts from the meter's first reading (one query for all)
    undated = [inst.meter_pk for inst, *_ in rows if inst.installed_from == "first_reading"]
    firsts = dict(
        session.execute(
            select(Reading.meter_pk, func.min(Reading.timestamp))
            .where(one_of(session, Reading.meter_pk, undated))
            .group_by(Reading.meter_pk)
        ).all()
    )
    for inst, manufacturer, meter_id, device_type in rows:
        start = inst.installed_at
        if inst.installed_from == "first_reading":
            start = firsts.get(inst.meter_pk) or inst.installed_at
        run = MeterRun(
            inst.meter_pk,
            f"{manufacturer} {meter_id}",
            cumulative_quantity(device_type),
            start,
            inst.removed_at,
            dict(inst.initial_values or {}),
            None if inst.final_values is None else dict(inst.final_values),
            inst.installed_from,
        )
        points[inst.metering_point_id].runs.append(run)


READING_COLUMNS = (
    Reading.meter_pk,
    Reading.timestamp,
    Reading.received_at,
    Reading.telegram_id,
    Reading.energy,
    Reading.volume,
    Reading.hca,
    Reading.stored,
)


def load_all_readings(session: Session, points: dict[int, PointInputs], first: datetime, last: datetime) -> None:
    """All the readings of the points' meters in [first, last], as plain rows (no ORM objects)."""
    owner = {run.meter_pk: (p, run.quantity) for p in points.values() for run in p.runs}
    if not owner:
        return
    rows = session.connection().execute(
        select(*READING_COLUMNS)
        .where(one_of(session, Reading.meter_pk, owner), Reading.timestamp >= first, Reading.timestamp <= last)
        .order_by(Reading.meter_pk, Reading.timestamp, Reading.id)
    )
    take_readings(owner, rows)


def take_readings(owner: dict, rows) -> None:
    """Readings (sorted by meter, time, id) into samples and stored values. A stored-values blob
    repeated by a meter's next telegrams (the same month-end value for a month) is read once, from
    its first telegram."""
    zones: dict[str, ZoneInfo] = {}
    last_blob: dict[int, bytes | None] = {}
    for r in rows:
        point, quantity = owner[r.meter_pk]
        if quantity is None:
            continue
        value = getattr(r, quantity)
        if value is not None:
            point.samples.setdefault(r.meter_pk, []).append(
                Sample(r.timestamp, float(value), r.telegram_id)  # UtcDateTime: aware UTC
            )
            point.received.setdefault(r.meter_pk, []).append(r.received_at)
        if not r.stored or last_blob.get(r.meter_pk) == r.stored:
            continue
        last_blob[r.meter_pk] = r.stored
        stored, bad = stored_of(r, quantity, zones.setdefault(point.zone, ZoneInfo(point.zone)))
        if stored:
            point.stored.setdefault(r.meter_pk, []).extend(stored)
        if bad:
            point.bad_dates.setdefault(r.meter_pk, []).extend(bad)


def _load_stays(session: Session, points: dict[int, PointInputs]) -> None:
    units = {p.unit_id for p in points.values() if p.unit_id is not None}
    if not units:
        return
    by_unit: dict[int, list[Stay]] = defaultdict(list)
    for o in session.connection().execute(
        select(Occupancy.id, Occupancy.unit_id, Occupancy.moved_in, Occupancy.moved_out).where(
            one_of(session, Occupancy.unit_id, units)
        )
    ):
        by_unit[o.unit_id].append(Stay(str(o.id), o.moved_in, o.moved_out))
    for p in points.values():
        if p.unit_id is not None:
            p.stays = by_unit.get(p.unit_id, [])
