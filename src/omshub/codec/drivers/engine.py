"""Interpret driver layouts on bytes: values -> records and named fields.

Pure functions over the validated descriptions of :mod:`omshub.codec.drivers.schema`. A value whose
bytes are missing or invalid is left out; nothing here raises.
"""

from __future__ import annotations

from typing import Any

from omshub.codec.errors import DecodeError
from omshub.codec.records import decode_records
from omshub.codec.units import QUANTITIES

from . import primitives as p
from .schema import FieldRule, Layout, Value

_FUNCTION_BITS = {"instantaneous": 0, "maximum": 1, "minimum": 2, "error": 3}


def _scaled(v: Value, raw: int) -> int | float | None:
    if raw in v.invalid:
        return None
    if v.transform == "pow2":
        if not 0 <= raw < 64:
            return None
        raw = 1 << raw
    if v.scale == 1.0 and v.add == 0.0:
        return raw
    value = raw * v.scale + v.add
    return round(value, 9)


def read_value(v: Value, buf: bytes, base: int, fields: dict[str, Any]) -> Any:
    """The value ``v`` describes in ``buf`` (offsets relative to ``base``), or None."""
    at = v.at + base if v.at >= 0 else v.at
    kind = v.type
    if kind in ("uint", "int", "bcd"):
        reader = p.uint if kind == "uint" else p.sint if kind == "int" else p.bcd
        raw = reader(buf, at, v.size, v.endian)
        if raw is None:
            return None
        if v.width:
            raw = (raw >> v.shift) & ((1 << v.width) - 1)
        return _scaled(v, raw)
    if kind == "bits":
        raw = p.bits(buf, [(a + base if a >= 0 else a, lo, w) for a, lo, w in v.pieces])
        return None if raw is None else _scaled(v, raw)
    if kind == "date_g":
        return p.date_g(buf, at)
    if kind == "date_bcd":
        return p.date_bcd(buf, at, v.order)
    if kind == "date_bits":
        return _date_bits(v, buf, base, fields)
    if kind == "map":
        raw = p.uint(buf, at, v.size, v.endian)
        if raw is None:
            return None
        if v.width:
            raw = (raw >> v.shift) & ((1 << v.width) - 1)
        return dict(v.table).get(raw)
    if kind == "flags":
        raw = p.uint(buf, at, v.size, v.endian)
        if raw is None:
            return None
        return [name for bit, name in v.flags if raw >> bit & 1]
    if kind == "sum":
        parts = [fields.get(name) for name in v.of]
        if any(not isinstance(x, (int, float)) or isinstance(x, bool) for x in parts):
            return None
        return round(sum(parts), 9)  # type: ignore[arg-type]  # all numbers: checked above
    return None


def _date_bits(v: Value, buf: bytes, base: int, fields: dict[str, Any]) -> str | None:
    def get(pieces: tuple[tuple[int, int, int], ...]) -> int | None:
        return p.bits(buf, [(a + base if a >= 0 else a, lo, w) for a, lo, w in pieces])

    day, month = get(v.date_parts[0]), get(v.date_parts[1])
    if day is None or month is None:
        return None
    if v.date_parts[2]:
        year = get(v.date_parts[2])
        return None if year is None else p.make_date(v.year_base + year, month, day)
    after = fields.get(v.year_after) if v.year_after is not None else None
    if not isinstance(after, str) or len(after) < 10:
        return None
    year = int(after[:4])
    if (month, day) <= (int(after[5:7]), int(after[8:10])):
        year += 1  # the date follows the reference date: next year when earlier in the year
    return p.make_date(year, month, day)


def _record_header(v: Value, buf: bytes, base: int) -> bytes | None:
    dif = v.dif | (v.storage & 1) << 6 | _FUNCTION_BITS[v.function] << 4
    difes = []
    storage, tariff, subunit = v.storage >> 1, v.tariff, v.subunit
    while storage or tariff or subunit:
        difes.append((storage & 0x0F) | (tariff & 0x03) << 4 | (subunit & 1) << 6)
        storage, tariff, subunit = storage >> 4, tariff >> 2, subunit >> 1
    if difes:
        dif |= 0x80
        difes = [b | 0x80 for b in difes[:-1]] + [difes[-1]]
    if v.vif_at is not None:
        at = v.vif_at + base if v.vif_at >= 0 else v.vif_at
        vif = buf[at : at + 1] if -len(buf) <= at < len(buf) else b""
        if not vif or vif[0] & 0x80:
            return None  # a VIF with extensions is not a single byte in the payload
    else:
        vif = v.vif
    return bytes([dif, *difes]) + vif


def synthetic_record(v: Value, buf: bytes, base: int) -> dict[str, Any] | None:
    """A record built from a DIF/VIF the data file names and data bytes from the payload."""
    header = _record_header(v, buf, base)
    if header is None:
        return None
    size = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, 0, 6, 0)[v.dif]
    at = v.at + base if v.at >= 0 else v.at + len(buf)
    if at < 0 or at + size > len(buf):
        return None
    data = buf[at : at + size]
    if v.invalid and v.dif in (1, 2, 3, 4, 6, 7) and int.from_bytes(data, "little", signed=True) in v.invalid:
        return None
    try:
        records, _ = decode_records(header + data)
    except DecodeError:
        return None
    if len(records) != 1 or records[0].get("error_value"):
        return None
    return records[0]


def unit_suffix(quantity: str) -> str:
    """The field-name suffix for a quantity's canonical unit: kWh -> kwh, m3/h -> m3h, °C -> c."""
    unit = QUANTITIES.get(quantity, ("",))[0]
    return unit.replace("%", "pct").replace("/", "").replace("°", "").lower() or quantity


def make_record(v: Value, value: Any) -> dict[str, Any]:
    quantity = v.quantity
    assert quantity is not None  # only values with a quantity become records
    canonical = value * v.factor if v.factor != 1.0 and isinstance(value, (int, float)) else value
    if isinstance(canonical, float):
        canonical = round(canonical, 9)
        if QUANTITIES[quantity][1] == "float":
            canonical = float(canonical)
    record = {
        "quantity": quantity,
        "unit": QUANTITIES[quantity][0],
        "value": canonical,
        "storage": v.storage,
        "tariff": v.tariff,
        "subunit": v.subunit,
        "function": v.function,
    }
    if v.qualifiers:
        record["qualifiers"] = list(v.qualifiers)
    return record


def layout_buffer(layout: Layout, buf: bytes, header: bytes | None) -> tuple[bytes, int] | None:
    """(buffer, base offset) after the layout's checks, offset base and descrambling; None if it does not fit."""
    if len(buf) < layout.min_length:
        return None
    base = 0
    if layout.base is not None:
        length_at, add = layout.base
        if not 0 <= length_at < len(buf):
            return None
        base = buf[length_at] + add
        if base > len(buf):
            return None
    for at, mask, equals in layout.require:
        i = at + base if at >= 0 else at + len(buf)
        if not 0 <= i < len(buf) or buf[i] & mask != equals:
            return None
    if layout.descramble is not None:
        _method, start, seeds, check = layout.descramble
        if header is None or len(header) != 12 or base + start >= len(buf):
            return None
        body = buf[base + start :]
        for seed in seeds:
            plain = p.prios_descramble(header, body, seed)
            if plain[0] == check:
                return buf[: base + start] + plain, base
        return None
    return buf, base


def scan_tags(layout: Layout, buf: bytes, base: int) -> dict[int, int]:
    """Register scan: tag -> offset of its data, walking tag/size pairs from the layout's start."""
    assert layout.scan is not None
    start, sizes, stop = layout.scan
    found: dict[int, int] = {}
    i = base + start
    while i < len(buf):
        tag = buf[i]
        if tag in stop or tag not in sizes:
            break
        size = sizes[tag]
        if i + 1 + size > len(buf):
            break
        found.setdefault(tag, i + 1)
        i += 1 + size
    return found


def run_layout(
    layout: Layout, buf: bytes, header: bytes | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """Records and fields the layout yields from ``buf``, or None when the layout does not fit."""
    prepared = layout_buffer(layout, buf, header)
    if prepared is None:
        return None
    buf, base = prepared
    tags = scan_tags(layout, buf, base) if layout.scan is not None else None
    records: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for v in layout.values:
        vbase = base
        if v.tag is not None:
            if tags is None or v.tag not in tags:
                continue
            vbase = tags[v.tag]
        if v.type == "record":
            record = synthetic_record(v, buf, vbase)
            if record is None:
                continue
            if v.emit:
                records.append(record)
            if v.field:
                fields[v.field.replace("{unit}", unit_suffix(record["quantity"]))] = record["value"]
            continue
        value = read_value(v, buf, vbase, fields)
        if value is None:
            continue
        if v.field:
            fields[v.field] = value
        if v.quantity:
            records.append(make_record(v, value))
    return records, fields


def select(records: list[dict[str, Any]], rule: FieldRule) -> Any:
    """The value of the first record the field rule selects, or None."""
    for r in records:
        if (
            r.get("quantity") == rule.quantity
            and (rule.storage is None or r.get("storage") == rule.storage)
            and (rule.tariff is None or r.get("tariff") == rule.tariff)
            and (rule.subunit is None or r.get("subunit") == rule.subunit)
            and (rule.function is None or r.get("function") == rule.function)
            and (rule.dif_vif is None or r.get("dif_vif") == rule.dif_vif)
            and not r.get("error_value")
            and r.get("value") is not None
        ):
            return r["value"]
    return None


def series_values(records: list[dict[str, Any]], quantity: str, name: str, first_storage: int) -> list[dict[str, Any]]:
    """History of one quantity (tariff 0, subunit 0, instantaneous) by storage number, with its date."""
    values: dict[int, object] = {}
    dates: dict[int, str] = {}
    for r in records:
        storage = r.get("storage")
        if (
            not isinstance(storage, int)
            or storage < first_storage
            or r.get("tariff")
            or r.get("subunit")
            or r.get("function") != "instantaneous"
            or r.get("error_value")
            or r.get("value") is None
        ):
            continue
        if r.get("quantity") == quantity:
            values.setdefault(storage, r["value"])
        elif r.get("quantity") in ("date", "datetime"):
            dates.setdefault(storage, r["value"])
    return [{"storage": s, "date": dates.get(s), name: values[s]} for s in sorted(values)]
