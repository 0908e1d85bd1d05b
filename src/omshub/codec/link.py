"""Data link layer (docs/protocol.md §3): C-field, manufacturer, address, device type names.

Input: a CRC-less frame (bytes from L). Output: the link header values. The address helpers are
shared with the long TPL header (same fields, other order: ID before M there).
"""

from __future__ import annotations

from typing import Any

from .errors import DecodeError

# EN 13757-7:2018 device type (medium) codes -> readable name (docs/protocol.md §3).
DEVICE_TYPES: dict[int, str] = {
    0x00: "other",
    0x01: "oil",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat",  # volume measured at return/outlet
    0x05: "steam",
    0x06: "warm_water",
    0x07: "water",
    0x08: "heat_cost_allocator",
    0x09: "compressed_air",
    0x0A: "cooling",  # volume at return/outlet
    0x0B: "cooling",  # volume at flow/inlet (the code keeps the difference)
    0x0C: "heat",  # volume measured at flow/inlet
    0x0D: "heat_cooling",
    0x0E: "bus_system_component",
    0x0F: "unknown",
    0x14: "calorific_value",
    0x15: "hot_water",
    0x16: "cold_water",
    0x17: "dual_register_water",
    0x18: "pressure",
    0x19: "ad_converter",
    0x1A: "smoke_detector",
    0x1B: "room_sensor",
    0x1C: "gas_detector",
    0x20: "breaker",
    0x21: "valve",
    0x25: "customer_unit",
    0x28: "waste_water",
    0x29: "garbage",
    0x2A: "carbon_dioxide",
    0x31: "communication_controller",
    0x32: "unidirectional_repeater",
    0x33: "bidirectional_repeater",
    0x36: "radio_converter_system",
    0x37: "radio_converter_meter",
    0x38: "wired_adapter",
}


def _device_type_name(code: int) -> str:
    name = DEVICE_TYPES.get(code)
    if name is not None:
        return name
    if code >= 0x40:
        return "manufacturer_specific"
    return "reserved"


# Indexed by code: avoids a dict miss + branch per telegram.
DEVICE_TYPE_NAMES: tuple[str, ...] = tuple(_device_type_name(code) for code in range(256))


_LETTERS = tuple(chr(64 + n) for n in range(32))  # 0 -> "@", 1 -> "A" … 26 -> "Z", 27.. -> "[\\]^_"


def manufacturer_code(value: int) -> str:
    """Three-letter manufacturer code of the 16-bit M-field (bit 15, set by some devices, ignored)."""
    letters = _LETTERS
    return letters[(value >> 10) & 0x1F] + letters[(value >> 5) & 0x1F] + letters[value & 0x1F]


def manufacturer_value(code: str) -> int:
    """Inverse of :func:`manufacturer_code` for three letters A–Z (@ allowed for 0)."""
    if len(code) != 3 or any(not ("@" <= ch <= "Z") for ch in code.upper()):
        raise DecodeError("invalid_frame", f"manufacturer {code!r} is not three letters A-Z", layer="link")
    c1, c2, c3 = (ord(ch) - 64 for ch in code.upper())
    return (c1 << 10) | (c2 << 5) | c3


def meter_id(data: bytes, pos: int) -> str:
    """The 4-byte LE identification at ``pos`` rendered as printed on the meter (hex digits, not checked for BCD)."""
    return data[pos + 3 : pos - 1 if pos else None : -1].hex().upper()


def id_bytes(text: str) -> bytes:
    """Inverse of :func:`meter_id`: "12345678" -> 78 56 34 12."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 4:
        raise DecodeError("invalid_frame", f"meter id {text!r} is not 8 hex digits", layer="link")
    return raw[::-1]


def address(data: bytes, m_pos: int, id_pos: int) -> dict[str, Any]:
    """Address dict of the uniform format from the M-field at ``m_pos`` and ID, version, type at ``id_pos``."""
    code = data[id_pos + 5]
    return {
        "manufacturer": manufacturer_code(data[m_pos] | data[m_pos + 1] << 8),
        "id": data[id_pos + 3 : id_pos - 1 if id_pos else None : -1].hex().upper(),
        "version": data[id_pos + 4],
        "device_type": DEVICE_TYPE_NAMES[code],
        "device_type_code": code,
    }


def address_long(data: bytes, pos: int) -> dict[str, Any]:
    """Address dict of a long TPL header at ``pos``: ID(4) M(2) VER TYPE."""
    code = data[pos + 7]
    return {
        "manufacturer": manufacturer_code(data[pos + 4] | data[pos + 5] << 8),
        "id": data[pos + 3 : pos - 1 if pos else None : -1].hex().upper(),
        "version": data[pos + 6],
        "device_type": DEVICE_TYPE_NAMES[code],
        "device_type_code": code,
    }


def check_header(data: bytes, end: int) -> None:
    """A wM-Bus link header needs L C M(2) A(6) and a CI: 11 bytes."""
    if end < 11:
        raise DecodeError(
            "too_short", f"frame has {end} bytes; the link header and CI need 11", layer="link", offset=end
        )
