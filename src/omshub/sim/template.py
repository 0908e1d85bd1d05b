"""Fast application-layer bytes for the simulator's fixed record layouts.

The codec's record encoder chooses codings generically (exact fractions, any VIF); a simulated
fleet sends millions of telegrams whose layout never changes per meter, so this module packs the
values of records with a known fixed ``dif_vif`` directly (little-endian integers at the VIF's
scale; dates through the codec's encoder, cached per value). Every distinct layout is checked once
against :func:`omshub.codec.apl.encode_records` (and the compact encoder); a layout that does not
match byte for byte is never packed here again, so the bytes are always the codec's bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from functools import lru_cache

from omshub.codec import apl
from omshub.codec import compact as compact_codec

log = logging.getLogger(__name__)

# VIF (hex, after the DIF/DIFE bytes) -> multiplier from the record value to the raw integer
_SCALE = {"06": 1, "13": 1000, "2b": 1000, "3b": 1000, "59": 100, "5d": 100, "fd17": 1, "6e": 1}
_DATE_VIFS = ("6c", "6d")
_INT_LENGTHS = {0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x6: 6}
_MAX_DATE_CACHE = 50_000

_verified: dict[tuple[str, ...], bool] = {}
_date_cache: dict[tuple[str, str], bytes] = {}


@lru_cache(maxsize=1024)
def _coding(dif_vif: str) -> tuple[bytes, int | None, int, bool]:
    """(header bytes, value multiplier or None, data length, is a date) of a fixed coding."""
    hdr = bytes.fromhex(dif_vif)
    i = 1
    while hdr[i - 1] & 0x80:  # DIFEs
        i += 1
    vif = hdr[i:].hex()
    return hdr, _SCALE.get(vif), _INT_LENGTHS.get(hdr[0] & 0x0F, 0), vif in _DATE_VIFS


@lru_cache(maxsize=4096)
def _signature(fmt: bytes) -> int:
    return compact_codec.format_signature(fmt)


def _date_bytes(rec: dict) -> bytes:
    key = (rec["dif_vif"], rec["value"])
    b = _date_cache.get(key)
    if b is None:
        full = apl.encode_records([rec])
        b = full[len(bytes.fromhex(rec["dif_vif"])) :]
        if len(_date_cache) >= _MAX_DATE_CACHE:
            _date_cache.clear()
        _date_cache[key] = b
    return b


def _pack(records: list[dict]) -> tuple[bytes, bytes, bytes] | None:
    """(full APL, format bytes, data bytes), or None when a record is outside the fast layouts."""
    full = bytearray()
    fmt = bytearray()
    data = bytearray()
    for rec in records:
        dif_vif = rec.get("dif_vif")
        if not dif_vif or rec.get("function", "instantaneous") != "instantaneous":
            return None
        hdr, scale, length, is_date = _coding(dif_vif)
        if is_date:
            value = _date_bytes(rec)
        else:
            v = rec.get("value")
            if scale is None or not length or v is None or isinstance(v, bool):
                return None
            raw = round(v * scale)
            try:
                value = raw.to_bytes(length, "little", signed=raw < 0)
            except OverflowError:
                return None
        full += hdr
        full += value
        fmt += hdr
        data += value
    return bytes(full), bytes(fmt), bytes(data)


# stored-records token -> (their layout, their packed bytes): a meter's stored values change monthly
_tail_cache: dict[Hashable, tuple[tuple[str, ...], tuple[bytes, bytes, bytes] | None]] = {}
_layouts: dict[tuple[str, ...], tuple[str, ...]] = {}  # interned layouts (100k meters share a few)
_MAX_TAILS = 300_000


def _layout(records: list[dict]) -> tuple[str, ...]:
    layout = tuple(r.get("dif_vif") or "" for r in records)
    return _layouts.setdefault(layout, layout)


def apl_bytes(
    records: list[dict], compact: bool, tail: Callable[[], list[dict]] | None = None, tail_key: Hashable = None
) -> bytes | None:
    """The APL the codec's encoder would build for ``records`` followed by ``tail()`` (the compact
    form when asked), or None when the caller should let the codec encode them. ``tail_key`` names
    the tail's content: its bytes are packed once and reused while the key stays the same."""
    rest: tuple[bytes, bytes, bytes] | None = (b"", b"", b"")
    tail_layout: tuple[str, ...] = ()
    if tail is not None:
        hit = _tail_cache.get(tail_key)
        if hit is None:
            tail_records = tail()
            hit = (_layout(tail_records), _pack(tail_records))
            if len(_tail_cache) >= _MAX_TAILS:
                _tail_cache.clear()
            _tail_cache[tail_key] = hit
        tail_layout, rest = hit
    layout = _layout(records) + tail_layout
    ok = _verified.get(layout)
    if ok is False:
        return None
    head = _pack(records)
    if head is None or rest is None:
        return None
    full, fmt, data = head[0] + rest[0], head[1] + rest[1], head[2] + rest[2]
    if ok is None:
        records = records + (tail() if tail is not None else [])
        good = full == apl.encode_records(records)
        if good:
            ref_fmt, ref_data = compact_codec.encode_compact(records)
            good = (ref_fmt, ref_data) == (fmt, data)
        _verified[layout] = good
        if not good:
            log.warning("simulator record layout %s differs from the codec's encoding; using the codec", layout)
            return None
    if not compact:
        return full
    return _signature(fmt).to_bytes(2, "little") + compact_codec.full_frame_crc(full).to_bytes(2, "little") + data
