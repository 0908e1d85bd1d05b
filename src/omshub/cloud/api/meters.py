"""Meters: CRUD (tenant-scoped) and bulk CSV import (`/api/v1/meters`). The rules, registration
and re-queueing: services/meters.py; the import: services/meter_import.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.guard import read_body
from omshub.cloud.services import meter_import
from omshub.cloud.services import meters as meter_service
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.meters import current_installations
from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint

router = APIRouter(prefix="/api/v1/meters", tags=["meters"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]


def get_meter(session: Session, principal: Principal, meter_pk: int) -> Meter:
    """The principal's tenant's meter, else 404."""
    return meter_service.get_meter(session, principal.tenant_id, meter_pk)


def meter_json(
    m: Meter,
    installed: tuple[Installation, MeteringPoint] | None = None,
    gateway_serial: str | None = None,
    time_text=iso,
) -> dict:
    """`time_text`: how `m`'s times become text (the latest readings page selects them as text)."""
    point = None
    if installed is not None:
        inst, mp = installed
        point = {
            "id": mp.id,
            "ref": mp.ref,
            "installed_at": iso(inst.installed_at),
            "installed_from": inst.installed_from,
        }
    return {
        "id": m.id,
        "manufacturer": m.manufacturer,
        "meter_id": m.meter_id,
        "device_type": m.device_type,
        "key_status": m.key_status,
        "gateway_id": m.gateway_id,
        "gateway": gateway_serial,
        "metering_point": point,
        "created_at": time_text(m.created_at),
        "last_heard_at": time_text(m.last_heard_at),
        "last_reading_id": m.last_reading_id,
        "meter_timezone": m.meter_timezone,
    }


def meters_json(session: Session, meters: list[Meter], time_text=iso, installed: dict | None = None) -> list[dict]:
    """`installed`: their current_installations when the caller has them."""
    if installed is None:
        installed = current_installations(session, [m.id for m in meters])
    gw_ids = {m.gateway_id for m in meters if m.gateway_id}
    serials: dict[int | None, str] = {}
    if gw_ids:
        serials = dict(session.execute(select(Gateway.id, Gateway.serial).where(Gateway.id.in_(gw_ids))).all())
    return [meter_json(m, installed.get(m.id), serials.get(m.gateway_id), time_text) for m in meters]


class MeterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manufacturer: Text = Field(max_length=3)
    meter_id: Text = Field(max_length=8)
    device_type: Text | int | None = None
    gateway_id: Id | None = None
    meter_timezone: Text | None = Field(
        None,
        max_length=64,
        description="IANA zone of this meter's clock (default: its model's or "
        "the tenant's, see GET /api/v1/tenant/time)",
    )


class MeterPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_type: Text | int | None = None
    gateway_id: Id | None = None
    meter_timezone: Text | None = Field(None, max_length=64, description="null: its model's or the tenant's zone")


@router.get("", summary="List meters")
def list_meters(
    principal: Viewer,
    session: DbSession,
    gateway_id: Id | None = None,
    manufacturer: Text | None = None,
    meter_id: Text | None = None,
    device_type: Text | None = None,
    key_status: str | None = Query(None, pattern="^(missing|present|suspect|wrong)$"),
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = select(Meter).where(Meter.tenant_id == principal.tenant_id)
    if gateway_id is not None:
        stmt = stmt.where(Meter.gateway_id == gateway_id)
    if manufacturer:
        stmt = stmt.where(Meter.manufacturer == manufacturer.upper())
    if meter_id:
        stmt = stmt.where(Meter.meter_id == meter_id.upper())
    if device_type:
        stmt = stmt.where(Meter.device_type == device_type.lower())
    if key_status:
        stmt = stmt.where(Meter.key_status == key_status)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Meter.id)
    return page(meters_json(session, rows), nxt)


@router.post("", status_code=201, summary="Register a meter")
def create_meter(body: MeterIn, principal: Operator, session: DbSession) -> dict:
    m = meter_service.register_meter(
        session,
        principal.tenant_id,
        body.manufacturer,
        body.meter_id,
        device_type=body.device_type,
        gateway_id=body.gateway_id,
        meter_timezone=body.meter_timezone,
        actor=principal.name,
    )
    return meters_json(session, [m])[0]


@router.get("/{meter_pk}", summary="One meter")
def read_meter(meter_pk: Id, principal: Viewer, session: DbSession) -> dict:
    return meters_json(session, [get_meter(session, principal, meter_pk)])[0]


@router.patch("/{meter_pk}", summary="Change a meter's device type, gateway or clock time zone")
def update_meter(meter_pk: Id, body: MeterPatch, principal: Operator, session: DbSession) -> dict:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    m = meter_service.change_meter(session, principal.tenant_id, meter_pk, changes, actor=principal.name)
    return meters_json(session, [m])[0]


@router.delete("/{meter_pk}", status_code=204, summary="Unregister a meter without readings")
def delete_meter(meter_pk: Id, principal: Operator, session: DbSession) -> None:
    meter_service.remove_meter(session, principal.tenant_id, meter_pk)


# --- bulk import ---


async def _import_body(request: Request) -> bytes:
    """The CSV, read after the principal (a dependency listed before it) and bounded as it is read."""
    return await read_body(request, request.app.state.settings.max_import_body, "the meter import")


ImportBody = Annotated[bytes, Depends(_import_body)]


@router.post(
    "/import",
    summary="Import meters from CSV (idempotent upsert)",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def import_meters(principal: Operator, body: ImportBody, session: DbSession) -> dict:
    """Columns `manufacturer,id,device_type[,gateway][,metering_point][,address][,customer_ref][,installed_at]
    [,meter_timezone]`. `installed_at` (for a meter newly installed at its point): an ISO 8601 date or
    time; without a zone in the tenant's time zone, a bare date meaning 00:00 there; when empty the
    meter counts as installed from its first reading. `meter_timezone`: the IANA zone of the meter's
    clock (empty: its model's or the tenant's). Either every line is imported or none (422 listing
    the lines in error)."""
    return meter_import.import_meters(session, principal.tenant_id, body, actor=principal.name)
