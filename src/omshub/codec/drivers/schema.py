"""Driver data files (TOML) -> validated, immutable driver descriptions.

The files hold the manufacturer knowledge; this module only checks their shape and turns them
into tuples the engine walks (the value tables of a layout are read by
:mod:`omshub.codec.drivers.schema_values`). Every schema error names the file and the key path, e.g.
``techem.toml: driver[0].layouts[1].values[3].type: unknown type 'uint24'``.

The file format (tables, value types and their keys) is described in docs/protocol.md §10.2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omshub.codec.drivers.primitives import prios_key
from omshub.codec.drivers.schema_values import (
    FUNCTIONS,
    MAX_REPEAT,
    TRANSFORMS,
    VALUE_TYPES,
    SchemaError,
    Value,
    canonical_factor,
    check_keys,
    fail,
    get_key,
    read_byte,
    read_byte_set,
    read_hex,
    read_values,
)
from omshub.codec.units import QUALIFIERS, QUANTITIES

# the value types and their readers are in schema_values; their public names are importable from here too
__all__ = [
    "DESCRAMBLERS",
    "FUNCTIONS",
    "MAX_REPEAT",
    "SOURCES",
    "TRANSFORMS",
    "VALUE_TYPES",
    "Driver",
    "FieldRule",
    "GenericRule",
    "Layout",
    "Relabel",
    "SchemaError",
    "Series",
    "Value",
    "VifRule",
    "canonical_factor",
    "parse_file",
]

SOURCES = frozenset({"ci", "manufacturer_data", "record", "apl"})
DESCRAMBLERS = frozenset({"prios"})


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
    qualifiers: tuple[Any, ...] = ()  # added to the record's qualifiers (units.QUALIFIERS)


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
        raise fail(path, "expected a table")
    check_keys(t, _LAYOUT_KEYS, path)
    source = get_key(t, "source", path, str, required=True)
    if source not in SOURCES:
        raise fail(f"{path}.source", f"unknown source {source!r}; known: {sorted(SOURCES)}")
    out = {
        "path": path,
        "source": source,
        "values": read_values(get_key(t, "values", path, list, required=True), f"{path}.values"),
        "min_length": get_key(t, "min_length", path, int, 0),
        "replace_records": get_key(t, "replace_records", path, bool, False),
        "skip_fillers": get_key(t, "skip_fillers", path, bool, True),
    }
    if source == "ci":
        out["cis"] = read_byte_set(get_key(t, "ci", path, list, required=True), f"{path}.ci")
    if source == "record":
        out["vif"] = read_hex(get_key(t, "vif", path, str, required=True), f"{path}.vif")
    if "versions" in t:
        out["versions"] = read_byte_set(t["versions"], f"{path}.versions")
    require = []
    for i, r in enumerate(get_key(t, "require", path, list, [])):
        rpath = f"{path}.require[{i}]"
        if not isinstance(r, dict):
            raise fail(rpath, "expected a table {at, equals[, mask]}")
        check_keys(r, {"at", "equals", "mask"}, rpath)
        require.append(
            (
                get_key(r, "at", rpath, int, required=True),
                read_byte(r.get("mask", 0xFF), f"{rpath}.mask"),
                read_byte(get_key(r, "equals", rpath, (int, str), required=True), f"{rpath}.equals"),
            )
        )
    out["require"] = tuple(require)
    base = get_key(t, "base", path, dict)
    if base is not None:
        check_keys(base, {"length_at", "add"}, f"{path}.base")
        out["base"] = (
            get_key(base, "length_at", f"{path}.base", int, required=True),
            get_key(base, "add", f"{path}.base", int, 0),
        )
    scramble = get_key(t, "descramble", path, dict)
    if scramble is not None:
        spath = f"{path}.descramble"
        check_keys(scramble, {"method", "start", "keys", "check"}, spath)
        method = get_key(scramble, "method", spath, str, required=True)
        if method not in DESCRAMBLERS:
            raise fail(f"{spath}.method", f"unknown descrambler {method!r}; known: {sorted(DESCRAMBLERS)}")
        keys = get_key(scramble, "keys", spath, list, required=True)
        seeds = []
        for i, k in enumerate(keys):
            if not isinstance(k, str) or len(read_hex(k, f"{spath}.keys[{i}]")) != 8:
                raise fail(f"{spath}.keys[{i}]", "expected an 8-byte key as 16 hex digits")
            seeds.append(prios_key(k))
        out["descramble"] = (
            method,
            get_key(scramble, "start", spath, int, required=True),
            tuple(seeds),
            read_byte(get_key(scramble, "check", spath, (int, str), required=True), f"{spath}.check"),
        )
    scan = get_key(t, "scan", path, dict)
    if scan is not None:
        spath = f"{path}.scan"
        check_keys(scan, {"start", "sizes", "stop"}, spath)
        sizes = {}
        for tag, size in get_key(scan, "sizes", spath, dict, required=True).items():
            if not isinstance(size, int) or not 0 <= size <= 255:
                raise fail(f"{spath}.sizes.{tag}", "expected a data size 0..255")
            sizes[read_byte(tag, f"{spath}.sizes.{tag}")] = size
        stop = frozenset(read_byte(s, f"{spath}.stop") for s in get_key(scan, "stop", spath, list, []))
        out["scan"] = (get_key(scan, "start", spath, int, 0), sizes, stop)
    for v in out["values"]:
        if v.tag is not None and scan is None:
            raise fail(v.path, "'tag' needs a 'scan' in the layout")
    return Layout(**out)


def _field_rule(t: dict[str, Any], path: str) -> FieldRule:
    if not isinstance(t, dict):
        raise fail(path, "expected a table")
    check_keys(t, {"field", "quantity", "storage", "tariff", "subunit", "function", "dif_vif"}, path)
    quantity = get_key(t, "quantity", path, str, required=True)
    if quantity not in QUANTITIES:
        raise fail(f"{path}.quantity", f"unknown quantity {quantity!r}")
    function = get_key(t, "function", path, str, "instantaneous")
    if function not in FUNCTIONS and function != "any":
        raise fail(f"{path}.function", f"expected one of {FUNCTIONS} or 'any'")

    def opt(key: str) -> int | None:  # -1 in the file means "any"
        v = get_key(t, key, path, int, 0)
        return None if v == -1 else v

    return FieldRule(
        field=get_key(t, "field", path, str, required=True),
        quantity=quantity,
        storage=opt("storage"),
        tariff=opt("tariff"),
        subunit=opt("subunit"),
        function=None if function == "any" else function,
        dif_vif=(get_key(t, "dif_vif", path, str) or "").lower() or None,
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


def _relabel_rules(t: dict[str, Any], path: str) -> list[Relabel]:
    """A driver's ``relabel`` table: records whose meaning the manufacturer defines differently."""
    relabel = []
    for i, r in enumerate(get_key(t, "relabel", path, list, [])):
        rpath = f"{path}.relabel[{i}]"
        if not isinstance(r, dict):
            raise fail(rpath, "expected a table")
        check_keys(r, {"match", "quantity", "factor", "qualifiers"}, rpath)
        match = get_key(r, "match", rpath, dict, required=True)
        for k in match:
            if k not in ("quantity", "storage", "tariff", "subunit", "function", "dif_vif", "vife"):
                keys = "quantity, storage, tariff, subunit, function, dif_vif, vife"
                raise fail(f"{rpath}.match.{k}", f"can match {keys}")
        if "vife" in match:
            vife = match["vife"]
            if not isinstance(vife, list) or not all(isinstance(x, str) and len(x) == 2 for x in vife):
                raise fail(f"{rpath}.match.vife", 'expected a list of VIFE bytes in hex, e.g. ["ff", "0f"]')
            match["vife"] = tuple(x.lower() for x in vife)
        qualifiers = get_key(r, "qualifiers", rpath, list, [])
        for q in qualifiers:
            if q not in QUALIFIERS:
                raise fail(f"{rpath}.qualifiers", f"unknown qualifier {q!r}")
        quantity = get_key(r, "quantity", rpath, str, required=True)
        if quantity not in QUANTITIES:
            raise fail(f"{rpath}.quantity", f"unknown quantity {quantity!r}")
        match = {k: v.lower() if k == "dif_vif" and isinstance(v, str) else v for k, v in match.items()}
        relabel.append(
            Relabel(
                rpath,
                tuple(sorted(match.items())),
                quantity,
                float(get_key(r, "factor", rpath, (int, float), 1.0)),
                tuple(qualifiers),
            )
        )
    return relabel


def _driver(t: dict[str, Any], path: str, file: str) -> Driver:
    if not isinstance(t, dict):
        raise fail(path, "expected a table")
    check_keys(t, _DRIVER_KEYS, path)
    name = get_key(t, "name", path, str, required=True)
    manufacturers = get_key(t, "manufacturers", path, list, required=True)
    if not manufacturers or not all(
        isinstance(m, str) and len(m) == 3 and m.isalpha() and m.isupper() for m in manufacturers
    ):
        raise fail(f"{path}.manufacturers", "expected a list of 3-letter upper-case manufacturer codes")
    types = tuple(sorted(read_byte_set(t["device_types"], f"{path}.device_types"))) if "device_types" in t else ()
    versions = read_byte_set(t["versions"], f"{path}.versions") if "versions" in t else None
    relabel = _relabel_rules(t, path)
    vifs = {}
    for i, v in enumerate(get_key(t, "vifs", path, list, [])):
        vpath = f"{path}.vifs[{i}]"
        if not isinstance(v, dict):
            raise fail(vpath, "expected a table")
        check_keys(v, {"vif", "quantity", "scale", "divisor", "unit", "signed", "qualifiers", "comment"}, vpath)
        qualifiers = get_key(v, "qualifiers", vpath, list, [])
        if not all(isinstance(q, str) for q in qualifiers):
            raise fail(f"{vpath}.qualifiers", "expected a list of qualifier names")
        vif = read_hex(get_key(v, "vif", vpath, str, required=True), f"{vpath}.vif")
        quantity = get_key(v, "quantity", vpath, str, required=True)
        if quantity not in QUANTITIES:
            raise fail(f"{vpath}.quantity", f"unknown quantity {quantity!r}")
        scale = float(get_key(v, "scale", vpath, (int, float), 1.0)) / float(
            get_key(v, "divisor", vpath, (int, float), 1)
        )
        vifs[vif] = VifRule(
            vpath,
            vif,
            quantity,
            scale,
            canonical_factor(quantity, get_key(v, "unit", vpath, str), f"{vpath}.unit"),
            get_key(v, "signed", vpath, bool, True),
            qualifiers=tuple(qualifiers),
        )
    formats = []
    for i, f in enumerate(get_key(t, "compact_formats", path, list, [])):
        if not isinstance(f, str):
            raise fail(f"{path}.compact_formats[{i}]", "expected hex text")
        formats.append(read_hex(f, f"{path}.compact_formats[{i}]"))
    return Driver(
        name=name,
        file=file,
        manufacturers=tuple(manufacturers),
        device_types=types,
        versions=versions,
        fields=tuple(_field_rule(f, f"{path}.fields[{i}]") for i, f in enumerate(get_key(t, "fields", path, list, []))),
        relabel=tuple(relabel),
        vifs=vifs,
        layouts=tuple(
            _layout(layout, f"{path}.layouts[{i}]") for i, layout in enumerate(get_key(t, "layouts", path, list, []))
        ),
        compact_formats=tuple(formats),
        computed=_computed(t, path),
    )


def _computed(t: dict[str, Any], path: str) -> tuple[Any, ...]:
    values = read_values(get_key(t, "computed", path, list, []), f"{path}.computed")
    for v in values:
        if v.type != "sum" or not v.field:
            raise fail(v.path, "computed values must be of type 'sum' and name a 'field'")
    return values


def parse_file(name: str, data: dict[str, Any]) -> tuple[list[Driver], list[GenericRule]]:
    """One parsed TOML document -> its drivers and generic rules; SchemaError on any problem."""
    # [[test]] tables are the file's test telegrams, read by the driver test kit (codec/driver_kit.py)
    check_keys(data, {"driver", "generic", "comment", "test"}, name)
    drivers = [_driver(t, f"{name}: driver[{i}]", name) for i, t in enumerate(get_key(data, "driver", name, list, []))]
    generic = []
    for i, g in enumerate(get_key(data, "generic", name, list, [])):
        gpath = f"{name}: generic[{i}]"
        if not isinstance(g, dict):
            raise fail(gpath, "expected a table")
        check_keys(g, {"device_types", "fields", "series", "comment"}, gpath)
        series = []
        for k, item in enumerate(get_key(g, "series", gpath, list, [])):
            spath = f"{gpath}.series[{k}]"
            if not isinstance(item, dict):
                raise fail(spath, "expected a table {field, quantity, name[, first_storage]}")
            check_keys(item, {"field", "quantity", "name", "first_storage"}, spath)
            quantity = get_key(item, "quantity", spath, str, required=True)
            if quantity not in QUANTITIES:
                raise fail(f"{spath}.quantity", f"unknown quantity {quantity!r}")
            series.append(
                Series(
                    get_key(item, "field", spath, str, required=True),
                    quantity,
                    get_key(item, "name", spath, str, required=True),
                    get_key(item, "first_storage", spath, int, 2),
                )
            )
        generic.append(
            GenericRule(
                tuple(
                    sorted(
                        read_byte_set(get_key(g, "device_types", gpath, list, required=True), f"{gpath}.device_types")
                    )
                ),
                tuple(
                    _field_rule(f, f"{gpath}.fields[{k}]")
                    for k, f in enumerate(get_key(g, "fields", gpath, list, required=True))
                ),
                tuple(series),
            )
        )
    if not drivers and not generic:
        raise fail(name, "no [[driver]] or [[generic]] tables")
    return drivers, generic
