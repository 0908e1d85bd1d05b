"""Cron schedules of export jobs: `minute hour day-of-month month day-of-week` in a time zone
(docs/exports.md §SFTP), with croniter's field syntax (`*`, numbers, ranges, steps, lists; day of
week 0-7, 0 and 7 Sunday; day of month and day of week both restricted: either counts).

What croniter does not decide is the clock change, so it is decided here: croniter walks the local
wall clock without a zone, and each wall time is placed in the zone with `fold=0`. A wall time that
does not exist (the hour skipped when summer time starts) so runs at the same wall time after the
switch; one that happens twice (autumn) runs once, the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_FIELDS = (("minute", "Minute"), ("hour", "Stunde"), ("day of month", "Tag"), ("month", "Monat"),
           ("day of week", "Wochentag"))  # fmt: skip
_MATCH_YEARS = 5  # a schedule that finds no day in five years (31 February) never runs


class CronError(ValueError):
    """A schedule that is not one: which field and why (English; `german` the same in German)."""

    def __init__(self, message: str, german: str) -> None:
        super().__init__(message)
        self.german = german


@dataclass(frozen=True)
class Schedule:
    expr: str
    zone: ZoneInfo

    def next_after(self, after: datetime) -> datetime:
        """The first run strictly after `after` (UTC in, UTC out)."""
        # start a few hours back on the wall clock: placing wall times in the zone never moves a
        # time earlier than its wall reading by more than the zone's largest step
        wall = after.astimezone(self.zone).replace(tzinfo=None) - timedelta(hours=3)
        runs = croniter(self.expr, wall, max_years_between_matches=_MATCH_YEARS)
        for _ in range(100_000):
            try:
                local: datetime = runs.get_next(datetime)
            except Exception:  # croniter's own errors for a schedule without a match
                raise CronError("the schedule never runs", "der Zeitplan läuft nie") from None
            at = local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
            if at > after:
                return at
        raise CronError("the schedule never runs", "der Zeitplan läuft nie")


def parse(text: str, zone: str) -> Schedule:
    """The schedule of a cron line in the IANA zone `zone`, or CronError naming the field."""
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"cron {text!r}: expected 5 fields (minute hour day month weekday), got {len(parts)}",
            f"Cron {text!r}: erwartet 5 Felder (Minute Stunde Tag Monat Wochentag), nicht {len(parts)}",
        )
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"time zone {zone!r}: unknown", f"Zeitzone {zone!r}: unbekannt") from None
    for i, (name, german) in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[i] = parts[i]
        if not croniter.is_valid(" ".join(alone)):
            raise CronError(f"{name} {parts[i]!r}: not a number, range, step or list in its bounds",
                            f"{german} {parts[i]!r}: keine Zahl, kein Bereich, keine Schrittweite "
                            "oder Liste in den Grenzen")  # fmt: skip
    schedule = Schedule(" ".join(parts), tz)
    schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # refuses a schedule that never runs
    return schedule
