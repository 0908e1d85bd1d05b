"""Billing values (`/api/v1/billing`, `/api/v1/review`): close a period, read a metering point's boundary
values and period consumption with their origins, and work the review queue. The rules:
services/billing_close.py and services/billing_review.py; docs/billing.md."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from omshub.cloud.api import billing_schemas as S
from omshub.cloud.api.common import DbSession, Id, Limit, Text, TimeQuery, iso, page, paginate, parse_time
from omshub.cloud.api.deps import require_role
from omshub.cloud.services import (
    billing_close,
    billing_review,
    billing_segments,
    billing_settings,
    billing_summary,
)
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.metering_points import get_point
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import BillingConsumption, BillingFinding, BillingValue
from omshub.times import utcnow

router = APIRouter(prefix="/api/v1", tags=["billing values"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: Text = Field(max_length=7, description='a month "2026-11", or a year "2026" for the billing year')


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["accept", "reject", "estimate"]
    note: Text = Field(min_length=1, max_length=billing_review.MAX_REASON)
    method: Literal["previous_period", "comparable_units", "property_average"] | None = Field(
        None, description="for `estimate`: the estimation method (docs/billing.md §Estimation)"
    )


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = Field(ge=0, allow_inf_nan=False)
    reason: Text = Field(min_length=1, max_length=billing_review.MAX_REASON)


class EstimateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["previous_period", "comparable_units", "property_average"]
    reason: Text = Field(min_length=1, max_length=billing_review.MAX_REASON)


def value_json(b: BillingValue) -> dict:
    return {
        "id": b.id,
        "metering_point_id": b.metering_point_id,
        "quantity": b.quantity,
        "boundary": iso(b.boundary_at),
        "boundary_day": b.boundary_day.isoformat(),
        "reason": b.reason,
        "value": b.value,
        "origin": b.origin,
        "quality": b.quality,
        "code": b.code,
        "method": b.method,
        "details": b.details,
        "computed": {"value": b.computed_value, "origin": b.computed_origin, "details": b.computed_details},
        "state": b.state,
        "exported_at": iso(b.exported_at),
        "export_stale": b.export_stale,
    }


def finding_json(f: BillingFinding, point_ref: str) -> dict:
    return {
        "id": f.id,
        "metering_point_id": f.metering_point_id,
        "metering_point_ref": point_ref,
        "quantity": f.quantity,
        "period": f.period,
        "rule": f.rule,
        "severity": f.severity,
        "message": f.message,
        "german": f.german,
        "details": f.details,
        "state": f.state,
        "created_at": iso(f.created_at),
        "decided_at": iso(f.decided_at),
        "decided_by": f.decided_by,
        "note": f.note,
    }


@router.post("/billing/close", summary="Close a billing period for every metering point", response_model=S.CloseOut)
def close(body: CloseIn, principal: Operator, session: DbSession) -> dict:
    """Computes boundary values (with origin and code), consumption and validation findings; running it
    again changes nothing unless data changed."""
    return billing_close.close_period(session, principal.tenant_id, body.period, actor=principal.name, now=utcnow())


@router.get(
    "/metering-points/{point_id}/billing-values",
    summary="A metering point's boundary values",
    response_model=S.BillingValuePage,
)
def list_values(
    point_id: Id,
    principal: Viewer,
    session: DbSession,
    from_: TimeQuery | None = Query(None, alias="from"),
    to: TimeQuery | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    mp = get_point(session, principal.tenant_id, point_id)
    stmt = select(BillingValue).where(BillingValue.metering_point_id == mp.id)
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    if start:
        stmt = stmt.where(BillingValue.boundary_at >= start)
    if end:
        stmt = stmt.where(BillingValue.boundary_at <= end)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=BillingValue.id)
    return page([value_json(b) for b in rows], nxt)


@router.get(
    "/metering-points/{point_id}/billing-consumption",
    summary="A metering point's period consumption",
    response_model=S.ConsumptionPage,
)
def list_consumption(point_id: Id, principal: Viewer, session: DbSession) -> dict:
    mp = get_point(session, principal.tenant_id, point_id)
    rows = session.scalars(
        select(BillingConsumption)
        .where(BillingConsumption.metering_point_id == mp.id)
        .order_by(BillingConsumption.start_at)
    )
    return page(
        [
            {
                "period": c.period,
                "quantity": c.quantity,
                "start": iso(c.start_at),
                "end": iso(c.end_at),
                "value": c.value,
                "quality": c.quality,
                "runs": c.runs,
            }
            for c in rows
        ],
        None,
    )


@router.get("/review", summary="The review queue", response_model=S.FindingPage)
def review_queue(
    principal: Viewer,
    session: DbSession,
    state: Literal["open", "accepted", "rejected", "estimated", "cleared"] = "open",
    period: Text | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = (
        select(BillingFinding, MeteringPoint.ref)
        .join(MeteringPoint, MeteringPoint.id == BillingFinding.metering_point_id)
        .where(BillingFinding.tenant_id == principal.tenant_id, BillingFinding.state == state)
    )
    if period:
        stmt = stmt.where(BillingFinding.period == period)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=BillingFinding.id)
    return page([finding_json(f, ref) for f, ref in rows], nxt)


@router.post("/review/{finding_id}", summary="Accept, reject or estimate a finding", response_model=S.FindingOut)
def decide(finding_id: Id, body: DecisionIn, principal: Operator, session: DbSession) -> dict:
    if body.action == "estimate":
        f = billing_review.estimate_finding(
            session, principal.tenant_id, finding_id, body.method or "", body.note, actor=principal.name, now=utcnow()
        )
    else:
        f = billing_review.decide(
            session, principal.tenant_id, finding_id, body.action, body.note, actor=principal.name, now=utcnow()
        )
    return finding_json(f, get_point(session, principal.tenant_id, f.metering_point_id).ref)


@router.put(
    "/billing-values/{value_id}",
    summary="Set a boundary value by hand (audited; the computed one stays)",
    response_model=S.BillingValueOut,
)
def edit(value_id: Id, body: EditIn, principal: Operator, session: DbSession) -> dict:
    b = billing_review.edit_value(
        session, principal.tenant_id, value_id, body.value, body.reason, actor=principal.name, now=utcnow()
    )
    return value_json(b)


@router.post(
    "/billing-values/{value_id}/estimate", summary="Estimate an end-of-period value", response_model=S.BillingValueOut
)
def estimate(value_id: Id, body: EstimateIn, principal: Operator, session: DbSession) -> dict:
    b = billing_review.estimate_value(
        session, principal.tenant_id, value_id, body.method, body.reason, actor=principal.name, now=utcnow()
    )
    return value_json(b)


PeriodLabel = Annotated[Text, Query(max_length=16, description='"2026-11", or "year:2026" for a billing year')]


@router.get(
    "/units/{unit_id}/billing-consumption",
    summary="A unit's consumption of a closed period",
    response_model=S.UnitConsumptionOut,
)
def unit_consumption(unit_id: Id, period: PeriodLabel, principal: Viewer, session: DbSession) -> dict:
    return billing_summary.unit_consumption(session, principal.tenant_id, unit_id, period)


@router.get(
    "/properties/{property_id}/billing-consumption",
    summary="A property's units and estimated share",
    response_model=S.PropertyConsumptionOut,
)
def property_consumption(property_id: Id, period: PeriodLabel, principal: Viewer, session: DbSession) -> dict:
    """Every unit's consumption of the period, and the share of the area whose consumption is estimated
    or missing (above 25 % the costs are allocated by area only: HeizkostenV §9a(2))."""
    return billing_summary.property_consumption(session, principal.tenant_id, property_id, period)


@router.get(
    "/units/{unit_id}/occupant-consumption",
    summary="A unit's consumption per occupant segment of a closed period",
    response_model=S.UnitSegmentsOut,
)
def unit_segments(unit_id: Id, period: PeriodLabel, principal: Viewer, session: DbSession) -> dict:
    """Each metering point's consumption in each occupant's part of the period (cut at move-in and
    move-out days; a vacant part has no occupant), with the reading code (docs/billing.md)."""
    return billing_segments.unit_segments(session, principal.tenant_id, unit_id, period)


@router.get(
    "/occupants/{occupant_id}/billing-consumption",
    summary="An occupant's consumption per segment of a closed period",
    response_model=S.OccupantSegmentsOut,
)
def occupant_segments(occupant_id: Id, period: PeriodLabel, principal: Viewer, session: DbSession) -> dict:
    return billing_segments.occupant_segments(session, principal.tenant_id, occupant_id, period)


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_value: float = Field(ge=0, le=1e9, description="from this expected consumption on")
    above_pct: float = Field(ge=0, le=1e9)
    below_pct: float = Field(ge=0, le=1e9)


class RulesIn(BaseModel):
    """Any of the settings; those left out stay as they are. Defaults: docs/billing.md."""

    model_config = ConfigDict(extra="forbid")
    zero_days: int | None = Field(None, ge=1, le=366)
    heating_months: list[Annotated[int, Field(ge=1, le=12)]] | None = Field(None, min_length=1, max_length=12)
    stale_days: int | None = Field(None, ge=1, le=366)
    future_tolerance_s: int | None = Field(None, ge=0, le=86_400)
    max_power_kw: float | None = Field(None, gt=0, le=1e7)
    max_flow_m3h: float | None = Field(None, gt=0, le=1e5)
    max_hca_units_per_day: float | None = Field(None, gt=0, le=1e6)
    bands: list[Band] | None = Field(None, min_length=1, max_length=10)
    reset_drop_share: float | None = Field(None, ge=0.01, le=1.0)
    measured_within_s: int | None = Field(None, ge=0, le=7 * 86_400)
    interpolate_within_s: int | None = Field(None, ge=3_600, le=92 * 86_400)
    auto_estimate: list[Literal["previous_period", "comparable_units", "property_average"]] | None = Field(
        None, max_length=3, description="methods the close tries, in order, where a period has no value; [] for none"
    )


@router.get("/billing/rules", summary="The tenant's validation rules and boundary distances", response_model=S.RulesOut)
def read_rules(principal: Viewer, session: DbSession) -> dict:
    return billing_settings.current(session, principal.tenant_id)


@router.patch("/billing/rules", summary="Change validation rules (audited)", response_model=S.RulesOut)
def change_rules(body: RulesIn, principal: Operator, session: DbSession) -> dict:
    changes = body.model_dump(exclude_none=True)
    return billing_settings.change(session, principal.tenant_id, changes, actor=principal.name, now=utcnow())
