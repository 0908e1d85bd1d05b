"""Authentication and fragmentation layer (CI 90, docs/protocol.md §5).

``parse(data, pos, end)`` reads the AFL at ``pos`` (the CI 90) and returns an :class:`Afl`;
:func:`mac_input` builds the bytes the AES-CMAC covers (MCL | MCR | TPL … end of message).
"""

from __future__ import annotations

from typing import Any

from .errors import DecodeError

# MCL.AT -> MAC length in bytes (AES-CMAC truncated; AT 8/9 GMAC are not supported)
MAC_LENGTHS = {0: 0, 3: 2, 4: 4, 5: 8, 6: 12, 7: 16}


class Afl:
    __slots__ = ("fcl", "mcl", "ki", "mcr", "mcr_bytes", "mac", "ml", "next")

    def __init__(self) -> None:
        self.fcl = 0
        self.mcl: int | None = None
        self.ki: int | None = None
        self.mcr: int | None = None
        self.mcr_bytes = b""
        self.mac = b""
        self.ml: int | None = None
        self.next = 0  # offset of the CI after the AFL

    def to_dict(self, authenticated: bool) -> dict[str, Any]:
        out = {
            "fcl": self.fcl,
            "mcl": self.mcl,
            "mcr": self.mcr,
            "mac": self.mac.hex().upper() or None,
            "authenticated": authenticated,
        }
        if self.ki is not None:
            out["ki"] = self.ki
        if self.ml is not None:
            out["ml"] = self.ml
        return out


def _need(pos: int, size: int, end: int, what: str) -> None:
    if pos + size > end:
        raise DecodeError(
            "too_short", f"AFL {what} needs {size} bytes at offset {pos}, frame ends at {end}", layer="afl", offset=pos
        )


def parse(data: bytes, pos: int, end: int) -> Afl:
    _need(pos, 4, end, "header (CI AFLL FCL)")
    afll = data[pos + 1]
    afl_end = pos + 2 + afll
    if afl_end > end:
        raise DecodeError("too_short", f"AFL length {afll} runs past the end of the frame", layer="afl", offset=pos + 1)
    out = Afl()
    fcl = out.fcl = data[pos + 2] | data[pos + 3] << 8
    if fcl & 0x4000 or fcl & 0xFF:
        raise DecodeError(
            "invalid_frame", f"fragmented AFL messages (FCL {fcl:04X}) are not supported", layer="afl", offset=pos + 2
        )
    q = pos + 4
    if fcl & 0x2000:
        _need(q, 1, afl_end, "MCL")
        out.mcl = data[q]
        q += 1
    if fcl & 0x0200:
        _need(q, 2, afl_end, "KI")
        out.ki = data[q] | data[q + 1] << 8
        q += 2
    if fcl & 0x0800:
        _need(q, 4, afl_end, "MCR")
        out.mcr_bytes = bytes(data[q : q + 4])
        out.mcr = int.from_bytes(out.mcr_bytes, "little")
        q += 4
    if fcl & 0x0400:
        at = (out.mcl or 0) & 0x0F
        size = MAC_LENGTHS.get(at)
        if size is None:
            raise DecodeError(
                "unsupported_security_mode", f"unsupported AFL authentication type {at}", layer="afl", offset=pos + 4
            )
        _need(q, size, afl_end, "MAC")
        out.mac = bytes(data[q : q + size])
        q += size
    if fcl & 0x1000:
        _need(q, 2, afl_end, "ML")
        out.ml = data[q] | data[q + 1] << 8
        q += 2
    if q != afl_end:
        raise DecodeError(
            "invalid_frame",
            f"AFL length {afll} disagrees with the fields FCL {fcl:04X} announces",
            layer="afl",
            offset=pos + 1,
        )
    out.next = afl_end
    return out


def mac_input(afl: Afl, data: bytes, tpl_start: int, end: int) -> bytes:
    """MCL | MCR | TPL-CI … last byte of the message (the exmbus order when KI is present)."""
    head = b""
    if afl.mcl is not None:
        head = bytes((afl.mcl,))
    if afl.ki is not None:
        head += afl.ki.to_bytes(2, "little")
    head += afl.mcr_bytes
    if afl.ml is not None:
        head += afl.ml.to_bytes(2, "little")
    return head + bytes(data[tpl_start:end])
