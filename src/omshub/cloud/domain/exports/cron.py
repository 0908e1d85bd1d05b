"""Cron schedules of export jobs: `minute hour day-of-month month day-of-week` in a time zone
(docs/exports.md §SFTP). Each field: `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
list of these separated by commas; day of week 0-7 (0 and 7 are Sunday). As in cron, when both
day-of-month and day-of-week are restricted, a day matching either counts.

A local time that does not exist (the hour skipped when summer time starts) runs at the same wall
time after the switch; a local time that happens twice (autumn) runs once, the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


class CronError(ValueError):
    """A schedule that is not one: which field and why (English; `german` the same in German)."""

    def __init__(self, message: str, german: str) -> None:
        super().__init__(message)
        self.german = german


@dataclass(frozen=True)
class Schedule:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool
    zone: ZoneInfo

    def _day_ok(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime) -> datetime:
        """The first run strictly after `after` (UTC in, UTC out)."""
        local = after.astimezone(self.zone)
        day = local.date()
        for _ in range(5 * 366):
            if self._day_ok(day):
                for h in self.hours:
                    for m in self.minutes:
                        at = datetime.combine(day, time(h, m), self.zone).astimezone(UTC)
                        if at > after:
                            return at
            day += timedelta(days=1)
        raise CronError("the schedule never runs", "der Zeitplan läuft nie")


def _field(text: str, name: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                a, b = low, high
            elif "-" in base:
                a_text, b_text = base.split("-", 1)
                a, b = int(a_text), int(b_text)
            else:
                a = b = int(base)
                if step_text:
                    b = high
        except ValueError:
            raise CronError(f"{name} {part!r}: not a number, range or step",
                            f"{name} {part!r}: keine Zahl, kein Bereich, keine Schrittweite") from None  # fmt: skip
        if step < 1 or not (low <= a <= b <= high):
            raise CronError(f"{name} {part!r}: outside {low}-{high}", f"{name} {part!r}: außerhalb {low}-{high}")
        out.update(range(a, b + 1, step))
    return out


def parse(text: str, zone: str) -> Schedule:
    """The schedule of a cron line in the IANA zone `zone`, or CronError."""
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
    sets = [_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = {d % 7 for d in sets[4]}
    return Schedule(tuple(sorted(sets[0])), tuple(sorted(sets[1])), frozenset(sets[2]), frozenset(sets[3]),
                    frozenset(weekdays), parts[2] == "*", parts[4] == "*", tz)  # fmt: skip
