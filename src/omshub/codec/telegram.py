"""The telegram decoder: raw frame bytes -> the uniform record dict (docs/formats.md §1).

One function per layer, in the order the bytes are read (docs/protocol.md §1): frame recovery
(:mod:`omshub.codec.frame`) -> link layer -> [ELL (+ AES-CTR)] -> [AFL] -> TPL -> security (modes
0/2/5/7/10, :mod:`omshub.codec.decrypt`) -> APL records (skipped when a driver declares the meter's
APL proprietary) or compact frame (the caller's FormatCache, else a format a driver file knows) ->
drivers (:mod:`omshub.codec.assemble`); :func:`_decode` runs them on one
:class:`omshub.codec.state.Telegram`. Records after which the grammar breaks are kept, the rest of
the APL becoming an ``undecoded`` record (docs/formats.md §1.2). Wired M-Bus extras: an old CI 72
"signature" that names no security mode (read unencrypted), the CI 73 fixed data structure, the
CI 6E/6F/70 error reply.

Everything a call needs comes in as arguments (keys, format cache); nothing is kept between calls
except bounded memos of pure functions (address bytes -> meter dict and driver plan), like the
record layer's header memo.
"""

from __future__ import annotations

from typing import Any

from omshub.codec import afl as _afl
from omshub.codec import drivers as _drivers
from omshub.codec import ell as _ell
from omshub.codec import frame as _frame
from omshub.codec import tpl as _tpl
from omshub.codec.assemble import (
    FIXED_SIZE,
    HEX,
    apl_records,
    assemble,
    compact_records,
    fixed_structure,
    manufacturer_specific,
    plain_already,
)
from omshub.codec.decrypt import decrypt_tpl, open_ell
from omshub.codec.errors import DecodeError
from omshub.codec.keys import FormatCache
from omshub.codec.link import DEVICE_TYPE_NAMES, address_long, manufacturer_code
from omshub.codec.security import check_key
from omshub.codec.state import KeyLookup, Result, Telegram

__all__ = ["decode", "decode_hex", "parse_hex", "peek_address", "peek_header", "KeyLookup"]

MAX_HEX = 4 * _frame.MAX_INPUT
_HEX_DELETE = str.maketrans("", "", "_| \t\r\n:")
_ELL_CIS = _ell.ELL_CI
_CI_TABLE = _tpl.CI_TABLE
_STATUS_FLAGS = _tpl.STATUS_FLAGS
_COMMON_TPL = {0x7A: 4, 0x72: 12}  # CI -> TPL header bytes after it (read inline for modes 0 and 5)
_NO_METER = {"manufacturer": None, "id": None, "version": None, "device_type": None, "device_type_code": None}

# Address bytes -> [meter dict, driver plan], one memo for DLL order (M ID V T) and one for the
# long TPL header's (ID M V T). Memos of a pure function (like the record layer's header memo),
# bounded; each telegram gets its own copy of the dict. Bounded at 65,536 addresses (~40 MB): a
# head-end's decode worker sees every meter of a large installation day after day.
_METERS: tuple[dict[bytes, list[Any]], dict[bytes, list[Any]]] = ({}, {})
_MAX_METERS = 1 << 16


def parse_hex(text: str) -> bytes:
    """Hex text -> bytes; spaces, tabs, ``_``, ``|`` and ``:`` are ignored."""
    if not isinstance(text, str):
        raise DecodeError("invalid_hex", f"expected hex text, got {type(text).__name__}", layer="frame")
    if len(text) > MAX_HEX:
        raise DecodeError("too_long", f"hex input of {len(text)} characters exceeds {MAX_HEX}", layer="frame")
    try:
        return bytes.fromhex(text)  # plain hex (whitespace between bytes allowed): no copy first
    except ValueError:
        pass
    cleaned = text.translate(_HEX_DELETE)
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        pass
    if len(cleaned) % 2:
        frame = _dangling_digit(cleaned)
        if frame is not None:
            return frame
        raise DecodeError(
            "invalid_hex", f"odd number of hex digits ({len(cleaned)})", layer="frame", offset=len(cleaned)
        )
    for i, ch in enumerate(cleaned):
        if ch not in "0123456789abcdefABCDEF":
            raise DecodeError("invalid_hex", f"{ch!r} at position {i} is not a hex digit", layer="frame", offset=i)
    raise DecodeError("invalid_hex", "not hex", layer="frame")  # pragma: no cover - fromhex accepted it above


def _dangling_digit(cleaned: str) -> bytes | None:
    """The bytes of a wM-Bus frame given with one stray hex digit after it, else None.

    Receivers and logs append bytes after the L-counted message (RSSI, a dongle CRC), which the
    frame layer ignores; a log cut in the middle of such a byte leaves half of it. Only when the
    whole L-counted message lies before the last digit is that digit dropped: a digit missing
    inside the message stays an ``invalid_hex`` error."""
    try:
        frame = bytes.fromhex(cleaned[:-1])
    except ValueError:
        return None
    if len(frame) < 11 or frame[0] == 0x68 or frame[0] + 1 > len(frame):
        return None
    return frame


def decode_hex(text: str, **kw: Any) -> Result:
    """:func:`parse_hex` then :func:`decode`."""
    return decode(parse_hex(text), **kw)


def peek_header(frame: bytes) -> Result:
    """Link-layer header without decrypting (for gateway filters); DecodeError when not a frame."""
    raw = _as_bytes(frame)
    fr = _frame.recover(raw)
    data = fr.data
    if fr.kind == "mbus":
        ci = data[2]
        out: Result = {
            "manufacturer": None,
            "id": None,
            "version": None,
            "device_type_code": None,
            "c_field": data[0],
            "ci": ci,
            "crc": None,
        }
        entry = _CI_TABLE.get(ci)
        if ci == 0x73 and len(data) == 3 + FIXED_SIZE:  # fixed data structure: identification only
            out["id"] = data[6:2:-1].hex().upper()
        elif entry is not None and entry[0] == "long" and len(data) >= 11:
            meter = address_long(data, 3)
            out.update(
                manufacturer=meter["manufacturer"],
                id=meter["id"],
                version=meter["version"],
                device_type_code=meter["device_type_code"],
            )
        return out
    if fr.end < 11:
        raise DecodeError(
            "too_short", f"frame has {fr.end} bytes; the link header and CI need 11", layer="link", offset=fr.end
        )
    return {
        "manufacturer": manufacturer_code(data[2] | data[3] << 8),
        "id": data[7:3:-1].hex().upper(),
        "version": data[8],
        "device_type_code": data[9],
        "c_field": data[1],
        "ci": data[10],
        "crc": fr.crc,
    }


def peek_address(frame: bytes) -> tuple[str, str] | None:
    """(manufacturer, id) of the link layer, or None when that needs :func:`peek_header` (a
    wired frame, an L-field too small for a wireless header). The link header is the first ten
    bytes in format A, format B and CRC-less frames alike, so no CRC is looked at: what an ingest
    files a stored telegram under, at a fraction of the cost."""
    if not isinstance(frame, (bytes, bytearray)) or len(frame) < 11 or frame[0] == 0x68 or frame[0] < 10:
        return None
    return manufacturer_code(frame[2] | frame[3] << 8), frame[7:3:-1].hex().upper()


def _as_bytes(frame: object) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, (bytearray, memoryview)):
        return bytes(frame)
    raise DecodeError("invalid_frame", f"expected bytes, got {type(frame).__name__}", layer="frame")


def decode(
    frame: bytes,
    *,
    key: bytes | None = None,
    keys: KeyLookup | None = None,
    formats: FormatCache | None = None,
    crc: str = "auto",
) -> Result:
    """One telegram -> the uniform record dict. Raises DecodeError (see errors.ERROR_CODES).

    ``crc`` ("auto", "A", "B", "none") states the receiver's CRC behaviour when it is known."""
    raw = _as_bytes(frame)
    if key is not None:
        key = bytes(key)
        if len(key) not in (8, 16):
            check_key(key)
    if crc != "auto":
        return _decode(_frame.recover(raw, crc), key, keys, formats, None)
    size = len(raw)
    if 12 <= size <= _frame.MAX_INPUT and raw[0] + 1 == size and raw[0] != 0x68:
        # exactly L + 1 bytes (what most receivers deliver): too short for format A, not a wired
        # frame; the same Frame recover() makes, without its checks
        fr = _frame.Frame(raw, size, None)
    else:
        fr = _frame.recover(raw, crc, detect_b=False)
    if fr.crc is not None or fr.kind != "wmbus" or not _frame.b_possible(raw):
        return _decode(fr, key, keys, formats, None)
    # CRC-less or format B: both have L + 1 bytes, only the B CRC tells them apart (a CRC-less
    # frame passes it with chance 2^-16). The CRC-less reading goes first; when a MAC, CCM tag,
    # ELL PayloadCRC or an exactly fitting ciphertext covers it, the B reading cannot also hold
    # and its CRC need not be computed.
    proof: list[bool] = []
    try:
        result = _decode(fr, key, keys, formats, proof)
    except DecodeError:
        b_frame = _frame.try_format_b(raw)
        if b_frame is None:
            raise
        return _decode(b_frame, key, keys, formats, None)
    if proof:
        return result
    b_frame = _frame.try_format_b(raw)
    if b_frame is None:
        return result
    try:
        b_result = _decode(b_frame, key, keys, formats, None)
    except DecodeError:
        return result
    if "unparsed" in b_result["frame"] and "unparsed" not in result["frame"]:
        return result  # the B reading left bytes over where the plain one did not
    return b_result


def forget_meters() -> None:
    """Empty the address memos (with the driver plans they hold): after the drivers changed."""
    for memo in _METERS:
        memo.clear()


def _meter_at(data: bytes, start: int, long_header: bool) -> list[Any]:
    """[meter dict, driver plan or None] of the address at ``data[start:start + 8]``, memoised;
    callers copy the dict (each telegram gets its own)."""
    address = data[start : start + 8]
    memo = _METERS[long_header]
    entry = memo.get(address)
    if entry is None:
        if long_header:
            meter = address_long(address, 0)
        else:
            code = address[7]
            meter = {
                "manufacturer": manufacturer_code(address[0] | address[1] << 8),
                "id": address[5:1:-1].hex().upper(),
                "version": address[6],
                "device_type": DEVICE_TYPE_NAMES[code],
                "device_type_code": code,
            }
        entry = [meter, None]
        if len(memo) >= _MAX_METERS:
            memo.clear()
        memo[bytes(address)] = entry
    return entry


def _decode(
    fr: _frame.Frame, key: bytes | None, keys: KeyLookup | None, formats: FormatCache | None, proof: list[bool] | None
) -> Result:
    """Decode one recovered frame, layer by layer. ``proof`` (when given) receives True if a check
    that covers exactly the L-counted bytes (MAC, CCM tag, ELL PayloadCRC, ciphertext ending at
    the frame end) verified this reading."""
    t = Telegram(key, keys, formats, proof, fr.data, fr.end)
    fixed = _link_layer(t, fr)
    if fixed is not None:
        return fixed
    ci = t.ci
    if ci in _ELL_CIS and t.dll is not None:
        open_ell(t)
        ci = t.ci = t.data[t.pos]
        t.frame_info["ci"] = HEX[ci]
    if ci == 0x90:
        _afl_layer(t)
        ci = t.ci
    if ci not in _CI_TABLE:
        return manufacturer_specific(t)
    _tpl_layer(t, fr.kind)
    if t.mode:
        meter_key, failure = decrypt_tpl(t)
        if failure is not None:
            done = plain_already(t, meter_key, failure)
            if done is not None:
                return done
    if t.afl is not None:
        t.frame_info["afl"] = t.afl.to_dict(t.security.authenticated)
    app_error = None
    if t.content == "full":
        records, mdata, app_error = apl_records(t)
    elif t.content == "compact":
        records, mdata = compact_records(t)
    else:
        records, mdata = [], None
    result = assemble(t, records, mdata)
    if app_error is not None:
        result["application_error"] = app_error
    return result


def _link_layer(t: Telegram, fr: _frame.Frame) -> Result | None:
    """The link layer: the wireless DLL header (C field, the meter or transmitter address) or
    the wired C and A fields. Returns the finished result of a wired fixed data structure."""
    data, end = t.data, t.end
    if fr.kind == "mbus":
        t.pos = 2
        t.frame_info = {
            "kind": "mbus",
            "format": None,
            "c_field": HEX[data[0]],
            "ci": HEX[data[2]],
            "ell": None,
            "afl": None,
        }
        t.meter = dict(_NO_METER)
        if data[2] == 0x73 and end == 3 + FIXED_SIZE:
            return fixed_structure(data, 2, t.frame_info)
    else:
        if end < 11:
            raise DecodeError(
                "too_short", f"frame has {end} bytes; the link header and CI need 11", layer="link", offset=end
            )
        t.pos = 10
        t.memo = _meter_at(data, 2, False)
        t.dll = t.meter = t.memo[0].copy()
        t.frame_info = {
            "kind": "wmbus",
            "format": fr.crc,
            "c_field": HEX[data[1]],
            "ci": HEX[data[10]],
            "ell": None,
            "afl": None,
        }
    t.ci = data[t.pos]
    return None


def _afl_layer(t: Telegram) -> None:
    """The authentication and fragmentation layer (message counter and MAC for mode 7)."""
    afl = t.afl = _afl.parse(t.data, t.pos, t.end)
    pos = t.pos = afl.next
    if pos >= t.end:
        raise DecodeError("too_short", "no CI after the AFL", layer="afl", offset=pos)
    t.ci = t.data[pos]
    t.frame_info["ci"] = HEX[t.ci]


def _tpl_layer(t: Telegram, kind: str) -> None:
    """The transport layer header: access number, status, security configuration and (long
    header) the meter address; then the meter's driver plan."""
    data, pos, end = t.data, t.pos, t.end
    t.tpl_start = pos
    header = _COMMON_TPL.get(t.ci)
    address: int | None
    tpl_acc: int | None
    sts: int | None
    if header is not None and pos + 1 + header <= end and data[pos + header] & 0x1F in (0, 5):
        # the usual short (7A) / long (72) header, mode 0 or 5: read here as tpl.parse reads it
        payload = pos + 1 + header
        address = pos + 1 if header == 12 else None
        tpl_acc, sts = data[payload - 4], data[payload - 3]
        t.blocks, mode = data[payload - 2] >> 4, data[payload - 1] & 0x1F
        t.content, t.counter = "full", b""
    else:
        tpl = _tpl.parse(data, pos, end)
        address, tpl_acc, sts, mode, t.blocks = tpl.address, tpl.acc, tpl.sts, tpl.mode, tpl.blocks
        payload, t.content, t.counter = tpl.payload, tpl.content, tpl.counter
    if mode and mode not in _tpl.SUPPORTED_MODES and kind == "mbus" and mode in _tpl.NO_SECURITY_MODES:
        # a pre-EN 13757-7 wired "signature", not a security configuration (see tpl.NO_SECURITY_MODES)
        t.frame_info["signature"] = HEX[data[payload - 2]] + HEX[data[payload - 1]]
        mode = 0
    t.mode, t.payload = mode, payload
    if address is not None:
        _tpl_address(t, address)
    elif t.dll is not None:
        t.address8 = data[2:10]
        t.ident = data[4:8]
    else:
        t.address8 = t.ident = None
    if tpl_acc is not None:
        t.acc = tpl_acc
    t.status = None if sts is None else {"code": sts, "flags": list(_STATUS_FLAGS[sts])}
    memo = t.memo
    if memo is None:
        t.plan = _drivers.plan_for(t.meter)
    else:
        t.plan = memo[1]
        if t.plan is None:  # the drivers' plan of a memoised meter: looked up once per address
            t.plan = memo[1] = _drivers.plan_for(memo[0])
    t.apl_data, t.apl_start, t.apl_end, t.enc_end = data, payload, end, payload


def _tpl_address(t: Telegram, a: int) -> None:
    """The long header's meter address (the link layer's is then the transmitter's, if it differs)."""
    data, dll = t.data, t.dll
    t.memo = _meter_at(data, a, True)
    meter = t.meter = t.memo[0].copy()
    if dll is not None and (
        meter["manufacturer"] != dll["manufacturer"]
        or meter["id"] != dll["id"]
        or meter["version"] != dll["version"]
        or meter["device_type_code"] != dll["device_type_code"]
    ):
        t.transmitter = dll
    t.address8 = data[a + 4 : a + 6] + data[a : a + 4] + data[a + 6 : a + 8]
    t.ident = data[a : a + 4]
