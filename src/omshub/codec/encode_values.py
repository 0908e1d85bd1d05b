"""The encoder's value codings: VIF scale candidates per quantity, the integer, BCD, real, LVAR and
date data fields, and the transmitted integer for a value at a scale.

Used by :mod:`omshub.codec.apl_encode`, which chooses the record headers; each data coding is the
inverse of the decoder's (:mod:`omshub.codec.values`, ``records.decode_general``) for the same header.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import Any, NamedTuple

from omshub.codec import vif as _vif
from omshub.codec.errors import DecodeError
from omshub.codec.tables import (
    D_BCD,
    D_DATE_F,
    D_DATE_G,
    D_DATETIME_F,
    D_INT,
    D_LVAR,
    D_NONE,
    D_RAW,
    D_REAL,
    D_TIME_J,
    D_UINT,
    M_ONE,
    M_ROUND,
    HeaderInfo,
    scale_mode,
)
from omshub.codec.units import QUANTITIES
from omshub.codec.values import F32, real32


class Scale(NamedTuple):
    """A VIF scale as the decoder applies it (tables.scale_mode)."""

    num: int
    den: int
    mode: int
    ndigits: int


def _scale_of(scale: Fraction) -> Scale:
    mode, num, den, ndigits = scale_mode(scale)
    return Scale(scale.numerator, scale.denominator, mode, ndigits)


UNIT_SCALE = Scale(1, 1, M_ONE, 0)
# float arithmetic noise (0.1 + 0.2) tolerated when the encoder picks the scale itself
NOISE = 1e-9


def _candidates() -> dict[str, list[tuple[bytes, Fraction, bool, Scale]]]:
    """quantity -> [(VIF bytes, scale, signed, scale as applied)] to choose from, preferred first."""
    out: dict[str, list[tuple[bytes, Fraction, bool]]] = {}
    for prefix, table in ((b"", _vif.PRIMARY), (b"\xfb", _vif.FB), (b"\xfd", _vif.FD)):
        for code in sorted(table, key=lambda c: -table[c].scale):
            entry = table[code]
            if entry.kind in ("num", "uint"):
                out.setdefault(entry.quantity, []).append((prefix + bytes([code]), entry.scale, entry.kind == "num"))
    for quantity, cands in out.items():
        # decimal steps (and whole seconds for durations); odd factors only when nothing else
        plain = [
            c
            for c in cands
            if (c[1].numerator == 1 and is_pow10(c[1].denominator))
            or (c[1].denominator == 1 and (is_pow10(c[1].numerator) or QUANTITIES[quantity][0] == "s"))
        ]
        if plain:
            out[quantity] = plain
    return {q: [(base, frac, signed, _scale_of(frac)) for base, frac, signed in cands] for q, cands in out.items()}


def is_pow10(x: int) -> bool:
    while x % 10 == 0:
        x //= 10
    return x == 1


CANDIDATES = _candidates()

_INT_FIELDS = ((1, 1), (2, 2), (3, 3), (4, 4), (6, 6), (8, 7))  # (bytes, data field)


def encode_error(index: int, message: str) -> DecodeError:
    return DecodeError("invalid_record", f"record {index}: {message}", layer="apl")


def date_field(value: str) -> int:
    """The data field (date type) for an ISO date/time string."""
    if value.startswith("--"):
        return 2
    if len(value) == 8:
        return 3
    if len(value) == 10:  # type G holds years 1981-2080, type F up to 2299
        return 2 if value[:4].isdigit() and 1981 <= int(value[:4]) <= 2080 else 4
    return 6 if len(value) > 16 else 4


def raw_of(value: int | float, scale: Scale, rel_tol: float = 0.0) -> int | None:
    """The transmitted integer that decodes to exactly ``value`` (for a float: to the same
    float), or within ``rel_tol``; None if there is none."""
    num, den, mode, ndigits = scale
    if isinstance(value, int):
        q, rem = divmod(value * den, num)
        return q if rem == 0 else None
    if not math.isfinite(value):
        return None
    p, q = value.as_integer_ratio()  # exact: float products would lose the low digits
    r = (2 * p * den + q * num) // (2 * q * num)
    # beyond 2^50 several integers decode to the same float: try the neighbours too
    for candidate in (r, r - 1, r + 1, r - 2, r + 2, r - 3, r + 3, r - 4, r + 4)[: 1 if -(2**50) < r < 2**50 else 9]:
        decoded = candidate * num / den
        if mode == M_ROUND:
            decoded = round(decoded, ndigits)
        if decoded == value:
            return candidate
    if rel_tol and abs(r * num / den - value) <= rel_tol * abs(value):
        return r
    return None


def to_raw(value: Any, scale: Scale, index: int, *, rel_tol: float = 0.0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise encode_error(index, f"value {value!r} is not a number")
    raw = raw_of(value, scale, rel_tol)
    if raw is None:
        raise encode_error(index, f"value {value!r} is not a whole multiple of the VIF scale {scale.num}/{scale.den}")
    return raw


def int_field_for(raw: int, signed: bool) -> int | None:
    """Smallest integer data field holding ``raw`` (type B signed or C unsigned), or None."""
    for size, dfield in _INT_FIELDS:
        if signed and -(1 << (8 * size - 1)) <= raw < (1 << (8 * size - 1)):
            return dfield
        if not signed and 0 <= raw < (1 << (8 * size)):
            return dfield
    return None


def encode_data(info: HeaderInfo, rec: dict[str, Any], index: int, rel_tol: float = 0.0) -> bytes:
    dec = info.decoder
    value: Any = rec.get("value")
    if dec == D_NONE:
        return b""
    if (
        value is None
        or dec == D_RAW
        or (dec == D_LVAR and info.lvar_raw and not isinstance(value, str))
        or (dec == D_DATE_F and rec.get("raw"))
    ):  # a date with a time of day: the bytes as sent
        raw = rec.get("raw")
        if raw is None:
            raise encode_error(index, "no value and no raw bytes to encode")
        try:
            b = bytes.fromhex(raw)
        except (ValueError, TypeError):
            raise encode_error(index, f"raw {raw!r} is not hex") from None
        if dec == D_LVAR:
            return _lvar_prefix(b, info, bool(rec.get("error_value")), index) + b
        if len(b) != info.dlen:
            raise encode_error(index, f"raw has {len(b)} bytes, the data field needs {info.dlen}")
        return b
    scale = Scale(info.num, info.den, info.mode, info.ndigits)
    if dec in (D_INT, D_UINT):
        raw = to_raw(value, scale, index, rel_tol=rel_tol)
        try:
            return raw.to_bytes(info.dlen, "little", signed=dec == D_INT)
        except OverflowError:
            raise encode_error(index, f"value {value!r} does not fit {info.dlen} bytes") from None
    if dec == D_BCD:
        raw = to_raw(value, scale, index)
        digits = 2 * info.dlen
        text = str(raw) if raw >= 0 else "f" + str(-raw).rjust(digits - 1, "0")
        if len(text) > digits:
            raise encode_error(index, f"value {value!r} does not fit {digits} BCD digits")
        return bytes.fromhex(text.rjust(digits, "0"))[::-1]
    if dec == D_REAL:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise encode_error(index, f"value {value!r} is not a number")
        x = value * scale.den / scale.num
        try:
            if not math.isfinite(x):
                raise OverflowError
            packed = F32.pack(x)
        except (OverflowError, struct.error):
            raise encode_error(index, f"value {value!r} does not fit an IEEE single") from None
        return _nearest_real(packed, value, scale)
    if dec == D_LVAR:
        if isinstance(value, str) and info.lvar_dates is not None:  # a date as an LVAR binary number
            raw = rec.get("raw")
            if raw and len(raw) == 8 and 4 in info.lvar_dates:  # type F with a time of day, as sent
                return b"\xe4" + bytes.fromhex(raw)
            size = date_field(value)  # data fields 2/3/4/6 hold 2/3/4/6 bytes
            spec = info.lvar_dates.get(size) or info.lvar_dates.get(4)
            if spec is None:
                raise encode_error(index, f"{value!r} has no date type under this VIF")
            data = encode_date(spec[0], value, bool(rec.get("dst")), index)
            return bytes([0xE0 + len(data)]) + data
        if isinstance(value, str):
            encoded = value.encode("latin-1", "replace")[::-1]
            if len(encoded) >= 0xC0:
                raise encode_error(index, "text longer than 191 characters")
            return bytes([len(encoded)]) + encoded
        raw = to_raw(value, scale, index)
        size = max(1, (raw.bit_length() + (8 if info.signed else 7)) // 8)
        if size > 8 or (raw < 0 and not info.signed):
            raise encode_error(index, f"value {value!r} does not fit an LVAR binary number")
        return bytes([0xE0 + size]) + raw.to_bytes(size, "little", signed=info.signed)
    if not isinstance(value, str):
        raise encode_error(index, f"date/time value {value!r} is not a string")
    return encode_date(dec, value, bool(rec.get("dst")), index)


def _real_value(packed: bytes, scale: Scale) -> float | None:
    """What the decoder makes of these IEEE single bytes (records.decode_general, D_REAL)."""
    r = real32(packed)
    if r is None:
        return None
    x, digits = r
    return float(f"{(x if scale.mode == M_ONE else x * scale.num / scale.den):.{digits}g}")


def _nearest_real(packed: bytes, value: float, scale: Scale) -> bytes:
    """The single that decodes to ``value`` itself: the one nearest to value/scale, or a
    neighbour a few steps away (the decoder rounds a scaled single to the single's own
    significant digits, so the nearest single can read back one digit short)."""
    if _real_value(packed, scale) == value:
        return packed
    bits = int.from_bytes(packed, "little")
    for step in (1, -1, 2, -2, 3, -3):
        candidate = ((bits + step) & 0xFFFFFFFF).to_bytes(4, "little")
        if _real_value(candidate, scale) == value:
            return candidate
    return packed


def _lvar_prefix(b: bytes, info: HeaderInfo, error_value: bool, index: int) -> bytes:
    """The LVAR byte for raw data: invalid BCD stays BCD, big binary numbers stay binary."""
    size = len(b)
    # an invalid value read from BCD stays BCD; one read as a binary date (a date header's LVAR of a
    # date type's size) stays binary, or it would come back as BCD without its error flag
    binary_date = info.lvar_dates is not None and size in info.lvar_dates
    if error_value and binary_date:
        return bytes([0xE0 + size])
    if error_value and size <= 9:
        return bytes([0xC0 + size])
    if not error_value and not info.lvar_raw:
        if size <= 15:
            return bytes([0xE0 + size])
        code = {16: 0xF0, 20: 0xF1, 24: 0xF2, 28: 0xF3, 32: 0xF4, 48: 0xF5, 64: 0xF6}.get(size)
        if code is not None:
            return bytes([code])
    if size >= 0xC0:
        raise encode_error(index, "raw LVAR data longer than 191 bytes")
    return bytes([size])


def _parse_iso(text: str, index: int) -> tuple[int, ...]:
    try:
        date, _, clock = text.partition("T")
        y, mo, d = (int(x) for x in date.split("-"))
        parts = [int(x) for x in clock.split(":")] if clock else []
    except ValueError:
        raise encode_error(index, f"{text!r} is not an ISO date/time") from None
    h, mi, s = (parts + [0, 0, 0])[:3]
    if not (1 <= mo <= 12 and 1 <= d <= 31 and 0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59):
        raise encode_error(index, f"{text!r} is out of range")
    return y, mo, d, h, mi, s


def encode_date(dec: int, text: str, dst: bool, index: int) -> bytes:
    if dec == D_TIME_J:
        try:
            h, mi, s = (int(x) for x in text.split(":"))
        except ValueError:
            raise encode_error(index, f"{text!r} is not HH:MM:SS") from None
        if not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59):
            raise encode_error(index, f"{text!r} is out of range")
        return bytes([s, mi, h])
    if dec == D_DATE_G and text.startswith("--"):  # periodic date (year 127)
        try:
            month, day = (0, int(text[3:])) if text.startswith("---") else map(int, text[2:].split("-"))
        except ValueError:
            raise encode_error(index, f"{text!r} is not a periodic ISO date") from None
        if not (0 <= month <= 12 and 1 <= day <= 31):
            raise encode_error(index, f"{text!r} is out of range")
        return bytes([0xE0 | day, 0xF0 | month])
    y, mo, d, h, mi, s = _parse_iso(text, index)
    if dec in (D_DATETIME_F, D_DATE_F):
        if 2000 <= y <= 2299:
            hundred, yy = divmod(y - 1900, 100)
        elif 1981 <= y <= 1999:
            hundred, yy = 0, y - 1900
        else:
            raise encode_error(index, f"year {y} cannot be coded in type F")
        return bytes([mi, (0x80 if dst else 0) | (hundred << 5) | h, ((yy & 7) << 5) | d, ((yy >> 3) << 4) | mo])
    if not 1981 <= y <= 2080:
        raise encode_error(index, f"year {y} cannot be coded in a two-digit year")
    yy = y % 100
    if dec == D_DATE_G:
        return bytes([((yy & 7) << 5) | d, ((yy >> 3) << 4) | mo])
    return bytes([(0x40 if dst else 0) | s, mi, h, ((yy & 7) << 5) | d, ((yy >> 3) << 4) | mo, 0])
