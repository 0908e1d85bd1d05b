"""The encoder: records in the uniform format -> a wM-Bus frame (for tests, the simulator, benchmarks).

Layer by layer the inverse of :mod:`omshub.codec.telegram`: APL (``apl.encode_records`` or
``compact.encode_compact``) -> security (mode 0/5/7) -> TPL header -> [AFL] -> [ELL 8C/8D] -> DLL ->
optional format A/B block CRCs or a wired M-Bus long frame.
"""

from __future__ import annotations

from typing import Any

from omshub.codec.apl_encode import encode_records
from omshub.codec.compact import encode_compact, format_signature
from omshub.codec.errors import DecodeError
from omshub.codec.frame import crc16
from omshub.codec.link import id_bytes, manufacturer_value
from omshub.codec.security import KeyContext, cbc_encrypt, check_key, cmac, ctr_xcrypt, kdf, mode5_iv

_CI = {
    ("short", False): 0x7A,
    ("long", False): 0x72,
    ("none", False): 0x78,
    ("short", True): 0x7B,
    ("long", True): 0x73,
    ("none", True): 0x79,
}


def _bad(message: str) -> DecodeError:
    return DecodeError("invalid_frame", message, layer="encode")


def _address(meter: dict[str, Any]) -> tuple[bytes, bytes, int, int]:
    """(M LE, ID LE, version, type) of an address dict."""
    try:
        m = manufacturer_value(meter["manufacturer"]).to_bytes(2, "little")
        ident = id_bytes(str(meter["id"]))
        version = int(meter.get("version", 0))
        dtype = int(meter.get("device_type_code", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(f"bad address {meter!r}: {exc}") from None
    if not (0 <= version <= 255 and 0 <= dtype <= 255):
        raise _bad(f"version and device_type_code must be bytes in {meter!r}")
    return m, ident, version, dtype


def _apl_bytes(records: list[dict[str, Any]], compact: bool, manufacturer_data: bytes | None) -> bytes:
    full = encode_records(records)
    if manufacturer_data is not None:
        full += b"\x0f" + bytes(manufacturer_data)
    if not compact:
        return full
    fmt, values = encode_compact(records)
    signature = format_signature(fmt)
    full_records = encode_records(records)
    return signature.to_bytes(2, "little") + crc16(full_records).to_bytes(2, "little") + values


def _pad(plain: bytes) -> bytes:
    rest = len(plain) % 16
    return plain + b"\x2f" * (16 - rest) if rest else plain


def add_format_a(frame: bytes) -> bytes:
    """Insert format-A block CRCs into a CRC-less frame (L unchanged)."""
    out = bytearray(frame[:10])
    out += crc16(frame[:10]).to_bytes(2, "big")
    for i in range(10, len(frame), 16):
        block = frame[i : i + 16]
        out += block
        out += crc16(block).to_bytes(2, "big")
    return bytes(out)


def add_format_b(frame: bytes) -> bytes:
    """Insert format-B CRCs into a CRC-less frame and set L to count them."""
    size = len(frame)
    if size + 2 <= 128:
        body = bytearray(frame)
        body[0] = size + 1
        return bytes(body) + crc16(body).to_bytes(2, "big")
    if size + 4 > 256:
        raise DecodeError("too_long", f"frame of {size} bytes too long for format B", layer="encode")
    body = bytearray(frame)
    body[0] = size + 3
    first, rest = bytes(body[:126]), bytes(body[126:])
    return first + crc16(first).to_bytes(2, "big") + rest + crc16(rest).to_bytes(2, "big")


def wired_frame(c_field: int, primary_address: int, rest: bytes) -> bytes:
    """A wired M-Bus long frame 68 L L 68 C A CI… CS 16 around ``rest`` (CI onwards)."""
    body = bytes((c_field, primary_address)) + rest
    if len(body) > 255:
        raise DecodeError("too_long", f"wired M-Bus frame body of {len(body)} bytes exceeds 255", layer="encode")
    return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((sum(body) & 0xFF, 0x16))


def encode_telegram(
    meter: dict[str, Any],
    records: list[dict[str, Any]],
    *,
    mode: int = 0,
    key: bytes | None = None,
    access_number: int = 0,
    status: int = 0,
    tpl: str = "short",
    ell: str | None = None,
    transmitter: dict[str, Any] | None = None,
    compact: bool = False,
    frame_format: str | None = None,
    c_field: int = 0x44,
    manufacturer_data: bytes | None = None,
    message_counter: int | None = None,
    apl: bytes | None = None,
    ell_session: int | None = None,
    primary_address: int = 0,
) -> bytes:
    """Build one telegram (see the codec contract). Extras: ``message_counter`` (mode 7 AFL MCR,
    default ``access_number``), ``apl`` (raw APL bytes instead of ``records``), ``ell_session``
    (ELL 8D session number, default derived from the access number), ``frame_format="mbus"`` (wired
    long frame, needs ``tpl="long"``; ``primary_address``)."""
    _check_options(mode, key, access_number, status, tpl, ell, transmitter, compact, frame_format, manufacturer_data)
    ctx = None
    if key is not None:
        check_key(key)
        ctx = KeyContext(key)

    body = bytes(apl) if apl is not None else _apl_bytes(records, compact, manufacturer_data)
    m, ident, version, dtype = _address(meter)
    ci = _CI[(tpl, bool(compact))]
    header = bytes((ci,))
    if tpl == "long":
        header += ident + m + bytes((version, dtype))
    if mode == 0:
        if tpl != "none":
            header += bytes((access_number, status, 0, 0))
        rest = header + body
    elif mode == 5:
        plain = _pad(b"\x2f\x2f" + body)
        header += bytes((access_number, status)) + _cfg(5, plain).to_bytes(2, "little")
        iv = mode5_iv(m + ident + bytes((version, dtype)), access_number)
        rest = header + cbc_encrypt(ctx, iv, plain)  # type: ignore[arg-type]  # checked: a key is given
    else:
        counter = (access_number if message_counter is None else message_counter).to_bytes(4, "little")
        rest = _mode7(ctx, header + bytes((access_number, status)), body, counter, ident)  # type: ignore[arg-type]

    if transmitter is not None:
        dll_m, dll_id, dll_version, dll_type = _address(transmitter)
    else:
        dll_m, dll_id, dll_version, dll_type = m, ident, version, dtype
    dll_address = dll_m + dll_id + bytes((dll_version, dll_type))
    if ell == "8C":
        rest = bytes((0x8C, 0x20, access_number)) + rest
    elif ell == "8D":
        rest = _ell_8d(ctx, dll_address, access_number, ell_session, rest)  # type: ignore[arg-type]

    if frame_format == "mbus":
        if tpl != "long" or ell is not None or mode == 7:
            raise _bad("a wired M-Bus frame needs tpl='long' and no ELL/AFL")
        return wired_frame(0x08 if c_field == 0x44 else c_field, primary_address, rest)
    frame = bytes((0, c_field)) + dll_address + rest
    if len(frame) > 256:
        raise DecodeError("too_long", f"frame of {len(frame)} bytes exceeds the L-field maximum 255", layer="encode")
    frame = bytes((len(frame) - 1,)) + frame[1:]
    if frame_format == "A":
        return add_format_a(frame)
    if frame_format == "B":
        return add_format_b(frame)
    return frame


def _check_options(
    mode: int,
    key: bytes | None,
    access_number: int,
    status: int,
    tpl: str,
    ell: str | None,
    transmitter: dict[str, Any] | None,
    compact: bool,
    frame_format: str | None,
    manufacturer_data: bytes | None,
) -> None:
    """``DecodeError`` for options that do not go together."""
    if tpl not in ("short", "long", "none"):
        raise _bad(f"tpl must be short, long or none, not {tpl!r}")
    if ell not in (None, "8C", "8D"):
        raise _bad(f"ell must be None, '8C' or '8D', not {ell!r}")
    if frame_format not in (None, "A", "B", "mbus"):
        raise _bad(f"frame_format must be None, 'A', 'B' or 'mbus', not {frame_format!r}")
    if mode not in (0, 5, 7):
        raise DecodeError(
            "unsupported_security_mode", f"the encoder supports modes 0, 5 and 7, not {mode}", layer="encode"
        )
    if mode and tpl == "none":
        raise _bad(f"security mode {mode} needs a TPL header (tpl='short' or 'long')")
    if transmitter is not None and tpl != "long":
        raise _bad("a transmitter address needs tpl='long' (the meter address travels in the TPL)")
    if (mode or ell == "8D") and key is None:
        raise _bad("encryption needs a key")
    if not (0 <= access_number <= 255 and 0 <= status <= 255):
        raise _bad("access_number and status must be bytes")
    if compact and manufacturer_data is not None:
        raise _bad("a compact frame cannot carry manufacturer data (its format covers records only)")


def _cfg(mode: int, plain: bytes) -> int:
    """The TPL configuration word of ``plain`` encrypted in ``mode`` (at most 15 blocks)."""
    blocks = len(plain) // 16
    if blocks > 15:
        raise DecodeError("too_long", f"{blocks} encrypted blocks; mode {mode} allows at most 15", layer="encode")
    return mode << 8 | blocks << 4


def _mode7(ctx: KeyContext, header: bytes, body: bytes, counter: bytes, ident: bytes) -> bytes:
    """AFL + TPL of a mode 7 telegram: ``header`` (CI, address, ACC, STS) completed with the
    configuration, the payload encrypted with the derived key, the AFL MAC over it."""
    plain = _pad(b"\x2f\x2f" + body)
    header += _cfg(7, plain).to_bytes(2, "little") + b"\x10"
    kenc = kdf(ctx, 0, counter, ident)
    kmac = kdf(ctx, 1, counter, ident)
    tpl_bytes = header + cbc_encrypt(KeyContext(kenc), bytes(16), plain)
    mcl = 0x25
    mac = cmac(kmac, bytes((mcl,)) + counter + tpl_bytes)[:8]
    return bytes((0x90, 0x0F, 0x00, 0x2C, mcl)) + counter + mac + tpl_bytes


def _ell_8d(ctx: KeyContext, dll_address: bytes, access_number: int, ell_session: int | None, rest: bytes) -> bytes:
    """An ELL 8D (AES-CTR, PayloadCRC) around ``rest``."""
    session = ell_session if ell_session is not None else (access_number << 4) & 0x1FFFFFFF
    sn = ((1 << 29) | (session & 0x1FFFFFFF)).to_bytes(4, "little")
    cc = 0x20
    payload = crc16(rest).to_bytes(2, "little") + rest
    icb = dll_address + bytes((cc & 0xED,)) + sn + b"\x00\x00\x00"
    return bytes((0x8D, cc, access_number)) + sn + ctr_xcrypt(ctx, icb, payload)
