"""The console's global search: one text, looked up as the people who type it mean it — a meter
number (or its beginning, with or without the manufacturer), an address or customer reference of a
metering point, a gateway's serial or name. Every query is the tenant's only."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint

MAX_TEXT = 200
MAX_HITS = 20
# "KAM 3100", "KAM:31000001", "kam31000001": a manufacturer code before a meter number
_MANUFACTURER_AND_ID = re.compile(r"^([A-Za-z@]{3})[\s:/-]*([0-9A-Fa-f]{1,8})$")


def search(session: Session, tenant_id: int, text: str, limit: int = MAX_HITS) -> dict:
    """{meters, points, gateways}: up to `limit` hits each, best first."""
    q = " ".join(text.split())
    if len(q) > MAX_TEXT:
        raise Invalid(
            f"search text: at most {MAX_TEXT} characters",
            code="invalid_search",
            german=f"Suchtext: höchstens {MAX_TEXT} Zeichen.",
        )
    if not q:
        return {"meters": [], "points": [], "gateways": []}
    return {
        "meters": _meters(session, tenant_id, q, limit),
        "points": _points(session, tenant_id, q, limit),
        "gateways": _gateways(session, tenant_id, q, limit),
    }


def _meters(session: Session, tenant_id: int, q: str, limit: int) -> list[dict]:
    m = _MANUFACTURER_AND_ID.match(q)
    stmt = select(Meter).where(Meter.tenant_id == tenant_id)
    if m:
        stmt = stmt.where(Meter.manufacturer == m.group(1).upper(), Meter.meter_id.startswith(m.group(2).upper()))
    elif re.fullmatch(r"[0-9A-Fa-f]{1,8}", q):
        stmt = stmt.where(Meter.meter_id.startswith(q.upper(), autoescape=True))
    else:
        return []
    rows = session.scalars(stmt.order_by(Meter.meter_id, Meter.manufacturer).limit(limit)).all()
    points = _points_of(session, tenant_id, [r.id for r in rows])
    return [
        {
            "id": r.id,
            "manufacturer": r.manufacturer,
            "meter_id": r.meter_id,
            "device_type": r.device_type,
            "metering_point": points.get(r.id),
        }
        for r in rows
    ]


def _points_of(session: Session, tenant_id: int, meter_pks: list[int]) -> dict[int, dict]:
    """The metering point each meter is installed at now."""
    if not meter_pks:
        return {}
    rows = session.execute(
        select(Installation.meter_pk, MeteringPoint.id, MeteringPoint.ref)
        .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
        .where(
            MeteringPoint.tenant_id == tenant_id,
            Installation.tenant_id == tenant_id,
            Installation.meter_pk.in_(meter_pks),
            Installation.removed_at.is_(None),
        )
    ).all()
    return {pk: {"id": pid, "ref": ref} for pk, pid, ref in rows}


def _points(session: Session, tenant_id: int, q: str, limit: int) -> list[dict]:
    low = q.lower()
    hit = or_(
        func.lower(MeteringPoint.ref).contains(low, autoescape=True),
        func.lower(MeteringPoint.address).contains(low, autoescape=True),
        func.lower(MeteringPoint.customer_ref).contains(low, autoescape=True),
    )
    rows = session.scalars(
        select(MeteringPoint).where(MeteringPoint.tenant_id == tenant_id, hit).order_by(MeteringPoint.ref).limit(limit)
    ).all()
    return [{"id": p.id, "ref": p.ref, "address": p.address, "customer_ref": p.customer_ref} for p in rows]


def _gateways(session: Session, tenant_id: int, q: str, limit: int) -> list[dict]:
    low = q.lower()
    hit = or_(
        func.lower(Gateway.serial).contains(low, autoescape=True),
        func.lower(func.coalesce(Gateway.name, "")).contains(low, autoescape=True),
    )
    rows = session.scalars(
        select(Gateway).where(Gateway.tenant_id == tenant_id, hit).order_by(Gateway.serial).limit(limit)
    ).all()
    return [{"id": g.id, "serial": g.serial, "name": g.name} for g in rows]
