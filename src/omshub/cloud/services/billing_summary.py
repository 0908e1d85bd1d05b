"""A unit's and a property's consumption of a closed period, from their metering points' values, and the
share of the property's area whose consumption is estimated (HeizkostenV §9a(2); docs/billing.md)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.consumption import worst_quality
from omshub.cloud.domain.billing.estimation import estimated_area_share
from omshub.cloud.domain.billing.origins import Quality
from omshub.cloud.services.properties import get_property, get_unit
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import BillingConsumption, Unit


def _by_unit(session: Session, unit_ids: list[int], period: str) -> dict[int, dict[str, dict]]:
    """{unit: {quantity: {value, quality, metering_points}}} of the period (value None if one of the
    unit's points has no value)."""
    rows = session.execute(
        select(MeteringPoint.unit_id, BillingConsumption)
        .join(BillingConsumption, BillingConsumption.metering_point_id == MeteringPoint.id)
        .where(MeteringPoint.unit_id.in_(unit_ids), BillingConsumption.period == period)
    ).all()
    parts: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for unit_id, c in rows:
        if unit_id is not None:
            parts[unit_id][c.quantity].append(c)
    out: dict[int, dict[str, dict]] = {}
    for unit_id, quantities in parts.items():
        out[unit_id] = {}
        for quantity, items in quantities.items():
            values = [c.value for c in items]
            out[unit_id][quantity] = {
                "value": None if any(x is None for x in values) else round(sum(values), 6),
                "quality": worst_quality([Quality(c.quality) for c in items]).value,
                "metering_points": sorted(c.metering_point_id for c in items),
            }
    return out


def unit_consumption(session: Session, tenant_id: int, unit_id: int, period: str) -> dict:
    unit = get_unit(session, tenant_id, unit_id)
    return {"unit_id": unit.id, "period": period, "quantities": _by_unit(session, [unit.id], period).get(unit.id, {})}


def property_consumption(session: Session, tenant_id: int, property_id: int, period: str) -> dict:
    """Every unit's consumption, and the estimated area share: a unit counts as estimated where any of
    its values of the period is estimated or missing."""
    prop = get_property(session, tenant_id, property_id)
    units = list(session.scalars(select(Unit).where(Unit.property_id == prop.id).order_by(Unit.id)))
    by_unit = _by_unit(session, [u.id for u in units], period)
    rows, areas = [], []
    for u in units:
        quantities = by_unit.get(u.id, {})
        estimated = any(q["quality"] in ("estimated", "missing") for q in quantities.values())
        areas.append((u.area_m2, estimated))
        rows.append(
            {"unit_id": u.id, "ref": u.ref, "area_m2": u.area_m2, "quantities": quantities, "estimated": estimated}
        )
    share = estimated_area_share(areas)
    return {
        "property_id": prop.id,
        "period": period,
        "units": rows,
        "estimated_area_m2": share.estimated_area,
        "total_area_m2": share.total_area,
        "estimated_share": round(share.share, 4),
        "over_25_percent": share.over_limit,
    }
