"""Data-field codings of the record layer (docs/protocol.md §8.3): BCD (type A), the date and time
types G, F, I and J, IEEE single (real32), the LVAR length byte, and a header's scale applied to a
raw number. Pure functions shared by the record decoder, the layout memo and the encoder.
"""

from __future__ import annotations

import math
import struct

from omshub.codec.tables import D_DATE_F, D_DATE_G, D_DATETIME_I, D_TIME_J, M_DIV, M_MUL, M_ONE, HeaderInfo, Record

F32 = struct.Struct("<f")

Number = int | float


def bcd(b: bytes) -> int | None:
    """Type A: unsigned BCD, LE; top nibble F = negative; any other A-F digit -> None."""
    if not b:
        return 0
    s = b[::-1].hex()
    if s.isdigit():
        return int(s)
    if s[0] == "f" and (len(s) == 1 or s[1:].isdigit()):
        return -int(s[1:] or "0")
    return None


def _year(y: int) -> int:
    return 2000 + y if y <= 80 else 1900 + y


def date_g(b: bytes) -> str | None:
    """Type G date (2 bytes) as ISO 8601, periodic dates as ``--MM-DD`` / ``---DD``; None if invalid."""
    if b[0] == 0xFF and b[1] == 0xFF:
        return None
    day, month = b[0] & 0x1F, b[1] & 0x0F
    year = (b[0] >> 5) | ((b[1] & 0xF0) >> 1)
    if year == 127 and 1 <= day <= 31:  # periodic: ISO 8601 "--MM-DD" every year, "---DD" every month
        if month == 0:
            return f"---{day:02d}"
        return f"--{month:02d}-{day:02d}" if month <= 12 else None
    if not (1 <= day <= 31 and 1 <= month <= 12 and year <= 99):
        return None
    return f"{_year(year):04d}-{month:02d}-{day:02d}"


def datetime_f(b: bytes) -> tuple[str, bool] | None:
    """Type F date and time (4 bytes) -> (ISO text to the minute, summer-time flag); None if invalid."""
    if b[0] & 0x80:
        return None  # IV: invalid
    minute, hour, day, month = b[0] & 0x3F, b[1] & 0x1F, b[2] & 0x1F, b[3] & 0x0F
    year = (b[2] >> 5) | ((b[3] & 0xF0) >> 1)
    hundred = (b[1] >> 5) & 3
    if not (minute <= 59 and hour <= 23 and 1 <= day <= 31 and 1 <= month <= 12 and year <= 99):
        return None
    full_year = 1900 + 100 * hundred + year if hundred else _year(year)
    return f"{full_year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}", bool(b[1] & 0x80)


def datetime_i(b: bytes) -> tuple[str, bool] | None:
    """Type I date and time (6 bytes) -> (ISO text to the second, summer-time flag); None if invalid."""
    if b[1] & 0x80:
        return None
    second, minute, hour = b[0] & 0x3F, b[1] & 0x3F, b[2] & 0x1F
    day, month = b[3] & 0x1F, b[4] & 0x0F
    year = (b[3] >> 5) | ((b[4] & 0xF0) >> 1)
    if not (second <= 59 and minute <= 59 and hour <= 23 and 1 <= day <= 31 and 1 <= month <= 12 and year <= 99):
        return None
    return (f"{_year(year):04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}", bool(b[0] & 0x40))


def time_j(b: bytes) -> str | None:
    """Type J time of day (3 bytes) as ``HH:MM:SS``; None if invalid."""
    second, minute, hour = b[0] & 0x3F, b[1] & 0x3F, b[2] & 0x1F
    if second > 59 or minute > 59 or hour > 23:
        return None
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def real32(b: bytes) -> tuple[float, int] | None:
    """IEEE single -> (shortest decimal float that maps back to the same single, digits)."""
    x: float = F32.unpack(b)[0]
    if not math.isfinite(x):
        return None
    for digits in (6, 7, 8, 9):
        short = float(f"{x:.{digits}g}")
        if F32.unpack(F32.pack(short))[0] == x:
            return short, digits
    return x, 17  # pragma: no cover - 9 digits always round-trip a single


def scaled(raw: int, info: HeaderInfo) -> Number:
    """A raw integer with the header's scale applied (float for quantities that are floats)."""
    mode = info.mode
    if mode == M_ONE:
        return float(raw) if info.is_float else raw
    if mode == M_MUL:
        v = raw * info.num
        # beyond 64 bits an int is not portable JSON (orjson, JavaScript): a float then
        return float(v) if info.is_float or not -(1 << 63) <= v < (1 << 64) else v
    if mode == M_DIV:
        return raw * info.num / info.den
    return round(raw * info.num / info.den, info.ndigits)


def date_value(dec: int, b: bytes, rec: Record) -> None:
    """Put the date/time of data ``b`` (decoder ``dec``) into ``rec``: ``value``, plus ``dst`` for a
    summer-time flag, or ``error_value`` and ``raw`` when it is invalid."""
    v: str | None
    if dec == D_DATE_G:
        v = date_g(b)
    elif dec == D_TIME_J:
        v = time_j(b)
    else:
        r = datetime_i(b) if dec == D_DATETIME_I else datetime_f(b)
        v = None
        if r is not None:
            v, dst = r
            if dec == D_DATE_F:
                if not v.endswith("T00:00"):
                    rec["raw"] = b.hex()  # the time of day has no place in a date: kept, not dropped
                v = v[:10]
            elif dst:
                rec["dst"] = True
    if v is None:
        rec["error_value"] = True
        rec["raw"] = b.hex()
    else:
        rec["value"] = v


def lvar_size(lv: int) -> int | None:
    """Data bytes after an LVAR byte (docs/protocol.md §8.3); None for reserved codes."""
    if lv < 0xC0:
        return lv
    if lv <= 0xC9 or 0xD0 <= lv <= 0xD9:
        return lv & 0x0F
    if 0xE0 <= lv <= 0xEF:
        return lv - 0xE0
    if 0xF0 <= lv <= 0xF4:
        return 4 * (lv - 0xEC)
    return {0xF5: 48, 0xF6: 64}.get(lv)
