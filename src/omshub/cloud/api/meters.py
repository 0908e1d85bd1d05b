"""Meters: CRUD (tenant-scoped) and bulk CSV import (`/api/v1/meters`).

A meter is (manufacturer, 8-digit id) within a tenant, with its device type, key status and
the gateway that hears it. Registering meters re-queues their telegrams that waited as
"heard but not registered" (pipeline.requeue_waiting), so they get decoded.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from omshub.codec.link import DEVICE_TYPES

from omshub.cloud.services.accounts import Principal, audit
from omshub.cloud.api.guard import read_body
from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint, MeterKey, Reading, Telegram, Tenant
from omshub.cloud.services.time_zones import TimeInputError, check_zone, parse_local_time
from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.errors import ApiError
from omshub.cloud.domain.errors import not_found
from omshub.cloud.api.deps import require_role

router = APIRouter(prefix="/api/v1/meters", tags=["meters"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]

MANUFACTURER_RE = re.compile(r"^[A-Z@]{3}$")
METER_ID_RE = re.compile(r"^[0-9A-F]{8}$")
DEVICE_TYPE_NAMES = frozenset(DEVICE_TYPES.values())
MAX_IMPORT_ROWS = 50_000
IMPORT_COLUMNS = ("manufacturer", "id", "device_type", "gateway", "metering_point", "address", "customer_ref",
                  "installed_at", "meter_timezone")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they are UTC
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


# --- validation shared with metering_points / the import ---

def _shown(value) -> str:
    """A cell as an error message shows it: short ones as they are, longer ones (a key pasted into
    the wrong column, say) only by their length, so no error ever repeats key material."""
    text = str(value if value is not None else "")
    return repr(text) if len(text) <= 12 else f"a value of {len(text)} characters"


def check_manufacturer(value: str, where: str = "manufacturer") -> str:
    v = (value or "").strip().upper()
    if not MANUFACTURER_RE.match(v):
        raise ValueError(f"{where}: {_shown(value)} is not a 3-letter manufacturer code (e.g. KAM)")
    return v


def check_meter_id(value: str, where: str = "id") -> str:
    v = (value or "").strip().upper()
    if not METER_ID_RE.match(v):
        raise ValueError(f"{where}: {_shown(value)} is not an 8-digit meter id")
    return v


def check_device_type(value: str | int | None, where: str = "device_type") -> str:
    """A device type name (heat, water, ...) or its EN 13757-7 code (4, 0x04) -> name; '' = unknown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        code = value
    else:
        text = str(value).strip().lower()
        if text in DEVICE_TYPE_NAMES:
            return text
        try:
            code = int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not a device type (one of "
                             f"{', '.join(sorted(DEVICE_TYPE_NAMES))}, or a code 0-255)") from None
    if code not in DEVICE_TYPES:
        raise ValueError(f"{where}: device type code {code} is not known")
    return DEVICE_TYPES[code]


def _unprocessable(exc: ValueError) -> ApiError:
    return ApiError(422, exc.code if isinstance(exc, TimeInputError) else "invalid_request", str(exc))


def tenant_zone(session: Session, tenant_id: int) -> str:
    """The tenant's local time zone: the zone of dates and times given without one."""
    return session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)) or "Europe/Berlin"


def local_time(session: Session, tenant_id: int, text: str | None, where: str) -> datetime | None:
    """A date or time given by a user (API body, CSV cell): without a zone in the tenant's zone."""
    try:
        return parse_local_time(text, tenant_zone(session, tenant_id), where)
    except TimeInputError as exc:
        raise ApiError(422, exc.code, str(exc)) from None


def key_present(session: Session, tenant_id: int, manufacturer: str, meter_id: str) -> bool:
    return session.scalar(select(MeterKey.id).where(
        MeterKey.tenant_id == tenant_id, MeterKey.meter_id == meter_id,
        or_(MeterKey.manufacturer == manufacturer, MeterKey.manufacturer.is_(None))).limit(1)) is not None


def get_meter(session: Session, principal: Principal, meter_pk: int) -> Meter:
    m = session.scalar(select(Meter).where(Meter.id == meter_pk, Meter.tenant_id == principal.tenant_id))
    if m is None:
        raise not_found(f"meter {meter_pk}")
    return m


def gateway_by_id(session: Session, tenant_id: int, gateway_id: int) -> Gateway:
    gw = session.scalar(select(Gateway).where(Gateway.id == gateway_id, Gateway.tenant_id == tenant_id))
    if gw is None:
        raise not_found(f"gateway {gateway_id}")
    return gw


def current_installations(session: Session, meter_pks: list[int]) -> dict[int, tuple[Installation, MeteringPoint]]:
    if not meter_pks:
        return {}
    rows = session.execute(select(Installation, MeteringPoint)
                           .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
                           .where(Installation.meter_pk.in_(meter_pks), Installation.removed_at.is_(None)))
    return {inst.meter_pk: (inst, mp) for inst, mp in rows}


def meter_json(m: Meter, installed: tuple[Installation, MeteringPoint] | None = None,
               gateway_serial: str | None = None) -> dict:
    point = None
    if installed is not None:
        inst, mp = installed
        point = {"id": mp.id, "ref": mp.ref, "installed_at": iso(inst.installed_at),
                 "installed_from": inst.installed_from}
    return {"id": m.id, "manufacturer": m.manufacturer, "meter_id": m.meter_id, "device_type": m.device_type,
            "key_status": m.key_status, "gateway_id": m.gateway_id, "gateway": gateway_serial,
            "metering_point": point, "created_at": iso(m.created_at), "last_heard_at": iso(m.last_heard_at),
            "last_reading_id": m.last_reading_id, "meter_timezone": m.meter_timezone}


def meters_json(session: Session, meters: list[Meter]) -> list[dict]:
    installed = current_installations(session, [m.id for m in meters])
    gw_ids = {m.gateway_id for m in meters if m.gateway_id}
    serials = {}
    if gw_ids:
        serials = dict(session.execute(select(Gateway.id, Gateway.serial).where(Gateway.id.in_(gw_ids))).all())
    return [meter_json(m, installed.get(m.id), serials.get(m.gateway_id)) for m in meters]


def requeue(session: Session, tenant_id: int, meters: list[tuple[str, str]]) -> int:
    """Telegrams that waited for these meters go back to the decode pipeline."""
    from omshub.cloud.store.models import REDECODABLE_SQL
    from omshub.cloud.decode.pipeline import WAITING_STATES, requeue_waiting
    total = 0
    postgres = session.get_bind().dialect.name != "sqlite"
    for i in range(0, len(meters), 500):
        part = meters[i:i + 500]
        if postgres:
            # Wait for a decode batch that holds these telegrams (row locks) to commit: it may have
            # looked the meter up before this registration, and its outcome (unknown_meter) must
            # be requeued too, not slip past the update below. (SQLite: that batch holds the one
            # write lock, so it has committed.) The `new` ones and the waiting ones separately, each
            # through its own index, never through the meters' whole history.
            ids = sorted({mid for _, mid in part})
            for states in (Telegram.state == "new", and_(text(REDECODABLE_SQL), Telegram.state.in_(WAITING_STATES))):
                session.execute(select(Telegram.id).where(Telegram.tenant_id == tenant_id, Telegram.meter_id.in_(ids),
                                                          states).with_for_update()).all()
        total += requeue_waiting(session, tenant_id, part)
    return total


# --- CRUD ---

class MeterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manufacturer: Text = Field(max_length=3)
    meter_id: Text = Field(max_length=8)
    device_type: Text | int | None = None
    gateway_id: Id | None = None
    meter_timezone: Text | None = Field(None, max_length=64,
                                       description="IANA zone of this meter's clock (default: its model's or "
                                                   "the tenant's, see GET /api/v1/tenant/time)")


class MeterPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_type: Text | int | None = None
    gateway_id: Id | None = None
    meter_timezone: Text | None = Field(None, max_length=64, description="null: its model's or the tenant's zone")


@router.get("", summary="List meters")
def list_meters(principal: Viewer, session: DbSession,
                gateway_id: Id | None = None, manufacturer: Text | None = None,
                meter_id: Text | None = None, device_type: Text | None = None,
                key_status: str | None = Query(None, pattern="^(missing|present|suspect|wrong)$"),
                cursor: str | None = None, limit: Limit = 100) -> dict:
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
    try:
        mfct = check_manufacturer(body.manufacturer)
        mid = check_meter_id(body.meter_id, "meter_id")
        dtype = check_device_type(body.device_type)
        zone = check_zone(body.meter_timezone, "meter_timezone") if body.meter_timezone is not None else None
    except ValueError as exc:
        raise _unprocessable(exc) from None
    if body.gateway_id is not None:
        gateway_by_id(session, principal.tenant_id, body.gateway_id)
    exists = session.scalar(select(Meter.id).where(Meter.tenant_id == principal.tenant_id,
                                                   Meter.manufacturer == mfct, Meter.meter_id == mid))
    if exists is not None:
        raise ApiError(409, "exists", f"meter {mfct} {mid} is already registered (id {exists})")
    m = Meter(tenant_id=principal.tenant_id, manufacturer=mfct, meter_id=mid, device_type=dtype,
              gateway_id=body.gateway_id, created_at=utcnow(), meter_timezone=zone,
              key_status="present" if key_present(session, principal.tenant_id, mfct, mid) else "missing")
    session.add(m)
    session.flush()
    if zone is not None:
        audit(session, principal.tenant_id, principal.name, "meter.timezone",
              {"meter": m.id, "before": None, "after": zone})
    requeue(session, principal.tenant_id, [(mfct, mid)])
    return meters_json(session, [m])[0]


@router.get("/{meter_pk}", summary="One meter")
def read_meter(meter_pk: Id, principal: Viewer, session: DbSession) -> dict:
    return meters_json(session, [get_meter(session, principal, meter_pk)])[0]


@router.patch("/{meter_pk}", summary="Change a meter's device type, gateway or clock time zone")
def update_meter(meter_pk: Id, body: MeterPatch, principal: Operator, session: DbSession) -> dict:
    m = get_meter(session, principal, meter_pk)
    fields = body.model_fields_set
    if "device_type" in fields:
        try:
            m.device_type = check_device_type(body.device_type)
        except ValueError as exc:
            raise _unprocessable(exc) from None
    if "gateway_id" in fields:
        if body.gateway_id is not None:
            gateway_by_id(session, principal.tenant_id, body.gateway_id)
        m.gateway_id = body.gateway_id
    if "meter_timezone" in fields:
        try:
            zone = check_zone(body.meter_timezone, "meter_timezone") if body.meter_timezone is not None else None
        except ValueError as exc:
            raise _unprocessable(exc) from None
        if zone != m.meter_timezone:
            # stored readings keep their time until re-timed (POST /api/v1/tenant/time/retime)
            audit(session, principal.tenant_id, principal.name, "meter.timezone",
                  {"meter": m.id, "before": m.meter_timezone, "after": zone})
            m.meter_timezone = zone
    session.flush()
    return meters_json(session, [m])[0]


@router.delete("/{meter_pk}", status_code=204, summary="Unregister a meter without readings")
def delete_meter(meter_pk: Id, principal: Operator, session: DbSession) -> None:
    m = get_meter(session, principal, meter_pk)
    if session.scalar(select(Reading.id).where(Reading.meter_pk == m.id).limit(1)) is not None:
        raise ApiError(409, "in_use", f"meter {m.manufacturer} {m.meter_id} has readings; it cannot be deleted")
    if session.scalar(select(Installation.id).where(Installation.meter_pk == m.id).limit(1)) is not None:
        raise ApiError(409, "in_use", f"meter {m.manufacturer} {m.meter_id} has installations; it cannot be deleted")
    # its telegrams stay stored and wait again as "heard but not registered"
    session.execute(update(Telegram).where(Telegram.meter_pk == m.id, Telegram.tenant_id == m.tenant_id)
                    .values(meter_pk=None))
    from omshub.cloud.store.models import Alarm
    session.execute(delete(Alarm).where(Alarm.tenant_id == m.tenant_id, Alarm.subject_type == "meter",
                                        Alarm.subject_id == m.id))
    mfct, mid = m.manufacturer, m.meter_id
    session.delete(m)
    session.flush()
    requeue(session, principal.tenant_id, [(mfct, mid)])  # back to "heard but not registered"


# --- bulk import ---

def _import_rows(text: str) -> list[tuple[int, dict]]:
    """Parse the CSV (header row required) -> [(line number, row)]; ValueError naming the line."""
    nul = text.find("\x00")
    if nul >= 0:
        raise ValueError(f"line {text.count(chr(10), 0, nul) + 1}: a NUL character (\\x00); the database cannot "
                         f"store it")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("line 1: the CSV is empty; expected a header row "
                         "manufacturer,id,device_type[,gateway][,metering_point][,address][,customer_ref]") from None
    except csv.Error as exc:
        raise ValueError(f"line 1: {exc}") from None
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    unknown = [n for n in names if n not in IMPORT_COLUMNS]
    if unknown:
        raise ValueError(f"line 1: unknown column {unknown[0]!r}; columns are {', '.join(IMPORT_COLUMNS)}")
    for required in ("manufacturer", "id"):
        if required not in names:
            raise ValueError(f"line 1: the header has no {required!r} column")
    if len(set(names)) != len(names):
        raise ValueError("line 1: a column appears twice in the header")
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(names):
                raise ValueError(f"line {line}: {len(values)} values but the header has {len(names)} columns")
            rows.append((line, {n: (values[i].strip() if i < len(values) else "") for i, n in enumerate(names)}))
            if len(rows) > MAX_IMPORT_ROWS:
                raise ValueError(f"line {line}: more than {MAX_IMPORT_ROWS} meters in one import")
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    return rows


async def _import_body(request: Request) -> bytes:
    """The CSV, read after the principal (a dependency listed before it) and bounded as it is read."""
    return await read_body(request, request.app.state.settings.max_import_body, "the meter import")


ImportBody = Annotated[bytes, Depends(_import_body)]


@router.post("/import", summary="Import meters from CSV (idempotent upsert)",
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def import_meters(principal: Operator, body: ImportBody, session: DbSession) -> dict:
    """Columns `manufacturer,id,device_type[,gateway][,metering_point][,address][,customer_ref][,installed_at]
    [,meter_timezone]`. `installed_at` (for a meter newly installed at its point): an ISO 8601 date or
    time; without a zone in the tenant's time zone, a bare date meaning 00:00 there; when empty the
    meter counts as installed from its first reading. `meter_timezone`: the IANA zone of the meter's
    clock (empty: its model's or the tenant's). Either every line is imported or none (422 listing
    the lines in error)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_csv", f"the CSV is not UTF-8 (byte {exc.start})") from None
    try:
        rows = _import_rows(text)
    except ValueError as exc:
        raise ApiError(422, "invalid_csv", str(exc)) from None

    tenant_id = principal.tenant_id
    local_zone = tenant_zone(session, tenant_id)
    serials = dict(session.execute(select(Gateway.serial, Gateway.id).where(Gateway.tenant_id == tenant_id)).all())
    errors: list[str] = []
    parsed = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        try:
            mfct = check_manufacturer(row.get("manufacturer", ""), "manufacturer")
            mid = check_meter_id(row.get("id", ""), "id")
            dtype = check_device_type(row.get("device_type"), "device_type")
            gw_serial = row.get("gateway") or ""
            if gw_serial and gw_serial not in serials:
                raise ValueError(f"gateway: no gateway with serial {gw_serial!r}")
            ref = row.get("metering_point") or ""
            if len(ref) > 100 or len(row.get("address") or "") > 500 or len(row.get("customer_ref") or "") > 100:
                raise ValueError("metering_point/customer_ref at most 100, address at most 500 characters")
            installed_at = None
            if row.get("installed_at"):
                if not ref:
                    raise ValueError("installed_at needs a metering_point on the same line (the date says when the "
                                     "meter was installed there)")
                installed_at = parse_local_time(row["installed_at"], local_zone, "installed_at")
            zone = check_zone(row["meter_timezone"], "meter_timezone") if row.get("meter_timezone") else None
            if (mfct, mid) in seen:
                raise ValueError(f"meter {mfct} {mid} already on line {seen[(mfct, mid)]}")
            seen[(mfct, mid)] = line
            parsed.append((line, mfct, mid, dtype, serials.get(gw_serial), ref, row, installed_at, zone))
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise ApiError(422, "invalid_csv", "; ".join(errors[:20]) + more)

    now = utcnow()
    existing: dict[tuple[str, str], Meter] = {}
    ids = [p[2] for p in parsed]
    for i in range(0, len(ids), 500):
        for m in session.scalars(select(Meter).where(Meter.tenant_id == tenant_id, Meter.meter_id.in_(ids[i:i + 500]))):
            existing[(m.manufacturer, m.meter_id)] = m
    points = {}
    refs = sorted({p[5] for p in parsed if p[5]})
    for i in range(0, len(refs), 500):
        for mp in session.scalars(select(MeteringPoint).where(MeteringPoint.tenant_id == tenant_id,
                                                              MeteringPoint.ref.in_(refs[i:i + 500]))):
            points[mp.ref] = mp
    keys = set()
    for i in range(0, len(ids), 500):
        keys.update(session.execute(select(MeterKey.manufacturer, MeterKey.meter_id).where(
            MeterKey.tenant_id == tenant_id, MeterKey.meter_id.in_(ids[i:i + 500]))).all())

    counts = {"created": 0, "updated": 0, "unchanged": 0, "points_created": 0, "points_updated": 0,
              "installed": 0}
    new_meters: list[tuple[str, str]] = []
    zone_changes: list[dict] = []
    plan = []
    for line, mfct, mid, dtype, gw_id, ref, row, installed_at, zone in parsed:
        m = existing.get((mfct, mid))
        if m is None:
            m = Meter(tenant_id=tenant_id, manufacturer=mfct, meter_id=mid, device_type=dtype, gateway_id=gw_id,
                      created_at=now, meter_timezone=zone,
                      key_status="present" if ((mfct, mid) in keys or (None, mid) in keys) else "missing")
            session.add(m)
            counts["created"] += 1
            new_meters.append((mfct, mid))
            if zone is not None:
                zone_changes.append({"meter": f"{mfct} {mid}", "before": None, "after": zone})
        else:
            changed = False
            # empty cells leave a value alone: the import only adds information
            if dtype and m.device_type != dtype:
                m.device_type, changed = dtype, True
            if gw_id is not None and m.gateway_id != gw_id:
                m.gateway_id, changed = gw_id, True
            if zone is not None and m.meter_timezone != zone:
                zone_changes.append({"meter": f"{mfct} {mid}", "before": m.meter_timezone, "after": zone})
                m.meter_timezone, changed = zone, True
            counts["updated" if changed else "unchanged"] += 1
        if ref:
            mp = points.get(ref)
            address, customer = row.get("address") or "", row.get("customer_ref") or ""
            if mp is None:
                mp = MeteringPoint(tenant_id=tenant_id, ref=ref, address=address, customer_ref=customer, created_at=now)
                session.add(mp)
                points[ref] = mp
                counts["points_created"] += 1
            elif (address and mp.address != address) or (customer and mp.customer_ref != customer):
                mp.address = address or mp.address
                mp.customer_ref = customer or mp.customer_ref
                counts["points_updated"] += 1
            plan.append((line, m, mp, installed_at))
    session.flush()

    installed = current_installations(session, [m.id for _, m, _, _ in plan])
    at_point = {}
    pids = [mp.id for _, _, mp, _ in plan]
    for i in range(0, len(pids), 500):
        for inst in session.scalars(select(Installation).where(Installation.metering_point_id.in_(pids[i:i + 500]),
                                                               Installation.removed_at.is_(None))):
            at_point[inst.metering_point_id] = inst
    history: dict[int, datetime] = {}  # latest installation change per point: new ones start after it
    for i in range(0, len(pids), 500):
        for pid, last_in, last_out in session.execute(
                select(Installation.metering_point_id, func.max(Installation.installed_at),
                       func.max(Installation.removed_at))
                .where(Installation.metering_point_id.in_(pids[i:i + 500]))
                .group_by(Installation.metering_point_id)):
            history[pid] = max(_aware(t) for t in (last_in, last_out) if t is not None)
    for line, m, mp, at in plan:
        current = installed.get(m.id)
        if current is not None:
            if current[1].id != mp.id:
                errors.append(f"line {line}: meter {m.manufacturer} {m.meter_id} is installed at metering point "
                              f"{current[1].ref!r}; move it with a swap, not an import")
            continue
        occupant = at_point.get(mp.id)
        if occupant is not None and occupant.meter_pk != m.id:
            errors.append(f"line {line}: metering point {mp.ref!r} already has another meter installed; "
                          f"use a swap")
            continue
        if at is not None and mp.id in history and at < history[mp.id]:
            errors.append(f"line {line}: installed_at {iso(at)} is before the last installation change at "
                          f"metering point {mp.ref!r} ({iso(history[mp.id])})")
            continue
        # without a date the meter counts from its first reading (consumption.effective_installed_at);
        # installed_at then records the import
        inst = Installation(tenant_id=tenant_id, metering_point_id=mp.id, meter_pk=m.id, installed_at=at or now,
                            installed_from="given" if at is not None else "first_reading",
                            initial_values={}, final_values=None)
        session.add(inst)
        at_point[mp.id] = inst
        counts["installed"] += 1
    if errors:  # nothing of the import is kept: the request's transaction rolls back
        raise ApiError(422, "invalid_csv", "; ".join(errors[:20]))
    session.flush()
    if zone_changes:
        # stored readings keep their time until re-timed (POST /api/v1/tenant/time/retime)
        audit(session, tenant_id, principal.name, "meter.timezone",
              {"import": True, "count": len(zone_changes), "changes": zone_changes})
    counts["requeued"] = requeue(session, tenant_id, new_meters) if new_meters else 0
    counts["lines"] = len(parsed)
    return counts

