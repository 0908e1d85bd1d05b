"""Reading the consumption per occupant segment of a closed period (docs/billing.md §Occupant
segments): per unit (every metering point's segments, with the occupant of each) and per occupant
(their segments in every unit they occupied in the period). The close stores the segments
(billing_store.store_segments); these are read-only and tenant-scoped, for the API and for the
customer information."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.services.properties import get_occupant, get_unit
from omshub.cloud.store.models_billing import BillingSegment, Occupancy, Occupant


def _json(seg: BillingSegment, occupants: dict[int, Occupant], stays: dict[int, Occupancy]) -> dict:
    stay = stays.get(seg.occupancy_id) if seg.occupancy_id is not None else None
    who = occupants.get(stay.occupant_id) if stay is not None else None
    return {
        "metering_point_id": seg.metering_point_id,
        "unit_id": seg.unit_id,
        "quantity": seg.quantity,
        "period": seg.period,
        "first_day": seg.first_day.isoformat(),
        "last_day": seg.last_day.isoformat(),
        "occupancy_id": seg.occupancy_id,
        "occupant": None if who is None else {"id": who.id, "customer_ref": who.customer_ref, "name": who.name},
        "value": seg.value,
        "code": seg.code,
        "method": seg.method,
        "details": seg.details,
    }


def _named(session: Session, tenant_id: int, segments: list[BillingSegment]) -> list[dict]:
    ids = {s.occupancy_id for s in segments if s.occupancy_id is not None}
    stays = {
        o.id: o
        for o in session.scalars(select(Occupancy).where(Occupancy.tenant_id == tenant_id, Occupancy.id.in_(ids)))
    }
    occupants = {
        o.id: o
        for o in session.scalars(
            select(Occupant).where(
                Occupant.tenant_id == tenant_id, Occupant.id.in_({s.occupant_id for s in stays.values()})
            )
        )
    }
    return [_json(s, occupants, stays) for s in segments]


def unit_segments(session: Session, tenant_id: int, unit_id: int, period: str) -> dict:
    """A unit's segments of `period` ("2026-11", "year:2026"), by metering point, quantity and day."""
    unit = get_unit(session, tenant_id, unit_id)
    rows = list(
        session.scalars(
            select(BillingSegment)
            .where(
                BillingSegment.tenant_id == tenant_id,
                BillingSegment.unit_id == unit.id,
                BillingSegment.period == period,
            )
            .order_by(BillingSegment.metering_point_id, BillingSegment.quantity, BillingSegment.first_day)
        )
    )
    return {"unit_id": unit.id, "period": period, "items": _named(session, tenant_id, rows)}


def occupant_segments(session: Session, tenant_id: int, occupant_id: int, period: str) -> dict:
    """An occupant's segments of `period` in every unit they occupied."""
    occupant = get_occupant(session, tenant_id, occupant_id)
    stays = list(
        session.scalars(
            select(Occupancy.id).where(Occupancy.tenant_id == tenant_id, Occupancy.occupant_id == occupant.id)
        )
    )
    rows = list(
        session.scalars(
            select(BillingSegment)
            .where(
                BillingSegment.tenant_id == tenant_id,
                BillingSegment.occupancy_id.in_(stays),
                BillingSegment.period == period,
            )
            .order_by(
                BillingSegment.unit_id,
                BillingSegment.metering_point_id,
                BillingSegment.quantity,
                BillingSegment.first_day,
            )
        )
    )
    return {"occupant_id": occupant.id, "period": period, "items": _named(session, tenant_id, rows)}
