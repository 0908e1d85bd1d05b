"""Billing periods and their boundaries, in the property's local time (docs/billing.md §Periods).

A boundary is 00:00 local time of a day, as an aware UTC datetime: the month of November 2026 in
Europe/Berlin runs from 2026-11-01 00:00 CET (2026-10-31T23:00Z) to 2026-12-01 00:00 CET. The yearly
billing period ends at the end of its due date (default 31 December): with due date 30 June it runs
from 1 July to the next 1 July 00:00. Occupancies count in whole days: moved in on D means from D
00:00; moved out on E means until the end of E (E+1 00:00).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from omshub.times import UTC

DEFAULT_ZONE = "Europe/Berlin"
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC, with the local dates it covers and a label ("2026-11", "2026/27")."""

    kind: str  # month | year | interim
    label: str
    start: datetime
    end: datetime
    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True, slots=True)
class Occupancy:
    """An occupant's stay in a unit: from `moved_in` to `moved_out` inclusive (None: still there)."""

    occupant: str
    moved_in: date
    moved_out: date | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A part of a period with one occupant (None: vacant), cut at move-in and move-out days."""

    occupant: str | None
    period: Period


def local_midnight(day: date, zone: str = DEFAULT_ZONE) -> datetime:
    """00:00 local time of `day` in `zone`, as aware UTC (midnight exists on every day in zones that
    switch at 02:00 or 03:00, such as Europe/Berlin)."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _period(kind: str, label: str, first: date, last: date, zone: str) -> Period:
    return Period(kind, label, local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone), first, last)


def month_period(year: int, month: int, zone: str = DEFAULT_ZONE) -> Period:
    """The calendar month as a period."""
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return _period("month", f"{year:04d}-{month:02d}", first, following - timedelta(days=1), zone)


def parse_month(text: str, zone: str = DEFAULT_ZONE) -> Period:
    """ "2026-11" -> that month; ValueError with the reason for anything else."""
    m = _MONTH_RE.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise ValueError(f"month must be written YYYY-MM (e.g. 2026-11), got {text!r}")
    return month_period(int(m.group(1)), int(m.group(2)), zone)


def due_date_in(year: int, month: int, day: int) -> date:
    """The due date (month, day) in `year`; 29 February falls on 28 February in other years."""
    if month == 2 and day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return date(year, month, day)


def billing_year(due_month: int, due_day: int, ending_in: int, zone: str = DEFAULT_ZONE) -> Period:
    """The yearly billing period whose due date falls in the year `ending_in`."""
    last = due_date_in(ending_in, due_month, due_day)
    first = due_date_in(ending_in - 1, due_month, due_day) + timedelta(days=1)
    label = str(ending_in) if (due_month, due_day) == (12, 31) else f"{ending_in - 1}/{ending_in % 100:02d}"
    return _period("year", label, first, last, zone)


def billing_year_containing(day: date, due_month: int, due_day: int, zone: str = DEFAULT_ZONE) -> Period:
    """The yearly billing period that contains `day`."""
    due = due_date_in(day.year, due_month, due_day)
    return billing_year(due_month, due_day, day.year if day <= due else day.year + 1, zone)


def months_of(period: Period, zone: str = DEFAULT_ZONE) -> list[Period]:
    """The calendar months that a period touches, in order."""
    out: list[Period] = []
    y, m = period.first_day.year, period.first_day.month
    while date(y, m, 1) <= period.last_day:
        out.append(month_period(y, m, zone))
        y, m = y + (m == 12), m % 12 + 1
    return out


def occupancy_problems(occupancies: list[Occupancy]) -> list[tuple[str, str]]:
    """What is wrong with a unit's occupancies (dates out of order, overlaps), each in English and
    German; empty if nothing. Overlaps are found after sorting by move-in day."""
    problems = []
    for o in occupancies:
        if o.moved_out is not None and o.moved_out < o.moved_in:
            problems.append(
                (
                    f"{o.occupant}: moved out ({o.moved_out}) before moving in ({o.moved_in})",
                    f"{o.occupant}: Auszug ({o.moved_out:%d.%m.%Y}) vor dem Einzug ({o.moved_in:%d.%m.%Y})",
                )
            )
    ordered = sorted(occupancies, key=lambda o: o.moved_in)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.moved_out is None or a.moved_out >= b.moved_in:
            until = "still there" if a.moved_out is None else f"until {a.moved_out}"
            bis = "noch dort" if a.moved_out is None else f"bis {a.moved_out:%d.%m.%Y}"
            problems.append(
                (
                    f"{a.occupant} ({a.moved_in}, {until}) overlaps {b.occupant} (from {b.moved_in})",
                    f"{a.occupant} ({a.moved_in:%d.%m.%Y}, {bis}) überschneidet sich mit {b.occupant} "
                    f"(ab {b.moved_in:%d.%m.%Y})",
                )
            )
    return problems


def segments(period: Period, occupancies: list[Occupancy], zone: str = DEFAULT_ZONE) -> list[Segment]:
    """The period cut at every move-in and move-out inside it: one segment per occupant's part and per
    vacant part, in order, covering the period without gap or overlap. The occupancies must be free of
    problems (`occupancy_problems`)."""
    out: list[Segment] = []
    cursor = period.first_day
    for o in sorted(occupancies, key=lambda o: o.moved_in):
        first = max(o.moved_in, period.first_day)
        last = min(o.moved_out or period.last_day, period.last_day)
        if first > last:
            continue
        if cursor < first:
            out.append(Segment(None, _period("interim", "vacant", cursor, first - timedelta(days=1), zone)))
        out.append(Segment(o.occupant, _period("interim", o.occupant, first, last, zone)))
        cursor = last + timedelta(days=1)
    if cursor <= period.last_day:
        out.append(Segment(None, _period("interim", "vacant", cursor, period.last_day, zone)))
    return out
