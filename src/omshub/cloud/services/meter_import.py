"""The meter import: a CSV of meters (and where they are installed), as an idempotent upsert.

Columns `manufacturer,id,device_type[,gateway][,metering_point][,address][,customer_ref][,installed_at]
[,meter_timezone]`. Either every line is imported or none (Invalid `invalid_csv` listing the
lines in error); the caller's transaction rolls back on a refusal.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.domain.wording import german_of
from omshub.cloud.services.meters import (
    check_device_type,
    check_manufacturer,
    check_meter_id,
    current_installations,
    requeue,
    tenant_zone,
)
from omshub.cloud.services.time_zones import check_zone, parse_local_time
from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import BulkSql
from omshub.cloud.store.keystore import applicable_key
from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint
from omshub.times import iso, utc, utcnow

MAX_IMPORT_ROWS = 50_000
_LOOKUP = 5000  # ids per look-up (well below SQLite's limit of 32,766 parameters)
IMPORT_COLUMNS = (
    "manufacturer",
    "id",
    "device_type",
    "gateway",
    "metering_point",
    "address",
    "customer_ref",
    "installed_at",
    "meter_timezone",
)


@dataclass
class ImportLine:
    """One checked line of the import."""

    line: int
    manufacturer: str
    meter_id: str
    device_type: str
    gateway_id: int | None
    point_ref: str
    address: str
    customer_ref: str
    installed_at: datetime | None
    zone: str | None


def _refused(errors: list[str], more: bool = True) -> Invalid:
    extra = f" (and {len(errors) - 20} more)" if more and len(errors) > 20 else ""
    german = "; ".join(german_of(e) or e for e in errors[:20])
    german += f" (und {len(errors) - 20} weitere)" if extra else ""
    return Invalid("; ".join(errors[:20]) + extra, code="invalid_csv", german=german)


def _check_header(names: list[str]) -> None:
    unknown = [n for n in names if n not in IMPORT_COLUMNS]
    if unknown:
        raise ValueError(f"line 1: unknown column {unknown[0]!r}; columns are {', '.join(IMPORT_COLUMNS)}")
    for required in ("manufacturer", "id"):
        if required not in names:
            raise ValueError(f"line 1: the header has no {required!r} column")
    if len(set(names)) != len(names):
        raise ValueError("line 1: a column appears twice in the header")


def parse_rows(text: str) -> list[tuple[int, dict]]:
    """Parse the CSV (header row required) -> [(line number, row)]; ValueError naming the line."""
    nul = text.find("\x00")
    if nul >= 0:
        raise ValueError(
            f"line {text.count(chr(10), 0, nul) + 1}: a NUL character (\\x00); the database cannot store it"
        )
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(
            "line 1: the CSV is empty; expected a header row "
            "manufacturer,id,device_type[,gateway][,metering_point][,address][,customer_ref]"
        ) from None
    except csv.Error as exc:
        raise ValueError(f"line 1: {exc}") from None
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    _check_header(names)
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


def _check_line(line: int, row: dict, serials: dict[str, int], local_zone: str) -> ImportLine:
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
            raise ValueError(
                "installed_at needs a metering_point on the same line (the date says when the "
                "meter was installed there)"
            )
        installed_at = parse_local_time(row["installed_at"], local_zone, "installed_at")
    zone = check_zone(row["meter_timezone"], "meter_timezone") if row.get("meter_timezone") else None
    return ImportLine(
        line,
        mfct,
        mid,
        dtype,
        serials.get(gw_serial),
        ref,
        row.get("address") or "",
        row.get("customer_ref") or "",
        installed_at,
        zone,
    )


def _check_lines(session: Session, tenant_id: int, rows: list[tuple[int, dict]]) -> list[ImportLine]:
    local_zone = tenant_zone(session, tenant_id)
    serials = dict(session.execute(select(Gateway.serial, Gateway.id).where(Gateway.tenant_id == tenant_id)).all())
    errors: list[str] = []
    checked = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        try:
            item = _check_line(line, row, serials, local_zone)
            meter = (item.manufacturer, item.meter_id)
            if meter in seen:
                raise ValueError(f"meter {item.manufacturer} {item.meter_id} already on line {seen[meter]}")
            seen[meter] = line
            checked.append(item)
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
    if errors:
        raise _refused(errors)
    return checked


@dataclass(slots=True)
class NewMeter:
    """A meter the import creates; written with the others in one bulk insert (COPY on
    PostgreSQL: ORM inserts of 100,000 rows spent most of their time building statements)."""

    manufacturer: str
    meter_id: str
    device_type: str
    gateway_id: int | None
    key_status: str
    meter_timezone: str | None
    id: int = 0  # handed out before the insert (BulkSql.new_ids)


@dataclass(slots=True)
class NewPoint:
    """A metering point the import creates (bulk insert, as NewMeter)."""

    ref: str
    address: str
    customer_ref: str
    id: int = 0


@dataclass
class _Stored:
    """What the tenant has of the imported meters: meters, metering points, keys (manufacturer, id)."""

    meters: dict[tuple[str, str], Meter]
    points: dict[str, MeteringPoint | NewPoint]
    keys: dict[str, dict[str | None, bool]]  # meter id -> {manufacturer the key is bound to: True}


def _stored(session: Session, tenant_id: int, lines: list[ImportLine]) -> _Stored:
    stored = _Stored({}, {}, {})
    ids = sorted({item.meter_id for item in lines})
    sql = _bulk(session)
    existing: list[int] = []
    for i in range(0, len(ids), _LOOKUP):
        # one array parameter each on PostgreSQL (BulkSql.isin): cheaper to build and send than a
        # bound parameter per id; the ORM rows only of meters that exist (changed in place)
        isin, params = sql.isin("meter_id", ids[i : i + _LOOKUP])
        existing += [
            r[0] for r in sql.rows(f"SELECT id FROM meters WHERE tenant_id = {{m}} AND {isin}", (tenant_id, *params))
        ]
        for man, mid in sql.rows(
            f"SELECT manufacturer, meter_id FROM meter_keys WHERE tenant_id = {{m}} AND {isin}", (tenant_id, *params)
        ):
            stored.keys.setdefault(mid, {})[man] = True
    for i in range(0, len(existing), 500):
        for m in session.scalars(
            select(Meter).where(Meter.tenant_id == tenant_id, Meter.id.in_(existing[i : i + 500]))
        ):
            stored.meters[(m.manufacturer, m.meter_id)] = m
    refs = sorted({item.point_ref for item in lines if item.point_ref})
    for i in range(0, len(refs), 500):
        for mp in session.scalars(
            select(MeteringPoint).where(MeteringPoint.tenant_id == tenant_id, MeteringPoint.ref.in_(refs[i : i + 500]))
        ):
            stored.points[mp.ref] = mp
    return stored


def _upsert_meter(
    item: ImportLine, stored: _Stored, counts: dict, zone_changes: list[dict]
) -> tuple[Meter | NewMeter, bool]:
    """The line's meter, created (a NewMeter, inserted later) or updated: (meter, whether it is new)."""
    mfct, mid, zone = item.manufacturer, item.meter_id, item.zone
    m = stored.meters.get((mfct, mid))
    if m is None:
        key_status = "present" if applicable_key(stored.keys.get(mid, {}), mfct) else "missing"
        counts["created"] += 1
        if zone is not None:
            zone_changes.append({"meter": f"{mfct} {mid}", "before": None, "after": zone})
        return NewMeter(mfct, mid, item.device_type, item.gateway_id, key_status, zone), True
    changed = False
    # empty cells leave a value alone: the import only adds information
    if item.device_type and m.device_type != item.device_type:
        m.device_type, changed = item.device_type, True
    if item.gateway_id is not None and m.gateway_id != item.gateway_id:
        m.gateway_id, changed = item.gateway_id, True
    if zone is not None and m.meter_timezone != zone:
        zone_changes.append({"meter": f"{mfct} {mid}", "before": m.meter_timezone, "after": zone})
        m.meter_timezone, changed = zone, True
    counts["updated" if changed else "unchanged"] += 1
    return m, False


def _upsert_point(item: ImportLine, stored: _Stored, counts: dict) -> MeteringPoint | NewPoint:
    mp = stored.points.get(item.point_ref)
    address, customer = item.address, item.customer_ref
    if mp is None:
        mp = stored.points[item.point_ref] = NewPoint(item.point_ref, address, customer)
        counts["points_created"] += 1
    elif (address and mp.address != address) or (customer and mp.customer_ref != customer):
        mp.address = address or mp.address
        mp.customer_ref = customer or mp.customer_ref
        counts["points_updated"] += 1
    return mp


def _point_state(session: Session, point_ids: list[int]) -> tuple[dict[int, Installation], dict[int, datetime]]:
    """(current installation per point, latest installation change per point)."""
    at_point: dict[int, Installation] = {}
    history: dict[int, datetime] = {}  # new installations start after it
    for i in range(0, len(point_ids), 500):
        part = point_ids[i : i + 500]
        for inst in session.scalars(
            select(Installation).where(Installation.metering_point_id.in_(part), Installation.removed_at.is_(None))
        ):
            at_point[inst.metering_point_id] = inst
        for pid, last_in, last_out in session.execute(
            select(
                Installation.metering_point_id, func.max(Installation.installed_at), func.max(Installation.removed_at)
            )
            .where(Installation.metering_point_id.in_(part))
            .group_by(Installation.metering_point_id)
        ):
            history[pid] = max(utc(t) for t in (last_in, last_out) if t is not None)
    return at_point, history


def _install(
    session: Session,
    tenant_id: int,
    plan: list[tuple[int, Meter | NewMeter, MeteringPoint | NewPoint, datetime | None]],
    now: datetime,
    counts: dict,
) -> list[str]:
    """Install each planned meter at its point unless it is there already (one bulk insert); the
    lines in error. Meters and points the import created have no installations to look up."""
    errors: list[str] = []
    old_meters = [m.id for _, m, _, _ in plan if isinstance(m, Meter)]
    installed: dict[int, tuple] = {}
    for i in range(0, len(old_meters), 500):
        installed.update(current_installations(session, old_meters[i : i + 500]))
    at_point_pk, history = _point_state(session, [mp.id for _, _, mp, _ in plan if isinstance(mp, MeteringPoint)])
    at_point = {point: inst.meter_pk for point, inst in at_point_pk.items()}
    rows = []
    for line, m, mp, at in plan:
        current = installed.get(m.id)
        if current is not None:
            if current[1].id != mp.id:
                errors.append(
                    f"line {line}: meter {m.manufacturer} {m.meter_id} is installed at metering point "
                    f"{current[1].ref!r}; move it with a swap, not an import"
                )
            continue
        occupant = at_point.get(mp.id)
        if occupant is not None and occupant != m.id:
            errors.append(f"line {line}: metering point {mp.ref!r} already has another meter installed; use a swap")
            continue
        if at is not None and mp.id in history and at < history[mp.id]:
            errors.append(
                f"line {line}: installed_at {iso(at)} is before the last installation change at "
                f"metering point {mp.ref!r} ({iso(history[mp.id])})"
            )
            continue
        # without a date the meter counts from its first reading (consumption.effective_installed_at);
        # installed_at then records the import
        rows.append((tenant_id, mp.id, m.id, at or now, "given" if at is not None else "first_reading", "{}"))
        at_point[mp.id] = m.id
    if errors:
        return errors
    sql = _bulk(session)
    sql.insert(
        "installations",
        ("tenant_id", "metering_point_id", "meter_pk", "installed_at", "installed_from", "initial_values"),
        ("bigint", "bigint", "bigint", "timestamptz", "varchar", "json"),
        [(*r[:3], sql.time(r[3]), *r[4:]) for r in rows],
    )
    counts["installed"] += len(rows)
    return errors


def _bulk(session: Session) -> BulkSql:
    return BulkSql(session, session.get_bind().dialect.name == "sqlite")


def _insert_new(
    session: Session, tenant_id: int, meters: list[NewMeter], points: list[NewPoint], now: datetime
) -> None:
    """The created meters and metering points, ids handed out first, in one bulk insert each."""
    sql = _bulk(session)
    created = sql.time(now)
    for m, new_id in zip(meters, sql.new_ids("meters", len(meters)) if meters else [], strict=True):
        m.id = new_id
    sql.insert(
        "meters",
        ("id", "tenant_id", "manufacturer", "meter_id", "device_type", "gateway_id", "key_status", "created_at",
         "meter_timezone"),
        ("bigint", "bigint", "varchar", "varchar", "varchar", "bigint", "varchar", "timestamptz", "varchar"),
        [(m.id, tenant_id, m.manufacturer, m.meter_id, m.device_type, m.gateway_id, m.key_status, created,
          m.meter_timezone) for m in meters],
    )  # fmt: skip
    for p, new_id in zip(points, sql.new_ids("metering_points", len(points)) if points else [], strict=True):
        p.id = new_id
    sql.insert(
        "metering_points",
        ("id", "tenant_id", "ref", "address", "customer_ref", "created_at"),
        ("bigint", "bigint", "varchar", "varchar", "varchar", "timestamptz"),
        [(p.id, tenant_id, p.ref, p.address, p.customer_ref, created) for p in points],
    )


def import_meters(session: Session, tenant_id: int, body: bytes, *, actor: str) -> dict:
    """Import the CSV `body` (UTF-8): what was created, updated, installed and re-queued."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(
            f"the CSV is not UTF-8 (byte {exc.start})",
            code="invalid_csv",
            german="Die Datei ist keine CSV-Datei in UTF-8 (z. B. eine Excel-Datei); "
            "speichern Sie sie als „CSV UTF-8“.",
        ) from None
    try:
        rows = parse_rows(text)
    except ValueError as exc:
        raise Invalid(str(exc), code="invalid_csv") from None
    lines = _check_lines(session, tenant_id, rows)
    now = utcnow()
    stored = _stored(session, tenant_id, lines)
    counts = {"created": 0, "updated": 0, "unchanged": 0, "points_created": 0, "points_updated": 0, "installed": 0}
    new_meters: list[tuple[str | None, str]] = []
    zone_changes: list[dict] = []
    plan = []
    created: list[NewMeter] = []
    for item in lines:
        m, new = _upsert_meter(item, stored, counts, zone_changes)
        if isinstance(m, NewMeter):
            created.append(m)
        if new:
            new_meters.append((item.manufacturer, item.meter_id))
        if item.point_ref:
            plan.append((item.line, m, _upsert_point(item, stored, counts), item.installed_at))
    session.flush()  # the changed meters and points
    _insert_new(session, tenant_id, created, [p for p in stored.points.values() if isinstance(p, NewPoint)], now)
    errors = _install(session, tenant_id, plan, now, counts)
    if errors:  # nothing of the import is kept: the caller's transaction rolls back
        raise _refused(errors, more=False)
    session.flush()
    if zone_changes:
        # stored readings keep their time until re-timed (POST /api/v1/tenant/time/retime)
        audit(
            session,
            tenant_id,
            actor,
            "meter.timezone",
            {"import": True, "count": len(zone_changes), "changes": zone_changes},
        )
    counts["requeued"] = requeue(session, tenant_id, new_meters) if new_meters else 0
    counts["lines"] = len(lines)
    return counts
