"""Driver data files (TOML) -> validated, immutable driver descriptions.

The files hold the manufacturer knowledge; this module only checks their shape and turns them
into tuples the engine walks. Every schema error names the file and the key path, e.g.
``techem.toml: driver[0].layouts[1].values[3].type: unknown type 'uint24'``.

The file format (tables, value types and their keys) is described in docs/protocol.md §10.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omshub.codec.drivers.primitives import prios_key
from omshub.codec.units import QUALIFIERS, QUANTITIES, to_canonical

VALUE_TYPES = frozenset(
    {"uint", "int", "bcd", "bits", "date_g", "date_bcd", "date_bits", "record", "sum", "flags", "map"}
)
SOURCES = frozenset({"ci", "manufacturer_data", "record", "apl"})
FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
DESCRAMBLERS = frozenset({"prios"})
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


@dataclass(frozen=True)
class Layout:
    path: str
    source: str
    values: tuple[Any, ...]
    cis: frozenset[Any] = frozenset()
    vif: bytes = b""
    versions: frozenset[Any] | None = None
    min_length: int = 0
    require: tuple[Any, ...] = ()  # ((at, mask, equals), ...)
    base: tuple[Any, ...] | None = None  # (length_at, add): offsets count from buf[length_at] + add
    descramble: tuple[Any, ...] | None = None  # ("prios", start, (keys...), check byte)
    scan: tuple[Any, ...] | None = None  # (start, {tag: size}, frozenset(stop tags))
    replace_records: bool = False
    skip_fillers: bool = True


@dataclass(frozen=True)
class FieldRule:
    field: str
    quantity: str
    storage: int | None = 0
    tariff: int | None = 0
    subunit: int | None = 0
    function: str | None = "instantaneous"
    dif_vif: str | None = None


@dataclass(frozen=True)
class Relabel:
    path: str
    match: tuple[Any, ...]  # ((record key, value), ...)
    quantity: str
    factor: float = 1.0


@dataclass(frozen=True)
class VifRule:
    path: str
    vif: bytes
    quantity: str
    scale: float = 1.0
    factor: float = 1.0
    signed: bool = False
    real: bool = False  # data is IEEE 754 single (DIF data field 5)
    qualifiers: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Driver:
    name: str
    file: str
    manufacturers: tuple[Any, ...]
    device_types: tuple[Any, ...]  # () = any
    versions: frozenset[Any] | None
    fields: tuple[Any, ...] = ()
    relabel: tuple[Any, ...] = ()
    vifs: dict[Any, Any] = field(default_factory=dict)
    layouts: tuple[Any, ...] = ()
    compact_formats: tuple[Any, ...] = ()
    computed: tuple[Any, ...] = ()  # sum values over named fields, evaluated after naming


@dataclass(frozen=True)
class Series:
    """History values (storage >= first_storage) of one quantity as a list of {storage, date, value} dicts."""

    field: str
    quantity: str
    name: str  # key of the value inside each entry (unit-suffixed)
    first_storage: int = 2


@dataclass(frozen=True)
class GenericRule:
    device_types: tuple[Any, ...]
    fields: tuple[Any, ...]
    series: tuple[Any, ...] = ()


# ------------------------------------------------------------------------------ helpers


def _fail(path: str, message: str) -> SchemaError:
    return SchemaError(f"{path}: {message}")


def _get(
    table: dict[str, Any],
    key: str,
    path: str,
    kind: type | tuple[type, ...],
    default: Any = None,
    required: bool = False,
) -> Any:
    if key not in table:
        if required:
            raise _fail(path, f"missing key '{key}'")
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(f"{path}.{key}", f"expected {kinds[0].__name__}, got a boolean")
    if not isinstance(value, kinds):
        raise _fail(f"{path}.{key}", f"expected {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    return value


def _check_keys(table: dict[str, Any], allowed: set[Any], path: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise _fail(path, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _hex(text: str, path: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise _fail(path, f"not hex: {text!r}") from None


def _byte(value: Any, path: str) -> int:
    if isinstance(value, str):
        raw = _hex(value, path)
        if len(raw) != 1:
            raise _fail(path, f"expected one byte, got {value!r}")
        return raw[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise _fail(path, f"expected a byte (0-255 or 2 hex digits), got {value!r}")


def _int_list(value: Any, path: str) -> frozenset[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "expected a non-empty list")
    return frozenset(_byte(v, f"{path}[{i}]") for i, v in enumerate(value))


def _pieces(value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "expected a non-empty list of [offset, lowest bit, width]")
    out = []
    for i, piece in enumerate(value):
        if (
            not isinstance(piece, list)
            or len(piece) != 3
            or not all(isinstance(p, int) for p in piece)
            or not 0 <= piece[1] <= 7
            or not 1 <= piece[2] <= 8 - piece[1]
        ):
            raise _fail(f"{path}[{i}]", f"expected [offset, lowest bit 0-7, width fitting the byte], got {piece!r}")
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
        raise _fail(path, f"unit {unit!r} cannot be converted to {canon!r} (quantity {quantity})") from None


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


def _values(items: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(items, list):
        raise _fail(path, "expected a list of value tables")
    out: list[Value] = []
    for i, table in enumerate(items):
        vpath = f"{path}[{i}]"
        if not isinstance(table, dict):
            raise _fail(vpath, "expected a table")
        _check_keys(table, _VALUE_KEYS, vpath)
        repeat = _get(table, "repeat", vpath, dict)
        if repeat is None:
            out.append(_value(table, vpath, 0, 0))
            continue
        _check_keys(repeat, {"count", "stride", "first", "step", "storage_step"}, f"{vpath}.repeat")
        count = _get(repeat, "count", f"{vpath}.repeat", int, required=True)
        if not 1 <= count <= MAX_REPEAT:
            raise _fail(f"{vpath}.repeat.count", f"must be 1..{MAX_REPEAT}")
        stride = _get(repeat, "stride", f"{vpath}.repeat", int, required=True)
        first = _get(repeat, "first", f"{vpath}.repeat", int, 1)
        step = _get(repeat, "step", f"{vpath}.repeat", int, 1)
        storage_step = _get(repeat, "storage_step", f"{vpath}.repeat", int, 0)
        for k in range(count):
            out.append(_value(table, f"{vpath}#{k}", k * stride, first + k * step, k * storage_step))
    return tuple(out)


def _value(t: dict[str, Any], path: str, shift_at: int, n: int, storage_shift: int = 0) -> Value:
    kind = _get(t, "type", path, str, required=True)
    if kind not in VALUE_TYPES:
        raise _fail(f"{path}.type", f"unknown type {kind!r}; known: {sorted(VALUE_TYPES)}")
    values = _value_common(t, path, kind, shift_at, n, storage_shift)
    _value_lists(t, path, values)
    if kind == "bits":
        pieces = _pieces(_get(t, "bits", path, list, required=True), f"{path}.bits")
        values["pieces"] = tuple((a + shift_at, lo, w) for a, lo, w in pieces)
    elif kind == "date_bits":
        _date_bits(t, path, shift_at, values)
    elif kind == "date_bcd":
        order = _get(t, "order", path, str, "dmy")
        if sorted(order) != ["d", "m", "y"]:
            raise _fail(f"{path}.order", "expected a permutation of 'dmy'")
        values["order"] = order
    elif kind == "record":
        _record_value(t, path, values)
    elif kind == "sum":
        of = _get(t, "of", path, list, required=True)
        if not of or not all(isinstance(x, str) for x in of):
            raise _fail(f"{path}.of", "expected a non-empty list of field names")
        values["of"] = tuple(of)
    elif kind in ("map", "flags"):
        _table_value(t, path, kind, values)
    return Value(**values)


def _value_common(t: dict[str, Any], path: str, kind: str, shift_at: int, n: int, storage_shift: int) -> dict[str, Any]:
    """The keys every value type has (name, quantity, scale, position, storage…), checked."""
    name = _get(t, "field", path, str)
    if name is not None:
        try:
            name = name.format(n=n, unit="{unit}")
        except (KeyError, IndexError, ValueError):
            raise _fail(f"{path}.field", f"bad template {name!r} (only {{n}} and {{unit}} are substituted)") from None
    quantity = _get(t, "quantity", path, str)
    if quantity is not None and quantity not in QUANTITIES:
        raise _fail(f"{path}.quantity", f"unknown quantity {quantity!r} (see omshub.codec.units)")
    if name is None and quantity is None and kind != "record":
        raise _fail(path, "a value needs a 'field' name, a 'quantity' (record) or both")
    function = _get(t, "function", path, str, "instantaneous")
    if function not in FUNCTIONS:
        raise _fail(f"{path}.function", f"expected one of {FUNCTIONS}")
    endian = _get(t, "endian", path, str, "le")
    if endian not in ("le", "be"):
        raise _fail(f"{path}.endian", "expected 'le' or 'be'")
    scale = float(_get(t, "scale", path, (int, float), 1.0))
    divisor = _get(t, "divisor", path, (int, float))
    if divisor is not None:
        if divisor == 0:
            raise _fail(f"{path}.divisor", "must not be 0")
        scale /= divisor
    if not math.isfinite(scale):
        raise _fail(f"{path}.scale", "must be finite")
    transform = _get(t, "transform", path, str)
    if transform is not None and transform not in TRANSFORMS:
        raise _fail(f"{path}.transform", f"unknown transform {transform!r}; known: {sorted(TRANSFORMS)}")
    unit = _get(t, "unit", path, str)
    factor = canonical_factor(quantity, unit, f"{path}.unit") if quantity else 1.0
    size = _get(t, "size", path, int, 1)
    if not 1 <= size <= 8:
        raise _fail(f"{path}.size", "must be 1..8 bytes")
    at = _get(t, "at", path, int, 0 if kind in ("sum", "bits", "date_bits") else None)
    if at is None:
        raise _fail(path, "missing key 'at'")
    values = {
        "path": path,
        "type": kind,
        "at": at + shift_at if at is not None else 0,
        "size": size,
        "endian": "little" if endian == "le" else "big",
        "scale": scale,
        "add": float(_get(t, "add", path, (int, float), 0.0)),
        "transform": transform,
        "unit": unit,
        "factor": factor,
        "quantity": quantity,
        "storage": _get(t, "storage", path, int, 0) + storage_shift,
        "tariff": _get(t, "tariff", path, int, 0),
        "subunit": _get(t, "subunit", path, int, 0),
        "function": function,
        "field": name,
        "shift": _get(t, "shift", path, int, 0),
        "width": _get(t, "width", path, int, 0),
    }
    if not (0 <= values["storage"] < 2**33 and 0 <= values["tariff"] < 2**20 and 0 <= values["subunit"] < 2**10):
        raise _fail(path, "storage/tariff/subunit out of range")
    return values


def _value_lists(t: dict[str, Any], path: str, values: dict[str, Any]) -> None:
    """The optional ``invalid`` raw values, ``qualifiers`` and ``tag`` of a value."""
    invalid = _get(t, "invalid", path, list, [])
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in invalid):
        raise _fail(f"{path}.invalid", "expected a list of integers (raw values meaning 'no value')")
    values["invalid"] = frozenset(invalid)
    qualifiers = _get(t, "qualifiers", path, list, [])
    if not all(isinstance(q, str) and q in QUALIFIERS for q in qualifiers):
        raise _fail(f"{path}.qualifiers", "expected qualifier names from omshub.codec.units.QUALIFIERS")
    values["qualifiers"] = tuple(qualifiers)
    tag = _get(t, "tag", path, (int, str))
    if tag is not None:
        values["tag"] = _byte(tag, f"{path}.tag")


def _date_bits(t: dict[str, Any], path: str, shift_at: int, values: dict[str, Any]) -> None:
    parts = []
    for part in ("day", "month", "year"):
        raw = _get(t, part, path, list, required=part != "year")
        parts.append(
            tuple((a + shift_at, lo, w) for a, lo, w in _pieces(raw, f"{path}.{part}")) if raw is not None else ()
        )
    values["date_parts"] = tuple(parts)
    values["year_base"] = _get(t, "year_base", path, int, 2000)
    values["year_after"] = _get(t, "year_after", path, str)
    if not parts[2] and values["year_after"] is None:
        raise _fail(path, "date_bits needs 'year' bits or 'year_after' (a date field it follows)")


def _record_value(t: dict[str, Any], path: str, values: dict[str, Any]) -> None:
    values["dif"] = _byte(_get(t, "dif", path, (str, int), required=True), f"{path}.dif") & 0x0F
    if values["dif"] in (0x08, 0x0D, 0x0F):
        raise _fail(f"{path}.dif", "record data field must have a fixed length")
    vif = _get(t, "vif", path, str)
    vif_at = _get(t, "vif_at", path, int)
    if (vif is None) == (vif_at is None):
        raise _fail(path, "a record value needs exactly one of 'vif' (hex) or 'vif_at' (offset)")
    values["vif"] = _hex(vif, f"{path}.vif") if vif is not None else b""
    values["vif_at"] = vif_at
    values["emit"] = _get(t, "emit", path, bool, True)


def _table_value(t: dict[str, Any], path: str, kind: str, values: dict[str, Any]) -> None:
    """A ``map`` (raw value -> number) or ``flags`` (bit -> name) table."""
    if kind == "map":
        table = _get(t, "map", path, dict, required=True)
        pairs: list[tuple[int, Any]] = []
        for raw, mapped in table.items():
            if not raw.isdigit() or not isinstance(mapped, (int, float)) or isinstance(mapped, bool):
                raise _fail(f"{path}.map.{raw}", "expected decimal raw value = number")
            pairs.append((int(raw), mapped))
        values["table"] = tuple(sorted(pairs))
        return
    flags = _get(t, "flags", path, dict, required=True)
    labels = []
    for bit, label in flags.items():
        if not bit.isdigit() or not isinstance(label, str):
            raise _fail(f"{path}.flags.{bit}", 'expected bit number = "name"')
        labels.append((int(bit), label))
    values["flags"] = tuple(sorted(labels))


# ------------------------------------------------------------------------------ layouts, drivers

_LAYOUT_KEYS = {
    "source",
    "ci",
    "vif",
    "versions",
    "min_length",
    "require",
    "base",
    "descramble",
    "scan",
    "replace_records",
    "skip_fillers",
    "values",
}


def _layout(t: dict[str, Any], path: str) -> Layout:
    if not isinstance(t, dict):
        raise _fail(path, "expected a table")
    _check_keys(t, _LAYOUT_KEYS, path)
    source = _get(t, "source", path, str, required=True)
    if source not in SOURCES:
        raise _fail(f"{path}.source", f"unknown source {source!r}; known: {sorted(SOURCES)}")
    out = {
        "path": path,
        "source": source,
        "values": _values(_get(t, "values", path, list, required=True), f"{path}.values"),
        "min_length": _get(t, "min_length", path, int, 0),
        "replace_records": _get(t, "replace_records", path, bool, False),
        "skip_fillers": _get(t, "skip_fillers", path, bool, True),
    }
    if source == "ci":
        out["cis"] = _int_list(_get(t, "ci", path, list, required=True), f"{path}.ci")
    if source == "record":
        out["vif"] = _hex(_get(t, "vif", path, str, required=True), f"{path}.vif")
    if "versions" in t:
        out["versions"] = _int_list(t["versions"], f"{path}.versions")
    require = []
    for i, r in enumerate(_get(t, "require", path, list, [])):
        rpath = f"{path}.require[{i}]"
        if not isinstance(r, dict):
            raise _fail(rpath, "expected a table {at, equals[, mask]}")
        _check_keys(r, {"at", "equals", "mask"}, rpath)
        require.append(
            (
                _get(r, "at", rpath, int, required=True),
                _byte(r.get("mask", 0xFF), f"{rpath}.mask"),
                _byte(_get(r, "equals", rpath, (int, str), required=True), f"{rpath}.equals"),
            )
        )
    out["require"] = tuple(require)
    base = _get(t, "base", path, dict)
    if base is not None:
        _check_keys(base, {"length_at", "add"}, f"{path}.base")
        out["base"] = (
            _get(base, "length_at", f"{path}.base", int, required=True),
            _get(base, "add", f"{path}.base", int, 0),
        )
    scramble = _get(t, "descramble", path, dict)
    if scramble is not None:
        spath = f"{path}.descramble"
        _check_keys(scramble, {"method", "start", "keys", "check"}, spath)
        method = _get(scramble, "method", spath, str, required=True)
        if method not in DESCRAMBLERS:
            raise _fail(f"{spath}.method", f"unknown descrambler {method!r}; known: {sorted(DESCRAMBLERS)}")
        keys = _get(scramble, "keys", spath, list, required=True)
        seeds = []
        for i, k in enumerate(keys):
            if not isinstance(k, str) or len(_hex(k, f"{spath}.keys[{i}]")) != 8:
                raise _fail(f"{spath}.keys[{i}]", "expected an 8-byte key as 16 hex digits")
            seeds.append(prios_key(k))
        out["descramble"] = (
            method,
            _get(scramble, "start", spath, int, required=True),
            tuple(seeds),
            _byte(_get(scramble, "check", spath, (int, str), required=True), f"{spath}.check"),
        )
    scan = _get(t, "scan", path, dict)
    if scan is not None:
        spath = f"{path}.scan"
        _check_keys(scan, {"start", "sizes", "stop"}, spath)
        sizes = {}
        for tag, size in _get(scan, "sizes", spath, dict, required=True).items():
            if not isinstance(size, int) or not 0 <= size <= 255:
                raise _fail(f"{spath}.sizes.{tag}", "expected a data size 0..255")
            sizes[_byte(tag, f"{spath}.sizes.{tag}")] = size
        stop = frozenset(_byte(s, f"{spath}.stop") for s in _get(scan, "stop", spath, list, []))
        out["scan"] = (_get(scan, "start", spath, int, 0), sizes, stop)
    for v in out["values"]:
        if v.tag is not None and scan is None:
            raise _fail(v.path, "'tag' needs a 'scan' in the layout")
    return Layout(**out)


def _field_rule(t: dict[str, Any], path: str) -> FieldRule:
    if not isinstance(t, dict):
        raise _fail(path, "expected a table")
    _check_keys(t, {"field", "quantity", "storage", "tariff", "subunit", "function", "dif_vif"}, path)
    quantity = _get(t, "quantity", path, str, required=True)
    if quantity not in QUANTITIES:
        raise _fail(f"{path}.quantity", f"unknown quantity {quantity!r}")
    function = _get(t, "function", path, str, "instantaneous")
    if function not in FUNCTIONS and function != "any":
        raise _fail(f"{path}.function", f"expected one of {FUNCTIONS} or 'any'")

    def opt(key: str) -> int | None:  # -1 in the file means "any"
        v = _get(t, key, path, int, 0)
        return None if v == -1 else v

    return FieldRule(
        field=_get(t, "field", path, str, required=True),
        quantity=quantity,
        storage=opt("storage"),
        tariff=opt("tariff"),
        subunit=opt("subunit"),
        function=None if function == "any" else function,
        dif_vif=(_get(t, "dif_vif", path, str) or "").lower() or None,
    )


_DRIVER_KEYS = {
    "name",
    "manufacturers",
    "device_types",
    "versions",
    "fields",
    "relabel",
    "vifs",
    "layouts",
    "compact_formats",
    "computed",
    "comment",
}


def _driver(t: dict[str, Any], path: str, file: str) -> Driver:
    if not isinstance(t, dict):
        raise _fail(path, "expected a table")
    _check_keys(t, _DRIVER_KEYS, path)
    name = _get(t, "name", path, str, required=True)
    manufacturers = _get(t, "manufacturers", path, list, required=True)
    if not manufacturers or not all(
        isinstance(m, str) and len(m) == 3 and m.isalpha() and m.isupper() for m in manufacturers
    ):
        raise _fail(f"{path}.manufacturers", "expected a list of 3-letter upper-case manufacturer codes")
    types = tuple(sorted(_int_list(t["device_types"], f"{path}.device_types"))) if "device_types" in t else ()
    versions = _int_list(t["versions"], f"{path}.versions") if "versions" in t else None
    relabel = []
    for i, r in enumerate(_get(t, "relabel", path, list, [])):
        rpath = f"{path}.relabel[{i}]"
        if not isinstance(r, dict):
            raise _fail(rpath, "expected a table")
        _check_keys(r, {"match", "quantity", "factor"}, rpath)
        match = _get(r, "match", rpath, dict, required=True)
        for k in match:
            if k not in ("quantity", "storage", "tariff", "subunit", "function", "dif_vif"):
                raise _fail(f"{rpath}.match.{k}", "can match quantity, storage, tariff, subunit, function, dif_vif")
        quantity = _get(r, "quantity", rpath, str, required=True)
        if quantity not in QUANTITIES:
            raise _fail(f"{rpath}.quantity", f"unknown quantity {quantity!r}")
        match = {k: v.lower() if k == "dif_vif" and isinstance(v, str) else v for k, v in match.items()}
        relabel.append(
            Relabel(rpath, tuple(sorted(match.items())), quantity, float(_get(r, "factor", rpath, (int, float), 1.0)))
        )
    vifs = {}
    for i, v in enumerate(_get(t, "vifs", path, list, [])):
        vpath = f"{path}.vifs[{i}]"
        if not isinstance(v, dict):
            raise _fail(vpath, "expected a table")
        _check_keys(v, {"vif", "quantity", "scale", "divisor", "unit", "signed", "qualifiers", "comment"}, vpath)
        qualifiers = _get(v, "qualifiers", vpath, list, [])
        if not all(isinstance(q, str) for q in qualifiers):
            raise _fail(f"{vpath}.qualifiers", "expected a list of qualifier names")
        vif = _hex(_get(v, "vif", vpath, str, required=True), f"{vpath}.vif")
        quantity = _get(v, "quantity", vpath, str, required=True)
        if quantity not in QUANTITIES:
            raise _fail(f"{vpath}.quantity", f"unknown quantity {quantity!r}")
        scale = float(_get(v, "scale", vpath, (int, float), 1.0)) / float(_get(v, "divisor", vpath, (int, float), 1))
        vifs[vif] = VifRule(
            vpath,
            vif,
            quantity,
            scale,
            canonical_factor(quantity, _get(v, "unit", vpath, str), f"{vpath}.unit"),
            _get(v, "signed", vpath, bool, True),
            qualifiers=tuple(qualifiers),
        )
    formats = []
    for i, f in enumerate(_get(t, "compact_formats", path, list, [])):
        if not isinstance(f, str):
            raise _fail(f"{path}.compact_formats[{i}]", "expected hex text")
        formats.append(_hex(f, f"{path}.compact_formats[{i}]"))
    return Driver(
        name=name,
        file=file,
        manufacturers=tuple(manufacturers),
        device_types=types,
        versions=versions,
        fields=tuple(_field_rule(f, f"{path}.fields[{i}]") for i, f in enumerate(_get(t, "fields", path, list, []))),
        relabel=tuple(relabel),
        vifs=vifs,
        layouts=tuple(
            _layout(layout, f"{path}.layouts[{i}]") for i, layout in enumerate(_get(t, "layouts", path, list, []))
        ),
        compact_formats=tuple(formats),
        computed=_computed(t, path),
    )


def _computed(t: dict[str, Any], path: str) -> tuple[Any, ...]:
    values = _values(_get(t, "computed", path, list, []), f"{path}.computed")
    for v in values:
        if v.type != "sum" or not v.field:
            raise _fail(v.path, "computed values must be of type 'sum' and name a 'field'")
    return values


def parse_file(name: str, data: dict[str, Any]) -> tuple[list[Driver], list[GenericRule]]:
    """One parsed TOML document -> its drivers and generic rules; SchemaError on any problem."""
    _check_keys(data, {"driver", "generic", "comment"}, name)
    drivers = [_driver(t, f"{name}: driver[{i}]", name) for i, t in enumerate(_get(data, "driver", name, list, []))]
    generic = []
    for i, g in enumerate(_get(data, "generic", name, list, [])):
        gpath = f"{name}: generic[{i}]"
        if not isinstance(g, dict):
            raise _fail(gpath, "expected a table")
        _check_keys(g, {"device_types", "fields", "series", "comment"}, gpath)
        series = []
        for k, item in enumerate(_get(g, "series", gpath, list, [])):
            spath = f"{gpath}.series[{k}]"
            if not isinstance(item, dict):
                raise _fail(spath, "expected a table {field, quantity, name[, first_storage]}")
            _check_keys(item, {"field", "quantity", "name", "first_storage"}, spath)
            quantity = _get(item, "quantity", spath, str, required=True)
            if quantity not in QUANTITIES:
                raise _fail(f"{spath}.quantity", f"unknown quantity {quantity!r}")
            series.append(
                Series(
                    _get(item, "field", spath, str, required=True),
                    quantity,
                    _get(item, "name", spath, str, required=True),
                    _get(item, "first_storage", spath, int, 2),
                )
            )
        generic.append(
            GenericRule(
                tuple(sorted(_int_list(_get(g, "device_types", gpath, list, required=True), f"{gpath}.device_types"))),
                tuple(
                    _field_rule(f, f"{gpath}.fields[{k}]")
                    for k, f in enumerate(_get(g, "fields", gpath, list, required=True))
                ),
                tuple(series),
            )
        )
    if not drivers and not generic:
        raise _fail(name, "no [[driver]] or [[generic]] tables")
    return drivers, generic
