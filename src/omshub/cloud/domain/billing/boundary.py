"""The value of one meter's register at a period boundary, and where it came from (docs/billing.md
§Boundary values).

In order of preference:

1. `meter_stored`: the meter's own value for that day — its due-date value (storage 1) or a month-end
   value (storage ≥ 2). A meter stores the register at the END of the day it names (its "31.12." value
   is the register at 1 January 00:00), so a stored value dated D answers the boundary at D+1 00:00.
   Dates with day and month only are resolved to the latest such day not after the telegram.
2. `measured`: a reading no further from the boundary than `measured_within` (the nearest one).
3. `interpolated`: linear in time between the last reading before and the first after the boundary,
   if they are no further apart than `interpolate_within`; the gap is stated.
4. `missing`: none of these; estimation (estimation.py) or an operator fills it, never a zero.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from omshub.cloud.domain.billing.origins import QUALITY_OF_ORIGIN, Origin, Quality


@dataclass(frozen=True, slots=True)
class Sample:
    """A reading of the register: when (UTC) and its value, and the telegram it came from."""

    at: datetime
    value: float
    telegram_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A value the meter stored for a day (its local date), as found in a telegram."""

    day: date
    value: float
    storage: int
    telegram_id: int | None = None
    received_at: datetime | None = None
    total: float | None = None  # the register of the reading that carried it, if it had one


@dataclass(frozen=True, slots=True)
class BoundaryRules:
    """How far a reading may be from the boundary to count as measured, and how far apart the two
    readings around it may be for interpolation. Tenants configure both (docs/billing.md)."""

    measured_within: timedelta = timedelta(hours=1)
    interpolate_within: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class BoundaryValue:
    """A register value at `at` with its origin, quality and evidence (`details`: the telegrams used,
    the distance or the gap in seconds, the storage number and date of a stored value)."""

    at: datetime
    value: float | None
    origin: Origin
    details: dict = field(default_factory=dict)

    @property
    def quality(self) -> Quality:
        return QUALITY_OF_ORIGIN[self.origin]


def resolve_day_month(day: int, month: int, not_after: date) -> date | None:
    """The latest date with this day and month that is not after `not_after` (a stored value's date
    without a year: the meter wrote it before it sent the telegram). None for an impossible day and
    month (31 April); 29 February goes back to the last leap year."""
    for year in range(not_after.year, not_after.year - 8, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            if month == 2 and day == 29:
                continue
            return None
        if candidate <= not_after:
            return candidate
    return None


def stored_value_at(boundary_day: date, stored: list[StoredValue]) -> StoredValue | None:
    """The stored value that answers the boundary at 00:00 of `boundary_day`: dated the day before.
    Of several (the same due-date value in many telegrams), the one of the earliest telegram."""
    wanted = boundary_day - timedelta(days=1)
    matching = [s for s in stored if s.day == wanted]
    if not matching:
        return None
    return min(matching, key=lambda s: (s.received_at is None, s.received_at or datetime.min, s.storage))


def boundary_value(
    at: datetime,
    boundary_day: date,
    samples: list[Sample],
    stored: list[StoredValue] = (),  # type: ignore[assignment]
    rules: BoundaryRules = BoundaryRules(),
) -> BoundaryValue:
    """The register at the boundary `at` (00:00 local of `boundary_day`, as UTC). `samples` sorted by
    time; `stored` already checked (validation.due_date_findings)."""
    hit = stored_value_at(boundary_day, list(stored))
    if hit is not None:
        details = {"storage": hit.storage, "stored_day": hit.day.isoformat(), "telegram_id": hit.telegram_id}
        return BoundaryValue(at, hit.value, Origin.METER_STORED, details)
    times = [s.at for s in samples]
    i = bisect.bisect_left(times, at)
    before = samples[i - 1] if i > 0 else None
    after = samples[i] if i < len(samples) else None
    nearest = min(
        (s for s in (before, after) if s is not None), key=lambda s: abs((s.at - at).total_seconds()), default=None
    )
    if nearest is not None and abs(nearest.at - at) <= rules.measured_within:
        distance = int((nearest.at - at).total_seconds())
        return BoundaryValue(
            at, nearest.value, Origin.MEASURED, {"telegram_id": nearest.telegram_id, "distance_s": distance}
        )
    if before is not None and after is not None and after.at - before.at <= rules.interpolate_within:
        span = (after.at - before.at).total_seconds()
        share = (at - before.at).total_seconds() / span if span else 0.0
        value = before.value + (after.value - before.value) * share
        details = {
            "telegram_ids": [before.telegram_id, after.telegram_id],
            "gap_s": int(span),
            "before": before.at.isoformat(),
            "after": after.at.isoformat(),
        }
        return BoundaryValue(at, round(value, 6), Origin.INTERPOLATED, details)
    reason = "no reading before the boundary" if before is None else "no reading after the boundary"
    if before is not None and after is not None:
        reason = f"readings around the boundary {int((after.at - before.at).total_seconds())} s apart"
    return BoundaryValue(at, None, Origin.MISSING, {"reason": reason})
