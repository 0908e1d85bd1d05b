"""The decode pipeline: raw frame bytes -> the uniform record dict (docs/formats.md §1).

frame recovery -> link header -> [ELL (+ AES-CTR)] -> [AFL] -> TPL -> security (modes 0/2/5/7/10)
-> APL records (``apl``; skipped when a driver declares the meter's APL proprietary) or compact
frame (``compact`` + the caller's FormatCache, else a format a driver file knows) -> drivers.
Records after which the grammar breaks are kept, the rest of the APL becoming an ``undecoded``
record (docs/formats.md §1.2). Wired M-Bus extras: an old CI 72 "signature" that names no
security mode (read unencrypted), the CI 73 fixed data structure, the CI 6E/6F/70 error reply.

Everything a call needs comes in as arguments (keys, format cache); nothing is kept between calls
except bounded memos of pure functions (address bytes -> meter dict and driver plan), like the
record layer's header memo.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Callable

from . import afl as _afl
from . import ell as _ell
from . import frame as _frame
from . import tpl as _tpl
from .errors import DecodeError
from .keys import FormatCache
from .link import DEVICE_TYPE_NAMES, address_long, manufacturer_code
from .security import (KeyContext, cbc_decrypt, cbc_decrypt_once, ccm_decrypt, check_key, cmac, ctr_xcrypt,
                       des_cbc_decrypt, kdf)

from omshub.codec import drivers as _drivers
from omshub.codec import records as _apl
from . import compact as _compact

KeyLookup = Callable[[str, str], "bytes | None"]

MAX_HEX = 4 * _frame.MAX_INPUT
_HEX_DELETE = str.maketrans("", "", "_| \t\r\n:")
_FILLER2 = b"\x2f\x2f"
_ZERO_IV = bytes(16)
_ELL_CIS = _ell.ELL_CI
_CI_TABLE = _tpl.CI_TABLE
_STATUS_FLAGS = _tpl.STATUS_FLAGS
_PLAIN_SECURITY = (0, False, False, False, False)
_HEX = tuple(f"{byte:02X}" for byte in range(256))
_DIF_VIF = itemgetter("dif_vif")
_ACC8 = tuple(bytes((acc,)) * 8 for acc in range(256))  # mode 5 IV tail: the access number 8 times
_COMMON_TPL = {0x7A: 4, 0x72: 12}  # CI -> TPL header bytes after it (read inline for modes 0 and 5)
_DATA_SIZE = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -1)  # per DIF data field; -1: LVAR / special

# Address bytes -> meter dict, one memo for DLL order (M ID V T) and one for the long TPL
# header's (ID M V T). Memos of a pure function (like the record layer's header memo), bounded;
# each telegram gets its own copy of the dict. Bounded at 65,536 addresses (~40 MB): a head-end's
# decode worker sees every meter of a large installation day after day.
_METERS: tuple[dict[bytes, dict], dict[bytes, dict]] = ({}, {})
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
        raise DecodeError("invalid_hex", f"odd number of hex digits ({len(cleaned)})", layer="frame",
                          offset=len(cleaned))
    for i, ch in enumerate(cleaned):
        if ch not in "0123456789abcdefABCDEF":
            raise DecodeError("invalid_hex", f"{ch!r} at position {i} is not a hex digit", layer="frame", offset=i)
    raise DecodeError("invalid_hex", "not hex", layer="frame")  # pragma: no cover - fromhex accepted it above


def decode_hex(text: str, **kw) -> dict:
    """:func:`parse_hex` then :func:`decode`."""
    return decode(parse_hex(text), **kw)


def peek_header(frame: bytes) -> dict:
    """Link-layer header without decrypting (for gateway filters); DecodeError when not a frame."""
    raw = _as_bytes(frame)
    fr = _frame.recover(raw)
    data = fr.data
    if fr.kind == "mbus":
        ci = data[2]
        out = {"manufacturer": None, "id": None, "version": None, "device_type_code": None,
               "c_field": data[0], "ci": ci, "crc": None}
        entry = _CI_TABLE.get(ci)
        if ci == 0x73 and len(data) == 3 + _FIXED_SIZE:  # fixed data structure: identification only
            out["id"] = data[6:2:-1].hex().upper()
        elif entry is not None and entry[0] == "long" and len(data) >= 11:
            meter = address_long(data, 3)
            out.update(manufacturer=meter["manufacturer"], id=meter["id"], version=meter["version"],
                       device_type_code=meter["device_type_code"])
        return out
    if fr.end < 11:
        raise DecodeError("too_short", f"frame has {fr.end} bytes; the link header and CI need 11",
                          layer="link", offset=fr.end)
    return {"manufacturer": manufacturer_code(data[2] | data[3] << 8),
            "id": data[7:3:-1].hex().upper(), "version": data[8], "device_type_code": data[9],
            "c_field": data[1], "ci": data[10], "crc": fr.crc}


def peek_address(frame: bytes) -> tuple[str, str] | None:
    """(manufacturer, id) of the link layer, or None when that needs :func:`peek_header` (a
    wired frame, an L-field too small for a wireless header). The link header is the first ten
    bytes in format A, format B and CRC-less frames alike, so no CRC is looked at: what an ingest
    files a stored telegram under, at a fraction of the cost."""
    if not isinstance(frame, (bytes, bytearray)) or len(frame) < 11 or frame[0] == 0x68 or frame[0] < 10:
        return None
    return manufacturer_code(frame[2] | frame[3] << 8), frame[7:3:-1].hex().upper()


def _as_bytes(frame) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, (bytearray, memoryview)):
        return bytes(frame)
    raise DecodeError("invalid_frame", f"expected bytes, got {type(frame).__name__}", layer="frame")


def decode(frame: bytes, *, key: bytes | None = None, keys: KeyLookup | None = None,
           formats: FormatCache | None = None, crc: str = "auto") -> dict:
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
    proof: list = []
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


def _find_key(key, keys, manufacturer: str, meter_id: str) -> bytes | None:
    """The meter's key: ``keys(manufacturer, meter_id)``, else the fixed ``key``."""
    if keys is not None:
        try:
            found = keys(manufacturer, meter_id)
        except DecodeError:
            raise
        except Exception as exc:  # a caller's lookup failing must not look like a codec bug
            raise DecodeError("no_key", f"key lookup for {manufacturer} {meter_id} failed: {exc}",
                              layer="security") from None
        if found is not None:
            return found
    return key


def _context(keys, key: bytes) -> KeyContext:
    """The key's AES context: the key ring's reusable one when the caller passes a ring."""
    ring = getattr(keys, "context", None)
    return ring(key) if ring is not None else KeyContext(key)


def _meter_at(data: bytes, start: int, long_header: bool) -> list:
    """[meter dict, driver plan or None] of the address at ``data[start:start + 8]``, memoised;
    callers copy the dict (each telegram gets its own)."""
    address = data[start:start + 8]
    memo = _METERS[long_header]
    entry = memo.get(address)
    if entry is None:
        if long_header:
            meter = address_long(address, 0)
        else:
            code = address[7]
            meter = {"manufacturer": manufacturer_code(address[0] | address[1] << 8),
                     "id": address[5:1:-1].hex().upper(), "version": address[6],
                     "device_type": DEVICE_TYPE_NAMES[code], "device_type_code": code}
        entry = [meter, None]
        if len(memo) >= _MAX_METERS:
            memo.clear()
        memo[bytes(address)] = entry
    return entry


def _plan_of(entry: list):
    """The drivers' plan of a memoised meter (looked up once per address)."""
    plan = entry[1]
    if plan is None:
        plan = entry[1] = _drivers.plan_for(entry[0])
    return plan


def _partial(meter, transmitter, acc, security, frame_info) -> dict:
    return {"meter": meter, "transmitter": transmitter, "access_number": acc, "security": security,
            "frame": frame_info}


def _security_dict(state) -> dict:
    mode, encrypted, decrypted, authenticated, before = state
    return {"mode": mode, "encrypted": encrypted, "decrypted": decrypted, "authenticated": authenticated,
            "decrypted_before_receipt": before}


def _plain_records(data: bytes, start: int, end: int, plan):
    """(records, manufacturer data, unparsed hex) of a payload that claims to be encrypted but is
    plaintext already, or None. A record error is tolerated only after the first 16 bytes parsed
    (a truncated copy), never at the start (that is ciphertext)."""
    if data[start:start + 2] != _FILLER2:
        return None
    if plan is not None and plan.owns_apl:
        return [], None, None  # a driver builds the records from the proprietary APL
    try:
        records, mdata = _apl.decode_records(data, start, end)
    except DecodeError as exc:
        got = (exc.partial or {}).get("records")
        if exc.code != "invalid_record" or not got or exc.offset is None or exc.offset < start + 16:
            return None
        tail = _apl.undecoded_record(data, exc.offset, end, exc)
        return got + [tail], None, tail["value"].upper()
    return records, mdata, None


def _decode(fr: _frame.Frame, key, keys, formats, proof: list | None) -> dict:
    """Decode one recovered frame. ``proof`` (when given) receives True if a check that covers
    exactly the L-counted bytes (MAC, CCM tag, ELL PayloadCRC, ciphertext ending at the frame end)
    verified this reading."""
    data = fr.data
    end = fr.end
    transmitter = None
    acc = None
    if fr.kind == "mbus":
        c_field = data[0]
        pos = 2
        dll = entry = None
        frame_info = {"kind": "mbus", "format": None, "c_field": _HEX[c_field], "ci": _HEX[data[2]],
                      "ell": None, "afl": None}
        meter = {"manufacturer": None, "id": None, "version": None, "device_type": None,
                 "device_type_code": None}
        if data[2] == 0x73 and end == 3 + _FIXED_SIZE:
            return _fixed_structure(data, 2, frame_info)
    else:
        if end < 11:
            raise DecodeError("too_short", f"frame has {end} bytes; the link header and CI need 11",
                              layer="link", offset=end)
        c_field = data[1]
        pos = 10
        entry = _meter_at(data, 2, False)
        dll = meter = entry[0].copy()
        frame_info = {"kind": "wmbus", "format": fr.crc, "c_field": _HEX[c_field], "ci": _HEX[data[10]],
                      "ell": None, "afl": None}
    ci = data[pos]
    security = _PLAIN_SECURITY

    # --- extended link layer
    if ci in _ELL_CIS and dll is not None:
        data, end, pos, acc, security = _open_ell(data, end, pos, dll, key, keys, frame_info, proof)
        ci = data[pos]
        frame_info["ci"] = _HEX[ci]

    # --- authentication and fragmentation layer
    afl = None
    if ci == 0x90:
        afl = _afl.parse(data, pos, end)
        pos = afl.next
        if pos >= end:
            raise DecodeError("too_short", "no CI after the AFL", layer="afl", offset=pos)
        ci = data[pos]
        frame_info["ci"] = _HEX[ci]

    # --- transport layer
    tpl_start = pos
    if ci not in _CI_TABLE:
        return _manufacturer_specific(data, pos, end, ci, meter, acc, security, frame_info)
    header = _COMMON_TPL.get(ci)
    if header is not None and pos + 1 + header <= end and data[pos + header] & 0x1F in (0, 5):
        # the usual short (7A) / long (72) header, mode 0 or 5: read here as tpl.parse reads it
        payload = pos + 1 + header
        address = pos + 1 if header == 12 else None
        tpl_acc, sts = data[payload - 4], data[payload - 3]
        blocks, mode = data[payload - 2] >> 4, data[payload - 1] & 0x1F
        content, counter = "full", b""
    else:
        t = _tpl.parse(data, pos, end)
        address, tpl_acc, sts, mode, blocks = t.address, t.acc, t.sts, t.mode, t.blocks
        payload, content, counter = t.payload, t.content, t.counter
    if mode and mode not in _tpl.SUPPORTED_MODES and fr.kind == "mbus" and mode in _tpl.NO_SECURITY_MODES:
        # a pre-EN 13757-7 wired "signature", not a security configuration (see tpl.NO_SECURITY_MODES)
        frame_info["signature"] = _HEX[data[payload - 2]] + _HEX[data[payload - 1]]
        mode = 0
    if address is not None:
        a = address
        entry = _meter_at(data, a, True)
        meter = entry[0].copy()
        if dll is not None and (meter["manufacturer"] != dll["manufacturer"] or meter["id"] != dll["id"]
                                or meter["version"] != dll["version"]
                                or meter["device_type_code"] != dll["device_type_code"]):
            transmitter = dll
        address8 = data[a + 4:a + 6] + data[a:a + 4] + data[a + 6:a + 8]
        ident = data[a:a + 4]
    elif dll is not None:
        address8 = data[2:10]
        ident = data[4:8]
    else:
        address8 = ident = None
    if tpl_acc is not None:
        acc = tpl_acc
    status = None if sts is None else {"code": sts, "flags": list(_STATUS_FLAGS[sts])}
    plan = _plan_of(entry) if entry is not None else _drivers.plan_for(meter)
    apl_data = data
    apl_start = payload
    apl_end = end
    enc_end = payload  # end of the decrypted region in apl_data (record errors there may mean a wrong key)

    if mode:
        if address8 is None:
            raise DecodeError("invalid_frame", "encrypted TPL without a meter address", layer="tpl", offset=pos)
        if mode not in _tpl.SUPPORTED_MODES:
            raise DecodeError("unsupported_security_mode", f"unsupported security mode {mode}", layer="security",
                              offset=pos, partial=_partial(meter, transmitter, acc, _security_dict(
                                  (mode, True, False, False, False)), frame_info))
        meter_key = _find_key(key, keys, meter["manufacturer"], meter["id"])
        decrypted = None  # (buffer, start, end of decrypted region, authenticated)
        failure = None
        if meter_key is not None and len(meter_key) != 16 and mode != 2:
            failure = f"the key has {len(meter_key)} bytes; security mode {mode} needs a 16-byte AES key"
        if mode == 5:
            size = blocks * 16 or (end - payload) // 16 * 16
            enc_end = payload + size
            if enc_end > len(data):
                raise DecodeError("too_short", f"{blocks} encrypted blocks need {size} bytes after the TPL header, "
                                  f"{len(data) - payload} present", layer="security", offset=payload,
                                  partial=_partial(meter, transmitter, acc, _security_dict(
                                      (mode, True, False, False, False)), frame_info))
            if meter_key is not None and len(meter_key) == 16 and size:
                # IV = the meter's address (8 bytes) | access number ×8 (mode5_iv, without a call)
                plain = cbc_decrypt(_context(keys, meter_key), address8 + _ACC8[tpl_acc], data[payload:enc_end])
                if plain[:2] == _FILLER2:
                    # the unencrypted rest (if any) follows the plaintext
                    decrypted = (plain if enc_end >= end else plain + data[enc_end:end], 0, size, False)
                else:
                    failure = "decrypted data does not start with 2F2F"
        elif mode == 7:
            if afl is None or afl.mcr is None or not afl.mac:
                failure = "mode 7 needs an AFL with message counter and MAC"
                if meter_key is not None:
                    raise DecodeError("invalid_frame", failure, layer="afl", offset=pos, partial=_partial(
                        meter, transmitter, acc, _security_dict((mode, True, False, False, False)), frame_info))
            size = blocks * 16
            enc_end = payload + size
            if enc_end > len(data):
                raise DecodeError("too_short", f"{blocks} encrypted blocks need {size} bytes after the TPL header",
                                  layer="security", offset=payload, partial=_partial(
                                      meter, transmitter, acc, _security_dict((mode, True, False, False, False)),
                                      frame_info))
            if meter_key is not None and len(meter_key) == 16 and failure is None:
                master = _context(keys, meter_key)
                kmac = kdf(master, 1, afl.mcr_bytes, ident)
                mac = cmac(kmac, _afl.mac_input(afl, data, tpl_start, end))[:len(afl.mac)]
                if mac != afl.mac:
                    failure = "AFL MAC check failed"
                else:
                    kenc = kdf(master, 0, afl.mcr_bytes, ident)
                    plain = cbc_decrypt_once(kenc, _ZERO_IV, data[payload:enc_end])
                    if plain[:2] != _FILLER2:
                        raise DecodeError("wrong_key", "AFL MAC verified but the decrypted data does not start "
                                          "with 2F2F", layer="security", offset=payload, partial=_partial(
                                              meter, transmitter, acc, _security_dict(
                                                  (mode, True, False, True, False)), frame_info))
                    decrypted = (plain if enc_end >= end else plain + data[enc_end:end], 0, size, True)
        elif mode == 10:
            if meter_key is not None and len(meter_key) == 16:
                if end - payload < 8:
                    raise DecodeError("too_short", "mode 10 telegram shorter than its 8-byte CCM tag",
                                      layer="security", offset=payload, partial=_partial(
                                          meter, transmitter, acc, _security_dict((mode, True, False, False, False)),
                                          frame_info))
                kenc = kdf(_context(keys, meter_key), 0, counter, ident)
                nonce = bytes(address8) + b"\x00" + counter[::-1]
                plain = ccm_decrypt(kenc, nonce, data[payload:end], data[tpl_start:payload - 4])
                if plain is None:
                    failure = "CCM tag check failed"
                else:
                    decrypted = (plain, 0, len(plain), True)
        else:  # mode 2, deprecated DES-CBC
            size = blocks * 16 or (end - payload) // 8 * 8
            enc_end = payload + size
            if meter_key is not None and enc_end <= len(data) and size % 8 == 0 and size:
                if len(meter_key) in (8, 16):
                    plain = des_cbc_decrypt(meter_key, data[payload:enc_end])
                    if plain[:2] == _FILLER2:
                        decrypted = (plain + data[enc_end:end], 0, size, False)
                    else:
                        failure = "decrypted data does not start with 2F2F"

        if decrypted is not None:
            apl_data, apl_start, enc_end, authenticated = decrypted
            apl_end = len(apl_data)
            security = (mode, True, True, authenticated, False)
            if proof is not None and (authenticated or payload + enc_end == end):
                proof.append(True)
        else:
            # Telegrams copied after decryption keep their "encrypted" header: accept the payload
            # when it is plaintext already (2F2F and records that parse).
            parsed = _plain_records(data, payload, end, plan) if content == "full" else None
            compact_plain = content == "compact" and data[payload:payload + 2] == _FILLER2
            if parsed is None and not compact_plain:
                sec = _security_dict((mode, True, False, False, False))
                partial = _partial(meter, transmitter, acc, sec, frame_info)
                if meter_key is None:
                    raise DecodeError("no_key", f"encrypted telegram (security mode {mode}) of {meter['manufacturer']} "
                                      f"{meter['id']} and no key known", layer="security", partial=partial)
                raise DecodeError("wrong_key", f"{failure or 'decryption failed'} (wrong key or corrupted telegram)",
                                  layer="security", offset=payload, partial=partial)
            security = (mode, True, False, False, True)
            apl_start = payload
            if parsed is not None:
                if afl is not None:
                    frame_info["afl"] = afl.to_dict(False)
                if parsed[2] is not None:
                    frame_info["unparsed"] = parsed[2]
                return _assemble(meter, transmitter, acc, status, security, frame_info, parsed[0], parsed[1],
                                 data, payload, end, formats if parsed[2] is None else None, content, plan)

    if afl is not None:
        frame_info["afl"] = afl.to_dict(security[3])
    app_error = None
    if content == "full":
        if apl_end - apl_start <= 1 and ci in _tpl.APPLICATION_ERROR_CIS and not security[1]:
            # an application error reply: its one byte is the error code, not a data record
            app_error = _tpl.application_error(bytes(apl_data[apl_start:apl_end]))
            records, mdata = [], None
            formats = None
        elif plan is not None and plan.owns_apl:
            records, mdata = [], None  # a driver builds the records from the proprietary APL
            formats = None
        else:
            try:
                records, mdata = _apl.decode_records(apl_data, apl_start, apl_end)
            except DecodeError as exc:
                partial = _partial(meter, transmitter, acc, _security_dict(security), frame_info)
                # only TPL decryption (2F2F, no CRC over the plaintext) leaves the key in doubt
                records, mdata = _records_after_error(exc, apl_data, apl_start, apl_end, enc_end,
                                                      security[2] and mode != 0, partial, frame_info)
                formats = None  # records cut short (or from a driver) teach no format
            else:
                if mdata is not None and _apl.more_records_follow(apl_data, apl_end, mdata):
                    frame_info["more_records_follow"] = True  # DIF 1F: the next telegram continues
                if proof is not None and security is _PLAIN_SECURITY and _rules_out_format_b(records, mdata, data,
                                                                                             end):
                    proof.append(True)
    elif content == "compact":
        records, mdata = _decode_compact(apl_data, apl_start, apl_end, mode != 0, meter, formats, frame_info,
                                         (transmitter, acc, security))
        formats = None  # a compact frame teaches nothing
    else:
        records, mdata = [], None
    result = _assemble(meter, transmitter, acc, status, security, frame_info, records, mdata, apl_data, apl_start,
                       apl_end, formats, content, plan)
    if app_error is not None:
        result["application_error"] = app_error
    return result


def _rules_out_format_b(records: list, mdata, data: bytes, end: int) -> bool:
    """True when the format-B reading of this unencrypted CRC-less frame must fail anyway.

    For frames up to 128 bytes the B reading is the same bytes without the last two (its CRC),
    so its record walk is this one's up to the last record, which it would find cut short: the
    B result then has ``unparsed`` bytes (at least one record before) and loses to this one. That
    holds when the records end exactly at the frame end (no manufacturer data, the last byte is no
    2F filler, so it belongs to the last record) and the last record has at least 3 bytes."""
    if mdata is not None or end > 128 or len(records) < 2 or data[end - 1] == 0x2F:
        return False
    dif_vif = records[-1].get("dif_vif")
    known = _LONG_LAST_RECORD.get(dif_vif) if isinstance(dif_vif, str) else False
    if known is None:
        known = _long_record(dif_vif)
        if len(_LONG_LAST_RECORD) >= 4096:
            _LONG_LAST_RECORD.clear()
        _LONG_LAST_RECORD[dif_vif] = known
    return known


def _long_record(dif_vif: str) -> bool:
    """Does a record with this DIF/VIF text have at least 3 bytes (header plus fixed-size data)?"""
    if len(dif_vif) < 4:
        return False
    try:
        size = _DATA_SIZE[int(dif_vif[:2], 16) & 0x0F]
    except ValueError:
        return False
    return size >= 0 and len(dif_vif) // 2 + size >= 3


# dif_vif text -> _long_record(text); memo of a pure function (a few layouts in practice), bounded
_LONG_LAST_RECORD: dict[str, bool] = {}


def _open_ell(data, end, pos, dll, key, keys, frame_info, proof):
    """The extended link layer at ``pos``: decrypts an AES-CTR payload (PayloadCRC as key check).

    Returns (data with the plaintext in place, end, offset of the next CI, ELL access number,
    security state)."""
    ell = _ell.parse(data, pos, end)
    frame_info["ell"] = ell.to_dict()
    security = _PLAIN_SECURITY
    pos = ell.payload
    if ell.encrypted:
        payload = data[pos:end]
        ell_key = _find_key(key, keys, dll["manufacturer"], dll["id"])
        plain = None
        if ell_key is not None and len(ell_key) == 16:
            candidate = ctr_xcrypt(_context(keys, ell_key), _ell.counter_block(data, ell), payload)
            if _ell.check_payload_crc(candidate):
                plain = candidate
                security = (0, True, True, False, False)
                if proof is not None:
                    proof.append(True)
        if plain is None:
            if _ell.check_payload_crc(payload) and len(payload) > 2 and payload[2] in _CI_TABLE:
                plain = payload
                security = (0, True, False, False, True)
            else:
                partial = _partial(dll, None, ell.acc, _security_dict((0, True, False, False, False)), frame_info)
                if ell_key is None:
                    raise DecodeError("no_key", f"ELL-encrypted telegram of {dll['manufacturer']} {dll['id']} "
                                      "and no key known", layer="ell", partial=partial)
                raise DecodeError("wrong_key", "ELL payload CRC failed after AES-CTR decryption (wrong key or "
                                  "corrupted telegram)", layer="ell", offset=pos, partial=partial)
        data = data[:pos] + plain
        end = len(data)
    if ell.sn is not None:
        pos += 2  # PayloadCRC
    if pos >= end:
        raise DecodeError("too_short", "no CI after the extended link layer", layer="ell", offset=pos)
    return data, end, pos, ell.acc, security


def _records_after_error(exc, apl_data, apl_start, apl_end, enc_end, decrypted, partial, frame_info):
    """What to make of a record error: keep the records before an error in the unencrypted tail
    (truncated frames, records the grammar cannot delimit), the bytes from the error on going into
    an ``undecoded`` record (and, as before, ``frame["unparsed"]``); let a driver decode a
    proprietary payload; else wrong_key (error right at the start of decrypted data), the records
    before an error further into decrypted data, or invalid_record (nothing decoded before it)."""
    offset = exc.offset if exc.offset is not None else apl_start
    if exc.code != "invalid_record":
        exc.partial = partial
        raise exc
    got = (exc.partial or {}).get("records")
    if got and offset >= enc_end:
        return _keep_records(got, exc, apl_data, offset, apl_end, frame_info), None
    telegram = dict(partial)
    telegram.update(status=None, records=[], fields={}, manufacturer_data=None)
    records = _drivers.decode_proprietary(telegram, bytes(apl_data[apl_start:apl_end]))
    if records is not None:
        return records, None
    if decrypted and offset < apl_start + 16:
        raise DecodeError("wrong_key", f"decrypted data starts with 2F2F but its records do not parse "
                          f"({exc.message}): wrong key or wrong address", layer="security", offset=offset,
                          partial=partial) from None
    if got and decrypted:
        # 2F2F and at least 16 bytes of records: the key is right, a record is not understood
        return _keep_records(got, exc, apl_data, offset, apl_end, frame_info), None
    raise DecodeError("invalid_record", f"{exc.message} (records in the {'decrypted ' if decrypted else ''}"
                      "payload do not parse: manufacturer-specific layout or corrupted telegram)",
                      layer="apl", offset=offset, partial=partial) from None


def _keep_records(got: list, exc, apl_data, offset: int, apl_end: int, frame_info: dict) -> list:
    """The records before a record error plus the ``undecoded`` rest of the APL."""
    frame_info["unparsed"] = bytes(apl_data[offset:apl_end]).hex().upper()
    return got + [_apl.undecoded_record(apl_data, offset, apl_end, exc)]


# EN 13757-3 fixed data structure (wired CI 73): ident (4, BCD) ACC STS medium/unit (2)
# counter 1 (4) counter 2 (4)
_FIXED_SIZE = 16
# its status bits 2-4 mean what they mean in the variable structure; bits 0-1 (counter coding,
# fixed-date values) and 5-7 (manufacturer) are read differently by the sources
_FIXED_STATUS_FLAGS = ((2, "power_low"), (3, "permanent_error"), (4, "temporary_error"))


def _fixed_structure(data, pos: int, frame_info: dict) -> dict:
    """A wired M-Bus response with the fixed data structure (CI 73, 16 bytes; older meters).

    Identification number, access number and status are decoded; medium/unit and the two
    counters stay an ``undecoded`` record: descriptions of this old format disagree on which
    status bit says whether the counters are BCD or binary (bit 0 or bit 7), the protocol brief
    does not cover it, and a billing value is never guessed."""
    body = bytes(data[pos + 1:pos + 1 + _FIXED_SIZE])
    sts = body[5]
    meter = {"manufacturer": None, "id": body[3::-1].hex().upper(), "version": None, "device_type": None,
             "device_type_code": None}
    frame_info["fixed_structure"] = True
    record = {"quantity": "undecoded", "unit": "", "value": body[6:].hex(), "storage": 0, "tariff": 0,
              "subunit": 0, "function": "instantaneous", "dif_vif": "", "reason": "fixed_data_structure",
              "message": "CI 73 fixed data structure (EN 13757-3, older wired meters): medium/unit and "
                         "counters 1 and 2 are not decoded (their coding is ambiguous in the sources)"}
    return {"meter": meter, "transmitter": None, "access_number": body[4],
            "status": {"code": sts, "flags": [name for bit, name in _FIXED_STATUS_FLAGS if sts >> bit & 1]},
            "security": _security_dict(_PLAIN_SECURITY), "frame": frame_info, "records": [record],
            "fields": {}, "manufacturer_data": None}


def _assemble(meter, transmitter, acc, status, security, frame_info, records, mdata, apl_data, apl_start, apl_end,
              formats, content, plan) -> dict:
    mode, encrypted, decrypted, authenticated, before = security
    # the records' layout: their dif_vif texts (plus a closing 0F/1F) as the record decoder made
    # them; the compact-frame format and the drivers' key to which record names which field
    layout = None
    if records:
        try:
            layout = "".join(map(_DIF_VIF, records))
        except (KeyError, TypeError):  # records a driver made (proprietary payload)
            layout = None
        else:
            if mdata is not None:
                layout += _HEX[apl_data[apl_end - len(mdata) // 2 - 1]]
        if formats is not None and content == "full" and _compact is not None and meter["id"] is not None:
            _learn_format(formats, meter, apl_data, apl_start, apl_end, layout)
    fields: dict = {}
    result = {"meter": meter, "transmitter": transmitter, "access_number": acc, "status": status,
              "security": {"mode": mode, "encrypted": encrypted, "decrypted": decrypted,
                           "authenticated": authenticated, "decrypted_before_receipt": before},
              "frame": frame_info, "records": records, "fields": fields, "manufacturer_data": mdata}
    if plan is not None:
        if plan.work:  # driver layouts may read the APL bytes and change the records
            _drivers.apply_plan(plan, result, bytes(apl_data[apl_start:apl_end]) if plan.needs_apl else None)
        elif plan.computed:
            _drivers.apply_plan(plan, result, None, layout)
        else:  # only field names: what apply_plan would do, without its checks
            plan.name_fields(records, fields, layout)
    return result


def _learn_format(formats, meter, apl_data, apl_start, apl_end, layout) -> None:
    """Teach ``formats`` this full frame's record format (for later compact frames).

    The format is the records' DIF/VIF bytes, which the record decoder already reports as
    ``dif_vif`` (joined: ``layout``); a closing 0F/1F is part of it. (Same bytes as
    ``compact.format_of``, without parsing the records a second time.)"""
    memo = getattr(formats, "signatures", None)
    known = memo.get(layout) if memo is not None and layout is not None else None
    if known is None:
        try:
            fmt = bytes.fromhex(layout) if layout is not None else _compact.format_of(apl_data, apl_start, apl_end)
        except (ValueError, DecodeError):
            return
        known = (fmt, _compact.format_signature(fmt))
        if memo is not None and layout is not None:
            if len(memo) >= 4096:
                memo.clear()
            memo[layout] = known
    formats.put(meter["manufacturer"], meter["id"], known[1], known[0])


def _decode_compact(data, start, end, skip_filler, meter, formats, frame_info, context):
    """Records of a compact frame (CI 79/7B/73): the format from the caller's cache, else one a
    driver file knows. The full-frame CRC is reported (``frame["compact"]["crc_ok"]``), not
    required: real meters announce the CRC of an earlier full frame (Kamstrup). ``context``
    (transmitter, access number, security state) completes an error's ``partial``."""
    transmitter, acc, security = context
    if skip_filler and data[start:start + 2] == _FILLER2:
        start += 2
    if end - start < 4:
        raise DecodeError("too_short", "compact frame needs a 2-byte format signature and a 2-byte CRC",
                          layer="apl", offset=start,
                          partial=_partial(meter, transmitter, acc, _security_dict(security), frame_info))
    signature = data[start] | data[start + 1] << 8
    full_crc = data[start + 2] | data[start + 3] << 8
    manufacturer = meter["manufacturer"]
    fmt = formats.get(manufacturer, meter["id"], signature) if formats is not None else None
    if fmt is None:
        fmt = _drivers.compact_format(manufacturer, signature)
    if fmt is None:
        frame_info["compact"] = {"signature": f"{signature:04X}", "crc_ok": None}  # callers file it under this
        raise DecodeError("unknown_format", f"compact frame with format signature {signature:04X} of "
                          f"{manufacturer} {meter['id']}: format not learned yet (needs a full frame first)",
                          layer="apl", offset=start,
                          partial=_partial(meter, transmitter, acc, _security_dict(security), frame_info))
    try:
        full = _compact.rebuild_full(fmt, data, start + 4, end)
        frame_info["compact"] = {"signature": f"{signature:04X}", "crc_ok": _frame.crc16(full) == full_crc}
        return _apl.decode_records(full)
    except DecodeError as exc:
        exc.partial = _partial(meter, transmitter, acc, _security_dict(security), frame_info)
        raise


def _manufacturer_specific(data, pos, end, ci, meter, acc, security, frame_info) -> dict:
    """CI fields the codec does not know (manufacturer specific A0–B7 etc.): ask the drivers."""
    partial = _partial(meter, None, acc, _security_dict(security), frame_info)
    records = None
    if meter["id"] is not None:
        telegram = {"meter": meter, "transmitter": None, "access_number": acc, "status": None,
                    "security": _security_dict(security), "frame": frame_info, "records": [], "fields": {},
                    "manufacturer_data": None}
        records = _drivers.decode_proprietary(telegram, bytes(data[pos:end]))
        if records is not None:
            telegram["records"] = records
            apply = getattr(_drivers, "apply", None)
            if apply is not None:
                apply(telegram, bytes(data[pos + 1:end]))
            return telegram
    raise DecodeError("unknown_ci", f"unknown or unsupported CI {ci:02X} at offset {pos}", layer="tpl", offset=pos,
                      partial=partial)
