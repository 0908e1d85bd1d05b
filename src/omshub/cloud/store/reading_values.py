"""The typed values a reading row keeps and the accessors every reader uses.

A reading no longer stores the whole decoded telegram: it keeps what billing, charts and the
alarm rules read — the current registers and instantaneous values as typed columns, the meter's
status byte and error flags, the meter's own clock text (re-timing after a zone change), and the
stored (due-date / month-end) values with their storage numbers — and the full uniform dict is
decoded again from the raw telegram on demand (cloud/decode/redecode.py).

`reading_registers(reading)` and `reading_error_causes(reading)` are the stable accessors for
"the cumulative registers of a reading" and "what a reading reports as errors"; they work on a
`Reading` row, on the pipeline's in-memory reading and on anything with these attributes.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from omshub.cloud.domain.alarms import error_causes
from omshub.cloud.domain.registers import CUMULATIVE_UNITS
from omshub.codec.tpl import STATUS_FLAGS

# quantity -> column of its current (storage 0, tariff 0, subunit 0, instantaneous) value, in the
# codec's canonical unit (omshub.codec.units): kWh, m3, HCA units, kW, m3/h, degrees C
VALUE_COLUMNS = {
    "energy": "energy",
    "volume": "volume",
    "hca": "hca",
    "power": "power",
    "volume_flow": "volume_flow",
    "flow_temperature": "flow_temperature",
    "return_temperature": "return_temperature",
}
# stored values kept typed: the cumulative registers and their dates, each packed (`stored`) as
# storage (uint16), tariff, subunit, quantity code (uint8 each), then the value: a float64 for a
# register, a length byte and UTF-8 text for a date. The unit is the quantity's canonical one
# (a record in another unit is not kept typed; the raw telegram still has it).
_STORED_QUANTITIES = ("energy", "volume", "hca", "date", "datetime")
_STORED_UNITS = {"energy": "kWh", "volume": "m3", "hca": "HCA", "date": "", "datetime": ""}
_ENTRY = struct.Struct("<HBBB")
_FLOAT = struct.Struct("<d")
_MAX_STORED = 64  # stored values kept per reading (a meter with a 15-month history has ~45)


def _stored_entry(rec: dict, quantity: str, value) -> bytes | None:
    if quantity not in _STORED_UNITS or rec.get("unit") != _STORED_UNITS[quantity]:
        return None
    storage, tariff, subunit = rec.get("storage") or 0, rec.get("tariff") or 0, rec.get("subunit") or 0
    if not all(type(n) is int for n in (storage, tariff, subunit)):
        return None
    if not (0 <= storage < 2**16 and 0 <= tariff < 256 and 0 <= subunit < 256):
        return None
    if rec.get("function", "instantaneous") != "instantaneous":
        return None
    head = _ENTRY.pack(storage, tariff, subunit, _STORED_QUANTITIES.index(quantity))
    if quantity in CUMULATIVE_UNITS:
        return head + _FLOAT.pack(float(value)) if _number(value) else None
    try:
        text = value.encode() if isinstance(value, str) else b""
    except UnicodeEncodeError:  # (a lone surrogate: not a date the codec writes)
        return None
    return head + bytes([len(text)]) + text if text and len(text) < 256 else None


def stored_values(reading) -> list[list]:
    """The reading's stored values: [[storage, tariff, subunit, quantity, unit, value], ...]."""
    packed = getattr(reading, "stored", None)
    out: list[list] = []
    pos, end = 0, len(packed or b"")
    while packed and pos + _ENTRY.size <= end:
        storage, tariff, subunit, code = _ENTRY.unpack_from(packed, pos)
        pos += _ENTRY.size
        quantity = _STORED_QUANTITIES[code]
        if quantity in CUMULATIVE_UNITS:
            value: float | str = _FLOAT.unpack_from(packed, pos)[0]
            pos += _FLOAT.size
        else:
            n = packed[pos]
            value, pos = packed[pos + 1 : pos + 1 + n].decode(), pos + 1 + n
        out.append([storage, tariff, subunit, quantity, _STORED_UNITS[quantity], value])
    return out


def _is_current(rec: dict) -> bool:
    return (
        not rec.get("storage")
        and not rec.get("tariff")
        and not rec.get("subunit")
        and rec.get("function", "instantaneous") == "instantaneous"
    )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed_values(data: dict | None) -> dict[str, Any]:
    """The columns of a reading from its decoded telegram: {column: value} for the current
    values (the first current, numeric record of each quantity, as domain.registers.registers),
    `error_flags`, `status` (the status byte), `meter_clock` (the first current date-time record's
    text), `meter_version` and `stored` (the stored registers and dates, packed: stored_values
    reads them; None when there are none)."""
    out: dict[str, Any] = dict.fromkeys(VALUE_COLUMNS.values())
    out.update(error_flags=None, status=None, meter_clock=None, meter_version=None, stored=None)
    if not isinstance(data, dict):
        return out
    meter = data.get("meter")
    if isinstance(meter, dict) and type(meter.get("version")) is int and 0 <= meter["version"] <= 255:
        out["meter_version"] = meter["version"]
    status = data.get("status")
    if isinstance(status, dict) and type(status.get("code")) is int and 0 <= status["code"] <= 255:
        out["status"] = status["code"]
    stored: list[bytes] = []
    seen: set[str] = set()
    for rec in data.get("records") or ():
        if type(rec) is not dict:
            continue
        quantity, value = rec.get("quantity"), rec.get("value")
        if type(quantity) is not str:
            continue
        if quantity == "error_flags":
            # as domain.alarms.error_causes reads them: the first non-zero one not of a storage
            # (else a current zero, for the export)
            if "error_flags" not in seen and not rec.get("storage") and isinstance(value, int):
                if value != 0:
                    out["error_flags"] = min(max(int(value), -(2**63)), 2**63 - 1)
                    seen.add(quantity)
                elif out["error_flags"] is None and _is_current(rec):
                    out["error_flags"] = 0
        elif _is_current(rec):
            if quantity == "datetime" and out["meter_clock"] is None and isinstance(value, str) and len(value) <= 40:
                out["meter_clock"] = value
            elif quantity in VALUE_COLUMNS and quantity not in seen and _number(value):
                out[VALUE_COLUMNS[quantity]] = float(value)  # type: ignore[arg-type]  # (_number checked it)
                seen.add(quantity)
        elif len(stored) < _MAX_STORED:
            entry = _stored_entry(rec, quantity, value)
            if entry is not None:
                stored.append(entry)
    out["stored"] = b"".join(stored) or None
    return out


def reading_registers(reading, quantities=CUMULATIVE_UNITS) -> dict[str, float]:
    """{quantity: value} of the reading's current cumulative registers (those present) — the same
    as domain.registers.registers of its decoded telegram."""
    register_map = getattr(reading, "register_map", None)  # decode/rows.py's in-memory reading
    if register_map is not None:
        return {q: v for q, v in register_map().items() if q in quantities}
    out = {}
    for quantity in quantities:
        value = getattr(reading, VALUE_COLUMNS.get(quantity, quantity), None)
        if value is not None:
            out[quantity] = float(value)
    return out


def reading_value(reading, quantity: str) -> float | None:
    """The current value of `quantity` (a VALUE_COLUMNS quantity or `error_flags`), or None."""
    column = VALUE_COLUMNS.get(quantity) or ("error_flags" if quantity == "error_flags" else None)
    return None if column is None else getattr(reading, column, None)


def summary_data(reading) -> dict:
    """The part of the uniform dict the typed columns hold: `status` and the current records
    (quantity, unit, value), enough for domain.registers and domain.alarms."""
    status = getattr(reading, "status", None)
    records = []
    for quantity, column in VALUE_COLUMNS.items():
        value = getattr(reading, column, None)
        if value is not None:
            records.append(_record(quantity, value))
    flags = getattr(reading, "error_flags", None)
    if flags is not None:
        records.append(_record("error_flags", flags))
    return {
        "status": None if status is None else {"code": status, "flags": list(STATUS_FLAGS[status & 0xFF])},
        "records": records,
    }


def _record(quantity: str, value) -> dict:
    unit = CUMULATIVE_UNITS.get(quantity) or _UNITS.get(quantity, "")
    return {
        "quantity": quantity,
        "unit": unit,
        "value": value,
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
    }


_UNITS = {"power": "kW", "volume_flow": "m3/h", "flow_temperature": "°C", "return_temperature": "°C"}


def reading_error_causes(reading) -> tuple[list[str], dict]:
    """What the reading reports as errors: (readable causes, details), as domain.alarms.error_causes
    of its decoded telegram (a `Reading`'s `data` is its summary_data; the decode pipeline's
    in-memory reading has the whole decoded dict)."""
    data = getattr(reading, "data", None)
    return error_causes(summary_data(reading) if data is None else data)


def stored_data(reading) -> dict:
    """The uniform dict as far as the reading's columns hold it (its raw telegram no longer
    decodes, or retention removed it): summary_data with the stored values and no named fields."""
    out = summary_data(reading)
    for storage, tariff, subunit, quantity, unit, value in stored_values(reading):
        out["records"].append(
            {
                "quantity": quantity,
                "unit": unit,
                "value": value,
                "storage": storage,
                "tariff": tariff,
                "subunit": subunit,
                "function": "instantaneous",
            }
        )
    out["fields"] = {}
    return out


# meters.last_data: the latest reading's view as the latest readings page shows it — exactly
# {"status", "records", "fields"} in this order (latest_view_json), so the page puts the stored
# text into its answer unparsed (api/readings.py). Meters stored before hold the reading's whole
# decoded dict, which begins with another key ("meter"): the page parses those.
LATEST_VIEW_PREFIX = '{"status":'


def latest_view_json(data: dict) -> str:
    """meters.last_data of a reading whose decoded dict is `data` (orjson as database.json_text)."""
    view = {"status": data.get("status"), "records": data.get("records") or [], "fields": data.get("fields") or {}}
    return orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS).decode()
