"""Meter clocks -> UTC (docs/formats.md §4): the conversion rules, without the database.

German meters keep LOCAL time (Europe/Berlin, with daylight saving time) in their date-time
records. A reading's timestamp is the meter's current date-time converted to UTC with the zone of
that meter's clock, the most specific one that is set (`ZoneRules.zone_for`):

    meter (meters.meter_timezone) > meter model (meter_model_zones: manufacturer, optionally
    version and/or device type) > tenant (tenants.meter_timezone) > server setting `meter_timezone`

Two hours a year need a rule (`meter_time_to_utc`):

* the autumn hour (02:00-02:59 happens twice) is resolved by the telegram's receive time: of the
  two instants the one nearest to, and not after, the receive time + AMBIGUITY_TOLERANCE (meter
  clocks run a little fast); when both are after it, the earlier;
* the spring hour that does not exist (02:00-02:59 is skipped) is read with the offset in force
  before the switch, as from a clock that has not switched yet: 02:30 -> 01:30 UTC.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from omshub.times import UTC

AMBIGUITY_TOLERANCE = timedelta(minutes=15)


@functools.lru_cache(maxsize=256)
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


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
        if (
            type(rec) is dict
            and rec.get("quantity") == "datetime"
            and rec.get("storage") == 0
            and not rec.get("tariff")
            and not rec.get("subunit")
            and isinstance(rec.get("value"), str)
        ):
            value = _parse_clock(rec["value"])
            if value is not None:
                return value
    return None


def gap_or_fold(local: datetime, zone: ZoneInfo) -> str | None:
    """'gap' when the wall time does not exist in `zone`, 'fold' when it happens twice."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return "fold" if back == local else "gap"


def is_unambiguous(local: datetime, zone: ZoneInfo) -> bool:
    return local.tzinfo is not None or gap_or_fold(local, zone) is None


def meter_time_to_utc(local: datetime, zone: ZoneInfo, received_at: datetime | None = None) -> datetime:
    """A meter's date-time (naive: in `zone`) -> UTC, with the rules of the module docstring."""
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    kind = gap_or_fold(local, zone)
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

    def zone_for(
        self, meter_zone: str | None, manufacturer: str | None, version: int | None, device_type: str | None
    ) -> str:
        if meter_zone:
            return meter_zone
        best, rank = None, -1
        for man, ver, dtype, zone in self.models:
            if (
                man != manufacturer
                or (ver is not None and ver != version)
                or (dtype is not None and dtype != device_type)
            ):
                continue
            score = (2 if ver is not None else 0) + (1 if dtype is not None else 0)
            if score > rank:
                best, rank = zone, score
        return best or self.tenant


def telegram_model(data: dict | None) -> tuple[str | None, int | None, str | None]:
    """(manufacturer, version, device type name) of a decoded telegram's meter."""
    meter = (data or {}).get("meter") or {}
    return meter.get("manufacturer"), meter.get("version"), meter.get("device_type")
