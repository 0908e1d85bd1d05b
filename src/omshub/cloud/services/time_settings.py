"""A tenant's time settings: its local time zone, the zone of its meters' clocks, per-model
overrides, and re-timing stored readings after a change. Rules and precedence:
services/time_zones.py and docs/formats.md §4."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid, NotFound
from omshub.cloud.services.meters import check_device_type, check_manufacturer
from omshub.cloud.services.time_zones import TimeInputError, check_zone, retime_and_audit
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Meter, MeterModelZone, Tenant


def _invalid(exc: TimeInputError) -> Invalid:
    return Invalid(str(exc), code=exc.code)


def model_zones(session: Session, tenant_id: int) -> list[dict]:
    """The tenant's meter time zones per meter model (manufacturer, version, device type)."""
    return [
        {"manufacturer": m.manufacturer, "version": m.version, "device_type": m.device_type, "timezone": m.timezone}
        for m in session.scalars(
            select(MeterModelZone).where(MeterModelZone.tenant_id == tenant_id).order_by(MeterModelZone.id)
        )
    ]


def time_settings(session: Session, tenant_id: int, server_zone: str) -> dict:
    """The tenant's zones, where its meters' zone comes from, its model zones and how many meters
    have a zone of their own."""
    tenant = session.scalars(select(Tenant).where(Tenant.id == tenant_id)).one()
    own = session.scalar(
        select(func.count(Meter.id)).where(Meter.tenant_id == tenant.id, Meter.meter_timezone.is_not(None))
    )
    return {
        "timezone": tenant.timezone,
        "meter_timezone": tenant.meter_timezone,
        "effective_meter_timezone": tenant.meter_timezone or server_zone,
        "meter_timezone_source": "tenant" if tenant.meter_timezone else "server_setting",
        "models": model_zones(session, tenant.id),
        "meters_with_own_timezone": own or 0,
    }


def change_time_settings(session: Session, tenant_id: int, changes: dict, server_zone: str, *, actor: str) -> dict:
    """Set what `changes` names of timezone (not None) and meter_timezone (None: the server setting)."""
    tenant = session.scalars(select(Tenant).where(Tenant.id == tenant_id)).one()
    before = {"timezone": tenant.timezone, "meter_timezone": tenant.meter_timezone}
    try:
        if "timezone" in changes:
            if changes["timezone"] is None:
                raise TimeInputError("invalid_timezone", "timezone: the tenant's local time zone cannot be null")
            tenant.timezone = check_zone(changes["timezone"], "timezone")
        if "meter_timezone" in changes:
            zone = changes["meter_timezone"]
            tenant.meter_timezone = None if zone is None else check_zone(zone, "meter_timezone")
    except TimeInputError as exc:
        raise _invalid(exc) from None
    after = {"timezone": tenant.timezone, "meter_timezone": tenant.meter_timezone}
    if after != before:
        audit(session, tenant.id, actor, "tenant.time_settings", {"before": before, "after": after})
    session.flush()
    return time_settings(session, tenant_id, server_zone)


def _model_zone(
    tenant_id: int, i: int, manufacturer: str, version: int | None, device_type, timezone: str
) -> MeterModelZone:
    where = f"models[{i}]"
    try:
        manufacturer = check_manufacturer(manufacturer, f"{where}.manufacturer")
        device_type = check_device_type(device_type, f"{where}.device_type") or None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    try:
        zone = check_zone(timezone, f"{where}.timezone")
    except TimeInputError as exc:
        raise _invalid(exc) from None
    return MeterModelZone(
        tenant_id=tenant_id, manufacturer=manufacturer, version=version, device_type=device_type, timezone=zone
    )


def replace_model_zones(session: Session, tenant_id: int, models: list[dict], *, actor: str) -> list[dict]:
    """Replace the tenant's model zones by `models` (dicts of manufacturer, version, device_type,
    timezone); audited when they change."""
    rows: list[MeterModelZone] = []
    seen: dict[tuple, int] = {}
    for i, m in enumerate(models):
        row = _model_zone(tenant_id, i, m["manufacturer"], m["version"], m["device_type"], m["timezone"])
        model = (row.manufacturer, row.version, row.device_type)
        if model in seen:
            raise Invalid(
                f"models[{i}]: the same model as models[{seen[model]}]",
                german=f"Zeile {i + 1}: dasselbe Zählermodell wie in Zeile {seen[model] + 1}.",
            )
        seen[model] = i
        rows.append(row)
    before = model_zones(session, tenant_id)
    session.execute(delete(MeterModelZone).where(MeterModelZone.tenant_id == tenant_id))
    session.add_all(rows)
    session.flush()
    after = model_zones(session, tenant_id)
    if after != before:
        audit(session, tenant_id, actor, "tenant.model_timezones", {"before": before, "after": after})
    return after


def retime(session: Session, tenant_id: int, server_zone: str, meter_pks: list[int] | None, *, actor: str) -> dict:
    """Re-time the stored readings of the tenant's meters `meter_pks` (None: all of them)."""
    if meter_pks is not None:
        found = set(
            session.scalars(select(Meter.id).where(Meter.tenant_id == tenant_id, Meter.id.in_(sorted(set(meter_pks)))))
        )
        missing = sorted(set(meter_pks) - found)
        if missing:
            more = len(missing) - 1
            raise NotFound(
                f"meter {missing[0]} not found" + (f" (and {more} more)" if more else ""),
                german=f"Den Zähler {missing[0]} gibt es nicht" + (f" (und {more} weitere)." if more else "."),
            )
    return retime_and_audit(session, tenant_id, server_zone, actor, meter_pks)
