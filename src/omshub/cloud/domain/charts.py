"""The time buckets of the console's charts: whole local days or months of a zone, each with its
start and end in UTC (a day of a DST change has 23 or 25 hours). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from omshub.cloud.domain.meter_time import zone_info

DAY, MONTH = "day", "month"
PERIODS = (DAY, MONTH)
MAX_BUCKETS = {DAY: 366, MONTH: 60}
DEFAULT_BUCKETS = {DAY: 30, MONTH: 12}
MAX_SERIES_POINTS = 400  # points of a line chart: more is not seen, only loaded


@dataclass(frozen=True)
class Bucket:
    label: date  # the local day, or the first day of the local month
    start: datetime  # UTC
    end: datetime  # UTC, exclusive


def month_start(d: date) -> date:
    return d.replace(day=1)


def next_start(d: date, period: str) -> date:
    if period == DAY:
        return d + timedelta(days=1)
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def local_midnight(d: date, zone: str) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=zone_info(zone)).astimezone(UTC)


def default_range(today: date, period: str) -> tuple[date, date]:
    """The last DEFAULT_BUCKETS days or months up to and including `today`'s."""
    if period == DAY:
        return today - timedelta(days=DEFAULT_BUCKETS[DAY] - 1), today
    first = month_start(today)
    for _ in range(DEFAULT_BUCKETS[MONTH] - 1):
        first = month_start(first - timedelta(days=1))
    return first, today


def buckets(first: date, last: date, period: str, zone: str) -> list[Bucket]:
    """The days (or months) from `first`'s to `last`'s, both included."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}")
    d = first if period == DAY else month_start(first)
    out = []
    while d <= last:
        nxt = next_start(d, period)
        out.append(Bucket(d, local_midnight(d, zone), local_midnight(nxt, zone)))
        d = nxt
    return out


def thin(points: list, limit: int = MAX_SERIES_POINTS) -> list:
    """At most `limit` of `points`, evenly spread, the first and the last always kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]
