"""Driver data files: the value tables (``values = [...]`` of a layout, ``computed``) -> :class:`Value`,
and the readers of single keys and fields that :mod:`omshub.codec.drivers.schema` builds on.

Every reader raises :class:`SchemaError` naming the file and the key path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omshub.codec.units import QUALIFIERS, QUANTITIES, to_canonical

VALUE_TYPES = frozenset(
    {"uint", "int", "bcd", "bits", "date_g", "date_bcd", "date_bits", "record", "sum", "flags", "map"}
)
FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
TRANSFORMS = frozenset({"pow2"})
# units a data file may give a decoded number in, per canonical unit: factor to canonical
_DURATION = {"s": 1, "min": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
MAX_REPEAT = 64


class SchemaError(ValueError):
    """A driver data file does not follow the schema (message: file, key path, reason)."""


@dataclass(frozen=True)
class Value:
    path: str
    type: str
    at: int = 0
    size: int = 1
    endian: str = "little"
    pieces: tuple[Any, ...] = ()  # bits: ((at, low, width), ...)
    date_parts: tuple[Any, ...] = ()  # date_bits: (day pieces, month pieces, year pieces)
    year_base: int = 2000
    year_after: str | None = None  # date_bits without year: the year that puts it after this field
    order: str = "dmy"  # date_bcd
    shift: int = 0
    width: int = 0
    scale: float = 1.0
    add: float = 0.0
    transform: str | None = None
    invalid: frozenset[Any] = frozenset()
    unit: str | None = None
    factor: float = 1.0  # unit -> canonical unit of the quantity
    quantity: str | None = None
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    function: str = "instantaneous"
    field: str | None = None
    tag: int | None = None  # register-scan tag the offset is relative to
    dif: int = 0  # record: data field nibble
    vif: bytes = b""  # record: fixed VIF bytes
    vif_at: int | None = None  # record: VIF byte taken from the payload
    of: tuple[Any, ...] = ()  # sum: field names
    flags: tuple[Any, ...] = ()  # flags: ((bit, name), ...)
    emit: bool = True  # record: add the record (False: only the field)
    table: tuple[Any, ...] = ()  # map: ((raw, value), ...)
    qualifiers: tuple[Any, ...] = ()  # record qualifiers (omshub.codec.units.QUALIFIERS)


# ------------------------------------------------------------------------------ helpers


def fail(path: str, message: str) -> SchemaError:
    return SchemaError(f"{path}: {message}")


def get_key(
    table: dict[str, Any],
    key: str,
    path: str,
    kind: type | tuple[type, ...],
    default: Any = None,
    required: bool = False,
) -> Any:
    if key not in table:
        if required:
            raise fail(path, f"missing key '{key}'")
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise fail(f"{path}.{key}", f"expected {kinds[0].__name__}, got a boolean")
    if not isinstance(value, kinds):
        raise fail(f"{path}.{key}", f"expected {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    return value


def check_keys(table: dict[str, Any], allowed: set[Any], path: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise fail(path, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def read_hex(text: str, path: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise fail(path, f"not hex: {text!r}") from None


def read_byte(value: Any, path: str) -> int:
    if isinstance(value, str):
        raw = read_hex(value, path)
        if len(raw) != 1:
            raise fail(path, f"expected one byte, got {value!r}")
        return raw[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise fail(path, f"expected a byte (0-255 or 2 hex digits), got {value!r}")


def read_byte_set(value: Any, path: str) -> frozenset[Any]:
    if not isinstance(value, list) or not value:
        raise fail(path, "expected a non-empty list")
    return frozenset(read_byte(v, f"{path}[{i}]") for i, v in enumerate(value))


def _pieces(value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise fail(path, "expected a non-empty list of [offset, lowest bit, width]")
    out = []
    for i, piece in enumerate(value):
        if (
            not isinstance(piece, list)
            or len(piece) != 3
            or not all(isinstance(p, int) for p in piece)
            or not 0 <= piece[1] <= 7
            or not 1 <= piece[2] <= 8 - piece[1]
        ):
            raise fail(f"{path}[{i}]", f"expected [offset, lowest bit 0-7, width fitting the byte], got {piece!r}")
        out.append(tuple(piece))
    return tuple(out)


def canonical_factor(quantity: str, unit: str | None, path: str) -> float:
    """Factor from ``unit`` to the canonical unit of ``quantity`` (1 when unit is None/canonical)."""
    canon = QUANTITIES[quantity][0]
    if unit is None or unit == canon:
        return 1.0
    if canon == "s" and unit in _DURATION:
        return float(_DURATION[unit])
    try:
        return float(to_canonical(quantity, unit, 1.0))
    except KeyError:
        raise fail(path, f"unit {unit!r} cannot be converted to {canon!r} (quantity {quantity})") from None


# ------------------------------------------------------------------------------ values

_VALUE_KEYS = {
    "type",
    "at",
    "size",
    "endian",
    "bits",
    "day",
    "month",
    "year",
    "year_base",
    "year_after",
    "order",
    "shift",
    "width",
    "scale",
    "divisor",
    "add",
    "transform",
    "invalid",
    "unit",
    "quantity",
    "storage",
    "tariff",
    "subunit",
    "function",
    "field",
    "tag",
    "dif",
    "vif",
    "vif_at",
    "of",
    "flags",
    "repeat",
    "emit",
    "map",
    "qualifiers",
}


def read_values(items: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(items, list):
        raise fail(path, "expected a list of value tables")
    out: list[Value] = []
    for i, table in enumerate(items):
        vpath = f"{path}[{i}]"
        if not isinstance(table, dict):
            raise fail(vpath, "expected a table")
        check_keys(table, _VALUE_KEYS, vpath)
        repeat = get_key(table, "repeat", vpath, dict)
        if repeat is None:
            out.append(_value(table, vpath, 0, 0))
            continue
        check_keys(repeat, {"count", "stride", "first", "step", "storage_step"}, f"{vpath}.repeat")
        count = get_key(repeat, "count", f"{vpath}.repeat", int, required=True)
        if not 1 <= count <= MAX_REPEAT:
            raise fail(f"{vpath}.repeat.count", f"must be 1..{MAX_REPEAT}")
        stride = get_key(repeat, "stride", f"{vpath}.repeat", int, required=True)
        first = get_key(repeat, "first", f"{vpath}.repeat", int, 1)
        step = get_key(repeat, "step", f"{vpath}.repeat", int, 1)
        storage_step = get_key(repeat, "storage_step", f"{vpath}.repeat", int, 0)
        for k in range(count):
            out.append(_value(table, f"{vpath}#{k}", k * stride, first + k * step, k * storage_step))
    return tuple(out)


def _value(t: dict[str, Any], path: str, shift_at: int, n: int, storage_shift: int = 0) -> Value:
    kind = get_key(t, "type", path, str, required=True)
    if kind not in VALUE_TYPES:
        raise fail(f"{path}.type", f"unknown type {kind!r}; known: {sorted(VALUE_TYPES)}")
    values = _value_common(t, path, kind, shift_at, n, storage_shift)
    _value_lists(t, path, values)
    if kind == "bits":
        pieces = _pieces(get_key(t, "bits", path, list, required=True), f"{path}.bits")
        values["pieces"] = tuple((a + shift_at, lo, w) for a, lo, w in pieces)
    elif kind == "date_bits":
        _date_bits(t, path, shift_at, values)
    elif kind == "date_bcd":
        order = get_key(t, "order", path, str, "dmy")
        if sorted(order) != ["d", "m", "y"]:
            raise fail(f"{path}.order", "expected a permutation of 'dmy'")
        values["order"] = order
    elif kind == "record":
        _record_value(t, path, values)
    elif kind == "sum":
        of = get_key(t, "of", path, list, required=True)
        if not of or not all(isinstance(x, str) for x in of):
            raise fail(f"{path}.of", "expected a non-empty list of field names")
        values["of"] = tuple(of)
    elif kind in ("map", "flags"):
        _table_value(t, path, kind, values)
    return Value(**values)


def _value_common(t: dict[str, Any], path: str, kind: str, shift_at: int, n: int, storage_shift: int) -> dict[str, Any]:
    """The keys every value type has (name, quantity, scale, position, storage…), checked."""
    name = get_key(t, "field", path, str)
    if name is not None:
        try:
            name = name.format(n=n, unit="{unit}")
        except (KeyError, IndexError, ValueError):
            raise fail(f"{path}.field", f"bad template {name!r} (only {{n}} and {{unit}} are substituted)") from None
    quantity = get_key(t, "quantity", path, str)
    if quantity is not None and quantity not in QUANTITIES:
        raise fail(f"{path}.quantity", f"unknown quantity {quantity!r} (see omshub.codec.units)")
    if name is None and quantity is None and kind != "record":
        raise fail(path, "a value needs a 'field' name, a 'quantity' (record) or both")
    function = get_key(t, "function", path, str, "instantaneous")
    if function not in FUNCTIONS:
        raise fail(f"{path}.function", f"expected one of {FUNCTIONS}")
    endian = get_key(t, "endian", path, str, "le")
    if endian not in ("le", "be"):
        raise fail(f"{path}.endian", "expected 'le' or 'be'")
    scale = float(get_key(t, "scale", path, (int, float), 1.0))
    divisor = get_key(t, "divisor", path, (int, float))
    if divisor is not None:
        if divisor == 0:
            raise fail(f"{path}.divisor", "must not be 0")
        scale /= divisor
    if not math.isfinite(scale):
        raise fail(f"{path}.scale", "must be finite")
    transform = get_key(t, "transform", path, str)
    if transform is not None and transform not in TRANSFORMS:
        raise fail(f"{path}.transform", f"unknown transform {transform!r}; known: {sorted(TRANSFORMS)}")
    unit = get_key(t, "unit", path, str)
    factor = canonical_factor(quantity, unit, f"{path}.unit") if quantity else 1.0
    size = get_key(t, "size", path, int, 1)
    if not 1 <= size <= 8:
        raise fail(f"{path}.size", "must be 1..8 bytes")
    at = get_key(t, "at", path, int, 0 if kind in ("sum", "bits", "date_bits") else None)
    if at is None:
        raise fail(path, "missing key 'at'")
    values = {
        "path": path,
        "type": kind,
        "at": at + shift_at if at is not None else 0,
        "size": size,
        "endian": "little" if endian == "le" else "big",
        "scale": scale,
        "add": float(get_key(t, "add", path, (int, float), 0.0)),
        "transform": transform,
        "unit": unit,
        "factor": factor,
        "quantity": quantity,
        "storage": get_key(t, "storage", path, int, 0) + storage_shift,
        "tariff": get_key(t, "tariff", path, int, 0),
        "subunit": get_key(t, "subunit", path, int, 0),
        "function": function,
        "field": name,
        "shift": get_key(t, "shift", path, int, 0),
        "width": get_key(t, "width", path, int, 0),
    }
    if not (0 <= values["storage"] < 2**33 and 0 <= values["tariff"] < 2**20 and 0 <= values["subunit"] < 2**10):
        raise fail(path, "storage/tariff/subunit out of range")
    return values


def _value_lists(t: dict[str, Any], path: str, values: dict[str, Any]) -> None:
    """The optional ``invalid`` raw values, ``qualifiers`` and ``tag`` of a value."""
    invalid = get_key(t, "invalid", path, list, [])
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in invalid):
        raise fail(f"{path}.invalid", "expected a list of integers (raw values meaning 'no value')")
    values["invalid"] = frozenset(invalid)
    qualifiers = get_key(t, "qualifiers", path, list, [])
    if not all(isinstance(q, str) and q in QUALIFIERS for q in qualifiers):
        raise fail(f"{path}.qualifiers", "expected qualifier names from omshub.codec.units.QUALIFIERS")
    values["qualifiers"] = tuple(qualifiers)
    tag = get_key(t, "tag", path, (int, str))
    if tag is not None:
        values["tag"] = read_byte(tag, f"{path}.tag")


def _date_bits(t: dict[str, Any], path: str, shift_at: int, values: dict[str, Any]) -> None:
    parts = []
    for part in ("day", "month", "year"):
        raw = get_key(t, part, path, list, required=part != "year")
        parts.append(
            tuple((a + shift_at, lo, w) for a, lo, w in _pieces(raw, f"{path}.{part}")) if raw is not None else ()
        )
    values["date_parts"] = tuple(parts)
    values["year_base"] = get_key(t, "year_base", path, int, 2000)
    values["year_after"] = get_key(t, "year_after", path, str)
    if not parts[2] and values["year_after"] is None:
        raise fail(path, "date_bits needs 'year' bits or 'year_after' (a date field it follows)")


def _record_value(t: dict[str, Any], path: str, values: dict[str, Any]) -> None:
    values["dif"] = read_byte(get_key(t, "dif", path, (str, int), required=True), f"{path}.dif") & 0x0F
    if values["dif"] in (0x08, 0x0D, 0x0F):
        raise fail(f"{path}.dif", "record data field must have a fixed length")
    vif = get_key(t, "vif", path, str)
    vif_at = get_key(t, "vif_at", path, int)
    if (vif is None) == (vif_at is None):
        raise fail(path, "a record value needs exactly one of 'vif' (hex) or 'vif_at' (offset)")
    values["vif"] = read_hex(vif, f"{path}.vif") if vif is not None else b""
    values["vif_at"] = vif_at
    values["emit"] = get_key(t, "emit", path, bool, True)


def _table_value(t: dict[str, Any], path: str, kind: str, values: dict[str, Any]) -> None:
    """A ``map`` (raw value -> number) or ``flags`` (bit -> name) table."""
    if kind == "map":
        table = get_key(t, "map", path, dict, required=True)
        pairs: list[tuple[int, Any]] = []
        for raw, mapped in table.items():
            if not raw.isdigit() or not isinstance(mapped, (int, float)) or isinstance(mapped, bool):
                raise fail(f"{path}.map.{raw}", "expected decimal raw value = number")
            pairs.append((int(raw), mapped))
        values["table"] = tuple(sorted(pairs))
        return
    flags = get_key(t, "flags", path, dict, required=True)
    labels = []
    for bit, label in flags.items():
        if not bit.isdigit() or not isinstance(label, str):
            raise fail(f"{path}.flags.{bit}", 'expected bit number = "name"')
        labels.append((int(bit), label))
    values["flags"] = tuple(sorted(labels))
