"""Fixed simulated times for the tests: no test takes its data's dates from the wall clock.

Tests that simulate days of meters and gateways start at ``EPOCH`` (or one of the named days,
where the day matters: winter time, summer time, either side of a daylight-saving switch in
Europe/Berlin). ``OMSHUB_TEST_EPOCH`` (ISO 8601 with zone) moves ``EPOCH`` for a run, so the
time-sensitive tests can be run under other dates without editing them.

The wall clock itself is moved by ``scripts/test --dates`` (libfaketime): the suite must pass
whatever today is.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")
DAY = 86_400

# Named days (noon UTC unless a switch is the point).
WINTER = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)  # CET, UTC+1
SUMMER = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)  # CEST, UTC+2
# 2026-03-29: at 01:00 UTC local time jumps 02:00 CET -> 03:00 CEST (02:xx local does not exist)
DST_SPRING = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
# 2026-10-25: at 01:00 UTC local time falls back 03:00 CEST -> 02:00 CET (02:xx local happens twice)
DST_AUTUMN = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)

NAMED = {"winter": WINTER, "summer": SUMMER, "dst_spring": DST_SPRING, "dst_autumn": DST_AUTUMN}


def _epoch_from_env() -> datetime:
    text = os.environ.get("OMSHUB_TEST_EPOCH", "").strip()
    if not text:
        return WINTER
    if text.lower() in NAMED:
        return NAMED[text.lower()]
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"OMSHUB_TEST_EPOCH={text!r} needs a zone (e.g. 2026-07-15T12:00:00+00:00)")
    return value.astimezone(UTC)


EPOCH = _epoch_from_env()


def noon(day: datetime) -> datetime:
    """Noon UTC of ``day``'s date."""
    return day.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def days_before(n: int, at: datetime | None = None) -> float:
    """Unix time of noon UTC ``n`` days before ``at`` (default ``EPOCH``): where a simulated run starts."""
    return noon(at or EPOCH).timestamp() - n * DAY


def unix(value: datetime) -> int:
    return int(value.timestamp())


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
