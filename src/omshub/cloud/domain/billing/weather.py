"""Degree days (Gradtagzahlen) from daily mean temperatures, the monthly per-mille table, and the
parsers of the two temperature file layouts omshub reads (docs/billing.md §Weather).

Degree days of a period: the sum of (20 °C − daily mean) over the days whose mean is below 15 °C.
Where a station has no series for a period, the per-mille table of VDI 2067 gives each month's share
of a year's heating degree days (January 170 ‰ … December 160 ‰); it splits heat consumption
between the parts of a period (HeizkostenV §9b) when there is no reading at the move.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta

INDOOR_C = 20.0
HEATING_LIMIT_C = 15.0
MAX_FILE_LINES = 200_000  # ~550 years of days: more is not a temperature file

# ‰ of a year's heating degree days per month (VDI 2067 Blatt 1, 15 °C heating limit); summer months
# share 40 ‰ equally
PER_MILLE = {1: 170.0, 2: 150.0, 3: 130.0, 4: 80.0, 5: 40.0, 6: 40 / 3, 7: 40 / 3, 8: 40 / 3, 9: 30.0}
PER_MILLE |= {10: 80.0, 11: 120.0, 12: 160.0}


class TemperatureFileError(ValueError):
    """A temperature file that cannot be read: `line` (1-based) and what is wrong there."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclass(frozen=True, slots=True)
class DegreeDays:
    """Degree days of a period, how many of its days had a mean temperature, and how many were missing."""

    value: float
    days_with_data: int
    days_missing: int


def degree_days(means: dict[date, float], first: date, last: date) -> DegreeDays:
    """Degree days over [first, last] from daily means (°C)."""
    total, have, missing = 0.0, 0, 0
    day = first
    while day <= last:
        mean = means.get(day)
        if mean is None:
            missing += 1
        else:
            have += 1
            if mean < HEATING_LIMIT_C:
                total += INDOOR_C - mean
        day += timedelta(days=1)
    return DegreeDays(round(total, 3), have, missing)


def per_mille_of(first: date, last: date) -> float:
    """The VDI 2067 share (‰ of a year) of the days [first, last], each day its month's share / days."""
    total = 0.0
    day = first
    while day <= last:
        following = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        days_in_month = (following - date(day.year, day.month, 1)).days
        total += PER_MILLE[day.month] / days_in_month
        day += timedelta(days=1)
    return total


def split_shares(parts: list[tuple[date, date]], means: dict[date, float] | None = None) -> tuple[list[float], str]:
    """Each part's share of the whole (they add up to 1), by degree days where the series covers every
    day, else by the per-mille table. Returns the shares and the method used
    (`degree_days` | `per_mille`)."""
    if means is not None:
        dd = [degree_days(means, a, b) for a, b in parts]
        total = sum(d.value for d in dd)
        if all(d.days_missing == 0 for d in dd) and total > 0:
            return [d.value / total for d in dd], "degree_days"
    weights = [per_mille_of(a, b) for a, b in parts]
    total = sum(weights)
    return [w / total for w in weights], "per_mille"


def _parse_number(text: str, line: int) -> float:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise TemperatureFileError(line, f"temperature {text.strip()!r} is not a number") from None
    if not -90.0 <= value <= 60.0:
        raise TemperatureFileError(line, f"temperature {value} °C is outside -90..60 °C")
    return value


def _parse_day(text: str, line: int) -> date:
    t = text.strip()
    try:
        if len(t) == 8 and t.isdigit():  # the weather service writes YYYYMMDD
            return date(int(t[:4]), int(t[4:6]), int(t[6:]))
        return date.fromisoformat(t)
    except ValueError:
        raise TemperatureFileError(line, f"date {t!r} is not a date (YYYY-MM-DD or YYYYMMDD)") from None


def parse_daily_means(data: bytes) -> dict[date, float]:
    """Daily means from either layout, recognised by its header:

    * `date,mean_c` (comma or semicolon separated, ISO dates), or
    * the German weather service's daily climate file (`produkt_klima_tag_*.txt`: semicolon
      separated, `MESS_DATUM` as YYYYMMDD, the daily mean in `TMK`, -999 for missing).

    Refuses, with the line, a file that is not UTF-8/Latin-1 text, has an unknown header, a bad date
    or number, or a date twice."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "\x00" in text:
        raise TemperatureFileError(1, "the file is not text")
    lines = text.splitlines()
    if not lines:
        raise TemperatureFileError(1, "the file is empty")
    if len(lines) > MAX_FILE_LINES:
        raise TemperatureFileError(MAX_FILE_LINES + 1, f"more than {MAX_FILE_LINES} lines")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        return _read_rows(enumerate(reader, start=1))
    except csv.Error as e:
        raise TemperatureFileError(max(1, reader.line_num), f"not a valid table ({e})") from None


def _read_rows(rows) -> dict[date, float]:
    _, first = next(rows)
    header = [h.strip().lower() for h in first]
    if "mess_datum" in header and "tmk" in header:
        day_col, mean_col, missing = header.index("mess_datum"), header.index("tmk"), "-999"
    elif header[:2] == ["date", "mean_c"]:
        day_col, mean_col, missing = 0, 1, None
    else:
        expected = "expected 'date,mean_c' or a daily climate file (MESS_DATUM, TMK)"
        raise TemperatureFileError(1, f"unknown header: {expected}")
    out: dict[date, float] = {}
    for n, row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) <= max(day_col, mean_col):
            raise TemperatureFileError(n, f"expected at least {max(day_col, mean_col) + 1} columns, got {len(row)}")
        if missing is not None and row[mean_col].strip() == missing:
            continue
        day = _parse_day(row[day_col], n)
        if day in out:
            raise TemperatureFileError(n, f"date {day} appears twice")
        out[day] = _parse_number(row[mean_col], n)
    return out
