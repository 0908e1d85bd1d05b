"""Raw telegrams and their decode state (`/api/v1/telegrams`).

Raw bytes are shown as hex: they are what the radio delivered (still ciphertext for encrypted
meters); keys never appear. `GET /telegrams/unregistered` lists meters heard but not
registered — how installers find new meters.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from omshub.cloud.api.common import (
    DbSession,
    Id,
    Limit,
    Text,
    TimeQuery,
    decode_cursor,
    encode_cursor,
    iso,
    page,
    paginate,
    parse_time,
)
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.errors import ApiError
from omshub.cloud.domain.errors import not_found
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models import Gateway, Telegram
from omshub.codec import DecodeError, peek_header
from omshub.codec.link import DEVICE_TYPE_NAMES

router = APIRouter(prefix="/api/v1/telegrams", tags=["telegrams"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
STATES = ("new", "decoded", "no_key", "wrong_key", "unknown_meter", "invalid", "duplicate")
STATE_PATTERN = "^(" + "|".join(STATES) + ")$"


def telegram_json(t: Telegram, serial: str | None = None) -> dict:
    return {
        "id": t.id,
        "gateway_id": t.gateway_id,
        "gateway": serial,
        "uplink_id": t.uplink_id,
        "received_at": iso(t.received_at),
        "link_mode": t.link_mode,
        "rssi": t.rssi,
        "hex": t.raw.hex().upper(),
        "length": len(t.raw),
        "manufacturer": t.manufacturer,
        "meter_id": t.meter_id,
        "meter_pk": t.meter_pk,
        "state": t.state,
        "error": t.error,
        "decoded_at": iso(t.decoded_at),
    }


def _serials(session, gateway_ids) -> dict[int, str]:
    ids = {g for g in gateway_ids if g is not None}
    if not ids:
        return {}
    return dict(session.execute(select(Gateway.id, Gateway.serial).where(Gateway.id.in_(ids))).all())


@router.get("", summary="List telegrams (newest first)")
def list_telegrams(
    principal: Viewer,
    session: DbSession,
    state: str | None = Query(None, pattern=STATE_PATTERN),
    gateway_id: Id | None = None,
    meter_pk: Id | None = Query(None, alias="meter"),
    manufacturer: Text | None = None,
    meter_id: Text | None = None,
    from_: TimeQuery | None = Query(None, alias="from"),
    to: TimeQuery | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = select(Telegram).where(Telegram.tenant_id == principal.tenant_id)
    if state:
        stmt = stmt.where(Telegram.state == state)
    if gateway_id is not None:
        stmt = stmt.where(Telegram.gateway_id == gateway_id)
    if meter_pk is not None:
        stmt = stmt.where(Telegram.meter_pk == meter_pk)
    if manufacturer:
        stmt = stmt.where(Telegram.manufacturer == manufacturer.upper())
    if meter_id:
        stmt = stmt.where(Telegram.meter_id == meter_id.upper())
    start, end = parse_time(from_, "from"), parse_time(to, "to")
    if start:
        stmt = stmt.where(Telegram.received_at >= start)
    if end:
        stmt = stmt.where(Telegram.received_at <= end)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Telegram.id, descending=True)
    serials = _serials(session, [t.gateway_id for t in rows])
    return page([telegram_json(t, serials.get(t.gateway_id)) for t in rows], nxt)


@router.get("/unregistered", summary="Meters heard but not registered")
def unregistered(
    principal: Viewer, session: DbSession, gateway_id: Id | None = None, cursor: str | None = None, limit: Limit = 100
) -> dict:
    """One item per (manufacturer, meter id) with telegrams waiting as `unknown_meter`: device
    type (from the newest telegram's header), when last heard, how many, by which gateways."""
    if not 1 <= limit <= 1000:
        raise ApiError(
            422, "invalid_limit", f"limit must be 1 to 1000, not {limit}", "Es können 1 bis 1000 Zeilen gezeigt werden."
        )
    offset = decode_cursor(cursor) if cursor else 0
    base = select(Telegram).where(
        Telegram.tenant_id == principal.tenant_id, Telegram.state == "unknown_meter", Telegram.meter_id.is_not(None)
    )
    if gateway_id is not None:
        base = base.where(Telegram.gateway_id == gateway_id)
    sub = base.subquery()
    groups = session.execute(
        select(
            sub.c.manufacturer, sub.c.meter_id, func.count(sub.c.id), func.max(sub.c.received_at), func.max(sub.c.id)
        )
        .group_by(sub.c.manufacturer, sub.c.meter_id)
        .order_by(sub.c.manufacturer, sub.c.meter_id)
        .offset(offset)
        .limit(limit + 1)
    ).all()
    nxt = encode_cursor(offset + limit) if len(groups) > limit else None
    groups = groups[:limit]
    items = []
    for mfct, mid, count, last, newest_id in groups:
        newest = session.get_one(Telegram, newest_id)
        device_type = version = None
        try:
            head = peek_header(newest.raw)
            device_type, version = head.get("device_type_code"), head.get("version")
        except DecodeError:
            pass
        gw_ids = session.scalars(
            select(sub.c.gateway_id).where(sub.c.manufacturer == mfct, sub.c.meter_id == mid).distinct()
        ).all()
        serials = _serials(session, gw_ids)
        items.append(
            {
                "manufacturer": mfct,
                "meter_id": mid,
                "device_type": DEVICE_TYPE_NAMES[device_type] if isinstance(device_type, int) else None,
                "device_type_code": device_type,
                "version": version,
                "last_heard_at": iso(last),
                "count": count,
                "gateways": [{"id": g, "serial": serials.get(g)} for g in sorted(gw_ids)],
            }
        )
    return page(items, nxt)


@router.get("/{telegram_id}", summary="One telegram")
def read_telegram(telegram_id: Id, principal: Viewer, session: DbSession) -> dict:
    t = session.scalar(select(Telegram).where(Telegram.id == telegram_id, Telegram.tenant_id == principal.tenant_id))
    if t is None:
        raise not_found(f"telegram {telegram_id}", f"Das Telegramm {telegram_id}")
    return telegram_json(t, _serials(session, [t.gateway_id]).get(t.gateway_id))
