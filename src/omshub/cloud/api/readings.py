"""Readings, latest readings, consumption and export (`/api/v1/...`).

* `GET /meters/{id}/readings`, `GET /metering-points/{id}/readings` — by time range, records
  filtered by quantity, named fields filtered by name;
* `GET /readings/latest` — every meter with its newest reading;
* `GET /metering-points/{id}/consumption` — consumption.py's result;
* `GET /export/readings` — CSV or JSON, streamed in batches (one row per meter per reading).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import LargeBinary, and_, cast, func, literal_column, or_, select
from sqlalchemy import Text as Text_
from sqlalchemy.orm import Session

from omshub.cloud.api.common import DbSession, Id, Limit, Text, TimeQuery, iso, page, paginate, parse_time
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.errors import ApiError
from omshub.cloud.api.metering_points import get_point
from omshub.cloud.api.meters import get_meter, meters_json
from omshub.cloud.decode.redecode import Redecoder
from omshub.cloud.services import consumption as consumption_mod
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.export import EXPORT_COLUMNS, csv_text, export_rows, with_fields
from omshub.cloud.services.meters import current_installations_between, local_time
from omshub.cloud.store.database import iso_sql
from omshub.cloud.store.models import Installation, Meter, Reading
from omshub.cloud.store.reading_values import LATEST_VIEW_PREFIX, stored_data

router = APIRouter(prefix="/api/v1", tags=["readings"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]


def _names(text: str | None, what: str) -> set[str] | None:
    if text is None or text == "":
        return None
    names = {n.strip() for n in text.split(",") if n.strip()}
    if not names or len(names) > 100:
        raise ApiError(422, "invalid_request", f"{what}: give 1 to 100 comma-separated names")
    return names


def _range(from_: str | None, to: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    if start and end and end < start:
        raise ApiError(422, "invalid_time", "to must not be before from")
    return start, end


def redecoder(request: Request) -> Redecoder:
    """The app's Redecoder (made on first use: it keeps opened keys across requests)."""
    state = request.app.state
    found = getattr(state, "redecoder", None)
    if found is None:
        found = state.redecoder = Redecoder(getattr(state, "keystore", None), state.db.is_sqlite)
    return found


def full_data(request: Request, session: Session, tenant_id: int, readings: list[Reading]) -> dict[int, dict]:
    """{reading id: its uniform dict}: decoded again from the raw telegram (decode/redecode.py),
    or, where that no longer decodes or is gone, what the reading's typed values hold."""
    decoded = redecoder(request).telegrams(
        session, [r.telegram_id for r in readings if r.telegram_id is not None], tenant_id
    )
    return {r.id: decoded.get(r.telegram_id) or stored_data(r) for r in readings}  # type: ignore[arg-type]


def reading_json(
    r: Reading,
    data: dict,
    meter: Meter | None = None,
    *,
    quantities: set[str] | None = None,
    fields: set[str] | None = None,
    time_text=iso,
) -> dict:
    """A reading as the API shows it; `data`: its uniform dict (full_data); `time_text`: how
    the reading's times become text."""
    records = data.get("records") or []
    if quantities is not None:
        records = [rec for rec in records if isinstance(rec, dict) and rec.get("quantity") in quantities]
    named = data.get("fields") or {}
    if fields is not None:
        named = {k: v for k, v in named.items() if k in fields}
    out = {
        "id": r.id,
        "meter_pk": r.meter_pk,
        "telegram_id": r.telegram_id,
        "timestamp": time_text(r.timestamp),
        "received_at": time_text(r.received_at),
        "status": data.get("status"),
        "records": records,
        "fields": named,
    }
    if meter is not None:
        out["meter"] = {"id": meter.id, "manufacturer": meter.manufacturer, "meter_id": meter.meter_id}
    return out


def _filter_page(request, session, tenant_id, rows, quantities, fields, with_meter: bool) -> list[dict]:
    pairs = [(row[0], row[1]) if with_meter else (row, None) for row in rows]
    data = full_data(request, session, tenant_id, [r for r, _m in pairs])
    items = []
    for r, m in pairs:
        item = reading_json(r, data[r.id], m, quantities=quantities, fields=fields)
        # A reading without the asked quantity is not a reading of it (a page may come out short).
        if quantities is not None and not item["records"]:
            continue
        items.append(item)
    return items


@router.get("/meters/{meter_pk}/readings", summary="Readings of a meter", tags=["readings"])
def meter_readings(
    request: Request,
    meter_pk: Id,
    principal: Viewer,
    session: DbSession,
    from_: TimeQuery | None = Query(None, alias="from"),
    to: TimeQuery | None = None,
    quantity: str | None = Query(None, description="comma-separated quantities (records kept)"),
    fields: str | None = Query(None, description="comma-separated field names (fields kept)"),
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    m = get_meter(session, principal, meter_pk)
    start, end = _range(from_, to)
    stmt = select(Reading).where(Reading.tenant_id == principal.tenant_id, Reading.meter_pk == m.id)
    if start:
        stmt = stmt.where(Reading.timestamp >= start)
    if end:
        stmt = stmt.where(Reading.timestamp <= end)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Reading.id)
    qs, fs = _names(quantity, "quantity"), _names(fields, "fields")
    return page(_filter_page(request, session, principal.tenant_id, rows, qs, fs, False), nxt)


@router.get("/metering-points/{point_id}/readings", summary="Readings of the meters installed at a point")
def point_readings(
    request: Request,
    point_id: Id,
    principal: Viewer,
    session: DbSession,
    from_: TimeQuery | None = Query(None, alias="from"),
    to: TimeQuery | None = None,
    quantity: str | None = None,
    fields: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    mp = get_point(session, principal, point_id)
    start, end = _range(from_, to)
    # only while installed there: a meter's readings elsewhere do not belong to this point
    stmt = (
        select(Reading, Meter)
        .join(Meter, Meter.id == Reading.meter_pk)
        .join(
            Installation,
            and_(
                Installation.meter_pk == Reading.meter_pk,
                Installation.metering_point_id == mp.id,
                Reading.timestamp >= Installation.installed_at,
                or_(Installation.removed_at.is_(None), Reading.timestamp < Installation.removed_at),
            ),
        )
        .where(Reading.tenant_id == principal.tenant_id)
    )
    if start:
        stmt = stmt.where(Reading.timestamp >= start)
    if end:
        stmt = stmt.where(Reading.timestamp <= end)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Reading.id)
    qs, fs = _names(quantity, "quantity"), _names(fields, "fields")
    return page(_filter_page(request, session, principal.tenant_id, rows, qs, fs, True), nxt)


@router.get("/readings/latest", summary="Every meter with its latest reading", response_model=None)
def latest_readings(
    request: Request,
    principal: Viewer,
    session: DbSession,
    device_type: Text | None = None,
    gateway_id: Id | None = None,
    quantity: str | None = None,
    fields: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    # One query per page: the meters (by primary key, keyset pages) joined with their latest
    # reading through meters.last_reading_id (kept by the decode pipeline; a primary-key look-up
    # per meter, no sort over readings), times as text made by the database (iso_sql), and the
    # reading's view as the decode pipeline stored it in meters.last_data. Columns, not ORM objects.
    dialect = session.get_bind().dialect.name
    stmt = (
        select(
            *_LATEST_METER, *_latest_times(dialect), *_LATEST_READING, _latest_view_bytes(dialect).label("last_data")
        )
        .outerjoin(Reading, and_(Reading.id == Meter.last_reading_id, Reading.tenant_id == Meter.tenant_id))
        .where(Meter.tenant_id == principal.tenant_id)
    )
    if device_type:
        stmt = stmt.where(Meter.device_type == device_type.lower())
    if gateway_id is not None:
        stmt = stmt.where(Meter.gateway_id == gateway_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Meter.id)
    qs, fs = _names(quantity, "quantity"), _names(fields, "fields")
    # A view as stored (LATEST_VIEW_PREFIX: {"status", "records", "fields"}, nothing else) is put
    # into the answer as it is when nothing is filtered: no parse and no serialisation of its
    # records per meter. Filtered, or an older meters.last_data (the reading's whole decoded
    # dict): parsed. NULL (a meter re-timed, or stored before meters kept it): decoded again.
    spliced: dict[int, bytes] = {}
    data: dict[int, dict] = {}
    for row in rows:
        if row.r_id is None or row.last_data is None:
            continue
        if qs is None and fs is None and row.last_data.startswith(_VIEW_PREFIX):
            spliced[row.r_id] = row.last_data
            continue
        parsed = orjson.loads(row.last_data)
        if isinstance(parsed, dict):
            data[row.r_id] = parsed
    missing = [row.r_id for row in rows if row.r_id is not None and row.r_id not in data and row.r_id not in spliced]
    if missing:
        found = session.scalars(
            select(Reading).where(Reading.tenant_id == principal.tenant_id, Reading.id.in_(missing))
        )
        data.update(full_data(request, session, principal.tenant_id, list(found)))
    items = []
    # the page's meters are in id order: their installations by one id range
    installed = current_installations_between(session, principal.tenant_id, rows[0].id, rows[-1].id) if rows else {}
    for row, mj in zip(rows, meters_json(session, rows, _as_text, installed), strict=True):
        reading: dict | orjson.Fragment | None = None
        if row.r_id in spliced:
            # the reading's own keys, then the view's: '{"id":..,"received_at":".."' + ',"status":..}'
            head = orjson.dumps(
                {
                    "id": row.r_id,
                    "meter_pk": row.id,
                    "telegram_id": row.r_telegram_id,
                    "timestamp": row.r_timestamp,
                    "received_at": row.r_received_at,
                }
            )
            reading = orjson.Fragment(head[:-1] + b"," + spliced[row.r_id][1:])
        elif row.r_id is not None:
            r = SimpleNamespace(
                id=row.r_id,
                meter_pk=row.id,
                telegram_id=row.r_telegram_id,
                timestamp=row.r_timestamp,
                received_at=row.r_received_at,
            )
            reading = reading_json(r, data[row.r_id], quantities=qs, fields=fs, time_text=_as_text)  # type: ignore[arg-type]
        items.append({"meter": mj, "reading": reading})
    # as bytes: FastAPI's encoder walks every value of a page of a thousand full readings (3x slower)
    return Response(orjson.dumps(page(items, nxt)), media_type="application/json")  # type: ignore[return-value]


def _as_text(value: str | None) -> str | None:
    """A time the query already made text (iso_sql)."""
    return value


# the meter columns meter_json reads (its times: _latest_times), and the latest reading's
_LATEST_METER = (
    Meter.id,
    Meter.manufacturer,
    Meter.meter_id,
    Meter.device_type,
    Meter.key_status,
    Meter.gateway_id,
    Meter.last_reading_id,
    Meter.meter_timezone,
)
_LATEST_READING = (
    Reading.id.label("r_id"),
    Reading.telegram_id.label("r_telegram_id"),
)


_VIEW_PREFIX = LATEST_VIEW_PREFIX.encode()


def _latest_view_bytes(dialect: str):
    """meters.last_data as its UTF-8 bytes (no text decoded and encoded again per meter)."""
    if dialect == "sqlite":
        return cast(Meter.last_data, LargeBinary)
    return func.convert_to(cast(Meter.last_data, Text_), "UTF8")


def _latest_times(dialect: str) -> tuple:
    """The page's times as times.iso's text, made by the database."""
    return tuple(
        literal_column(iso_sql(dialect, column)).label(label)
        for column, label in (
            ("meters.created_at", "created_at"),
            ("meters.last_heard_at", "last_heard_at"),
            ('readings."timestamp"', "r_timestamp"),
            ("readings.received_at", "r_received_at"),
        )
    )


def _jsonable(value):
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@router.get("/metering-points/{point_id}/consumption", summary="Consumption of a metering point over a period")
def point_consumption(
    point_id: Id,
    principal: Viewer,
    session: DbSession,
    from_: Annotated[TimeQuery, Query(alias="from", min_length=1)],
    to: Annotated[TimeQuery, Query(min_length=1)],
    quantity: str | None = Query(None, pattern="^(energy|volume|hca)$"),
) -> dict:
    """`from` and `to`: ISO 8601 dates or times; without a zone in the tenant's time zone, a bare
    date meaning 00:00 there (`from=2026-01-01&to=2027-01-01`: the calendar year 2026 in local time)."""
    mp = get_point(session, principal, point_id)
    start, end = (
        local_time(session, principal.tenant_id, from_, "from"),
        local_time(session, principal.tenant_id, to, "to"),
    )
    if start is None or end is None:
        raise ApiError(422, "invalid_time", f"{'from' if start is None else 'to'}: a date or time is needed")
    if end < start:
        raise ApiError(422, "invalid_time", "to must not be before from")
    return _jsonable(consumption_mod.consumption(session, mp, start, end, quantity=quantity))


_CSV_HEADER = ",".join(EXPORT_COLUMNS) + "\r\n"


def _csv_stream(batches: Iterator[list[tuple]]) -> Iterator[bytes]:
    """The header with the first batch (none without rows), then a batch per chunk (export.csv_text)."""
    header = _CSV_HEADER
    for batch in batches:
        yield (header + csv_text(batch)).encode()
        header = ""


def _json_stream(batches: Iterator[list]) -> Iterator[bytes]:
    """A JSON array of export rows, a batch per chunk (one orjson call per batch); rows of
    export.with_fields come as (row, named fields)."""
    yield b"["
    first = True
    for batch in batches:
        if not batch:
            continue
        if isinstance(batch[0][-1], dict):
            objects = [{**dict(zip(EXPORT_COLUMNS, row, strict=False)), "fields": named} for row, named in batch]
        else:
            objects = [dict(zip(EXPORT_COLUMNS, row, strict=False)) for row in batch]
        chunk = orjson.dumps(objects)[1:-1]
        yield chunk if first else b"," + chunk
        first = False
    yield b"]"


@router.get(
    "/export/readings",
    summary="Export readings of a period as CSV or JSON (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
def export_readings(
    request: Request,
    principal: Viewer,
    session: DbSession,
    from_: Annotated[TimeQuery, Query(alias="from", min_length=1)],
    to: Annotated[TimeQuery, Query(min_length=1)],
    format: str = Query("csv", pattern="^(csv|json)$"),
    meter_pk: Id | None = Query(None, alias="meter"),
    fields: bool = Query(False, description="JSON: each row's named fields too (decoded again: ~10x slower)"),
) -> StreamingResponse:
    start, end = _range(from_, to)
    if start is None or end is None:  # (both are required parameters)
        raise ApiError(422, "invalid_time", "from and to are required")
    if meter_pk is not None:
        get_meter(session, principal, meter_pk)
    db = request.app.state.db
    stamp = f"{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    if format == "csv":
        return StreamingResponse(
            _csv_stream(export_rows(db, principal.tenant_id, start, end, meter_pk)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="readings-{stamp}.csv"'},
        )
    rows = (
        with_fields(
            db,
            redecoder(request),
            principal.tenant_id,
            export_rows(db, principal.tenant_id, start, end, meter_pk, with_telegram=True),
        )
        if fields
        else export_rows(db, principal.tenant_id, start, end, meter_pk)
    )
    return StreamingResponse(
        _json_stream(rows),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="readings-{stamp}.json"'},
    )
