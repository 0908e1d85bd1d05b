"""Extended link layer (CI 8C–8F, docs/protocol.md §4).

``parse(data, pos, end)`` reads the ELL header at ``pos`` (the CI) and returns an :class:`Ell`.
For 8D/8F with SN.ENC = 1 the rest of the message (PayloadCRC onwards) is AES-128-CTR encrypted;
:func:`decrypt` turns it into plaintext and checks the PayloadCRC (the only key check ELL has).
"""

from __future__ import annotations

from typing import Any

from .errors import DecodeError
from .frame import crc16
from .link import address

ELL_CI = {0x8C: 2, 0x8D: 8, 0x8E: 10, 0x8F: 16}  # CI -> header bytes after the CI


class Ell:
    __slots__ = ("ci", "cc", "acc", "address2", "sn", "payload", "encrypted")

    def __init__(
        self, ci: int, cc: int, acc: int, address2: bytes | None, sn: int | None, payload: int, encrypted: bool
    ) -> None:
        self.ci = ci
        self.cc = cc
        self.acc = acc
        self.address2 = address2  # M2(2) A2(6) of 8E/8F
        self.sn = sn  # session number value (LE) of 8D/8F
        self.payload = payload  # offset of the first byte after the header (PayloadCRC for 8D/8F)
        self.encrypted = encrypted

    def to_dict(self) -> dict[str, Any]:
        out = {"ci": f"{self.ci:02X}", "cc": self.cc, "access_number": self.acc}
        if self.address2 is not None:
            out["address2"] = address(self.address2, 0, 2)
        if self.sn is not None:
            out["session_number"] = self.sn
            out["encrypted"] = self.encrypted
        return out


def parse(data: bytes, pos: int, end: int) -> Ell:
    ci = data[pos]
    size = ELL_CI[ci]
    header_end = pos + 1 + size
    if header_end > end:
        raise DecodeError(
            "too_short", f"ELL CI {ci:02X} needs {size} header bytes, {end - pos - 1} present", layer="ell", offset=pos
        )
    address2 = bytes(data[pos + 3 : pos + 11]) if ci in (0x8E, 0x8F) else None
    sn = None
    encrypted = False
    if ci in (0x8D, 0x8F):
        sn_pos = header_end - 6
        sn = int.from_bytes(data[sn_pos : sn_pos + 4], "little")
        enc = sn >> 29
        if enc > 1:
            raise DecodeError(
                "unsupported_security_mode",
                f"unsupported ELL encryption {enc} (only 1 = AES-128-CTR)",
                layer="ell",
                offset=sn_pos,
            )
        encrypted = enc == 1
        header_end -= 2  # the PayloadCRC belongs to the (possibly encrypted) payload
    return Ell(ci, data[pos + 1], data[pos + 2], address2, sn, header_end, encrypted)


def counter_block(data: bytes, ell: Ell) -> bytes:
    """ICB = M(2) A(6) of the DLL | CC without H and R | SN(4) | FN 00 00 | BC 00."""
    sn_pos = ell.payload - 4
    return bytes(data[2:10]) + bytes((ell.cc & 0xED,)) + bytes(data[sn_pos : sn_pos + 4]) + b"\x00\x00\x00"


def check_payload_crc(plain: bytes) -> bool:
    """PayloadCRC (LSB first) over everything after it."""
    return len(plain) >= 2 and crc16(plain, 2) == (plain[0] | plain[1] << 8)
