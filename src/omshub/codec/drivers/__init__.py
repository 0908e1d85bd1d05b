"""Manufacturer knowledge as data: driver files (``*.toml`` next to this module) and their engine.

``apply(telegram, apl)`` names the values of a decoded telegram (``telegram["fields"]``): first the
generic rules per device type (heat: ``total_energy_kwh`` …, water: ``total_m3`` …, HCA:
``current_hca`` …, from ``generic.toml``), then the matching driver (matched on manufacturer and
device type by dict lookup, then version), which may also decode manufacturer-specific VIF
records, relabel records whose meaning the manufacturer defines, and decode proprietary byte
layouts in the manufacturer data after ``0F``, inside a manufacturer-specific record, or in the
whole APL. ``decode_proprietary(telegram, payload)`` does the same for manufacturer CI fields
(A0–B7). ``compact_format(manufacturer, signature)`` returns a compact-frame format a driver
file knows (for meters whose full frame has not been seen yet; :class:`KnownFormatCache` is a
FormatCache that falls back to it), and ``owns_apl(meter)`` says whether a driver declares the
meter's whole APL proprietary (then the generic record parser should not run on it).

The file format is described in :mod:`.schema`.

The engine (:mod:`.engine`, :mod:`.primitives`) only interprets a small set of primitives;
what a byte means lives in the data files. The files are loaded and validated once, and what
applies to one kind of meter (manufacturer, device type, version) is compiled once into a
:class:`.plan.Plan` (the decoder's hot path: one dict lookup, then one pass over the records).
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

from omshub.codec.compact import format_signature
from omshub.codec.keys import FormatCache
from omshub.codec.units import QUANTITIES

from . import engine as _engine
from . import primitives as p
from .plan import Plan
from .schema import Driver, GenericRule, Layout, SchemaError, parse_file

__all__ = [
    "apply",
    "apply_plan",
    "plan_for",
    "decode_proprietary",
    "compact_format",
    "owns_apl",
    "KnownFormatCache",
    "registry",
    "Registry",
    "SchemaError",
    "load_texts",
    "install",
    "packaged_texts",
]

_MAX_PAYLOAD = 4096  # bytes a proprietary layout looks at; far above any wM-Bus APL
_MAX_PLANS = 4096  # cached driver plans (one per manufacturer, device type and version seen)


class Registry:
    """All drivers and generic rules, indexed for lookup by (manufacturer, device type)."""

    def __init__(self, drivers: list[Driver], generic: list[GenericRule]) -> None:
        self.drivers = tuple(drivers)
        self.by_key: dict[tuple[Any, Any], list[Driver]] = {}
        for d in drivers:
            for m in d.manufacturers:
                for t in d.device_types or (None,):
                    self.by_key.setdefault((m, t), []).append(d)
        self.generic: dict[int, list[Any]] = {}
        self.series: dict[int, list[Any]] = {}
        for g in generic:
            for t in g.device_types:
                self.generic.setdefault(t, []).extend(g.fields)
                self.series.setdefault(t, []).extend(g.series)
        self.formats: dict[tuple[str, int], bytes] = {}
        if any(d.compact_formats for d in drivers):
            for d in drivers:
                for fmt in d.compact_formats:
                    for m in d.manufacturers:
                        self.formats.setdefault((m, format_signature(fmt)), fmt)

        self.plans: dict[tuple[Any, ...], Plan] = {}

    def match(self, meter: dict[str, Any]) -> list[Driver]:
        manufacturer = meter.get("manufacturer")
        code = meter.get("device_type_code")
        found = self.by_key.get((manufacturer, code), []) + self.by_key.get((manufacturer, None), [])
        version = meter.get("version")
        return [d for d in found if d.versions is None or version in d.versions]

    def plan(self, meter: dict[str, Any]) -> Plan:
        """The plan for this meter's kind: one dict lookup once made (see :mod:`.plan`)."""
        try:
            kind = (meter["manufacturer"], meter["device_type_code"], meter["version"])
            plan = self.plans.get(kind)
        except (KeyError, TypeError):  # not a decoder-made meter dict: no caching
            return self._make_plan(meter)
        if plan is None:
            plan = self._make_plan(meter)
            if len(self.plans) >= _MAX_PLANS:
                self.plans.clear()  # bounded: hostile input can name any manufacturer/type/version
            self.plans[kind] = plan
        return plan

    def _make_plan(self, meter: dict[str, Any]) -> Plan:
        code = meter.get("device_type_code")
        try:
            generic = tuple(self.generic.get(code, ()))  # type: ignore[arg-type]  # any hashable code
            series = tuple(self.series.get(code, ()))  # type: ignore[arg-type]  # (None: none found)
        except TypeError:  # unhashable device type code
            generic = series = ()
        return Plan(tuple(self.match(meter)), generic, series, meter.get("version"))


def load_texts(texts: dict[str, str]) -> Registry:
    """Build a registry from TOML documents (name -> text); SchemaError names file and key."""
    drivers: list[Driver] = []
    generic: list[GenericRule] = []
    for name in sorted(texts):
        try:
            data = tomllib.loads(texts[name])
        except tomllib.TOMLDecodeError as exc:
            raise SchemaError(f"{name}: not valid TOML: {exc}") from None
        d, g = parse_file(name, data)
        drivers.extend(d)
        generic.extend(g)
    names = [d.name for d in drivers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaError(f"driver names used twice: {duplicates}")
    return Registry(drivers, generic)


def packaged_texts() -> dict[str, str]:
    """The packaged data files: file name -> TOML text."""
    folder = resources.files(__name__)
    return {entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir() if entry.name.endswith(".toml")}


@lru_cache(maxsize=1)
def _packaged() -> Registry:
    """The packaged data files, loaded and validated once (drivers are static data)."""
    return load_texts(packaged_texts())


_installed: list[Registry] = []  # set by install(): `omshub drivers check` decodes with a file under test


def registry() -> Registry:
    """The registry the decoder uses: the packaged drivers, or the one :func:`install` set."""
    return _installed[0] if _installed else _packaged()


def install(reg: Registry | None) -> None:
    """Make ``reg`` the decoder's registry in this process (None: back to the packaged files).

    For the driver test kit, which decodes a driver file's test telegrams with that file in place
    of the packaged one; call it before decoding (the decoder memoises plans per meter address)."""
    _installed.clear()
    if reg is not None:
        _installed.append(reg)


# ------------------------------------------------------------------------------ public API


def _header(meter: dict[str, Any], body: bytes) -> bytes | None:
    """Frame bytes 2..13 (M, A, CI + 3) for descramblers keyed on the link header."""
    code = meter.get("manufacturer") or ""
    ident = meter.get("id") or ""
    if len(code) != 3 or len(ident) != 8 or len(body) < 4:
        return None
    try:
        mfct = sum((ord(c) - 64) << shift for c, shift in zip(code, (10, 5, 0), strict=False))
        return (
            mfct.to_bytes(2, "little")
            + bytes.fromhex(ident)[::-1]
            + bytes([meter.get("version") or 0, meter.get("device_type_code") or 0])
            + body[:4]
        )
    except (ValueError, OverflowError):
        return None


def decode_proprietary(
    telegram: dict[str, Any], payload: bytes, reg: Registry | None = None
) -> list[dict[str, Any]] | None:
    """Records from a manufacturer-specific CI payload (``payload[0]`` is the CI), or None.

    Fields the layout names go into ``telegram["fields"]``.
    """
    reg = reg or registry()
    payload = bytes(payload[:_MAX_PAYLOAD])
    if not payload:
        return None
    ci = payload[0]
    meter = telegram.get("meter") or {}
    for driver in reg.plan(meter).drivers:
        for layout in driver.layouts:
            if layout.source != "ci" or ci not in layout.cis:
                continue
            if layout.versions is not None and meter.get("version") not in layout.versions:
                continue
            result = _engine.run_layout(layout, payload[1:], _header(meter, payload))
            if result is not None:
                records, fields = result
                telegram.setdefault("fields", {}).update(fields)
                return records
    return None


def owns_apl(meter: dict[str, Any], reg: Registry | None = None) -> bool:
    """True when a driver declares this meter's whole APL proprietary (its records are not EN 13757-3).

    The pipeline then skips the generic record parser and lets :func:`apply` build the records
    from the APL bytes (BFW 240 radio, Apator 162).
    """
    return (reg or registry()).plan(meter).owns_apl


def compact_format(manufacturer: str, signature: int, reg: Registry | None = None) -> bytes | None:
    """A compact-frame format (DIF/VIF bytes) a driver file knows for this signature, or None."""
    return (reg or registry()).formats.get((manufacturer, signature))


class KnownFormatCache(FormatCache):
    """A FormatCache that falls back to the compact formats the driver files know.

    Kamstrup meters send seven compact frames per full frame; with this cache their compact
    frames decode even when no full frame of that meter has been seen yet.
    """

    def get(self, manufacturer: str, meter_id: str, signature: int) -> bytes | None:
        return super().get(manufacturer, meter_id, signature) or compact_format(manufacturer, signature)


def apply(telegram: dict[str, Any], apl: bytes | None = None, reg: Registry | None = None) -> None:
    """Fill ``telegram["fields"]`` and decode the manufacturer-specific parts drivers know."""
    apply_plan((reg or registry()).plan(telegram.get("meter") or {}), telegram, apl)


def plan_for(meter: dict[str, Any]) -> Plan:
    """The compiled plan of the packaged drivers for this meter (made once per manufacturer,
    device type and version). The decoder asks it whether a driver owns the APL
    (``plan.owns_apl``) and whether the drivers read the APL bytes at all (``plan.needs_apl``)."""
    return registry().plan(meter)


def apply_plan(plan: Plan, telegram: dict[str, Any], apl: bytes | None = None, layout: str | None = None) -> None:
    """:func:`apply` with the plan already looked up (the decoder's hot path). ``layout``: see
    :meth:`.plan.Plan.name_fields` (only for records exactly as the record decoder made them)."""
    fields = telegram.get("fields")
    if not isinstance(fields, dict):
        fields = telegram["fields"] = {}
    records = telegram.get("records")
    if not isinstance(records, list):
        records = telegram["records"] = []
    if plan.work:
        _driver_work(plan, telegram, records, fields, apl)
    plan.name_fields(records, fields, None if plan.work else layout)
    for v in plan.computed:
        value = _engine.read_value(v, b"", 0, fields)
        if value is not None:
            fields[v.field] = value
            if v.quantity:
                records.append(_engine.make_record(v, value))


def _driver_work(
    plan: Plan, telegram: dict[str, Any], records: list[Any], fields: dict[str, Any], apl: bytes | None
) -> None:
    """Manufacturer VIFs, relabels and proprietary layouts of the matching drivers, in order."""
    received = list(records) if plan.record_layouts else records  # record layouts read the records as decoded
    for driver, layouts in plan.work:
        if driver.vifs:
            _decode_vifs(driver, records)
        if driver.relabel:
            _relabel(driver, records)
        for layout in layouts:
            for buf in _sources(layout, telegram, received, apl):
                result = _engine.run_layout(layout, buf[:_MAX_PAYLOAD])
                if result is None:
                    continue
                new_records, new_fields = result
                if layout.replace_records:
                    records[:] = new_records
                else:
                    records.extend(new_records)
                fields.update(new_fields)


def _sources(
    layout: Layout, telegram: dict[str, Any], received: list[dict[str, Any]], apl: bytes | None
) -> Iterator[bytes]:
    """The byte buffers a layout reads: manufacturer data, whole APL, or matching records' data."""
    if layout.source == "manufacturer_data":
        text = telegram.get("manufacturer_data")
        if text:
            try:
                yield bytes.fromhex(text)
            except ValueError:
                return
    elif layout.source == "apl":
        if apl:
            buf = bytes(apl)
            if layout.skip_fillers:
                buf = buf.lstrip(b"\x2f")
            yield buf
    elif layout.source == "record":
        for record in received:
            if record.get("raw") and _vif_bytes(record.get("dif_vif")) == layout.vif:
                try:
                    yield bytes.fromhex(record["raw"])
                except ValueError:
                    continue


def _vif_bytes(dif_vif: str | None) -> bytes | None:
    """The VIF and VIFE bytes of a record header (DIF and DIFEs skipped)."""
    if not dif_vif:
        return None
    try:
        header = bytes.fromhex(dif_vif)
    except ValueError:
        return None
    i = 0
    while i < len(header) and header[i] & 0x80:
        i += 1
    return header[i + 1 :]


_BCD_FIELDS = {0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}
_INT_FIELDS = {0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x6: 6, 0x7: 8}


def _decode_vifs(driver: Driver, records: list[dict[str, Any]]) -> None:
    """Manufacturer-specific VIF records the driver knows -> records with quantity and value."""
    for i, record in enumerate(records):
        if record.get("quantity") not in ("manufacturer_specific", "unknown") or not record.get("raw"):
            continue
        vif = _vif_bytes(record.get("dif_vif"))
        rule = driver.vifs.get(vif)
        if rule is None:
            continue
        try:
            data = bytes.fromhex(record["raw"])
            dif = bytes.fromhex(record["dif_vif"])[0] & 0x0F
        except (ValueError, IndexError):
            continue
        if dif == 0x5 and len(data) == 4:
            raw = struct.unpack("<f", data)[0]
            if not math.isfinite(raw):
                continue
        elif dif in _BCD_FIELDS and len(data) == _BCD_FIELDS[dif]:
            raw = p.bcd(data, 0, len(data))
        elif dif in _INT_FIELDS and len(data) == _INT_FIELDS[dif]:
            raw = (p.sint if rule.signed else p.uint)(data, 0, len(data))
        else:
            continue
        if raw is None:
            continue
        value = raw * rule.scale * rule.factor
        value = round(value, 9) if dif != 0x5 else float(f"{value:.7g}")
        if QUANTITIES[rule.quantity][1] == "float":
            value = float(value)
        updated = dict(record)  # "raw" stays for audit
        updated.update(quantity=rule.quantity, unit=QUANTITIES[rule.quantity][0], value=value, driver=driver.name)
        if rule.qualifiers:
            updated["qualifiers"] = list(rule.qualifiers)
        records[i] = updated


def _matches(got: Any, wanted: Any) -> bool:
    if isinstance(wanted, tuple):  # a VIFE list (records hold lists)
        return isinstance(got, (list, tuple)) and tuple(got) == wanted
    return bool(got == wanted)


def _relabel(driver: Driver, records: list[dict[str, Any]]) -> None:
    """Standard records whose meaning the manufacturer defines differently (e.g. subunit 1 = reactive)."""
    for i, record in enumerate(records):
        for rule in driver.relabel:
            if all(_matches(record.get(k), v) for k, v in rule.match):
                updated = dict(record)
                value = record.get("value")
                if isinstance(value, (int, float)) and not isinstance(value, bool) and rule.factor != 1.0:
                    value = round(value * rule.factor, 9)
                updated.update(
                    quantity=rule.quantity, unit=QUANTITIES[rule.quantity][0], value=value, driver=driver.name
                )
                if rule.qualifiers:
                    known = list(record.get("qualifiers") or ())
                    updated["qualifiers"] = known + [q for q in rule.qualifiers if q not in known]
                records[i] = updated
                break
