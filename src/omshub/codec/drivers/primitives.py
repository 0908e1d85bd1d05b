"""The byte-level primitives driver data files name: integers, BCD, dates, bit fields, PRIOS.

Every function takes the buffer and an offset and returns a value or ``None`` when the bytes
are absent or mark "no value" (BCD with A–F nibbles, a date of FF FF). None of them raises:
a driver that does not fit a telegram simply yields fewer values.
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal


def _slice(buf: bytes, at: int, size: int) -> bytes | None:
    if at < 0:
        at += len(buf)
    if at < 0 or size <= 0 or at + size > len(buf):
        return None
    return buf[at : at + size]


def _byteorder(endian: str) -> Literal["little", "big"]:
    return "big" if endian == "big" else "little"


def uint(buf: bytes, at: int, size: int, endian: str = "little") -> int | None:
    b = _slice(buf, at, size)
    return None if b is None else int.from_bytes(b, _byteorder(endian))


def sint(buf: bytes, at: int, size: int, endian: str = "little") -> int | None:
    b = _slice(buf, at, size)
    return None if b is None else int.from_bytes(b, _byteorder(endian), signed=True)


def bcd(buf: bytes, at: int, size: int, endian: str = "little") -> int | None:
    """Unsigned BCD (EN 13757-3 type A); a leading F nibble makes it negative; other A–F -> None."""
    b = _slice(buf, at, size)
    if b is None:
        return None
    if endian == "little":
        b = b[::-1]
    digits = b.hex()
    negative = digits[0] == "f"
    if negative:
        digits = digits[1:]
    if not digits.isdigit():
        return None
    value = int(digits) if digits else 0
    return -value if negative else value


def bits(buf: bytes, pieces: list[tuple[int, int, int]]) -> int | None:
    """Concatenate bit pieces ``(byte offset, lowest bit, width)``, least significant piece first."""
    value = 0
    shift = 0
    for at, low, width in pieces:
        b = _slice(buf, at, 1)
        if b is None:
            return None
        value |= ((b[0] >> low) & ((1 << width) - 1)) << shift
        shift += width
    return value


def make_date(year: int, month: int, day: int) -> str | None:
    try:
        return _dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def date_g(buf: bytes, at: int) -> str | None:
    """EN 13757-3 type G (CP16) date; FF FF and impossible dates -> None."""
    b = _slice(buf, at, 2)
    if b is None or b == b"\xff\xff":
        return None
    day = b[0] & 0x1F
    month = b[1] & 0x0F
    year = (b[1] & 0xF0) >> 1 | (b[0] & 0xE0) >> 5
    return make_date(2000 + year if year <= 80 else 1900 + year, month, day)


def date_bcd(buf: bytes, at: int, order: str) -> str | None:
    """Three BCD bytes holding day, month and 2-digit year in ``order`` (e.g. "dmy", "ymd")."""
    b = _slice(buf, at, 3)
    if b is None:
        return None
    parts = {}
    for letter, byte in zip(order, b, strict=False):
        if (byte >> 4) > 9 or (byte & 15) > 9:
            return None
        parts[letter] = (byte >> 4) * 10 + (byte & 15)
    return make_date(2000 + parts["y"], parts["m"], parts["d"])


def prios_key(key_hex: str) -> int:
    """A Diehl PRIOS key (8 bytes hex) folded to the 32-bit LFSR seed: high half XOR low half."""
    raw = bytes.fromhex(key_hex)
    return int.from_bytes(raw[:4], "big") ^ int.from_bytes(raw[4:8], "big")


def prios_descramble(header: bytes, data: bytes, key: int) -> bytes:
    """Diehl PRIOS descrambling (IZAR radio): XOR with a 32-bit LFSR keystream.

    ``header`` is the 12 bytes M M A A A A V T CI h1 h2 h3 (frame bytes 2..13 with L at 0); the
    seed is ``key ^ BE32(header[0:4]) ^ BE32(header[4:8]) ^ BE32(header[8:12])``. Each data byte
    is XORed with the low 8 bits of the register after 8 LFSR steps (feedback = bits 1, 2, 11,
    31). Checked against the IZAR telegrams of the public corpus (first plain byte 0x4B).
    """
    state = (
        key
        ^ int.from_bytes(header[0:4], "big")
        ^ int.from_bytes(header[4:8], "big")
        ^ int.from_bytes(header[8:12], "big")
    )
    out = bytearray(len(data))
    for i, byte in enumerate(data):
        for _ in range(8):
            bit = (state >> 1 ^ state >> 2 ^ state >> 11 ^ state >> 31) & 1
            state = (state << 1 | bit) & 0xFFFFFFFF
        out[i] = byte ^ (state & 0xFF)
    return bytes(out)
