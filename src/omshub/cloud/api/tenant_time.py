"""The tenant's time settings (`/api/v1/tenant/time`, admins only): its local time zone, the zone
of its meters' clocks, per-model overrides, and re-timing stored readings after a change.
Rules and precedence: cloud/services/time_zones.py and docs/formats.md §4."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from omshub.cloud.services.accounts import Principal, audit
from omshub.cloud.store.models import Meter, MeterModelZone, Tenant
from omshub.cloud.services.time_zones import TimeInputError, check_zone, retime_and_audit
from omshub.cloud.api.common import DbSession, Id
from omshub.cloud.api.errors import ApiError
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.meters import check_device_type, check_manufacturer

router = APIRouter(prefix="/api/v1/tenant/time", tags=["tenant time settings"])

Admin = Annotated[Principal, Depends(require_role("admin"))]
MAX_MODELS = 500
MAX_RETIME_METERS = 10_000


class TimeSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str | None = Field(None, max_length=64,
                                 description="IANA zone of the tenant's local dates, e.g. Europe/Berlin")
    meter_timezone: str | None = Field(None, max_length=64,
                                       description="IANA zone of the meters' clocks; null: the server setting")


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
    meters: list[Id] | None = Field(None, max_length=MAX_RETIME_METERS,
                                     description="meter ids (default: all the tenant's meters)")


def _invalid(exc: TimeInputError) -> ApiError:
    return ApiError(422, exc.code, str(exc))


def _tenant(session: Session, principal: Principal) -> Tenant:
    return session.scalar(select(Tenant).where(Tenant.id == principal.tenant_id))


def _models(session: Session, tenant_id: int) -> list[dict]:
    return [{"manufacturer": m.manufacturer, "version": m.version, "device_type": m.device_type,
             "timezone": m.timezone}
            for m in session.scalars(select(MeterModelZone).where(MeterModelZone.tenant_id == tenant_id)
                                     .order_by(MeterModelZone.id))]


def _settings_json(session: Session, tenant: Tenant, server_zone: str) -> dict:
    own = session.scalar(select(func.count(Meter.id)).where(Meter.tenant_id == tenant.id,
                                                            Meter.meter_timezone.is_not(None)))
    return {"timezone": tenant.timezone, "meter_timezone": tenant.meter_timezone,
            "effective_meter_timezone": tenant.meter_timezone or server_zone,
            "meter_timezone_source": "tenant" if tenant.meter_timezone else "server_setting",
            "models": _models(session, tenant.id), "meters_with_own_timezone": own or 0}


@router.get("", summary="The tenant's time zones (local dates, meter clocks, model overrides)")
def read_time_settings(request: Request, principal: Admin, session: DbSession) -> dict:
    return _settings_json(session, _tenant(session, principal), request.app.state.settings.meter_timezone)


@router.put("", summary="Change the tenant's local and/or meter time zone (only the fields given)")
def update_time_settings(body: TimeSettingsIn, request: Request, principal: Admin, session: DbSession) -> dict:
    tenant = _tenant(session, principal)
    given = body.model_fields_set
    before = {"timezone": tenant.timezone, "meter_timezone": tenant.meter_timezone}
    try:
        if "timezone" in given:
            if body.timezone is None:
                raise TimeInputError("invalid_timezone", "timezone: the tenant's local time zone cannot be null")
            tenant.timezone = check_zone(body.timezone, "timezone")
        if "meter_timezone" in given:
            tenant.meter_timezone = None if body.meter_timezone is None else check_zone(body.meter_timezone,
                                                                                         "meter_timezone")
    except TimeInputError as exc:
        raise _invalid(exc) from None
    after = {"timezone": tenant.timezone, "meter_timezone": tenant.meter_timezone}
    if after != before:
        audit(session, tenant.id, principal.name, "tenant.time_settings", {"before": before, "after": after})
    session.flush()
    return _settings_json(session, tenant, request.app.state.settings.meter_timezone)


@router.get("/models", summary="The tenant's meter time zones per meter model")
def read_model_zones(principal: Admin, session: DbSession) -> dict:
    return {"models": _models(session, principal.tenant_id)}


@router.put("/models", summary="Replace the tenant's meter time zones per meter model")
def replace_model_zones(body: ModelZonesIn, principal: Admin, session: DbSession) -> dict:
    rows, seen = [], {}
    for i, m in enumerate(body.models):
        where = f"models[{i}]"
        try:
            manufacturer = check_manufacturer(m.manufacturer, f"{where}.manufacturer")
            device_type = check_device_type(m.device_type, f"{where}.device_type") or None
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        try:
            zone = check_zone(m.timezone, f"{where}.timezone")
        except TimeInputError as exc:
            raise _invalid(exc) from None
        model = (manufacturer, m.version, device_type)
        if model in seen:
            raise ApiError(422, "invalid_request", f"{where}: the same model as models[{seen[model]}]")
        seen[model] = i
        rows.append(MeterModelZone(tenant_id=principal.tenant_id, manufacturer=manufacturer, version=m.version,
                                   device_type=device_type, timezone=zone))
    before = _models(session, principal.tenant_id)
    session.execute(delete(MeterModelZone).where(MeterModelZone.tenant_id == principal.tenant_id))
    session.add_all(rows)
    session.flush()
    after = _models(session, principal.tenant_id)
    if after != before:
        audit(session, principal.tenant_id, principal.name, "tenant.model_timezones",
              {"before": before, "after": after})
    return {"models": after}


@router.post("/retime", summary="Re-time stored readings from their meters' own date-times with the zones "
                                "set now (raw telegrams stay as they are)")
def retime(request: Request, principal: Admin, session: DbSession, body: RetimeIn | None = None) -> dict:
    pks = body.meters if body is not None else None
    if pks is not None:
        found = set(session.scalars(select(Meter.id).where(Meter.tenant_id == principal.tenant_id,
                                                           Meter.id.in_(sorted(set(pks))))))
        missing = sorted(set(pks) - found)
        if missing:
            raise ApiError(404, "not_found", f"meter {missing[0]} not found"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return retime_and_audit(session, principal.tenant_id, request.app.state.settings.meter_timezone,
                            principal.name, pks)
