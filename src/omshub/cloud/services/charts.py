"""The figures behind the console's charts, as plain data (the browser draws them as SVG):
a meter's and a metering point's consumption per local day or month (bars), a meter's registers
and temperatures over time (lines), a gateway's contacts and battery, and the fleet's telegrams
by state per day. Buckets are whole days or months of the tenant's time zone (domain/charts.py).

A bucket's consumption is the register at its end minus the register at its start (the readings
at or just before each boundary; for a metering point services/consumption.py's rule across meter
swaps); `complete` is false when a boundary's reading is older than the tolerance, so the value
may include days before the bucket."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import cbor2
import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.charts import DAY, MAX_BUCKETS, PERIODS, Bucket, buckets, default_range, thin
from omshub.cloud.domain.errors import Invalid, not_found
from omshub.cloud.domain.meter_time import zone_info
from omshub.cloud.domain.registers import CUMULATIVE_UNITS, cumulative_quantity
from omshub.cloud.services.consumption import consumption, effective_installed_at
from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint, Reading, Telegram, Tenant, Uplink
from omshub.times import iso, utc

# how old a boundary's reading may be for the bucket to count as complete
TOLERANCE = {DAY: timedelta(days=1), "month": timedelta(days=3)}
SERIES_COLUMNS = ("energy", "volume", "hca", "power", "volume_flow", "flow_temperature", "return_temperature")
SERIES_UNITS = {
    **CUMULATIVE_UNITS,
    "power": "kW",
    "volume_flow": "m3/h",
    "flow_temperature": "C",
    "return_temperature": "C",
}
MAX_UPLINKS = 1000
FLEET_DAYS = 14


def _zone(session: Session, tenant_id: int) -> str:
    return session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)) or "Europe/Berlin"


def _range(
    period: str, first: date | None, last: date | None, zone: str, now: datetime, latest: datetime | None = None
) -> list[Bucket]:
    """The buckets asked for; without a range the last days or months up to the subject's latest
    data (a meter silent for months shows its last figures), or up to today when it has none."""
    if period not in PERIODS:
        raise Invalid(
            f"period must be one of {', '.join(PERIODS)}", field="period", german="Bitte Tage oder Monate wählen."
        )
    today = utc(latest if latest is not None else now).astimezone(zone_info(zone)).date()
    d_first, d_last = default_range(today, period)
    first, last = first or d_first, last or (d_last if first is None else min(today, first + (d_last - d_first)))
    if last < first:
        raise Invalid("the end of the range is before its start", field="to", german="Das Ende liegt vor dem Anfang.")
    # counted before the buckets are made: a range of centuries must not be built to be refused
    count = (last - first).days + 1 if period == DAY else (last.year - first.year) * 12 + last.month - first.month + 1
    if count > MAX_BUCKETS[period]:
        n = MAX_BUCKETS[period]
        raise Invalid(
            f"at most {n} {period}s at once",
            field="to",
            german=f"Höchstens {n} {'Tage' if period == DAY else 'Monate'} auf einmal.",
        )
    return buckets(first, last, period, zone)


def _meter(session: Session, tenant_id: int, meter_pk: int) -> Meter:
    meter = session.scalar(select(Meter).where(Meter.id == meter_pk, Meter.tenant_id == tenant_id))
    if meter is None:
        raise not_found(f"meter {meter_pk}", f"Der Zähler {meter_pk}")
    return meter


def _latest_reading(session: Session, meter_pk: int) -> datetime | None:
    at = session.scalar(select(func.max(Reading.timestamp)).where(Reading.meter_pk == meter_pk))
    return utc(at) if at is not None else None


def _register_from(session: Session, meter_pk: int, column, at: datetime) -> tuple[float, datetime] | None:
    row = session.execute(
        select(column, Reading.timestamp)
        .where(Reading.meter_pk == meter_pk, Reading.timestamp >= at, column.is_not(None))
        .order_by(Reading.timestamp, Reading.id)
        .limit(1)
    ).first()
    return None if row is None else (float(row[0]), utc(row[1]))


def _register_before(session: Session, meter_pk: int, column, at: datetime) -> tuple[float, datetime] | None:
    row = session.execute(
        select(column, Reading.timestamp)
        .where(Reading.meter_pk == meter_pk, Reading.timestamp < at, column.is_not(None))
        .order_by(Reading.timestamp.desc(), Reading.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (float(row[0]), utc(row[1]))


def meter_consumption(
    session: Session, tenant_id: int, meter_pk: int, period: str, first: date | None, last: date | None, now: datetime
) -> dict:
    """A meter's consumption per local day or month: its register's differences across the boundaries."""
    meter = _meter(session, tenant_id, meter_pk)
    zone = _zone(session, tenant_id)
    found = _range(period, first, last, zone, now, _latest_reading(session, meter_pk))
    quantity = cumulative_quantity(meter.device_type) or next(
        (q for q in CUMULATIVE_UNITS if (meter.last_registers or {}).get(q) is not None), None
    )
    buckets = _meter_buckets(session, meter_pk, quantity, found, period, now) if quantity else []
    return {
        "period": period,
        "zone": zone,
        "quantity": quantity,
        "unit": CUMULATIVE_UNITS.get(quantity or ""),
        "buckets": buckets,
    }


def _meter_buckets(
    session: Session, meter_pk: int, quantity: str, found: list[Bucket], period: str, now: datetime
) -> list[dict]:
    column = getattr(Reading, quantity)
    tolerance = TOLERANCE[period]
    out = []
    before = _register_before(session, meter_pk, column, found[0].start)
    for b in found:
        after = _register_before(session, meter_pk, column, b.end)
        start = before
        if start is None and after is not None and after[1] >= b.start:
            # nothing before the first readings: from the bucket's first one (not complete)
            start = _register_from(session, meter_pk, column, b.start)
        value = None
        if start is not None and after is not None and after[1] >= b.start and after[1] > start[1]:
            value = round(after[0] - start[0], 9)
        complete = value is not None and before is not None and before[1] >= b.start - tolerance
        out.append(
            {"date": b.label.isoformat(), "value": value, "complete": complete and b.end <= now, "current": b.end > now}
        )
        before = after
    return out


def point_consumption(
    session: Session, tenant_id: int, point_id: int, period: str, first: date | None, last: date | None, now: datetime
) -> dict:
    """A metering point's consumption per local day or month. A bucket that one installation covers
    whole is its meter's (the register's differences, as for a meter); one with a swap, an
    installation or a removal in it is services/consumption.py's, across the meters."""
    point = session.scalar(
        select(MeteringPoint).where(MeteringPoint.id == point_id, MeteringPoint.tenant_id == tenant_id)
    )
    if point is None:
        raise not_found(f"metering point {point_id}", f"Die Messstelle {point_id}")
    zone = _zone(session, tenant_id)
    rows = session.execute(
        select(Installation, Meter.device_type)
        .join(Meter, Meter.id == Installation.meter_pk)
        .where(Installation.metering_point_id == point.id, Installation.tenant_id == tenant_id)
        .order_by(Installation.installed_at)
    ).all()
    # (meter, counting from, removed at, device type); "from the first reading": consumption.py's rule
    installs = [
        (i.meter_pk, effective_installed_at(session, i), utc(i.removed_at) if i.removed_at else None, dt)
        for i, dt in rows
    ]
    latest = max(
        (at for m in {i[0] for i in installs} if (at := _latest_reading(session, m)) is not None), default=None
    )
    found = _range(period, first, last, zone, now, latest)
    quantity = next((q for i in installs if (q := cumulative_quantity(i[3]))), None)
    out: dict = {
        "period": period,
        "zone": zone,
        "quantity": quantity,
        "unit": CUMULATIVE_UNITS.get(quantity or ""),
        "buckets": [],
    }
    whole: dict[int, list[dict]] = {}  # meter -> its buckets
    for k, b in enumerate(found):
        inside = [i for i in installs if i[1] < b.end and (i[2] is None or i[2] > b.start)]
        if (
            quantity
            and len(inside) == 1
            and inside[0][1] <= b.start
            and (inside[0][2] is None or inside[0][2] >= b.end)
        ):
            meter_pk = inside[0][0]
            if meter_pk not in whole:
                whole[meter_pk] = _meter_buckets(session, meter_pk, quantity, found, period, now)
            out["buckets"].append(whole[meter_pk][k])
            continue
        if not inside:  # no meter counting then
            out["buckets"].append(
                {"date": b.label.isoformat(), "value": None, "complete": False, "current": b.end > now}
            )
            continue
        c = consumption(session, point, b.start, b.end, now=now, quantity=quantity)
        out["quantity"], out["unit"] = c["quantity"], c["unit"] or None
        quantity = c["quantity"]
        out["buckets"].append(
            {
                "date": b.label.isoformat(),
                "value": c["value"],
                "complete": bool(c["complete"]) and b.end <= now,
                "current": b.end > now,
            }
        )
    return out


def _span(
    first: date | None, last: date | None, zone: str, now: datetime, latest: datetime | None
) -> tuple[datetime, datetime]:
    found = _range(DAY, first, last, zone, now, latest)
    return found[0].start, found[-1].end


def meter_series(
    session: Session, tenant_id: int, meter_pk: int, first: date | None, last: date | None, now: datetime
) -> dict:
    """A meter's registers, power, flow and temperatures over time (its readings, at most
    MAX_SERIES_POINTS of them evenly spread), each as a list aligned with `at`."""
    _meter(session, tenant_id, meter_pk)
    zone = _zone(session, tenant_id)
    start, end = _span(first, last, zone, now, _latest_reading(session, meter_pk))
    rows = session.execute(
        select(Reading.timestamp, *(getattr(Reading, c) for c in SERIES_COLUMNS))
        .where(Reading.meter_pk == meter_pk, Reading.timestamp >= start, Reading.timestamp < end)
        .order_by(Reading.timestamp, Reading.id)
    ).all()
    rows = thin(list(rows))
    series = {c: [r[i + 1] for r in rows] for i, c in enumerate(SERIES_COLUMNS)}
    present = {c: v for c, v in series.items() if any(x is not None for x in v)}
    return {
        "zone": zone,
        "from": iso(start),
        "to": iso(end),
        "at": [iso(utc(r[0])) for r in rows],
        "series": present,
        "units": {c: SERIES_UNITS[c] for c in present},
    }


def uplink_status(body: bytes | None, content_type: str) -> dict | None:
    """The gateway status an uplink envelope carried (docs/formats.md: `status`), read without
    decoding its telegrams (the status precedes the batch in a CBOR envelope); None when the body
    was dropped or is not an envelope."""
    if not body:
        return None
    try:
        if "json" in content_type:
            status = orjson.loads(body).get("status")
            return status if isinstance(status, dict) else None
        fp = io.BytesIO(body)
        head = fp.read(1)[0]
        if head >> 5 != 5 or head & 0x1F > 25:
            return None
        n = head & 0x1F if head & 0x1F < 24 else int.from_bytes(fp.read(1 if head & 0x1F == 24 else 2), "big")
        decoder = cbor2.CBORDecoder(fp)
        for _ in range(n):
            key = decoder.decode()
            value = decoder.decode()
            if key == "status":
                return value if isinstance(value, dict) else None
    except (ValueError, IndexError, AttributeError, cbor2.CBORDecodeError, orjson.JSONDecodeError):
        return None
    return None


def gateway_history(
    session: Session, tenant_id: int, gateway_id: int, first: date | None, last: date | None, now: datetime
) -> dict:
    """A gateway's contacts (each uplink: when, how many telegrams) and its battery and signal as
    its uplinks reported them (the newest MAX_UPLINKS of the range)."""
    if session.scalar(select(Gateway.id).where(Gateway.id == gateway_id, Gateway.tenant_id == tenant_id)) is None:
        raise not_found(f"gateway {gateway_id}", f"Das Gateway {gateway_id}")
    zone = _zone(session, tenant_id)
    latest = session.scalar(
        select(func.max(Uplink.received_at)).where(Uplink.tenant_id == tenant_id, Uplink.gateway_id == gateway_id)
    )
    start, end = _span(first, last, zone, now, utc(latest) if latest else None)
    rows = session.execute(
        select(Uplink.received_at, Uplink.telegram_count, Uplink.body, Uplink.content_type)
        .where(
            Uplink.tenant_id == tenant_id,
            Uplink.gateway_id == gateway_id,
            Uplink.received_at >= start,
            Uplink.received_at < end,
        )
        .order_by(Uplink.received_at.desc())
        .limit(MAX_UPLINKS)
    ).all()
    contacts, battery, signal = [], [], []
    for at, count, body, content_type in reversed(rows):
        when = iso(utc(at))
        contacts.append({"at": when, "telegrams": count})
        status = uplink_status(body, content_type) or {}
        if isinstance(status.get("battery_pct"), (int, float)):
            battery.append({"at": when, "value": status["battery_pct"]})
        if isinstance(status.get("rssi"), (int, float)):
            signal.append({"at": when, "value": status["rssi"]})
    return {
        "zone": zone,
        "from": iso(start),
        "to": iso(end),
        "contacts": contacts,
        "battery_pct": battery,
        "rssi_dbm": signal,
    }


def telegrams_by_state(session: Session, tenant_id: int, first: date | None, last: date | None, now: datetime) -> dict:
    """The tenant's received telegrams per local day and decode state (counted per UTC hour by the
    database, the hours then put into the zone's days)."""
    zone = _zone(session, tenant_id)
    latest = session.scalar(select(func.max(Telegram.received_at)).where(Telegram.tenant_id == tenant_id))
    if first is None and last is None:  # two weeks up to the latest telegram: every row of them is counted
        last = utc(latest or now).astimezone(zone_info(zone)).date()
        first = last - timedelta(days=FLEET_DAYS - 1)
    found = _range(DAY, first, last, zone, now, utc(latest) if latest else None)
    start, end = found[0].start, found[-1].end
    if session.get_bind().dialect.name == "sqlite":
        hour = func.substr(Telegram.received_at, 1, 13)
    else:
        hour = func.to_char(func.timezone("UTC", Telegram.received_at), "YYYY-MM-DD HH24")
    counts: dict[str, dict[str, int]] = {b.label.isoformat(): {} for b in found}
    tz = zone_info(zone)
    for h, state, n in session.execute(
        select(hour, Telegram.state, func.count())
        # `+ 0`: through the receive-time index (the period's rows), not the tenant's (all its history)
        .where(Telegram.received_at >= start, Telegram.received_at < end, Telegram.tenant_id + 0 == tenant_id)
        .group_by(hour, Telegram.state)
    ):
        at = datetime.strptime(str(h)[:13].replace("T", " "), "%Y-%m-%d %H").replace(tzinfo=zone_info("UTC"))
        day = at.astimezone(tz).date().isoformat()
        if day in counts:
            counts[day][state] = counts[day].get(state, 0) + int(n)
    states = sorted({s for c in counts.values() for s in c})
    return {"zone": zone, "states": states, "days": [{"date": d, "counts": c} for d, c in counts.items()]}
