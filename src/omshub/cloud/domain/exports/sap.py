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

from omshub.cloud.domain.exports.v1 import COL, SHARED, SHARED_COLUMNS, VALUE, Shared

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
