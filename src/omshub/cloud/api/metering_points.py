"""Metering points (the billing key) and meter installations / swaps (`/api/v1/metering-points`).
The rules: services/metering_points.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.services import metering_points as points
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.consumption import effective_installed_at
from omshub.cloud.store.models import Installation, Meter, MeteringPoint

router = APIRouter(prefix="/api/v1/metering-points", tags=["metering points"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]


class PointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Text = Field(min_length=1, max_length=100)
    address: Text = Field("", max_length=500)
    customer_ref: Text = Field("", max_length=100)


class PointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Text | None = Field(None, min_length=1, max_length=100)
    address: Text | None = Field(None, max_length=500)
    customer_ref: Text | None = Field(None, max_length=100)


class MeterRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manufacturer: Text
    meter_id: Text


class InstallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meter: Id | MeterRef = Field(description="meter id, or {manufacturer, meter_id}")
    at: str | None = Field(
        None,
        description="ISO 8601 date or time (without a zone: the tenant's local time; "
        "a bare date: 00:00 there); omitted: from the meter's first reading",
    )
    initial_values: dict[str, float] = Field(
        default_factory=dict, description='register values at installation, e.g. {"energy": 0}'
    )


class SwapIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str = Field(description="time of the swap, ISO 8601 (without a zone: the tenant's local time)")
    old_final_values: dict[str, float] = Field(description='old meter\'s registers at removal, e.g. {"energy": 1050}')
    new_meter: Id | MeterRef
    new_initial_values: dict[str, float] = Field(default_factory=dict)


class RemoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = Field(None, description="ISO 8601 (without a zone: the tenant's local time); default now")
    final_values: dict[str, float] = Field(default_factory=dict)


def _meter_ref(ref: int | MeterRef) -> int | tuple[str, str]:
    return ref if isinstance(ref, int) else (ref.manufacturer, ref.meter_id)


def get_point(session: Session, principal: Principal, point_id: int) -> MeteringPoint:
    """The principal's tenant's metering point, else 404."""
    return points.get_point(session, principal.tenant_id, point_id)


def installation_json(session: Session, inst: Installation, m: Meter) -> dict:
    """`installed_from`: "given" (a date was given), or "first_reading" (none was: `installed_at` is the
    meter's first reading, until one arrives when it was registered)."""
    return {
        "id": inst.id,
        "meter": {"id": m.id, "manufacturer": m.manufacturer, "meter_id": m.meter_id, "device_type": m.device_type},
        "installed_at": iso(effective_installed_at(session, inst)),
        "installed_from": inst.installed_from,
        "removed_at": iso(inst.removed_at),
        "initial_values": inst.initial_values or {},
        "final_values": inst.final_values,
    }


def point_json(
    session: Session,
    mp: MeteringPoint,
    *,
    history: bool = False,
    current: dict[int, tuple[Installation, Meter]] | None = None,
) -> dict:
    out = {
        "id": mp.id,
        "ref": mp.ref,
        "address": mp.address,
        "customer_ref": mp.customer_ref,
        "created_at": iso(mp.created_at),
    }
    if history:
        rows = points.installations(session, mp)
        out["installations"] = [installation_json(session, i, m) for i, m in rows]
        now_installed = [installation_json(session, i, m) for i, m in rows if i.removed_at is None]
    else:
        pair = (current or {}).get(mp.id)
        now_installed = [installation_json(session, *pair)] if pair else []
    out["installation"] = now_installed[0] if now_installed else None
    return out


@router.get("", summary="List metering points")
def list_points(
    principal: Viewer,
    session: DbSession,
    ref: Text | None = None,
    customer_ref: Text | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = select(MeteringPoint).where(MeteringPoint.tenant_id == principal.tenant_id)
    if ref:
        stmt = stmt.where(MeteringPoint.ref == ref)
    if customer_ref:
        stmt = stmt.where(MeteringPoint.customer_ref == customer_ref)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=MeteringPoint.id)
    current = points.current_by_point(session, [mp.id for mp in rows])
    return page([point_json(session, mp, current=current) for mp in rows], nxt)


@router.post("", status_code=201, summary="Create a metering point")
def create_point(body: PointIn, principal: Operator, session: DbSession) -> dict:
    mp = points.create_point(session, principal.tenant_id, body.ref, body.address, body.customer_ref)
    return point_json(session, mp, history=True)


@router.get("/{point_id}", summary="One metering point with its installation history")
def read_point(point_id: Id, principal: Viewer, session: DbSession) -> dict:
    return point_json(session, get_point(session, principal, point_id), history=True)


@router.patch("/{point_id}", summary="Change a metering point")
def update_point(point_id: Id, body: PointPatch, principal: Operator, session: DbSession) -> dict:
    mp = points.change_point(
        session, principal.tenant_id, point_id, ref=body.ref, address=body.address, customer_ref=body.customer_ref
    )
    return point_json(session, mp, history=True)


@router.delete("/{point_id}", status_code=204, summary="Delete a metering point that never had a meter")
def delete_point(point_id: Id, principal: Operator, session: DbSession) -> None:
    points.delete_point(session, principal.tenant_id, point_id)


@router.post("/{point_id}/install", status_code=201, summary="Install a meter at an empty metering point")
def install_meter(point_id: Id, body: InstallIn, principal: Operator, session: DbSession) -> dict:
    mp = points.install(session, principal.tenant_id, point_id, _meter_ref(body.meter), body.at, body.initial_values)
    return point_json(session, mp, history=True)


@router.post("/{point_id}/swap", summary="Swap the installed meter for another")
def swap_meter(point_id: Id, body: SwapIn, principal: Operator, session: DbSession) -> dict:
    mp = points.swap(
        session,
        principal.tenant_id,
        point_id,
        body.at,
        body.old_final_values,
        _meter_ref(body.new_meter),
        body.new_initial_values,
    )
    return point_json(session, mp, history=True)


@router.post("/{point_id}/remove", summary="Remove the installed meter (no successor)")
def remove_meter(point_id: Id, body: RemoveIn, principal: Operator, session: DbSession) -> dict:
    mp = points.remove(session, principal.tenant_id, point_id, body.at, body.final_values)
    return point_json(session, mp, history=True)
