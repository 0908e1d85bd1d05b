"""SAP IS-U meter-reading upload rows (structure BAPIEABLU of BAPI_MTRREADDOC_UPLOAD / IDoc
ISU_MR_UPLOAD01; docs/exports.md §SAP IS-U): one row per register reading, keyed without a reading
order by (SERIALNO, REGISTER, MRDATEFORBILLING).

* a boundary value becomes a reading with the reason its boundary has in the tenant's mapping
  (default: due date 01 periodic, month end 09 interim without billing, move-in 06, move-out 03);
  MRDATEFORBILLING/MRTIMEFORBILLING = the end of the day before the boundary in the property's zone
  (a meter's "31.12." value is the register at the end of 31 December), ACTUALMRDATE/ACTUALMRTIME =
  when the telegram carrying the value was received (values not read from a telegram: the billing
  date);
* a meter swap: the old meter's removal reading (12) and then the new meter's installation reading
  (08), per register, at the swap times;
* a missing value has no row (SAP accepts a row only with a reading or a note) unless the mapping
  gives a note for `missing`.

The tenant's code lists (register numbers per quantity, reasons, reading types per origin, notes
per Tabelle S code or origin, material, meter reader, decimals) are mappings over DEFAULTS.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from omshub.cloud.domain.exports.v1 import (
    COL,
    DELIVERY,
    EXPORT_ID,
    PREVIOUS_EXPORT_ID,
    RECORD,
    SHARED,
    SHARED_COLUMNS,
    VALUE,
    Shared,
    csv_cell,
    json_text,
)

COLUMNS = (
    "MATERIAL",
    "SERIALNO",
    "REGISTER",
    "MRREASON",
    "MRIDNUMBER",
    "READINGRESULT",
    "METERREADINGNOTE",
    "ACTUALCUSTOMERMRTYPE",
    "METERREADER",
    "MRDATEFORBILLING",
    "MRTIMEFORBILLING",
    "ACTUALMRDATE",
    "ACTUALMRTIME",
)
RECEIVED, SERIAL = COL["received_utc"], COL["meter_serial"]
# time of the reading at the end of a day, as SAP takes it (HHMMSS)
END_OF_DAY = "235900"

DEFAULTS: dict = {
    "registers": {"energy": "001", "volume": "001", "hca": "001"},
    "reasons": {
        "due_date": "01",
        "start": "01",
        "month": "09",
        "move_in": "06",
        "move_out": "03",
        "removal": "12",
        "installation": "08",
    },
    "reading_types": {},  # origin -> ACTUALCUSTOMERMRTYPE (customer-specific codes)
    "notes": {},  # Tabelle S code or origin (or "missing") -> METERREADINGNOTE
    "material": "",
    "meter_reader": "",
    "decimals": 3,
}
_SECTIONS = {"registers", "reasons", "reading_types", "notes"}
_CODE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_REGISTER = re.compile(r"^\d{3}$")


class MappingError(ValueError):
    """A mapping that SAP would not take: `field` names the entry, the text says why (en / de)."""

    def __init__(self, field: str, message: str, german: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.german = field, f"{field}: {german}"


def merged(mapping: dict | None) -> dict:
    """DEFAULTS with a tenant's mapping over them (checked: see `check`)."""
    out = copy.deepcopy(DEFAULTS)
    for key, value in (mapping or {}).items():
        if key in _SECTIONS:
            out[key].update(value)
        else:
            out[key] = value
    return out


def check(mapping: dict) -> dict:
    """The mapping if SAP would take every code in it, else MappingError naming the entry."""
    if not isinstance(mapping, dict):
        raise MappingError("sap", "expected an object", "erwartet ein Objekt")
    for key, value in mapping.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise MappingError(key, "expected an object of codes", "erwartet ein Objekt mit Codes")
            for name, code in value.items():
                pattern = _REGISTER if key == "registers" else _CODE
                if not isinstance(code, str) or not pattern.match(code):
                    want = "3 digits (N3)" if key == "registers" else "1 to 4 letters or digits"
                    want_de = "3 Ziffern (N3)" if key == "registers" else "1 bis 4 Buchstaben oder Ziffern"
                    raise MappingError(f"{key}.{name}", f"{code!r} is not {want}", f"{code!r} ist nicht {want_de}")
        elif key in ("material", "meter_reader"):
            if not isinstance(value, str) or len(value) > 18:
                raise MappingError(key, "text of at most 18 characters", "Text mit höchstens 18 Zeichen")
        elif key == "decimals":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 6:
                raise MappingError(key, "a whole number from 0 to 6", "eine ganze Zahl von 0 bis 6")
        else:
            raise MappingError(key, "unknown setting", "unbekannte Einstellung")
    return mapping


def _date_time(at: datetime, zone: ZoneInfo) -> tuple[str, str]:
    local = at.astimezone(zone)
    return local.strftime("%Y%m%d"), local.strftime("%H%M%S")


def reading_row(row: list, mapping: dict, cache: dict) -> list | None:
    """The upload row (a list of COLUMNS) of one v1 boundary-value row (None: nothing SAP would
    take). The texts of the row's shared columns are made once per Shared (domain/exports/v1.py);
    `cache` keeps the date texts of receiving times already seen."""
    shared: Shared = row[SHARED]
    made = shared.caches.get("sap")
    if made is None or made[0] is not mapping:
        made = shared.caches["sap"] = (mapping, *_shared_texts(shared, mapping, cache))
    _, register, reason, note, reading_type, bill_date, number = made
    value = row[VALUE]
    if value is None:
        note = mapping["notes"].get("missing")
        if not note:
            return None
        result = ""
    else:
        result = format(value, number)
    received = row[RECEIVED]
    if received:
        zone = shared.zone or "UTC"
        actual = cache.get((received, zone, "t"))
        if actual is None:
            if len(cache) > 50_000:
                cache.clear()
            at = datetime.fromisoformat(received.replace("Z", "+00:00"))
            actual = cache[(received, zone, "t")] = _date_time(at, _zone(zone, cache))
    else:
        actual = (bill_date, END_OF_DAY)
    return [
        mapping["material"], row[SERIAL] or "", register, reason, "", result, note or "", reading_type,
        mapping["meter_reader"], bill_date, END_OF_DAY, actual[0], actual[1],
    ]  # fmt: skip


EXTRA = ("EXPORT_ID", "DELIVERY", "PREVIOUS_EXPORT_ID")  # omshub's, after the BAPIEABLU fields


class UploadLines:
    """The upload's rows as text — CSV lines (with CRLF) or JSON objects — byte for byte what
    v1.table_csv / v1.table_json_lines write for the rows of `reading_row` + EXTRA, made from
    fragments: a row's shared texts (register, reason, note, reading type, billing date) are one
    fragment per `Shared` and mapping, the receiving times one per distinct time and zone; a row
    adds only its serial number, reading and bookkeeping. Rows off the common path (no reading,
    serial numbers or bookkeeping texts that need quoting) are written the general way."""

    def __init__(self, mapping: dict, ext: str) -> None:
        self.mapping, self.json = mapping, ext == "json"
        self._key = f"sap-{ext}"
        self._cache: dict = {}  # reading_row's: zones, receiving date texts
        self._times: dict[str, dict] = {}  # zone -> received text -> ACTUALMRDATE/TIME fragment
        self._tails: dict = {}  # (export id, delivery, previous export id) -> fragment
        self._columns = COLUMNS + EXTRA

    def row(self, row: list) -> str:
        """One upload row (a list of COLUMNS + EXTRA, texts or None), the general way."""
        if self.json:
            return json_text(dict(zip(self._columns, row, strict=True)))
        return ",".join(map(csv_cell, row)) + "\r\n"

    def readings(self, batch: list[list]) -> list[str]:
        """The lines of a batch's boundary-value rows, in order (other rows are skipped; a row
        with nothing SAP would take has no line)."""
        out: list[str] = []
        append, general, key, mapping, tails, json = (
            out.append,
            self._general,
            self._key,
            self.mapping,
            self._tails,
            self.json,
        )
        for row in batch:
            if row[RECORD] != "boundary_value":
                continue
            shared: Shared = row[SHARED]
            made = shared.caches.get(key)
            if made is None or made[0] is not mapping:
                made = shared.caches[key] = self._fragments(shared)
            _, head, middle, rest, actual, number, times = made
            value, serial, received = row[VALUE], row[SERIAL], row[RECEIVED]
            tail = tails.get((row[EXPORT_ID], row[DELIVERY], row[PREVIOUS_EXPORT_ID]))
            if received is not None:
                actual = times.get(received)
            if value is None or tail is None or actual is None or not (serial is None or serial.isalnum()):
                text = general(row)
                if text is not None:
                    append(text)
            elif json:
                append(f'{head}"{serial or ""}"{middle}"{format(value, number)}"{rest}{actual}{tail}')
            else:
                append(f"{head}{serial or ''}{middle}{format(value, number)}{rest}{actual}{tail}")
        return out

    def _general(self, row: list) -> str | None:
        """A row off the common path: made as reading_row makes it; its fragments learnt."""
        made = reading_row(row, self.mapping, self._cache)
        if made is None:
            return None
        extra = (row[EXPORT_ID] or None, row[DELIVERY], row[PREVIOUS_EXPORT_ID])
        key = (row[EXPORT_ID], row[DELIVERY], row[PREVIOUS_EXPORT_ID])
        if key not in self._tails:
            if len(self._tails) > 1000:
                self._tails.clear()
            self._tails[key] = self._cells(extra, 13) + ("}" if self.json else "\r\n")
        received = row[RECEIVED]
        if received is not None:
            times = self._times.setdefault(row[SHARED].zone or "UTC", {})
            if len(times) > 50_000:
                times.clear()
            times[received] = self._cells(made[11:13], 11)
        return self.row(made + list(extra))

    def _cells(self, values, first: int) -> str:
        """The text of consecutive cells from column `first`: each with the separator before it
        (none before the first column), JSON with its key."""
        out = []
        for i, value in enumerate(values, first):
            if self.json:
                text = "null" if value is None else json_text(value)
                out.append(("{" if i == 0 else ",") + json_text(self._columns[i]) + ":" + text)
            else:
                out.append(("" if i == 0 else ",") + csv_cell(value))
        return "".join(out)

    def _fragments(self, shared: Shared) -> tuple:
        """(mapping, the cells up to SERIALNO's value, those from REGISTER to READINGRESULT's value,
        those from METERREADINGNOTE to MRTIMEFORBILLING, ACTUALMRDATE/TIME without a receiving
        time, the number format, the zone's receiving times)."""
        m = self.mapping
        register, reason, note, reading_type, bill_date, number = _shared_texts(shared, m, self._cache)
        cells = [m["material"], "", register, reason, "", "", note or "", reading_type, m["meter_reader"],
                 bill_date, END_OF_DAY, bill_date, END_OF_DAY]  # fmt: skip
        head = self._cells(cells[:1], 0) + self._cells([""], 1)
        middle = self._cells(cells[2:6], 2)
        rest, actual = self._cells(cells[6:11], 6), self._cells(cells[11:13], 11)
        # cut the empty texts of SERIALNO and READINGRESULT: the row puts its own in
        empty = '""' if self.json else ""
        head, middle = head[: len(head) - len(empty)], middle[: len(middle) - len(empty)]
        times = self._times.setdefault(shared.zone or "UTC", {})
        return (m, head, middle, rest, actual, number, times)


def _shared_texts(shared: Shared, mapping: dict, cache: dict) -> tuple:
    """(REGISTER, MRREASON, note, ACTUALCUSTOMERMRTYPE, MRDATEFORBILLING, number format)."""
    v = dict(zip(SHARED_COLUMNS, shared.values, strict=True))
    notes = mapping["notes"]
    note = notes.get(v["tabelle_s"] or "") or notes.get(v["origin"] or "")
    zone = shared.zone or "UTC"
    at = datetime.fromisoformat(v["boundary_utc"].replace("Z", "+00:00"))
    bill_date = (at.astimezone(_zone(zone, cache)) - timedelta(days=1)).strftime("%Y%m%d")
    return (
        mapping["registers"].get(v["register"], "001"),
        mapping["reasons"].get(v["boundary_reason"] or "", "09"),
        note,
        mapping["reading_types"].get(v["origin"] or "", ""),
        bill_date,
        f".{mapping['decimals']}f",
    )


def _zone(name: str, cache: dict) -> ZoneInfo:
    tz = cache.get(("zone", name))
    if tz is None:
        tz = cache[("zone", name)] = ZoneInfo(name)
    return tz


def swap_rows(
    serial_old: str, serial_new: str, quantity: str, removal: tuple[datetime, float | None],
    installation: tuple[datetime, float | None], mapping: dict, zone: str,
) -> list[list]:  # fmt: skip
    """A swap: the old meter's removal reading (12), then the new meter's installation reading (08)."""
    tz = ZoneInfo(zone or "UTC")
    out = []
    for serial, (at, value), reason in (
        (serial_old, removal, "removal"),
        (serial_new, installation, "installation"),
    ):
        when = _date_time(at, tz)
        out.append(_row(mapping, serial, quantity, mapping["reasons"][reason], value, when, when, "", ""))
    return out


def _row(mapping, serial, quantity, reason, value, billing, actual, note, reading_type) -> list:
    """An upload row: the values of COLUMNS in order."""
    decimals = mapping["decimals"]
    return [
        mapping["material"],
        serial or "",
        mapping["registers"].get(quantity, "001"),
        reason,
        "",
        "" if value is None else f"{value:.{decimals}f}",
        note,
        reading_type,
        mapping["meter_reader"],
        billing[0],
        billing[1],
        actual[0],
        actual[1],
    ]
