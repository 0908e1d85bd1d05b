"""`omshub decode --explain`: which layer and rule consumed each byte range of a telegram.

:func:`explain` runs the decoder's own layer functions (``telegram``'s link, ELL, AFL and TPL
steps, the security step) on one frame and notes where each stopped, then walks the application
layer record by record with the record grammar (``headers.header_end`` and the DIF data sizes) and
decodes each record alone; manufacturer data (after ``0F``/``1F``) and proprietary CI payloads
are matched against the driver files' layouts, byte by byte as far as a layout's values name
them. What nothing reads is listed too, as hex, with the reason. Offsets count in the frame as
the decoder sees it: without the link-layer block CRCs (format A/B) and, for wired frames, from
the C field (after ``68 L L 68``).

This is a slow path for people (an installer looking at a meter that does not decode); the
decoder's hot path is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omshub.codec import drivers as _drivers
from omshub.codec import frame as _frame
from omshub.codec import telegram as _telegram
from omshub.codec import tpl as _tpl
from omshub.codec.apl import decode_records
from omshub.codec.decrypt import decrypt_tpl, open_ell
from omshub.codec.drivers import engine as _engine
from omshub.codec.errors import DecodeError
from omshub.codec.headers import header_end
from omshub.codec.keys import FormatCache
from omshub.codec.state import KeyLookup, Telegram
from omshub.codec.tables import DATA_LEN
from omshub.codec.values import lvar_size

_ELL_CIS = frozenset(range(0x8C, 0x90))


@dataclass(frozen=True)
class Span:
    """Bytes ``start``..``end - 1`` of the frame: who read them (``layer``, ``rule``) and what they mean."""

    start: int
    end: int
    layer: str
    rule: str
    detail: str
    hex: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "layer": self.layer,
            "rule": self.rule,
            "detail": self.detail,
            "hex": self.hex,
        }


class _Spans:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.items: list[Span] = []

    def add(self, start: int, end: int, layer: str, rule: str, detail: str = "", data: bytes | None = None) -> None:
        if end <= start:
            return
        source = self.data if data is None else data
        self.items.append(Span(start, end, layer, rule, detail, bytes(source[start:end]).hex()))


def _recover(raw: bytes, result: dict[str, Any] | None, crc: str) -> _frame.Frame:
    """The frame reading the decoder chose (format A, B or without CRCs)."""
    if crc != "auto":
        return _frame.recover(raw, crc)
    chosen = ((result or {}).get("frame") or {}).get("format")
    if chosen == "B":
        b_frame = _frame.try_format_b(raw)
        if b_frame is not None:
            return b_frame
    return _frame.recover(raw, crc, detect_b=False)


def explain(
    frame: bytes,
    *,
    key: bytes | None = None,
    keys: KeyLookup | None = None,
    formats: FormatCache | None = None,
    crc: str = "auto",
) -> tuple[dict[str, Any] | None, DecodeError | None, list[Span]]:
    """(decode result or None, the DecodeError or None, byte spans in frame order)."""
    raw = bytes(frame)
    result: dict[str, Any] | None = None
    error: DecodeError | None = None
    try:
        result = _telegram.decode(raw, key=key, keys=keys, formats=formats, crc=crc)
    except DecodeError as exc:
        error = exc
    try:
        fr = _recover(raw, result, crc)
    except DecodeError as exc:
        return result, error or exc, []
    spans = _Spans(fr.data)
    try:
        _walk(fr, key, keys, result, spans)
    except DecodeError as exc:
        end = fr.end
        start = max((s.end for s in spans.items), default=0)
        spans.add(start, end, exc.layer or "?", "not read", f"{exc.code}: {exc.message}")
    return result, error, sorted(spans.items, key=lambda s: s.start)


def _walk(
    fr: _frame.Frame, key: bytes | None, keys: KeyLookup | None, result: dict[str, Any] | None, spans: _Spans
) -> None:
    t = Telegram(key, keys, FormatCache(), None, fr.data, fr.end)
    if _telegram._link_layer(t, fr) is not None:  # wired fixed data structure (CI 73)
        spans.add(0, 2, "link", "wired C and A fields")
        spans.add(2, fr.end, "apl", "EN 13757-3 fixed data structure", "ident, access number, status, medium, counters")
        return
    if fr.kind == "mbus":
        spans.add(0, 2, "link", "wired C and A fields", f"C {fr.data[0]:02X}, primary address {fr.data[1]}")
    else:
        meter = t.meter
        spans.add(0, 1, "link", "L field", f"{fr.data[0]} bytes follow")
        spans.add(1, 2, "link", "C field")
        spans.add(2, 10, "link", "address (M, ID, version, device type)", _meter_text(meter))
    if t.ci in _ELL_CIS and t.dll is not None:
        start = t.pos
        open_ell(t)
        ell = t.frame_info.get("ell") or {}
        spans.add(start, t.pos, "ell", f"extended link layer CI {fr.data[start]:02X}", _security_text(t, ell))
        t.ci = t.data[t.pos]
    if t.ci == 0x90:
        start = t.pos
        _telegram._afl_layer(t)
        spans.add(start, t.pos, "afl", "authentication and fragmentation layer (CI 90)")
    if t.ci not in _tpl.CI_TABLE:
        _proprietary(t, result, spans)
        return
    _telegram._tpl_layer(t, fr.kind)
    shift = 0
    detail = _tpl_text(t)
    if t.mode:
        _meter_key, failure = decrypt_tpl(t)
        if failure is not None and ((result or {}).get("security") or {}).get("decrypted_before_receipt"):
            # the decoder found the "encrypted" payload to be plaintext already (2F2F, records parse)
            t.apl_data, t.apl_start, t.apl_end = t.data, t.payload, t.end
            detail += "; the payload marked encrypted is plaintext already (decrypted before receipt)"
        elif failure is not None:
            spans.add(t.tpl_start, t.payload, "tpl", f"transport layer CI {t.ci:02X}", detail)
            spans.add(t.payload, t.end, "security", f"security mode {t.mode}", f"kept encrypted: {failure}")
            return
        if t.apl_data is not t.data:
            shift = t.payload
            detail += f"; bytes {t.payload}-{t.payload + t.apl_end - 1} decrypted, explained as plaintext below"
    spans.add(t.tpl_start, t.payload, "tpl", f"transport layer CI {t.ci:02X}", detail)
    if t.content == "compact":
        spans.add(t.apl_start + shift, t.apl_end + shift, "apl", "compact frame", _compact_text(result), t.apl_data)
        return
    if t.plan is not None and t.plan.owns_apl:
        names = ", ".join(d.name for d in t.plan.drivers)
        spans.add(
            t.apl_start + shift,
            t.apl_end + shift,
            "driver",
            f"proprietary APL: {names}",
            _fields_text(result),
            t.apl_data,
        )
        return
    _records(t, shift, result, spans)


def _records(t: Telegram, shift: int, result: dict[str, Any] | None, spans: _Spans) -> None:
    """The APL record by record (the record layer's grammar)."""
    data, i, n = t.apl_data, t.apl_start, t.apl_end
    # records a driver decoded (manufacturer VIFs): shown as the decode result has them
    from_driver = {(r.get("dif_vif"), r.get("raw")): r for r in (result or {}).get("records") or () if r.get("driver")}
    while i < n:
        dif = data[i]
        if dif == 0x2F:
            j = i
            while j < n and data[j] == 0x2F:
                j += 1
            spans.add(i + shift, j + shift, "apl", "fill bytes 2F", "", data)
            i = j
            continue
        if dif in (0x0F, 0x1F):
            spans.add(i + shift, i + 1 + shift, "apl", f"DIF {dif:02X}: manufacturer data follows", "", data)
            _manufacturer_data(t, data[i + 1 : n], i + 1 + shift, spans)
            return
        j = header_end(data, i, n)
        size = DATA_LEN[dif & 0x0F]
        if size < 0:  # LVAR: a length byte, then that many bytes
            lv = data[j] if j < n else 0
            size = 1 + (lvar_size(lv) or 0)
        k = min(j + size, n)
        records, _ = decode_records(bytes(data[i:k]), 0, k - i)
        rule = "EN 13757-3 record"
        driven = [from_driver.get((r.get("dif_vif"), r.get("raw"))) for r in records]
        if records and all(driven):
            records = [r for r in driven if r is not None]
            rule += f", manufacturer VIF by driver {records[0].get('driver')}"
        spans.add(i + shift, k + shift, "apl", rule, "; ".join(_record_text(r) for r in records), data)
        i = k


def _manufacturer_data(t: Telegram, payload: bytes, offset: int, spans: _Spans) -> None:
    plan = t.plan or _drivers.plan_for(t.meter)
    layouts = [(d.name, lay) for d in plan.drivers for lay in d.layouts if lay.source == "manufacturer_data"]
    _by_layouts(layouts, payload, offset, spans, None, "kept as hex in manufacturer_data")


def _proprietary(t: Telegram, result: dict[str, Any] | None, spans: _Spans) -> None:
    pos, end, data = t.pos, t.end, t.data
    spans.add(pos, pos + 1, "tpl", f"manufacturer-specific CI {t.ci:02X}")
    plan = _drivers.plan_for(t.meter)
    layouts = [(d.name, lay) for d in plan.drivers for lay in d.layouts if lay.source == "ci" and t.ci in lay.cis]
    header = _drivers._header(t.meter, bytes(data[pos:end]))
    reason = (
        "kept as hex in frame.proprietary" if result is not None else "no driver file describes this CI (unknown_ci)"
    )
    _by_layouts(layouts, bytes(data[pos + 1 : end]), pos + 1, spans, header, reason)


def _by_layouts(
    layouts: list[tuple[str, Any]], payload: bytes, offset: int, spans: _Spans, header: bytes | None, reason: str
) -> None:
    """Bytes of ``payload`` (at frame ``offset``) the first matching layouts' values read; the rest as hex."""
    names: dict[int, list[str]] = {}
    for name, layout in layouts:
        if _engine.run_layout(layout, payload, header) is None:
            continue
        prepared = _engine.layout_buffer(layout, payload, header)
        base = prepared[1] if prepared is not None else 0
        if layout.descramble is not None:
            names.setdefault(base + layout.descramble[1], []).append(f"{name}: descrambler check byte")
        for v in layout.values:
            for b in _value_bytes(v):
                label = f"{name}: {v.field or v.quantity or v.type}"
                if label not in names.setdefault(base + b, []):
                    names[base + b].append(label)
    owner = {at: "driver " + ", ".join(labels) for at, labels in names.items()}
    spans_data = bytes(payload)
    i = 0
    while i < len(payload):
        read_by = owner.get(i)
        j = i + 1
        while j < len(payload) and owner.get(j) == read_by:
            j += 1
        if read_by is None:
            spans.items.append(Span(offset + i, offset + j, "kept", "not read", reason, spans_data[i:j].hex()))
        else:
            spans.items.append(Span(offset + i, offset + j, "driver", read_by, "", spans_data[i:j].hex()))
        i = j


def _value_bytes(v: Any) -> list[int]:
    """Offsets (relative to the layout base) one driver value reads."""
    if v.type == "sum" or v.tag is not None:
        return []
    if v.type == "bits":
        return sorted({p[0] for p in v.pieces})
    if v.type == "date_bits":
        return sorted({p[0] for part in v.date_parts for p in part})
    if v.type == "date_g":
        return [v.at, v.at + 1]
    if v.type == "date_bcd":
        return [v.at, v.at + 1, v.at + 2]
    if v.type == "record":
        size = max(DATA_LEN[v.dif & 0x0F], 0)
        extra = [v.vif_at] if v.vif_at is not None else []
        return list(range(v.at, v.at + size)) + extra
    return list(range(v.at, v.at + v.size))


def _meter_text(meter: dict[str, Any]) -> str:
    return (
        f"{meter.get('manufacturer')} {meter.get('id')}, version {meter.get('version')}, "
        f"{meter.get('device_type')} ({meter.get('device_type_code')})"
    )


def _security_text(t: Telegram, ell: dict[str, Any]) -> str:
    s = t.security
    return f"access number {ell.get('acc')}" + (", AES-CTR, decrypted" if s.decrypted else "")


def _tpl_text(t: Telegram) -> str:
    text = f"access number {t.acc}, security mode {t.mode}"
    if t.status is not None:
        text += f", status {t.status['code']:02X}" + (f" ({', '.join(t.status['flags'])})" if t.status["flags"] else "")
    return text


def _compact_text(result: dict[str, Any] | None) -> str:
    compact = ((result or {}).get("frame") or {}).get("compact") or {}
    return (
        f"signature {compact.get('signature')}, full-frame CRC ok: {compact.get('crc_ok')}; "
        f"{len((result or {}).get('records') or [])} records by the learned or known format"
    )


def _fields_text(result: dict[str, Any] | None) -> str:
    fields = (result or {}).get("fields") or {}
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def _record_text(r: dict[str, Any]) -> str:
    where = ", ".join(f"{k} {r[k]}" for k in ("storage", "tariff", "subunit") if r.get(k))
    qualifiers = " ".join(r.get("qualifiers") or ())
    what = f"{r.get('quantity')}" + (f" ({qualifiers})" if qualifiers else "") + (f" [{where}]" if where else "")
    text = f"{what} = {r.get('value')!r} {r.get('unit') or ''}".rstrip()
    if r.get("value") is None and r.get("raw"):
        text += f" (kept as hex: {r['raw']})"
    return text


def render(result: dict[str, Any] | None, error: DecodeError | None, spans: list[Span]) -> str:
    """The explanation as text, one line per byte range."""
    lines = []
    for s in spans:
        rng = f"{s.start}" if s.end - s.start == 1 else f"{s.start}-{s.end - 1}"
        hex_text = s.hex if len(s.hex) <= 32 else s.hex[:30] + "…"
        lines.append(f"  {rng:>9}  {s.layer:<8} {hex_text:<32} {s.rule}" + (f": {s.detail}" if s.detail else ""))
    if error is not None:
        lines.append(f"  decode error {error.code}: {error.message}")
    return "\n".join(lines)
