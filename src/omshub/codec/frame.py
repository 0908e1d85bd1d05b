"""Frame recovery: raw receiver bytes -> one CRC-less wM-Bus frame (or a wired M-Bus long frame).

Input is whatever a receiver delivered: a wM-Bus frame with format A or B block CRCs, one
already stripped of CRCs (most dongles), possibly with trailing receiver bytes (RSSI, a dongle
CRC) or a slightly wrong L-field, or a wired M-Bus long frame ``68 L L 68 C A CI .. CS 16``.
Output is a :class:`Frame`: the CRC-less bytes, where the L-counted message ends, the kind and
the CRC format that was found. See docs/protocol.md §2.
"""

from __future__ import annotations

from array import array
from struct import unpack_from as _unpack_from

from .errors import DecodeError

# Receiver bytes after a CRC-less frame's L-counted message (RSSI, LQI, a dongle's own CRC; the
# real-meter corpus has up to 4); more mean a damaged L-field or a damaged frame with CRCs.
_MAX_TRAILER = 4
MAX_INPUT = 1024  # bytes; a wM-Bus frame is at most 256 + CRCs, a wired long frame 261

_POLY = 0x3D65


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


# Two bytes per step: after a whole 16-bit word the register depends only on (register ^ word).
# An array of 16-bit numbers (128 KiB) rather than a list of int objects: it stays in the CPU
# caches, which makes the CRC about twice as fast.


def _make_table16() -> array[int]:
    """entry (hi << 8) | lo = _TABLE[(_TABLE[hi] >> 8) ^ lo] ^ ((_TABLE[hi] << 8) & 0xFFFF).

    The table is linear (T[a ^ b] = T[a] ^ T[b]), so row ``hi`` is the one-byte table XOR one
    constant: 256 XORs of a 512-byte row as a number, not 65,536 Python steps (start-up)."""
    row = array("H", _TABLE).tobytes()
    row_number = int.from_bytes(row, "little")
    rows = []
    for hi in range(256):
        t = _TABLE[hi]
        constant = _TABLE[t >> 8] ^ ((t << 8) & 0xFFFF)
        lanes = int.from_bytes(array("H", (constant,)).tobytes() * 256, "little")
        rows.append((row_number ^ lanes).to_bytes(len(row), "little"))
    table = array("H")
    table.frombytes(b"".join(rows))
    return table


_TABLE16 = _make_table16()


def crc16(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """CRC-16/EN-13757 (poly 0x3D65, init 0, no reflection, xorout 0xFFFF) of data[start:end]."""
    if end is None:
        end = len(data)
    size = end - start
    crc = 0
    if size >= 2:
        table = _TABLE16
        for word in _unpack_from(f">{size >> 1}H", data, start):
            crc = table[crc ^ word]
    if size & 1:
        crc = _TABLE[(crc >> 8) ^ data[end - 1]] ^ ((crc << 8) & 0xFFFF)
    return crc ^ 0xFFFF


class Frame:
    """A recovered frame.

    ``data`` holds the CRC-less bytes starting at L (for wired M-Bus: starting at C, see
    ``kind``); ``end`` is where the L-counted message ends in ``data`` (bytes after it are
    receiver metadata, kept because some published telegrams have an L-field that is too
    small); ``crc`` is ``"A"``, ``"B"`` or ``None``; ``kind`` is ``"wmbus"`` or ``"mbus"``.
    """

    __slots__ = ("data", "end", "crc", "kind")

    def __init__(self, data: bytes, end: int, crc: str | None, kind: str = "wmbus") -> None:
        self.data = data
        self.end = end
        self.crc = crc
        self.kind = kind


def format_a_length(length_field: int) -> int:
    """Bytes on air (incl. L and all CRCs) of a format-A frame with this L-field."""
    rest = length_field - 9
    blocks = 1 + (rest + 15) // 16 if rest > 0 else 1
    return length_field + 1 + 2 * blocks


def strip_format_a(raw: bytes) -> bytes | None:
    """The frame without its format-A block CRCs, or None when the layout or a CRC does not fit.

    Raises DecodeError(crc_error) when the length fits format A, the first block's CRC is right
    and a later block's CRC is wrong: that is a corrupted format-A frame, not another format.
    """
    length_field = raw[0]
    if length_field < 9:
        return None
    total = format_a_length(length_field)
    if len(raw) < total:
        return None
    if crc16(raw, 0, 10) != (raw[10] << 8 | raw[11]):
        return None
    out = bytearray(raw[0:10])
    pos = 12
    remaining = length_field - 9
    block = 2
    while remaining > 0:
        size = 16 if remaining > 16 else remaining
        crc = raw[pos + size] << 8 | raw[pos + size + 1]
        if crc16(raw, pos, pos + size) != crc:
            raise DecodeError(
                "crc_error",
                f"format A block {block} CRC failed (bytes {pos}..{pos + size - 1})",
                layer="frame",
                offset=pos,
            )
        out += raw[pos : pos + size]
        pos += size + 2
        remaining -= size
        block += 1
    return bytes(out)


def strip_format_b(raw: bytes) -> bytes | None:
    """The frame without its format-B CRCs (L rewritten to the CRC-less length), or None."""
    length_field = raw[0]
    total = length_field + 1
    if length_field < 12 or len(raw) < total:
        return None
    if total <= 128:
        if crc16(raw, 0, total - 2) != (raw[total - 2] << 8 | raw[total - 1]):
            return None
        body = bytearray(raw[: total - 2])
    else:
        if crc16(raw, 0, 126) != (raw[126] << 8 | raw[127]):
            return None
        if crc16(raw, 128, total - 2) != (raw[total - 2] << 8 | raw[total - 1]):
            raise DecodeError(
                "crc_error", f"format B block 3 CRC failed (bytes 128..{total - 3})", layer="frame", offset=128
            )
        body = bytearray(raw[:126])
        body += raw[128 : total - 2]
    body[0] = len(body) - 1
    return bytes(body)


def recover_wired(raw: bytes) -> Frame:
    """Check a wired M-Bus long frame (68 L L 68 C A CI … CS 16); ``data`` starts at C."""
    if len(raw) < 9:
        raise DecodeError(
            "too_short", f"wired M-Bus frame of {len(raw)} bytes (at least 9 needed)", layer="frame", offset=0
        )
    length_field = raw[1]
    if raw[2] != length_field or raw[3] != 0x68:
        raise DecodeError("invalid_frame", "wired M-Bus long frame must start 68 L L 68", layer="frame", offset=0)
    if length_field < 3:
        raise DecodeError(
            "invalid_frame", f"wired M-Bus L-field {length_field} < 3 (C, A, CI)", layer="frame", offset=1
        )
    if len(raw) < length_field + 6:
        raise DecodeError(
            "length_mismatch",
            f"wired M-Bus L-field {length_field} needs {length_field + 6} bytes, got {len(raw)}",
            layer="frame",
            offset=1,
        )
    body = raw[4 : 4 + length_field]
    checksum = sum(body) & 0xFF
    if raw[4 + length_field] != checksum:
        raise DecodeError(
            "crc_error",
            f"wired M-Bus checksum {raw[4 + length_field]:02X} != computed {checksum:02X}",
            layer="frame",
            offset=4 + length_field,
        )
    if raw[5 + length_field] != 0x16:
        raise DecodeError(
            "invalid_frame", "wired M-Bus long frame must end with 16", layer="frame", offset=5 + length_field
        )
    return Frame(bytes(body), len(body), None, "mbus")


def recover(raw: bytes, crc: str = "auto", detect_b: bool = True) -> Frame:
    """Detect the frame format of ``raw`` and return the CRC-less frame.

    Order: a wired long frame (68 L L 68 … 16); format A with CRCs (its length and first-block
    CRC are conclusive); format B with CRCs (unless ``detect_b`` is False: then the caller weighs
    the B reading, see :func:`omshub.codec.telegram.decode`); otherwise the bytes are taken as CRC-less, the
    message ending at L + 1 (fewer bytes than L announces are tolerated and left to the layers
    above to judge; more are receiver metadata).
    """
    size = len(raw)
    if size > MAX_INPUT:
        raise DecodeError(
            "too_long", f"frame of {size} bytes exceeds the {MAX_INPUT}-byte bound", layer="frame", offset=MAX_INPUT
        )
    first = raw[0] if size else -1
    # a wired long frame may be shorter than any wM-Bus frame (9 bytes: L = 3, C A CI; the
    # application error reply has L = 4)
    if size >= 9 and first == 0x68 and raw[3] == 0x68 and raw[1] == raw[2] and raw[-1] == 0x16:
        return recover_wired(raw)
    if size < 11:
        raise DecodeError(
            "too_short",
            f"frame of {size} bytes; a wM-Bus frame has at least 11 (L C M A CI)",
            layer="frame",
            offset=size,
        )
    if crc == "auto":
        if first >= 9 and size >= format_a_length(first):
            stripped = strip_format_a(raw)
            if stripped is not None:
                return Frame(stripped, len(stripped), "A")
            if size == format_a_length(first) and size - first - 1 > _MAX_TRAILER:
                # Exactly a format-A frame's length, but as a CRC-less one it would carry more
                # receiver bytes than any receiver appends: a format-A frame damaged in block 1.
                raise DecodeError("crc_error", "format A block 1 CRC failed (bytes 0..9)", layer="frame", offset=10)
        elif first >= 9 and size >= 12 and crc16(raw, 0, 10) == (raw[10] << 8 | raw[11]):
            # block 1's CRC verifies (a 1 in 65,536 chance for other bytes): a format-A frame cut short
            raise DecodeError(
                "length_mismatch",
                f"format A frame of {size} bytes cut short: its L-field {first} needs {format_a_length(first)}",
                layer="frame",
                offset=size,
            )
        if detect_b and size >= first + 1:
            stripped = strip_format_b(raw)
            if stripped is not None:
                return Frame(stripped, len(stripped), "B")
    elif crc != "none":
        stripped = _strip_required(raw, crc)
        return Frame(stripped, len(stripped), crc)
    if first < 10:
        raise DecodeError(
            "length_mismatch",
            f"L-field {first} is too small for a wM-Bus header (at least 10)",
            layer="frame",
            offset=0,
        )
    end = first + 1
    if end > size:
        end = size
    elif size - end > _MAX_TRAILER:
        raise DecodeError(
            "length_mismatch",
            f"L-field {first} announces {end} bytes but {size} follow: more "
            f"than the {_MAX_TRAILER} a receiver appends (a damaged L-field, or CRCs that do not "
            "fit format A or B)",
            layer="frame",
            offset=0,
        )
    return Frame(bytes(raw), end, None)


def _strip_required(raw: bytes, crc: str) -> bytes:
    first = raw[0]
    if crc == "A":
        if first < 10 or len(raw) < format_a_length(first):
            raise DecodeError(
                "length_mismatch",
                f"L-field {first} needs {format_a_length(first)} bytes in format A, got {len(raw)}",
                layer="frame",
                offset=0,
            )
        stripped = strip_format_a(raw)
        if stripped is None:
            raise DecodeError("crc_error", "format A block 1 CRC failed (bytes 0..9)", layer="frame", offset=10)
        return stripped
    if first < 12 or len(raw) < first + 1:
        raise DecodeError(
            "length_mismatch",
            f"L-field {first} needs {first + 1} bytes in format B, got {len(raw)}",
            layer="frame",
            offset=0,
        )
    stripped = strip_format_b(raw)
    if stripped is None:
        last = min(first + 1, 128) - 3
        raise DecodeError("crc_error", f"format B block 2 CRC failed (bytes 0..{last})", layer="frame", offset=0)
    return stripped


def b_possible(raw: bytes) -> bool:
    """Could these bytes also be a format-B frame (L counting CRCs, enough bytes)?"""
    return len(raw) >= raw[0] + 1 and raw[0] >= 12


def try_format_b(raw: bytes) -> Frame | None:
    """The format-B reading of ``raw`` if its CRCs verify, else None."""
    try:
        stripped = strip_format_b(raw)
    except DecodeError:
        return None
    return None if stripped is None else Frame(stripped, len(stripped), "B")
