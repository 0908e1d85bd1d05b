"""Reading export v1 (docs/exports.md §Reading export v1): the columns, and how a row is written
as CSV and as JSON. A column never changes its meaning within a version: a new meaning is v2.

Times: `*_utc` ISO 8601 with "Z"; `boundary_local` with the property's UTC offset. Values: the
register's reading (boundary value) or the period's consumption, in `unit`, as the database holds
them (no rounding); empty (CSV) / null (JSON) where missing — never zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
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


# A row is a list: the COLUMNS in order, then what only omshub's own code reads (the property's
# time zone, the metering point's id, a consumption's meter runs, the run that delivered the row
# before, and the row's shared texts: see `Shared`).
COL = {c: i for i, c in enumerate(COLUMNS)}
ZONE, POINT, RUNS, PREVIOUS_RUN, SHARED = range(len(COLUMNS), len(COLUMNS) + 5)
RECORD, ROW_ID, VERSION, VALUE = COL["record"], COL["row_id"], COL["version"], COL["value"]
DELIVERY, PREVIOUS_EXPORT_ID, EXPORT_ID = COL["delivery"], COL["previous_export_id"], COL["export_id"]
# the columns a row takes from its `Shared` texts (the same for many rows), in order
SHARED_COLUMNS = (
    "schema", "export_id", "record", "tenant", "register", "value_unit", "boundary_utc", "boundary_local",
    "boundary_reason", "period", "period_start_utc", "period_end_utc", "origin", "tabelle_s", "quality",
    "validation_state",
)  # fmt: skip
_CSV_SPECIAL = re.compile(r'[",\r\n]')


def csv_cell(value) -> str:
    """One CSV cell as csv.writer writes it (QUOTE_MINIMAL): None empty, a float its repr."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    if _CSV_SPECIAL.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def json_text(value) -> str:
    """A JSON value exactly as orjson writes it."""
    return orjson.dumps(value).decode()


class Shared:
    """The columns many rows share (an export's period, a section's boundary instants, codes,
    quality …), and their CSV and JSON fragments, made once: a row only adds its own texts."""

    __slots__ = ("values", "csv_head", "csv_register", "csv_tail", "json_head", "json_register", "json_tail",
                 "zone", "caches")  # fmt: skip

    def __init__(self, values: tuple, zone: str | None) -> None:
        self.values, self.zone = values, zone
        cells = dict(zip(SHARED_COLUMNS, values, strict=True))
        head, tail = ("schema", "export_id", "record", "tenant"), SHARED_COLUMNS[5:]
        self.csv_head = "".join(csv_cell(cells[c]) + "," for c in head)
        self.csv_register = csv_cell(cells["register"])
        self.csv_tail = ",".join(csv_cell(cells[c]) for c in tail)
        self.json_head = "".join(f"{json_text(c)}:{json_text(cells[c])}," for c in head)
        self.json_register = json_text(cells["register"])
        self.json_tail = ",".join(f"{json_text(c)}:{json_text(cells[c])}" for c in tail)
        self.caches: dict = {}  # what other formats derive from these values (e.g. the SAP upload)


def _safe_json(text: str) -> bool:
    """True if orjson writes `text` as it is, in quotes (no quote, backslash or control character)."""
    return text.isprintable() and '"' not in text and "\\" not in text


def v1_csv(batches: Iterable[list[list]]) -> Iterator[str]:
    """The v1 CSV text of batches of rows (exports_v1.rows), in pieces: byte for byte what
    csv.writer writes (RFC 4180 quoting, CRLF), made from the rows' shared fragments."""
    yield ",".join(csv_cell(c) for c in COLUMNS) + "\r\n"
    for batch in batches:
        out = []
        for r in batch:
            s: Shared = r[SHARED]
            meter = r[9] or ""  # meter_serial (r[10]) is meter_id
            own = f"{r[4] or ''},{r[5] or ''},{r[6] or ''},{r[7] or ''},{r[8] or ''},{meter},{meter}"
            if '"' in own or "\n" in own or "\r" in own or own.count(",") != 6:
                own = ",".join(csv_cell(x) for x in r[4:11])
            value, received, delivery, previous = r[12], r[24], r[27], r[28]
            out.append(
                f"{s.csv_head}{own},{s.csv_register},{'' if value is None else repr(value)},{s.csv_tail},"
                f"{received or ''},{r[25]},{r[26]},{'' if delivery is None else csv_cell(delivery)},"
                f"{'' if previous is None else csv_cell(previous)}\r\n"
            )
        yield "".join(out)


def v1_json_lines(batches: Iterable[list[list]]) -> Iterator[list[str]]:
    """Per batch of rows, their JSON objects (one line each): what orjson writes for the row's
    COLUMNS, made from the rows' shared fragments."""
    dumps = orjson.dumps
    for batch in batches:
        out = []
        for r in batch:
            s: Shared = r[SHARED]
            a, b, c, d, e, f = r[4], r[5], r[6], r[7], r[8], r[9]  # meter_serial (r[10]) is meter_id
            if _safe_json(f"{a}{b}{c}{d}{e}{f}"):  # None is "None": safe too
                a = "null" if a is None else '"' + a + '"'
                b = "null" if b is None else '"' + b + '"'
                c = "null" if c is None else '"' + c + '"'
                d = "null" if d is None else '"' + d + '"'
                e = "null" if e is None else '"' + e + '"'
                f = "null" if f is None else '"' + f + '"'
            else:
                a, b, c, d, e, f = map(json_text, (a, b, c, d, e, f))
            value, received, delivery, previous = r[12], r[24], r[27], r[28]
            received = "null" if received is None else '"' + received + '"'
            out.append(
                f'{{{s.json_head}"property":{a},"unit":{b},"metering_point":{c},"customer_ref":{d},'
                f'"meter_manufacturer":{e},"meter_id":{f},"meter_serial":{f},"register":{s.json_register},'
                f'"value":{"null" if value is None else dumps(value).decode()},{s.json_tail},'
                f'"received_utc":{received},'  # times, row ids: plain ASCII
                f'"row_id":"{r[25]}","version":"{r[26]}",'
                f'"delivery":{"null" if delivery is None else json_text(delivery)},'
                f'"previous_export_id":{"null" if previous is None else json_text(previous)}}}'
            )
        yield out


def table_csv(batches: Iterable[list[list]], columns: tuple[str, ...]) -> Iterator[str]:
    """CSV of rows that are lists of texts or None (e.g. the SAP upload), as csv.writer writes it."""
    yield ",".join(csv_cell(c) for c in columns) + "\r\n"
    commas = len(columns) - 1
    for batch in batches:
        out = []
        for row in batch:
            line = ",".join([x or "" for x in row])
            if '"' in line or "\n" in line or "\r" in line or line.count(",") != commas:
                line = ",".join(map(csv_cell, row))
            out.append(line + "\r\n")
        yield "".join(out)


def table_json_lines(batches: Iterable[list[list]], columns: tuple[str, ...]) -> Iterator[list[str]]:
    """Per batch, the JSON objects of rows that are lists of texts or None (keys: `columns`)."""
    keys = [json_text(c) + ":" for c in columns]
    for batch in batches:
        out = []
        for row in batch:
            joined = "".join([x or "" for x in row])
            if _safe_json(joined):
                cells = [k + ("null" if x is None else f'"{x}"') for k, x in zip(keys, row, strict=True)]
                out.append("{" + ",".join(cells) + "}")
            else:
                out.append(json_text(dict(zip(columns, row, strict=True))))
        yield out


def json_document(lines: Iterable[list[str]], head: dict, tail: dict | None = None) -> Iterator[bytes]:
    """A JSON document `{…head, "rows": [...], …tail}` in pieces: one row object per line, so a
    reader can also stream it. `tail` is asked for after the rows (e.g. the row count)."""
    start = orjson.dumps(head)[:-1]
    yield start + (b', "rows": [' if len(head) else b'"rows": [')
    first = True
    for batch in lines:
        if not batch:
            continue
        body = ",\n".join(batch).encode()
        yield (b"\n" if first else b",\n") + body
        first = False
    end = orjson.dumps(tail or {})
    yield b"\n]" + ((b", " + end[1:]) if len(end) > 2 else b"}") + b"\n"
