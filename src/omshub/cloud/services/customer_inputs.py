"""What the monthly customer information reads from the billing layer, in a few queries per batch of
units: the units with their property, which metering points feed which information line (heat, hot
water, allocator units), the closed months' consumption of those points, the occupancies, and — for a
month an occupant lived in only partly — the consumption between their move-in or move-out boundary
and the month's edge, across meter swaps (docs/customer-information.md §Values).

Reads the billing tables only; never writes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.boundary import BoundaryValue
from omshub.cloud.domain.billing.consumption import Run, period_consumption, worst_quality
from omshub.cloud.domain.billing.origins import Origin, Quality
from omshub.cloud.domain.billing.periods import local_midnight
from omshub.cloud.domain.customer_info import kind_of, month_days
from omshub.cloud.domain.registers import cumulative_quantity
from omshub.cloud.store.models import Installation, Meter, MeteringPoint
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue, Occupancy, Occupant, Property, Unit


def tenant_is(column, tenant_id: int):
    """The tenant filter of a query that narrows by a list of ids: written `+ 0` so that the planner
    takes the ids' index, not the tenant's (SQLite otherwise scans all of the tenant's rows per batch,
    which makes a month of 100,000 units quadratic)."""
    return (column + 0) == tenant_id


@dataclass
class UnitFacts:
    unit_id: int
    ref: str
    name: str
    area_m2: float
    property_id: int
    property_name: str
    property_address: str
    energy_carrier: str
    size_class: str
    zone: str
    points: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # kind -> [(point, quantity)]


@dataclass
class Stay:
    occupancy_id: int
    occupant_id: int
    name: str
    email: str
    channel: str
    language: str
    postal_address: str
    moved_in: date
    moved_out: date | None


def load_units(session: Session, tenant_id: int, after: int, limit: int) -> list[UnitFacts]:
    """The next `limit` units of the tenant (by id) with their property's facts."""
    rows = session.execute(
        select(
            Unit.id,
            Unit.ref,
            Unit.name,
            Unit.area_m2,
            Property.id,
            Property.ref,
            Property.name,
            Property.street,
            Property.postcode,
            Property.city,
            Property.energy_carrier,
            Property.size_class,
            Property.timezone,
        )
        .join(Property, Property.id == Unit.property_id)
        .where(Unit.tenant_id == tenant_id, Unit.id > after)
        .order_by(Unit.id)
        .limit(limit)
    ).all()
    out = []
    for uid, ref, name, area, pid, pref, pname, street, postcode, city, carrier, size_class, zone in rows:
        address = ", ".join(x for x in (street, f"{postcode} {city}".strip()) if x)
        out.append(UnitFacts(uid, ref, name, area, pid, pname or pref, address, carrier, size_class, zone))
    return out


def attach_points(session: Session, tenant_id: int, units: dict[int, UnitFacts]) -> None:
    """Each unit's metering points per information line, by the device type of the meter installed
    last at the point (a swap keeps the kind of meter)."""
    rows = session.execute(
        select(MeteringPoint.id, MeteringPoint.unit_id, Meter.device_type, Installation.installed_at)
        .join(Installation, Installation.metering_point_id == MeteringPoint.id)
        .join(Meter, Meter.id == Installation.meter_pk)
        .where(tenant_is(MeteringPoint.tenant_id, tenant_id), MeteringPoint.unit_id.in_(list(units)))
        .order_by(MeteringPoint.id, Installation.installed_at)
    ).all()
    latest: dict[int, tuple[int, str]] = {}
    for pid, uid, device_type, _ in rows:
        if uid is not None:
            latest[pid] = (uid, device_type or "")
    for pid, (uid, device_type) in latest.items():
        quantity = cumulative_quantity(device_type)
        kind = kind_of(quantity or "", device_type)
        if quantity is not None and kind is not None:
            units[uid].points.setdefault(kind, []).append((pid, quantity))


def load_consumption(session: Session, tenant_id: int, point_ids: list[int], labels: list[str]) -> dict:
    """{(point, month): (value, quality)} of the closed months among `labels`."""
    out: dict = {}
    if not point_ids:
        return out
    for pid, period, value, quality in session.execute(
        select(
            BillingConsumption.metering_point_id,
            BillingConsumption.period,
            BillingConsumption.value,
            BillingConsumption.quality,
        ).where(
            tenant_is(BillingConsumption.tenant_id, tenant_id),
            BillingConsumption.metering_point_id.in_(point_ids),
            BillingConsumption.period.in_(labels),
        )
    ):
        out[(pid, period)] = (value, quality)
    return out


def load_stays(session: Session, tenant_id: int, unit_ids: list[int], first: date, last: date) -> dict:
    """{unit: [Stay]} of the occupancies that touch [first, last], by move-in day."""
    out: dict[int, list[Stay]] = defaultdict(list)
    for row in session.execute(
        select(
            Occupancy.unit_id,
            Occupancy.id,
            Occupant.id,
            Occupant.name,
            Occupant.email,
            Occupant.channel,
            Occupant.language,
            Occupant.postal_address,
            Occupancy.moved_in,
            Occupancy.moved_out,
        )
        .join(Occupant, Occupant.id == Occupancy.occupant_id)
        .where(
            tenant_is(Occupancy.tenant_id, tenant_id),
            Occupancy.unit_id.in_(unit_ids),
            Occupancy.moved_in <= last,
            (Occupancy.moved_out.is_(None)) | (Occupancy.moved_out >= first),
        )
        .order_by(Occupancy.unit_id, Occupancy.moved_in)
    ):
        out[row[0]].append(Stay(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9]))
    return out


def unit_figure(points: list[tuple[int, str]], label: str, consumption: dict) -> dict:
    """The unit's value of a line in a closed month: the sum over its points, the worst quality.
    `not_collected` when no point of the line has a value row for the month (not closed, no meter)."""
    if len(points) == 1:  # the common case, without the general path's lists (hot path: 13 months per unit)
        row = consumption.get((points[0][0], label))
        if row is None:
            return {"value": None, "status": "not_collected"}
        if row[0] is None:
            return {"value": None, "status": "missing"}
        return {"value": round(row[0], 3), "status": row[1]}
    rows = [consumption.get((pid, label)) for pid, _ in points]
    known = [r for r in rows if r is not None]
    if not known:
        return {"value": None, "status": "not_collected"}
    if len(known) < len(rows) or any(v is None for v, _ in known):
        return {"value": None, "status": "missing"}
    quality = worst_quality([Quality(q) for _, q in known])
    return {"value": round(sum(v for v, _ in known), 3), "status": quality.value}


def _boundary(row: BillingValue | None, at) -> BoundaryValue:
    if row is None:
        return BoundaryValue(at, None, Origin.MISSING, {"reason": "no boundary value"})
    return BoundaryValue(at, row.value, Origin(row.origin), {})


def segment_figure(
    session: Session, tenant_id: int, points: list[tuple[int, str]], zone: str, a: date, b: date
) -> dict:
    """The line's consumption from 00:00 of day `a` to the end of day `b` (an occupant's part of a
    month): per point, one run per meter installed in it, starting at the boundary value at the
    move-in (or the new meter's initial value) and ending at the boundary value at the move-out (or
    the old meter's final value) — the billing close stores a value at every move-in and move-out
    boundary. Missing boundary value: `missing`, never zero."""
    start, end = local_midnight(a, zone), local_midnight(b + timedelta(days=1), zone)
    ids = [pid for pid, _ in points]
    values = {
        (r.metering_point_id, r.quantity, r.boundary_at): r
        for r in session.scalars(
            select(BillingValue).where(
                tenant_is(BillingValue.tenant_id, tenant_id),
                BillingValue.metering_point_id.in_(ids),
                BillingValue.boundary_at.in_([start, end]),
            )
        )
    }
    installs = session.scalars(
        select(Installation)
        .where(
            tenant_is(Installation.tenant_id, tenant_id),
            Installation.metering_point_id.in_(ids),
            Installation.installed_at < end,
            (Installation.removed_at.is_(None)) | (Installation.removed_at > start),
        )
        .order_by(Installation.installed_at)
    ).all()
    total, qualities = 0.0, []
    for pid, quantity in points:
        runs = []
        for inst in (i for i in installs if i.metering_point_id == pid):
            if inst.installed_at <= start:
                s = _boundary(values.get((pid, quantity, start)), start)
            else:
                s = _initial(inst.initial_values, quantity, inst.installed_at)
            if inst.removed_at is None or inst.removed_at >= end:
                e = _boundary(values.get((pid, quantity, end)), end)
            else:
                e = _initial(inst.final_values, quantity, inst.removed_at)
            runs.append(Run(str(inst.meter_pk), s, e))
        if not runs:
            return {"value": None, "status": "not_collected"}
        c = period_consumption(runs)
        if c.value is None:
            return {"value": None, "status": "missing"}
        total += c.value
        qualities.append(c.quality)
    return {"value": round(total, 3), "status": worst_quality(qualities).value}


def _initial(values: dict | None, quantity: str, at) -> BoundaryValue:
    """A swap's register value as entered with the installation (measured by the fitter)."""
    value = (values or {}).get(quantity)
    if not isinstance(value, int | float):
        return BoundaryValue(at, None, Origin.MISSING, {"reason": "no register value entered with the swap"})
    return BoundaryValue(at, float(value), Origin.MEASURED, {"source": "installation"})


def whole_month(label: str, a: date, b: date) -> bool:
    first, last = month_days(label)
    return a == first and b == last
