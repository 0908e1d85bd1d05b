"""Billing master data (`/api/v1/properties`, `/units`, `/occupants`, `/occupancies`): properties,
their units and metering points, occupants and their stays, and the CSV import of all three. The rules:
services/properties.py and services/master_import.py."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from omshub.cloud.api import billing_schemas as S
from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.guard import read_body
from omshub.cloud.services import master_import
from omshub.cloud.services import properties as props
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import Occupancy, Occupant, Property, Unit

router = APIRouter(prefix="/api/v1", tags=["properties and occupants"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Short = Annotated[Text, Field(max_length=200)]


class PropertyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Text | None = Field(None, max_length=100, description="the supplier's property number")
    name: Short | None = None
    street: Short | None = None
    postcode: Text | None = Field(None, max_length=10)
    city: Text | None = Field(None, max_length=100)
    country: Text | None = Field(None, max_length=2)
    heating_system: Text | None = Field(None, max_length=32)
    energy_carrier: Literal[props.ENERGY_CARRIERS] | None = None  # type: ignore[valid-type]
    size_class: Literal[props.SIZE_CLASSES] | None = None  # type: ignore[valid-type]
    due_month: int | None = Field(None, ge=1, le=12, description="month of the yearly due date (default 12)")
    due_day: int | None = Field(None, ge=1, le=31, description="day of the yearly due date (default 31)")
    timezone: Text | None = Field(None, max_length=64)


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: Text | None = Field(None, max_length=100)
    name: Short | None = None
    area_m2: float | None = Field(None, gt=0, le=props.MAX_AREA_M2, description="living area in m²")
    usage: Literal[props.USAGES] | None = None  # type: ignore[valid-type]


class OccupantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_ref: Text | None = Field(None, max_length=100)
    name: Short | None = None
    email: Text | None = Field(None, max_length=254)
    phone: Text | None = Field(None, max_length=50)
    postal_address: Text | None = Field(None, max_length=500)
    channel: Literal[props.CHANNELS] | None = None  # type: ignore[valid-type]
    language: Literal[props.LANGUAGES] | None = None  # type: ignore[valid-type]


class OccupancyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occupant_id: Id
    moved_in: date
    moved_out: date | None = None


class OccupancyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    moved_in: date | None = None
    moved_out: date | None = None


class PointAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metering_point_id: Id


def _fields(body: BaseModel) -> dict:
    return body.model_dump(exclude_none=True)


def property_json(p: Property) -> dict:
    return {
        "id": p.id,
        "ref": p.ref,
        "name": p.name,
        "street": p.street,
        "postcode": p.postcode,
        "city": p.city,
        "country": p.country,
        "heating_system": p.heating_system,
        "energy_carrier": p.energy_carrier,
        "size_class": p.size_class,
        "due_date": {"month": p.due_month, "day": p.due_day},
        "timezone": p.timezone,
        "weather_station_id": p.weather_station_id,
        "created_at": iso(p.created_at),
    }


def unit_json(u: Unit, points: list[int] | None = None) -> dict:
    out = {"id": u.id, "property_id": u.property_id, "ref": u.ref, "name": u.name, "area_m2": u.area_m2}
    out |= {"usage": u.usage, "created_at": iso(u.created_at)}
    if points is not None:
        out["metering_point_ids"] = points
    return out


def occupant_json(o: Occupant) -> dict:
    return {
        "id": o.id,
        "customer_ref": o.customer_ref,
        "name": o.name,
        "email": o.email,
        "phone": o.phone,
        "postal_address": o.postal_address,
        "channel": o.channel,
        "language": o.language,
        "created_at": iso(o.created_at),
    }


def occupancy_json(o: Occupancy) -> dict:
    return {
        "id": o.id,
        "unit_id": o.unit_id,
        "occupant_id": o.occupant_id,
        "moved_in": o.moved_in.isoformat(),
        "moved_out": o.moved_out.isoformat() if o.moved_out else None,
    }


# --- properties ---


@router.get("/properties", summary="List properties", response_model=S.PropertyPage)
def list_properties(
    principal: Viewer, session: DbSession, ref: Text | None = None, cursor: str | None = None, limit: Limit = 100
) -> dict:
    stmt = select(Property).where(Property.tenant_id == principal.tenant_id)
    if ref:
        stmt = stmt.where(Property.ref == ref)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Property.id)
    return page([property_json(p) for p in rows], nxt)


@router.post("/properties", status_code=201, summary="Create a property", response_model=S.PropertyOut)
def create_property(body: PropertyIn, principal: Operator, session: DbSession) -> dict:
    return property_json(props.save_property(session, principal.tenant_id, _fields(body), actor=principal.name))


@router.get("/properties/{property_id}", summary="One property", response_model=S.PropertyOut)
def read_property(property_id: Id, principal: Viewer, session: DbSession) -> dict:
    return property_json(props.get_property(session, principal.tenant_id, property_id))


@router.patch("/properties/{property_id}", summary="Change a property", response_model=S.PropertyOut)
def change_property(property_id: Id, body: PropertyIn, principal: Operator, session: DbSession) -> dict:
    p = props.save_property(session, principal.tenant_id, _fields(body), actor=principal.name, property_id=property_id)
    return property_json(p)


# --- units ---


def _points_of(session, unit_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {u: [] for u in unit_ids}
    for pid, uid in session.execute(
        select(MeteringPoint.id, MeteringPoint.unit_id).where(MeteringPoint.unit_id.in_(unit_ids))
    ):
        out[uid].append(pid)
    return out


@router.get("/properties/{property_id}/units", summary="The units of a property", response_model=S.UnitPage)
def list_units(
    property_id: Id, principal: Viewer, session: DbSession, cursor: str | None = None, limit: Limit = 100
) -> dict:
    p = props.get_property(session, principal.tenant_id, property_id)
    stmt = select(Unit).where(Unit.property_id == p.id, Unit.tenant_id == principal.tenant_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Unit.id)
    points = _points_of(session, [u.id for u in rows])
    return page([unit_json(u, points[u.id]) for u in rows], nxt)


@router.post(
    "/properties/{property_id}/units", status_code=201, summary="Add a unit to a property", response_model=S.UnitOut
)
def create_unit(property_id: Id, body: UnitIn, principal: Operator, session: DbSession) -> dict:
    u = props.save_unit(session, principal.tenant_id, _fields(body), actor=principal.name, property_id=property_id)
    return unit_json(u, [])


@router.get("/units/{unit_id}", summary="One unit with its metering points", response_model=S.UnitOut)
def read_unit(unit_id: Id, principal: Viewer, session: DbSession) -> dict:
    u = props.get_unit(session, principal.tenant_id, unit_id)
    return unit_json(u, _points_of(session, [u.id])[u.id])


@router.patch("/units/{unit_id}", summary="Change a unit", response_model=S.UnitOut)
def change_unit(unit_id: Id, body: UnitIn, principal: Operator, session: DbSession) -> dict:
    u = props.save_unit(session, principal.tenant_id, _fields(body), actor=principal.name, unit_id=unit_id)
    return unit_json(u, _points_of(session, [u.id])[u.id])


@router.post("/units/{unit_id}/metering-points", summary="Put a metering point in a unit", response_model=S.UnitOut)
def assign_point(unit_id: Id, body: PointAssign, principal: Operator, session: DbSession) -> dict:
    props.assign_point(session, principal.tenant_id, unit_id, body.metering_point_id, actor=principal.name)
    return read_unit(unit_id, principal, session)


# --- occupants and occupancies ---


@router.get("/occupants", summary="List occupants", response_model=S.OccupantPage)
def list_occupants(
    principal: Viewer,
    session: DbSession,
    customer_ref: Text | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = select(Occupant).where(Occupant.tenant_id == principal.tenant_id)
    if customer_ref:
        stmt = stmt.where(Occupant.customer_ref == customer_ref)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Occupant.id)
    return page([occupant_json(o) for o in rows], nxt)


@router.post("/occupants", status_code=201, summary="Create an occupant", response_model=S.OccupantOut)
def create_occupant(body: OccupantIn, principal: Operator, session: DbSession) -> dict:
    return occupant_json(props.save_occupant(session, principal.tenant_id, _fields(body), actor=principal.name))


@router.get("/occupants/{occupant_id}", summary="One occupant with their stays", response_model=S.OccupantOut)
def read_occupant(occupant_id: Id, principal: Viewer, session: DbSession) -> dict:
    o = props.get_occupant(session, principal.tenant_id, occupant_id)
    stays = session.scalars(select(Occupancy).where(Occupancy.occupant_id == o.id).order_by(Occupancy.moved_in))
    return occupant_json(o) | {"occupancies": [occupancy_json(s) for s in stays]}


@router.patch("/occupants/{occupant_id}", summary="Change an occupant", response_model=S.OccupantOut)
def change_occupant(occupant_id: Id, body: OccupantIn, principal: Operator, session: DbSession) -> dict:
    o = props.save_occupant(session, principal.tenant_id, _fields(body), actor=principal.name, occupant_id=occupant_id)
    return occupant_json(o)


@router.get("/units/{unit_id}/occupancies", summary="Who occupied a unit when", response_model=S.OccupancyPage)
def list_occupancies(unit_id: Id, principal: Viewer, session: DbSession) -> dict:
    u = props.get_unit(session, principal.tenant_id, unit_id)
    rows = session.scalars(select(Occupancy).where(Occupancy.unit_id == u.id).order_by(Occupancy.moved_in))
    return page([occupancy_json(o) for o in rows], None)


@router.post(
    "/units/{unit_id}/occupancies",
    status_code=201,
    summary="An occupant moves into a unit",
    response_model=S.OccupancyOut,
)
def create_occupancy(unit_id: Id, body: OccupancyIn, principal: Operator, session: DbSession) -> dict:
    o = props.save_occupancy(
        session,
        principal.tenant_id,
        unit_id=unit_id,
        occupant_id=body.occupant_id,
        moved_in=body.moved_in,
        moved_out=body.moved_out,
        actor=principal.name,
    )
    return occupancy_json(o)


@router.patch(
    "/occupancies/{occupancy_id}", summary="Change a stay (e.g. the move-out day)", response_model=S.OccupancyOut
)
def change_occupancy(occupancy_id: Id, body: OccupancyPatch, principal: Operator, session: DbSession) -> dict:
    o = props.get_occupancy(session, principal.tenant_id, occupancy_id)
    fields = body.model_dump(exclude_unset=True)
    o = props.save_occupancy(
        session,
        principal.tenant_id,
        unit_id=o.unit_id,
        occupant_id=o.occupant_id,
        moved_in=fields.get("moved_in") or o.moved_in,
        moved_out=fields.get("moved_out", o.moved_out),
        actor=principal.name,
        occupancy_id=o.id,
    )
    return occupancy_json(o)


# --- import ---


async def _import_body(request: Request) -> bytes:
    """The CSV, read after the principal (a dependency listed before it) and bounded as it is read."""
    return await read_body(request, request.app.state.settings.max_import_body, "the master data import")


ImportBody = Annotated[bytes, Depends(_import_body)]


@router.post(
    "/master-data/import/{kind}",
    summary="Import properties, units or occupants from CSV (all or nothing)",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    response_model=S.ImportOut,
)
def import_master_data(
    kind: Literal["properties", "units", "occupants"], principal: Operator, body: ImportBody, session: DbSession
) -> dict:
    """UTF-8 CSV with a header row, `;` or `,` separated. Columns — properties: `ref, name, street,
    postcode, city, country, heating_system, energy_carrier, size_class, due_date (31.12.), timezone`;
    units: `property, ref, name, area_m2, usage, metering_points` (refs separated by spaces); occupants:
    `customer_ref, name, email, phone, postal_address, channel, language, property, unit, moved_in,
    moved_out`. A refusal (422) lists every problem with its line and field; nothing is imported then."""
    return master_import.import_master_data(session, principal.tenant_id, kind, body, actor=principal.name)
