"""Time zones: the tenants' local time and the meters' own clocks (docs/formats.md §4).

German meters keep LOCAL time (Europe/Berlin, with daylight saving time) in their date-time
records. A reading's timestamp is the meter's current date-time converted to UTC with the zone of
that meter's clock, the most specific one that is set:

    meter (meters.meter_timezone) > meter model (meter_model_zones: manufacturer, optionally
    version and/or device type) > tenant (tenants.meter_timezone) > server setting `meter_timezone`

Two hours a year need a rule (`meter_time_to_utc`):

* the autumn hour (02:00-02:59 happens twice) is resolved by the telegram's receive time: of the
  two instants the one nearest to, and not after, the receive time + AMBIGUITY_TOLERANCE (meter
  clocks run a little fast); when both are after it, the earlier;
* the spring hour that does not exist (02:00-02:59 is skipped) is read with the offset in force
  before the switch, as from a clock that has not switched yet: 02:30 -> 01:30 UTC.

Dates given by people without a zone (imports, installations, swaps, consumption periods) are in
the tenant's local zone (`tenants.timezone`), a bare date meaning 00:00 there
(`parse_local_time`); such a time that does not exist or happens twice is refused with a message
that says so. Meter DATE values (due dates, type G) stay dates: only date-times are converted.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omshub.cloud.store.models import Meter, MeterModelZone, Reading, Tenant

UTC = timezone.utc
# Times the head-end takes from people and programs: what the uplink format and every database can
# hold (Unix seconds, 4-digit years)
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_RANGE = "is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z (UTC)"


def _in_range(value: datetime, raw: str, where: str) -> datetime:
    if not MIN_TIME <= value <= MAX_TIME:
        raise TimeInputError("invalid_time", f"{where}: {raw!r} {_RANGE}")
    return value
AMBIGUITY_TOLERANCE = timedelta(minutes=15)
MAX_ZONE_NAME = 64
_ZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}$")


class TimeInputError(ValueError):
    """A time or zone given by a user is not usable; `code` is the API error code, the message
    names the field and says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- zones ---

@functools.lru_cache(maxsize=256)
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(value, where: str = "timezone") -> str:
    """An IANA zone name (e.g. Europe/Berlin, UTC) -> itself; TimeInputError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise TimeInputError("invalid_timezone", f"{where}: a time zone name is needed (e.g. Europe/Berlin or UTC)")
    name = value.strip()
    if len(name) > MAX_ZONE_NAME or not _ZONE_RE.match(name):
        raise TimeInputError("invalid_timezone", f"{where}: {value[:80]!r} is not an IANA time zone name "
                                                 f"(e.g. Europe/Berlin or UTC)")
    try:
        zone_info(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeInputError("invalid_timezone", f"{where}: unknown time zone {name!r} "
                                                 f"(IANA names such as Europe/Berlin or UTC)") from None
    return name


# --- meter clocks ---

@functools.lru_cache(maxsize=10_000)
def _parse_clock(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def meter_clock(data: dict | None) -> datetime | None:
    """The meter's own current date-time in a decoded telegram: the first current (storage 0,
    tariff 0, subunit 0) date-time record that parses; naive (meter-local) unless it carries an
    offset. None when there is none."""
    if not isinstance(data, dict):
        return None
    for rec in data.get("records") or ():
        if (type(rec) is dict and rec.get("quantity") == "datetime" and rec.get("storage") == 0
                and not rec.get("tariff") and not rec.get("subunit") and isinstance(rec.get("value"), str)):
            value = _parse_clock(rec["value"])
            if value is not None:
                return value
    return None


def _gap_or_fold(local: datetime, zone: ZoneInfo) -> str | None:
    """'gap' when the wall time does not exist in `zone`, 'fold' when it happens twice."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return "fold" if back == local else "gap"


def is_unambiguous(local: datetime, zone: ZoneInfo) -> bool:
    return local.tzinfo is not None or _gap_or_fold(local, zone) is None


def meter_time_to_utc(local: datetime, zone: ZoneInfo, received_at: datetime | None = None) -> datetime:
    """A meter's date-time (naive: in `zone`) -> UTC, with the rules of the module docstring."""
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    kind = _gap_or_fold(local, zone)
    if kind == "fold":
        earlier = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
        later = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if received_at is not None and later <= received_at + AMBIGUITY_TOLERANCE:
            return later
        return earlier
    # fold=0 in a gap: the offset before the switch (a clock that has not switched yet)
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


@dataclass
class ZoneRules:
    """One tenant's meter time zones (see the module docstring for the order)."""
    tenant: str
    models: list[tuple[str, int | None, str | None, str]] = field(default_factory=list)

    def zone_for(self, meter_zone: str | None, manufacturer: str | None, version: int | None,
                 device_type: str | None) -> str:
        if meter_zone:
            return meter_zone
        best, rank = None, -1
        for man, ver, dtype, zone in self.models:
            if man != manufacturer or (ver is not None and ver != version) \
                    or (dtype is not None and dtype != device_type):
                continue
            score = (2 if ver is not None else 0) + (1 if dtype is not None else 0)
            if score > rank:
                best, rank = zone, score
        return best or self.tenant


def load_rules(session: Session, tenant_ids, server_zone: str) -> dict[int, ZoneRules]:
    """{tenant id: ZoneRules} for these tenants (NULL tenant zone: the server setting)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return {}
    rules = {tid: ZoneRules(zone or server_zone) for tid, zone in session.execute(
        select(Tenant.id, Tenant.meter_timezone).where(Tenant.id.in_(ids)))}
    for m in session.scalars(select(MeterModelZone).where(MeterModelZone.tenant_id.in_(ids))
                             .order_by(MeterModelZone.id)):
        if m.tenant_id in rules:
            rules[m.tenant_id].models.append((m.manufacturer, m.version, m.device_type or None, m.timezone))
    return rules


def telegram_model(data: dict | None) -> tuple[str | None, int | None, str | None]:
    """(manufacturer, version, device type name) of a decoded telegram's meter."""
    meter = (data or {}).get("meter") or {}
    return meter.get("manufacturer"), meter.get("version"), meter.get("device_type")


# --- dates given by people ---

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_local_time(text: str | None, zone_name: str, where: str) -> datetime | None:
    """An ISO 8601 date or date-time given by a person -> aware UTC datetime (None when empty).
    With an offset (Z, +01:00) as given; without one in `zone_name`; a bare date is 00:00 there.
    TimeInputError (code invalid_time) names `where` and says why."""
    if text is None or not str(text).strip():
        return None
    raw = str(text).strip()
    zone = zone_info(zone_name)
    example = (f"e.g. 2026-01-31 (00:00 in {zone_name}), 2026-01-31T08:00 (in {zone_name}) "
               f"or 2026-01-31T08:00+01:00")
    if len(raw) > 64:
        raise TimeInputError("invalid_time", f"{where}: {raw[:40]!r}... is not an ISO 8601 date or time ({example})")
    try:
        if _DATE_ONLY.match(raw):
            d = date.fromisoformat(raw)
            value = datetime(d.year, d.month, d.day)
        else:
            value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "Zz" else raw)
    except ValueError as exc:
        # the calendar's own reason where there is one ("day is out of range for month")
        why = f"{exc}; " if "range" in str(exc) else ""
        raise TimeInputError("invalid_time", f"{where}: {raw!r} is not an ISO 8601 date or time ({why}{example})") \
            from None
    if value.tzinfo is not None:
        try:
            return _in_range(value.astimezone(UTC), raw, where)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00: no UTC year 0
            raise TimeInputError("invalid_time", f"{where}: {raw!r} {_RANGE}") from None
    kind = _gap_or_fold(value, zone)
    if kind == "gap":
        raise TimeInputError("invalid_time", f"{where}: {raw!r} does not exist in {zone_name} (the clocks skip "
                                             f"that hour); give the time with its offset, e.g. "
                                             f"{value.isoformat()}+01:00")
    if kind == "fold":
        first = value.replace(tzinfo=zone, fold=0).strftime("%z")
        second = value.replace(tzinfo=zone, fold=1).strftime("%z")
        raise TimeInputError("invalid_time", f"{where}: {raw!r} happens twice in {zone_name} (the clocks go back "
                                             f"that night); give its offset, {first[:3]}:{first[3:]} for the first "
                                             f"or {second[:3]}:{second[3:]} for the second")
    try:
        return _in_range(value.replace(tzinfo=zone).astimezone(UTC), raw, where)
    except OverflowError:
        raise TimeInputError("invalid_time", f"{where}: {raw!r} {_RANGE}") from None


# --- re-timing stored readings after a zone change ---

_RETIME_CHUNK = 2000


def retime_readings(session: Session, tenant_id: int, server_zone: str,
                    meter_pks: list[int] | None = None) -> dict:
    """Recompute the timestamps of a tenant's stored readings (all meters, or `meter_pks`) from the
    meter date-time each stored decoded telegram holds, with the zones in force now. Readings
    without a meter date-time keep their receive time; raw telegrams are not touched. The meters'
    latest-reading bookkeeping follows. -> {"checked", "moved", "meters"}."""
    from omshub.cloud.services.consumption import registers

    rules = load_rules(session, [tenant_id], server_zone).get(tenant_id) or ZoneRules(server_zone)
    meter_q = select(Meter.id, Meter.meter_timezone).where(Meter.tenant_id == tenant_id)
    if meter_pks is not None:
        meter_q = meter_q.where(Meter.id.in_(sorted(set(meter_pks))))
    meters = dict(session.execute(meter_q).all())
    checked = moved = 0
    touched: set[int] = set()
    ids = sorted(meters)
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        after = 0
        while True:
            rows = session.execute(select(Reading.id, Reading.meter_pk, Reading.timestamp, Reading.received_at,
                                          Reading.data)
                                   .where(Reading.tenant_id == tenant_id, Reading.meter_pk.in_(part),
                                          Reading.id > after)
                                   .order_by(Reading.id).limit(_RETIME_CHUNK)).all()
            if not rows:
                break
            after = rows[-1][0]
            changes = []
            for rid, meter_pk, stamp, received, data in rows:
                checked += 1
                clock = meter_clock(data)
                if clock is None:
                    new = received
                else:
                    zone = rules.zone_for(meters[meter_pk], *telegram_model(data))
                    new = meter_time_to_utc(clock, zone_info(zone), received)
                if new != stamp:
                    changes.append({"id": rid, "timestamp": new})
                    touched.add(meter_pk)
            if changes:
                moved += len(changes)
                session.execute(update(Reading), changes)
    for meter_pk in sorted(touched):
        latest = session.execute(select(Reading.id, Reading.timestamp, Reading.data)
                                 .where(Reading.meter_pk == meter_pk)
                                 .order_by(Reading.timestamp.desc(), Reading.id.desc()).limit(1)).first()
        if latest is not None:
            session.execute(update(Meter).where(Meter.id == meter_pk).values(
                last_reading_id=latest[0], last_reading_at=latest[1], last_registers=registers(latest[2])))
    return {"checked": checked, "moved": moved, "meters": len(touched)}



def retime_and_audit(session: Session, tenant_id: int, server_zone: str, actor: str,
                     meter_pks: list[int] | None = None) -> dict:
    """retime_readings, written to the audit log with the zones it used and what it moved."""
    from omshub.cloud.store.audit import audit
    result = retime_readings(session, tenant_id, server_zone, meter_pks)
    rules = load_rules(session, [tenant_id], server_zone).get(tenant_id) or ZoneRules(server_zone)
    audit(session, tenant_id, actor, "readings.retime",
          {**result, "meters_asked": None if meter_pks is None else sorted(set(meter_pks))[:1000],
           "tenant_meter_timezone": rules.tenant,
           "models": [list(m) for m in rules.models]})
    return result
