"""Estimating a metering point's consumption of a closed period where it could not be measured
(HeizkostenV §9a(1), FFVAV §3; docs/billing.md §Estimation), by an operator from the review queue or
automatically by the close where the tenant's settings allow it (`auto_estimate`).

Methods, in the order the regulation lists them:
- `previous_period` (Tabelle S 07): the point's measured consumption in the same period a year
  before, scaled for heat (energy, heat cost allocator units) by the degree days of the property's
  weather station, or by the VDI 2067 monthly shares where no series covers both periods; water
  and hot water by the number of days (never by the weather).
- `comparable_units` (15): per m² of the property's other units of the same usage, measured in the
  same period, × the unit's living area.
- `property_average` (08): per m² of all the property's measured units; a property without any
  falls back to the cohort: the tenant's buildings with the same energy carrier and size class.

The estimate sets the period's end value (start value + estimated consumption, origin `estimated`,
the method's code, the explanation in German and English); the computed value stays next to it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.estimation import (
    Estimate,
    from_average,
    from_comparable_units,
    from_previous_period,
)
from omshub.cloud.domain.billing.origins import EstimationMethod, Origin, Quality
from omshub.cloud.domain.billing.weather import degree_days, per_mille_of
from omshub.cloud.domain.errors import Conflict, Invalid
from omshub.cloud.services.weather import station_means
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue, Property, Unit

METHODS = tuple(
    m.value
    for m in (EstimationMethod.PREVIOUS_PERIOD, EstimationMethod.COMPARABLE_UNITS, EstimationMethod.PROPERTY_AVERAGE)
)
MEASURED = (Quality.MEASURED.value, Quality.INTERPOLATED.value)
HEAT = ("energy", "hca")  # weather-dependent; volume (water, hot water) never is
CARRIER_DE = {
    "district_heat": "Fernwärme",
    "local_heat": "Nahwärme",
    "gas": "Gas",
    "oil": "Öl",
    "heat_pump": "Wärmepumpe",
    "wood": "Holz",
    "electricity": "Strom",
    "other": "sonstiger Energieträger",
}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise Invalid(f"method must be one of {', '.join(METHODS)}", german=f"Methode: {', '.join(METHODS)}")
    return method


def year_before(label: str) -> str:
    """The label of the same period a year before ("2026-11" -> "2025-11", "year:2026" -> "year:2025")."""
    if label.startswith("year:"):
        return f"year:{int(label[5:]) - 1}"
    return f"{int(label[:4]) - 1:04d}{label[4:]}"


def _place(session: Session, point_id: int) -> tuple[Unit | None, Property | None]:
    row = session.execute(
        select(Unit, Property)
        .join(MeteringPoint, MeteringPoint.unit_id == Unit.id)
        .join(Property, Property.id == Unit.property_id)
        .where(MeteringPoint.id == point_id)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def _days(c: BillingConsumption, zone: str):
    z = ZoneInfo(zone)
    return c.start_at.astimezone(z).date(), c.end_at.astimezone(z).date() - timedelta(days=1)


def estimate_consumption(session: Session, tenant_id: int, c: BillingConsumption, method: str) -> Estimate | None:
    """The estimated consumption of `c`'s point and period by `method`; None where the method has no
    data (no measured previous period, no comparable unit)."""
    unit, prop = _place(session, c.metering_point_id)
    if method == EstimationMethod.PREVIOUS_PERIOD.value:
        return _previous_period(session, c, prop)
    if unit is None or prop is None:
        return None  # per m² needs the point's unit
    if method == EstimationMethod.COMPARABLE_UNITS.value:
        per_unit = _measured_per_unit(session, tenant_id, c, [prop.id], usage=unit.usage, not_unit=unit.id)
        found = from_comparable_units(list(per_unit.values()), unit.area_m2)
    else:
        found = _average(session, tenant_id, c, unit, prop)
    return None if found is None else _less_other_points(session, c, unit, found)


def _previous_period(session: Session, c: BillingConsumption, prop: Property | None) -> Estimate | None:
    before = session.scalar(
        select(BillingConsumption).where(
            BillingConsumption.metering_point_id == c.metering_point_id,
            BillingConsumption.quantity == c.quantity,
            BillingConsumption.period == year_before(c.period),
            BillingConsumption.value.is_not(None),
            BillingConsumption.quality.in_(MEASURED),
        )
    )
    if before is None or before.value is None:
        return None
    zone = prop.timezone if prop is not None else "Europe/Berlin"
    (first, last), (then_first, then_last) = _days(c, zone), _days(before, zone)
    if c.quantity not in HEAT:
        now_days, then_days = (last - first).days + 1, (then_last - then_first).days + 1
        return from_previous_period(before.value, previous_scale=then_days, current_scale=now_days, heat=False)
    if prop is not None and prop.weather_station_id is not None:
        means = station_means(session, prop.weather_station_id, then_first, last)
        now, then = degree_days(means, first, last), degree_days(means, then_first, then_last)
        if not now.days_missing and not then.days_missing and then.value > 0:
            return from_previous_period(before.value, previous_scale=then.value, current_scale=now.value, heat=True)
    return from_previous_period(
        before.value,
        previous_scale=round(per_mille_of(then_first, then_last), 3),
        current_scale=round(per_mille_of(first, last), 3),
        heat=True,
        basis="per_mille",
    )


def _measured_per_unit(
    session: Session, tenant_id: int, c: BillingConsumption, property_ids: list[int], *, usage=None, not_unit=None
) -> dict[int, tuple[float, float]]:
    """{unit: (consumption, area)} of the units of these properties whose every point of the quantity
    was measured in the period (a unit with an estimated or missing point does not count)."""
    stmt = (
        select(Unit.id, Unit.area_m2, BillingConsumption.value, BillingConsumption.quality)
        .join(MeteringPoint, MeteringPoint.unit_id == Unit.id)
        .join(BillingConsumption, BillingConsumption.metering_point_id == MeteringPoint.id)
        .where(
            BillingConsumption.tenant_id == tenant_id,
            BillingConsumption.period == c.period,
            BillingConsumption.quantity == c.quantity,
            Unit.property_id.in_(property_ids),
        )
    )
    if usage is not None:
        stmt = stmt.where(Unit.usage == usage)
    if not_unit is not None:
        stmt = stmt.where(Unit.id != not_unit)
    totals: dict[int, list] = defaultdict(lambda: [0.0, 0.0, True])
    for unit_id, area, value, quality in session.execute(stmt):
        t = totals[unit_id]
        t[1] = area
        if value is None or quality not in MEASURED:
            t[2] = False
        else:
            t[0] += value
    return {u: (t[0], t[1]) for u, t in totals.items() if t[2]}


def _average(session: Session, tenant_id: int, c: BillingConsumption, unit: Unit, prop: Property) -> Estimate | None:
    """The property's average per m²; without any measured unit there, the cohort's."""
    per_unit = _measured_per_unit(session, tenant_id, c, [prop.id], not_unit=unit.id)
    cohort, cohort_de = "the building", "des Gebäudes"
    if not per_unit:
        similar = list(
            session.scalars(
                select(Property.id).where(
                    Property.tenant_id == tenant_id,
                    Property.energy_carrier == prop.energy_carrier,
                    Property.size_class == prop.size_class,
                )
            )
        )
        per_unit = _measured_per_unit(session, tenant_id, c, similar, not_unit=unit.id)
        size = f", {prop.size_class} units" if prop.size_class else ""
        size_de = f", {prop.size_class} Nutzeinheiten" if prop.size_class else ""
        carrier_de = CARRIER_DE.get(prop.energy_carrier, prop.energy_carrier)
        cohort = f"comparable buildings ({prop.energy_carrier.replace('_', ' ')}{size}; {len(per_unit)} units)"
        cohort_de = f"vergleichbarer Gebäude ({carrier_de}{size_de}; {len(per_unit)} Nutzeinheiten)"
    area = sum(a for _, a in per_unit.values() if a > 0)
    if not per_unit or area <= 0:
        return None
    per_m2 = sum(v for v, a in per_unit.values() if a > 0) / area
    return from_average(per_m2, unit.area_m2, cohort=cohort, cohort_de=cohort_de)


def _less_other_points(session: Session, c: BillingConsumption, unit: Unit, estimate: Estimate) -> Estimate:
    """A per-m² estimate is the whole unit's: less what the unit's other points of the quantity measured."""
    others = session.scalars(
        select(BillingConsumption.value)
        .join(MeteringPoint, MeteringPoint.id == BillingConsumption.metering_point_id)
        .where(
            MeteringPoint.unit_id == unit.id,
            MeteringPoint.id != c.metering_point_id,
            BillingConsumption.period == c.period,
            BillingConsumption.quantity == c.quantity,
            BillingConsumption.value.is_not(None),
        )
    ).all()
    measured = sum(x for x in others if x is not None)
    if not others:
        return estimate
    rest = max(0.0, round(estimate.value - measured, 3))
    de_measured = f"{measured:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return Estimate(
        rest,
        estimate.method,
        f"{estimate.explanation[:-1]}, less {measured:,.1f} measured by the unit's other meters.",
        f"{estimate.german[:-1]}, abzüglich {de_measured}, die die anderen Zähler der Nutzeinheit gemessen haben.",
        {**estimate.inputs, "other_points": measured},
    )


def apply_estimate(
    session: Session,
    tenant_id: int,
    c: BillingConsumption,
    estimate: Estimate,
    reason: str,
    *,
    actor: str,
    now: datetime,
    auto: bool = False,
) -> BillingValue:
    """Set the period's end value from the estimate (the last meter's start + the estimated consumption,
    less what earlier meters of the period measured) and the period's consumption with it; audited."""
    b = session.scalar(
        select(BillingValue).where(
            BillingValue.metering_point_id == c.metering_point_id,
            BillingValue.quantity == c.quantity,
            BillingValue.boundary_at == c.end_at,
        )
    )
    runs = [dict(r) for r in c.runs or []]
    earlier = [r.get("consumption") for r in runs[:-1]]
    if b is None or not runs or runs[-1].get("start") is None or any(x is None for x in earlier):
        raise Conflict(
            "the period has no end value to estimate, or its start value is missing",
            german="Der Zeitraum hat keinen Endwert zum Schätzen, oder sein Anfangswert fehlt",
        )
    last = runs[-1]
    end = round(last["start"] + estimate.value - sum(x for x in earlier if x is not None), 6)
    before = {"value": b.value, "origin": b.origin, "code": b.code}
    b.value, b.origin, b.quality = end, Origin.ESTIMATED.value, Quality.ESTIMATED.value
    b.method, b.code = estimate.method.value, estimate.code
    b.details = {
        "by": actor,
        "at": now.isoformat(),
        "reason": reason,
        "before": before,
        "consumption": estimate.value,
        "explanation": estimate.explanation,
        "german": estimate.german,
        "inputs": estimate.inputs,
    } | ({"auto": True} if auto else {})
    b.changed_at = now
    if not auto:
        b.state = "ok"
    if b.exported_at is not None:
        b.export_stale = True
    # the consumption as the next close computes it from this end value (so a close changes nothing)
    last.update(end=end, end_origin=Origin.ESTIMATED.value, consumption=round(end - last["start"], 6))
    total = 0.0
    for r in runs:
        total += r["consumption"]
    c.runs, c.value, c.quality, c.computed_at = runs, round(total, 6), Quality.ESTIMATED.value, now
    details = {"value_id": b.id, "point": b.metering_point_id, "boundary": b.boundary_at.isoformat(), "before": before}
    after = {"value": b.value, "origin": b.origin, "method": b.method, "code": b.code}
    audit(session, tenant_id, actor, "billing.value.estimate", details | {"after": after, "auto": auto})
    return b


def estimate_missing(session: Session, tenant_id: int, label: str, methods: list[str], *, now: datetime) -> int:
    """The close's automatic estimation (setting `auto_estimate`: the methods to try, in order): every
    consumption of the period without a value whose start is known gets the first method's estimate
    that has data. Returns how many were estimated."""
    done = 0
    for c in session.scalars(
        select(BillingConsumption).where(
            BillingConsumption.tenant_id == tenant_id,
            BillingConsumption.period == label,
            BillingConsumption.value.is_(None),
        )
    ).all():
        for method in methods:
            estimate = estimate_consumption(session, tenant_id, c, method)
            if estimate is None:
                continue
            try:
                apply_estimate(
                    session, tenant_id, c, estimate, "automatic estimate", actor="billing close", now=now, auto=True
                )
                done += 1
            except Conflict:
                pass
            break
    return done
