"""Reading export v1 (docs/exports.md §Reading export v1): the columns, and how a row is written
as CSV and as JSON. A column never changes its meaning within a version: a new meaning is v2.

Times: `*_utc` ISO 8601 with "Z"; `boundary_local` with the property's UTC offset. Values: the
register's reading (boundary value) or the period's consumption, in `unit`, as the database holds
them (no rounding); empty (CSV) / null (JSON) where missing — never zero.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from operator import itemgetter
from zoneinfo import ZoneInfo

import orjson

SCHEMA = "omshub.reading-export/1"
COLUMNS = (
    "schema",
    "export_id",
    "record",  # boundary_value | consumption
    "tenant",
    "property",
    "unit",
    "metering_point",
    "customer_ref",
    "meter_manufacturer",
    "meter_id",
    "meter_serial",
    "register",  # energy | volume | hca
    "value",
    "value_unit",  # kWh | m3 | units
    "boundary_utc",
    "boundary_local",
    "boundary_reason",  # month | due_date | move_in | move_out | start
    "period",
    "period_start_utc",
    "period_end_utc",
    "origin",
    "tabelle_s",
    "quality",
    "validation_state",
    "received_utc",
    "row_id",
    "version",
    "delivery",  # new | changed, or empty in a pull
    "previous_export_id",
)
UNIT_OF_QUANTITY = {"energy": "kWh", "volume": "m3", "hca": "units"}


def utc_text(at: datetime | None) -> str | None:
    """ "2026-10-31T23:00:00Z" (microseconds only where there are some)."""
    if at is None:
        return None
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return at.isoformat().replace("+00:00", "Z")


class TimeTexts:
    """Database time values (SQLite text or datetime) → UTC and local ISO text, cached: an export's
    times are mostly a handful of instants (boundaries, period ends, the close's time)."""

    def __init__(self) -> None:
        self.cache: dict = {}  # raw -> UTC text (read directly on the hot path)
        self._local: dict = {}
        self._zones: dict[str, ZoneInfo] = {}

    def at(self, raw) -> datetime | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)

    def utc(self, raw) -> str | None:
        hit = self.cache.get(raw)
        if hit is None and raw is not None:
            if len(self.cache) > 50_000:
                self.cache.clear()
            hit = self.cache[raw] = utc_text(self.at(raw))
        return hit

    def local(self, raw, zone: str | None) -> str | None:
        key = (raw, zone)
        hit = self._local.get(key)
        if hit is None and raw is not None:
            name = zone or "UTC"
            tz = self._zones.get(name) or self._zones.setdefault(name, ZoneInfo(name))
            if len(self._local) > 50_000:
                self._local.clear()
            at = self.at(raw)
            assert at is not None
            hit = self._local[key] = at.astimezone(tz).isoformat()
        return hit


def csv_lines(rows: Iterable[list[dict]], columns: tuple[str, ...] = COLUMNS) -> Iterator[str]:
    """The CSV text in pieces: a header, then the rows of each batch (`,`-separated, RFC 4180
    quoting, CRLF line ends, UTF-8 without BOM). None is an empty cell, a float its shortest repr."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    yield buf.getvalue()
    cells = itemgetter(*columns)
    for batch in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerows(map(cells, batch))
        yield buf.getvalue()


def json_pieces(rows: Iterable[list[dict]], head: dict, tail: dict | None = None) -> Iterator[bytes]:
    """A JSON document `{…head, "rows": [...], …tail}` in pieces: one row object per line, so a
    reader can also stream it. `tail` is asked for after the rows (e.g. the row count)."""
    start = orjson.dumps(head)[:-1]
    yield start + (b', "rows": [' if len(head) else b'"rows": [')
    first = True
    for batch in rows:
        if not batch:
            continue
        body = b",\n".join(orjson.dumps(r) for r in batch)
        yield (b"\n" if first else b",\n") + body
        first = False
    end = orjson.dumps(tail or {})
    yield b"\n]" + ((b", " + end[1:]) if len(end) > 2 else b"}") + b"\n"
