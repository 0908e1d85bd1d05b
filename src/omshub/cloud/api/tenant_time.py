"""The tenant's time settings (`/api/v1/tenant/time`, admins only): its local time zone, the zone
of its meters' clocks, per-model overrides, and re-timing stored readings after a change.
Rules and precedence: cloud/services/time_zones.py and docs/formats.md §4."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from omshub.cloud.api.common import DbSession, Id
from omshub.cloud.api.deps import require_role
from omshub.cloud.services import time_settings as settings_service
from omshub.cloud.services.accounts import Principal

router = APIRouter(prefix="/api/v1/tenant/time", tags=["tenant time settings"])

Admin = Annotated[Principal, Depends(require_role("admin"))]
MAX_MODELS = 500
MAX_RETIME_METERS = 10_000


class TimeSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str | None = Field(
        None, max_length=64, description="IANA zone of the tenant's local dates, e.g. Europe/Berlin"
    )
    meter_timezone: str | None = Field(
        None, max_length=64, description="IANA zone of the meters' clocks; null: the server setting"
    )


class ModelZone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manufacturer: str = Field(max_length=3)
    version: int | None = Field(None, ge=0, le=255)
    device_type: str | int | None = None
    timezone: str = Field(max_length=64)


class ModelZonesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelZone] = Field(max_length=MAX_MODELS)


class RetimeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meters: list[Id] | None = Field(
        None, max_length=MAX_RETIME_METERS, description="meter ids (default: all the tenant's meters)"
    )


def _server_zone(request: Request) -> str:
    return request.app.state.settings.meter_timezone


@router.get("", summary="The tenant's time zones (local dates, meter clocks, model overrides)")
def read_time_settings(request: Request, principal: Admin, session: DbSession) -> dict:
    return settings_service.time_settings(session, principal.tenant_id, _server_zone(request))


@router.put("", summary="Change the tenant's local and/or meter time zone (only the fields given)")
def update_time_settings(body: TimeSettingsIn, request: Request, principal: Admin, session: DbSession) -> dict:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return settings_service.change_time_settings(
        session, principal.tenant_id, changes, _server_zone(request), actor=principal.name
    )


@router.get("/models", summary="The tenant's meter time zones per meter model")
def read_model_zones(principal: Admin, session: DbSession) -> dict:
    return {"models": settings_service.model_zones(session, principal.tenant_id)}


@router.put("/models", summary="Replace the tenant's meter time zones per meter model")
def replace_model_zones(body: ModelZonesIn, principal: Admin, session: DbSession) -> dict:
    models = [m.model_dump() for m in body.models]
    return {"models": settings_service.replace_model_zones(session, principal.tenant_id, models, actor=principal.name)}


@router.post(
    "/retime",
    summary="Re-time stored readings from their meters' own date-times with the zones "
    "set now (raw telegrams stay as they are)",
)
def retime(request: Request, principal: Admin, session: DbSession, body: RetimeIn | None = None) -> dict:
    pks = body.meters if body is not None else None
    return settings_service.retime(session, principal.tenant_id, _server_zone(request), pks, actor=principal.name)
