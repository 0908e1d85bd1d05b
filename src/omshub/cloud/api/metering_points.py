"""Metering points (the billing key) and meter installations / swaps (`/api/v1/metering-points`).

A swap closes the current installation with the old meter's final register values and opens
the next one with the new meter's initial values at the same instant, so consumption
(consumption.py) never jumps across meters.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.codec.units import QUANTITIES

from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models import Installation, Meter, MeteringPoint
from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.errors import ApiError
from omshub.cloud.domain.errors import not_found
from omshub.cloud.api.deps import require_role
from omshub.cloud.services.consumption import effective_installed_at
from omshub.cloud.api.meters import check_manufacturer, check_meter_id, current_installations, local_time, utcnow

router = APIRouter(prefix="/api/v1/metering-points", tags=["metering points"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
MAX_VALUES = 32


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
    at: str | None = Field(None, description="ISO 8601 date or time (without a zone: the tenant's local time; "
                                             "a bare date: 00:00 there); omitted: from the meter's first reading")
    initial_values: dict[str, float] = Field(default_factory=dict,
                                             description='register values at installation, e.g. {"energy": 0}')


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


def _values(values: dict[str, float], where: str) -> dict[str, float]:
    if len(values) > MAX_VALUES:
        raise ApiError(422, "invalid_request", f"{where}: at most {MAX_VALUES} values")
    for q, v in values.items():
        if q not in QUANTITIES:
            raise ApiError(422, "invalid_request", f"{where}: {q!r} is not a quantity (e.g. energy, volume, hca)")
        if not math.isfinite(v):
            raise ApiError(422, "invalid_request", f"{where}.{q}: value must be a finite number")
    return dict(values)


def get_point(session: Session, principal: Principal, point_id: int) -> MeteringPoint:
    mp = session.scalar(select(MeteringPoint).where(MeteringPoint.id == point_id,
                                                    MeteringPoint.tenant_id == principal.tenant_id))
    if mp is None:
        raise not_found(f"metering point {point_id}")
    return mp


def _resolve_meter(session: Session, principal: Principal, ref: int | MeterRef) -> Meter:
    if isinstance(ref, int):
        stmt = select(Meter).where(Meter.id == ref)
        label = f"meter {ref}"
    else:
        try:
            mfct, mid = check_manufacturer(ref.manufacturer), check_meter_id(ref.meter_id, "meter_id")
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        stmt = select(Meter).where(Meter.manufacturer == mfct, Meter.meter_id == mid)
        label = f"meter {mfct} {mid}"
    m = session.scalar(stmt.where(Meter.tenant_id == principal.tenant_id))
    if m is None:
        raise not_found(label)
    return m


def _installations(session: Session, mp: MeteringPoint) -> list[tuple[Installation, Meter]]:
    return list(session.execute(select(Installation, Meter).join(Meter, Meter.id == Installation.meter_pk)
                                .where(Installation.metering_point_id == mp.id,
                                       Installation.tenant_id == mp.tenant_id)
                                .order_by(Installation.installed_at, Installation.id)).all())


def installation_json(session: Session, inst: Installation, m: Meter) -> dict:
    """`installed_from`: "given" (a date was given), or "first_reading" (none was: `installed_at` is the
    meter's first reading, until one arrives when it was registered)."""
    return {"id": inst.id, "meter": {"id": m.id, "manufacturer": m.manufacturer, "meter_id": m.meter_id,
                                     "device_type": m.device_type},
            "installed_at": iso(effective_installed_at(session, inst)), "installed_from": inst.installed_from,
            "removed_at": iso(inst.removed_at),
            "initial_values": inst.initial_values or {}, "final_values": inst.final_values}


def point_json(session: Session, mp: MeteringPoint, *, history: bool = False,
               current: dict[int, tuple[Installation, Meter]] | None = None) -> dict:
    out = {"id": mp.id, "ref": mp.ref, "address": mp.address, "customer_ref": mp.customer_ref,
           "created_at": iso(mp.created_at)}
    if history:
        rows = _installations(session, mp)
        out["installations"] = [installation_json(session, i, m) for i, m in rows]
        now_installed = [installation_json(session, i, m) for i, m in rows if i.removed_at is None]
    else:
        pair = (current or {}).get(mp.id)
        now_installed = [installation_json(session, *pair)] if pair else []
    out["installation"] = now_installed[0] if now_installed else None
    return out


def _current_by_point(session: Session, point_ids: list[int]) -> dict[int, tuple[Installation, Meter]]:
    if not point_ids:
        return {}
    rows = session.execute(select(Installation, Meter).join(Meter, Meter.id == Installation.meter_pk)
                           .where(Installation.metering_point_id.in_(point_ids), Installation.removed_at.is_(None)))
    return {i.metering_point_id: (i, m) for i, m in rows}


def _time(session: Session, principal: Principal, text: str | None, name: str) -> datetime:
    return local_time(session, principal.tenant_id, text, name) or utcnow()


@router.get("", summary="List metering points")
def list_points(principal: Viewer, session: DbSession, ref: Text | None = None, customer_ref: Text | None = None,
                cursor: str | None = None, limit: Limit = 100) -> dict:
    stmt = select(MeteringPoint).where(MeteringPoint.tenant_id == principal.tenant_id)
    if ref:
        stmt = stmt.where(MeteringPoint.ref == ref)
    if customer_ref:
        stmt = stmt.where(MeteringPoint.customer_ref == customer_ref)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=MeteringPoint.id)
    current = _current_by_point(session, [mp.id for mp in rows])
    return page([point_json(session, mp, current=current) for mp in rows], nxt)


@router.post("", status_code=201, summary="Create a metering point")
def create_point(body: PointIn, principal: Operator, session: DbSession) -> dict:
    ref = body.ref.strip()
    if not ref:
        raise ApiError(422, "invalid_request", "ref must not be blank")
    if session.scalar(select(MeteringPoint.id).where(MeteringPoint.tenant_id == principal.tenant_id,
                                                     MeteringPoint.ref == ref)) is not None:
        raise ApiError(409, "exists", f"metering point {ref!r} already exists")
    mp = MeteringPoint(tenant_id=principal.tenant_id, ref=ref, address=body.address, customer_ref=body.customer_ref,
                       created_at=utcnow())
    session.add(mp)
    session.flush()
    return point_json(session, mp, history=True)


@router.get("/{point_id}", summary="One metering point with its installation history")
def read_point(point_id: Id, principal: Viewer, session: DbSession) -> dict:
    return point_json(session, get_point(session, principal, point_id), history=True)


@router.patch("/{point_id}", summary="Change a metering point")
def update_point(point_id: Id, body: PointPatch, principal: Operator, session: DbSession) -> dict:
    mp = get_point(session, principal, point_id)
    if body.ref is not None and body.ref.strip() != mp.ref:
        ref = body.ref.strip()
        if session.scalar(select(MeteringPoint.id).where(MeteringPoint.tenant_id == principal.tenant_id,
                                                         MeteringPoint.ref == ref)) is not None:
            raise ApiError(409, "exists", f"metering point {ref!r} already exists")
        mp.ref = ref
    if body.address is not None:
        mp.address = body.address
    if body.customer_ref is not None:
        mp.customer_ref = body.customer_ref
    session.flush()
    return point_json(session, mp, history=True)


@router.delete("/{point_id}", status_code=204, summary="Delete a metering point that never had a meter")
def delete_point(point_id: Id, principal: Operator, session: DbSession) -> None:
    mp = get_point(session, principal, point_id)
    if _installations(session, mp):
        raise ApiError(409, "in_use", f"metering point {mp.ref!r} has installations; it cannot be deleted")
    session.delete(mp)


@router.post("/{point_id}/install", status_code=201, summary="Install a meter at an empty metering point")
def install_meter(point_id: Id, body: InstallIn, principal: Operator, session: DbSession) -> dict:
    mp = get_point(session, principal, point_id)
    m = _resolve_meter(session, principal, body.meter)
    given = local_time(session, principal.tenant_id, body.at, "at")
    at = given or utcnow()
    values = _values(body.initial_values, "initial_values")
    if given is None and values:
        raise ApiError(422, "invalid_request", "initial_values need the installation time `at` they were read at")
    if _current_by_point(session, [mp.id]):
        raise ApiError(409, "occupied", f"metering point {mp.ref!r} already has a meter; use a swap")
    _check_free(session, m)
    _check_after_history(session, mp, at)
    # without a time the meter counts from its first reading (after the point's history)
    session.add(Installation(tenant_id=mp.tenant_id, metering_point_id=mp.id, meter_pk=m.id, installed_at=at,
                             installed_from="given" if given is not None else "first_reading",
                             removed_at=None, initial_values=values, final_values=None))
    session.flush()
    return point_json(session, mp, history=True)


def _check_free(session: Session, m: Meter) -> None:
    other = current_installations(session, [m.id]).get(m.id)
    if other is not None:
        raise ApiError(409, "installed", f"meter {m.manufacturer} {m.meter_id} is installed at metering point "
                                         f"{other[1].ref!r}")


def _check_after_history(session: Session, mp: MeteringPoint, at: datetime) -> None:
    for inst, _ in _installations(session, mp):
        last = inst.removed_at or inst.installed_at
        if at < _aware(last):
            raise ApiError(422, "invalid_time", f"at {iso(at)} is before the point's last installation change "
                                                f"({iso(last)})")


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


@router.post("/{point_id}/swap", summary="Swap the installed meter for another")
def swap_meter(point_id: Id, body: SwapIn, principal: Operator, session: DbSession) -> dict:
    mp = get_point(session, principal, point_id)
    at = _time(session, principal, body.at, "at")
    final = _values(body.old_final_values, "old_final_values")
    initial = _values(body.new_initial_values, "new_initial_values")
    current = _current_by_point(session, [mp.id]).get(mp.id)
    if current is None:
        raise ApiError(409, "empty", f"metering point {mp.ref!r} has no meter to swap; use install")
    inst, old = current
    new = _resolve_meter(session, principal, body.new_meter)
    if new.id == old.id:
        raise ApiError(422, "invalid_request", "the new meter is the installed meter")
    _check_free(session, new)
    installed = effective_installed_at(session, inst)
    if at <= installed:
        raise ApiError(422, "invalid_time", f"at: swap time {iso(at)} must be after the installation at "
                                            f"{iso(installed)}")
    inst.removed_at = at
    inst.final_values = final
    session.add(Installation(tenant_id=mp.tenant_id, metering_point_id=mp.id, meter_pk=new.id, installed_at=at,
                             removed_at=None, initial_values=initial, final_values=None))
    session.flush()
    return point_json(session, mp, history=True)


@router.post("/{point_id}/remove", summary="Remove the installed meter (no successor)")
def remove_meter(point_id: Id, body: RemoveIn, principal: Operator, session: DbSession) -> dict:
    mp = get_point(session, principal, point_id)
    at = _time(session, principal, body.at, "at")
    current = _current_by_point(session, [mp.id]).get(mp.id)
    if current is None:
        raise ApiError(409, "empty", f"metering point {mp.ref!r} has no meter installed")
    inst, _ = current
    installed = effective_installed_at(session, inst)
    if at <= installed:
        raise ApiError(422, "invalid_time", f"at: removal time {iso(at)} must be after the installation at "
                                            f"{iso(installed)}")
    inst.removed_at = at
    inst.final_values = _values(body.final_values, "final_values")
    session.flush()
    return point_json(session, mp, history=True)
