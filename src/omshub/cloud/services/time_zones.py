"""Time zones: the tenants' local time and the meters' own clocks (docs/formats.md §4).

How a meter's clock becomes a reading's UTC timestamp (the zone order, the two hours a year that
need a rule) is domain/meter_time.py; the tenants' settings are read by store/meter_zones.py.
Here: the zones and times people give, and re-timing stored readings after a zone change.

Dates given by people without a zone (imports, installations, swaps, consumption periods) are in
the tenant's local zone (`tenants.timezone`), a bare date meaning 00:00 there
(`parse_local_time`); such a time that does not exist or happens twice is refused with a message
that says so. Meter DATE values (due dates, type G) stay dates: only date-times are converted.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omshub.cloud.domain.meter_time import (
    AMBIGUITY_TOLERANCE,
    ZoneRules,
    gap_or_fold,
    is_unambiguous,
    meter_clock,
    meter_time_to_utc,
    telegram_model,
    zone_info,
)
from omshub.cloud.store.audit import audit
from omshub.cloud.store.meter_zones import load_rules
from omshub.cloud.store.models import Meter, Reading
from omshub.cloud.store.reading_values import reading_registers
from omshub.times import UTC

# the meter-time rules are named here too for the API, the commands and the tests
__all__ = [
    "AMBIGUITY_TOLERANCE",
    "MAX_TIME",
    "MAX_ZONE_NAME",
    "MIN_TIME",
    "TimeInputError",
    "ZoneRules",
    "check_zone",
    "is_unambiguous",
    "load_rules",
    "meter_clock",
    "meter_time_to_utc",
    "parse_local_time",
    "retime_and_audit",
    "retime_readings",
    "telegram_model",
    "zone_info",
]

# Times the head-end takes from people and programs: what the uplink format and every database can
# hold (Unix seconds, 4-digit years)
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_RANGE = "is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z (UTC)"


def _in_range(value: datetime, raw: str, where: str) -> datetime:
    if not MIN_TIME <= value <= MAX_TIME:
        raise TimeInputError("invalid_time", f"{where}: {raw!r} {_RANGE}")
    return value


MAX_ZONE_NAME = 64
_ZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}$")


class TimeInputError(ValueError):
    """A time or zone given by a user is not usable; `code` is the API error code, the message
    names the field and says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- zones ---


def check_zone(value, where: str = "timezone") -> str:
    """An IANA zone name (e.g. Europe/Berlin, UTC) -> itself; TimeInputError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise TimeInputError("invalid_timezone", f"{where}: a time zone name is needed (e.g. Europe/Berlin or UTC)")
    name = value.strip()
    if len(name) > MAX_ZONE_NAME or not _ZONE_RE.match(name):
        raise TimeInputError(
            "invalid_timezone", f"{where}: {value[:80]!r} is not an IANA time zone name (e.g. Europe/Berlin or UTC)"
        )
    try:
        zone_info(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeInputError(
            "invalid_timezone", f"{where}: unknown time zone {name!r} (IANA names such as Europe/Berlin or UTC)"
        ) from None
    return name


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
    example = f"e.g. 2026-01-31 (00:00 in {zone_name}), 2026-01-31T08:00 (in {zone_name}) or 2026-01-31T08:00+01:00"
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
        raise TimeInputError(
            "invalid_time", f"{where}: {raw!r} is not an ISO 8601 date or time ({why}{example})"
        ) from None
    if value.tzinfo is not None:
        try:
            return _in_range(value.astimezone(UTC), raw, where)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00: no UTC year 0
            raise TimeInputError("invalid_time", f"{where}: {raw!r} {_RANGE}") from None
    kind = gap_or_fold(value, zone)
    if kind == "gap":
        raise TimeInputError(
            "invalid_time",
            f"{where}: {raw!r} does not exist in {zone_name} (the clocks skip "
            f"that hour); give the time with its offset, e.g. "
            f"{value.isoformat()}+01:00",
        )
    if kind == "fold":
        first = value.replace(tzinfo=zone, fold=0).strftime("%z")
        second = value.replace(tzinfo=zone, fold=1).strftime("%z")
        raise TimeInputError(
            "invalid_time",
            f"{where}: {raw!r} happens twice in {zone_name} (the clocks go back "
            f"that night); give its offset, {first[:3]}:{first[3:]} for the first "
            f"or {second[:3]}:{second[3:]} for the second",
        )
    try:
        return _in_range(value.replace(tzinfo=zone).astimezone(UTC), raw, where)
    except OverflowError:
        raise TimeInputError("invalid_time", f"{where}: {raw!r} {_RANGE}") from None


# --- re-timing stored readings after a zone change ---

_RETIME_CHUNK = 2000


def retime_readings(session: Session, tenant_id: int, server_zone: str, meter_pks: list[int] | None = None) -> dict:
    """Recompute the timestamps of a tenant's stored readings (all meters, or `meter_pks`) from the
    meter date-time each stored decoded telegram holds, with the zones in force now. Readings
    without a meter date-time keep their receive time; raw telegrams are not touched. The meters'
    latest-reading bookkeeping follows. -> {"checked", "moved", "meters"}."""
    rules = load_rules(session, [tenant_id], server_zone).get(tenant_id) or ZoneRules(server_zone)
    meter_q = select(Meter.id, Meter.meter_timezone, Meter.manufacturer, Meter.device_type)
    meter_q = meter_q.where(Meter.tenant_id == tenant_id)
    if meter_pks is not None:
        meter_q = meter_q.where(Meter.id.in_(sorted(set(meter_pks))))
    meters = {row[0]: row[1:] for row in session.execute(meter_q).all()}
    checked = moved = 0
    touched: set[int] = set()
    ids = sorted(meters)
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        after = 0
        while True:
            rows = session.execute(
                select(
                    Reading.id,
                    Reading.meter_pk,
                    Reading.timestamp,
                    Reading.received_at,
                    Reading.meter_clock,
                    Reading.meter_version,
                )
                .where(Reading.tenant_id == tenant_id, Reading.meter_pk.in_(part), Reading.id > after)
                .order_by(Reading.id)
                .limit(_RETIME_CHUNK)
            ).all()
            if not rows:
                break
            after = rows[-1][0]
            changes = []
            for rid, meter_pk, stamp, received, clock_text, version in rows:
                checked += 1
                clock = meter_clock(_clock_record(clock_text))
                if clock is None:
                    new = received
                else:
                    meter_zone, manufacturer, device_type = meters[meter_pk]
                    zone = rules.zone_for(meter_zone, manufacturer, version, device_type)
                    new = meter_time_to_utc(clock, zone_info(zone), received)
                if new != stamp:
                    changes.append({"id": rid, "timestamp": new})
                    touched.add(meter_pk)
            if changes:
                moved += len(changes)
                session.execute(update(Reading), changes)
    for meter_pk in sorted(touched):
        latest = session.scalars(
            select(Reading)
            .where(Reading.meter_pk == meter_pk)
            .order_by(Reading.timestamp.desc(), Reading.id.desc())
            .limit(1)
        ).first()
        if latest is not None:
            session.execute(
                update(Meter)
                .where(Meter.id == meter_pk)
                .values(
                    last_reading_id=latest.id,
                    last_reading_at=latest.timestamp,
                    last_registers=reading_registers(latest),
                    last_data=None,  # (perhaps another reading's now: the latest route decodes it again)
                )
            )
    return {"checked": checked, "moved": moved, "meters": len(touched)}


def _clock_record(text: str | None) -> dict | None:
    """The meter's clock text a reading keeps, as the decoded record it came from."""
    if text is None:
        return None
    return {"records": [{"quantity": "datetime", "storage": 0, "value": text}]}


def retime_and_audit(
    session: Session, tenant_id: int, server_zone: str, actor: str, meter_pks: list[int] | None = None
) -> dict:
    """retime_readings, written to the audit log with the zones it used and what it moved."""
    result = retime_readings(session, tenant_id, server_zone, meter_pks)
    rules = load_rules(session, [tenant_id], server_zone).get(tenant_id) or ZoneRules(server_zone)
    audit(
        session,
        tenant_id,
        actor,
        "readings.retime",
        {
            **result,
            "meters_asked": None if meter_pks is None else sorted(set(meter_pks))[:1000],
            "tenant_meter_timezone": rules.tenant,
            "models": [list(m) for m in rules.models],
        },
    )
    return result
