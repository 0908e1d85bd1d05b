"""Transport layer (EN 13757-7, docs/protocol.md §6): CI table, short/long/no header, CFG.

``parse(data, pos, end)`` reads the TPL at ``pos`` (its CI) and returns a :class:`Tpl`: header kind,
the meter address offset of a long header, ACC, STS, CFG and the security fields that follow it,
and where the (possibly encrypted) APL starts.
"""

from __future__ import annotations

from typing import Any

from .errors import DecodeError

# CI -> (header kind, APL content). header: "none" | "short" | "long";
# content: "full" (EN 13757-3 records) | "compact" (CI 79/7B/73) | "none" (no APL).
_NONE, _SHORT, _LONG = "none", "short", "long"
CI_TABLE: dict[int, tuple[str, str]] = {
    0x5A: (_SHORT, "full"),
    0x5B: (_LONG, "full"),  # command to device (M-Bus full frame)
    0x66: (_NONE, "full"),
    0x67: (_SHORT, "full"),
    0x68: (_LONG, "full"),  # response of selected application
    0x6E: (_SHORT, "full"),
    0x6F: (_LONG, "full"),
    0x70: (_NONE, "full"),  # application error
    0x71: (_NONE, "full"),
    0x74: (_SHORT, "full"),
    0x75: (_LONG, "full"),  # alarm
    0x72: (_LONG, "full"),
    0x73: (_LONG, "compact"),
    0x78: (_NONE, "full"),
    0x79: (_NONE, "compact"),
    0x7A: (_SHORT, "full"),
    0x7B: (_SHORT, "compact"),
    0x88: (_SHORT, "full"),
    0x87: (_LONG, "full"),
    0x89: (_NONE, "full"),  # network management from device
    0x8A: (_SHORT, "none"),
    0x8B: (_LONG, "none"),  # TPL without APL (e.g. ACK)
}

# Security modes: the ones this codec decodes.
SUPPORTED_MODES = frozenset({0, 2, 5, 7, 10})

# Mode numbers that no edition assigns to a security method (EN 13757-7:2018: reserved; mode 4
# is left out: older texts made it AES-CBC with IV 0). On a wired M-Bus frame the two bytes
# before the APL were the "signature" of EN 13757-3:2004 (reserved for encryption, 00 00 when
# unused; older meters put other values there): when they name one of these modes they are no
# security configuration and the frame is unencrypted. Any assigned mode keeps its meaning, so
# an encrypted wired frame still needs its key (modes 5/7/10) or is reported unsupported.
NO_SECURITY_MODES = frozenset({6, 11, 12, 14, *range(16, 32)})

# CI of the application error replies (EN 13757-7 Table 2: 6E short, 6F long, 70 no TPL header)
APPLICATION_ERROR_CIS = frozenset({0x6E, 0x6F, 0x70})

# The one-byte general application error of such a reply (EN 13757-3, "codes for general
# application errors"; 7 and 10-255 reserved) -> (meaning, description)
APPLICATION_ERRORS: dict[int, tuple[str, str]] = {
    0: ("unspecified_error", "unspecified error"),
    1: ("unimplemented_ci", "unimplemented CI field"),
    2: ("buffer_too_long", "buffer too long, truncated"),
    3: ("too_many_records", "too many records"),
    4: ("premature_end_of_record", "premature end of record"),
    5: ("too_many_difes", "more than 10 DIFEs"),
    6: ("too_many_vifes", "more than 10 VIFEs"),
    8: ("application_busy", "application too busy for handling the readout request"),
    9: ("too_many_readouts", "too many readouts"),
}


def application_error(apl: bytes) -> dict[str, Any]:
    """The ``application_error`` of an error reply whose APL is this one byte (or nothing)."""
    if not apl:
        return {
            "code": None,
            "meaning": "unspecified_error",
            "message": "application error reply without an error code",
        }
    code = apl[0]
    meaning, text = APPLICATION_ERRORS.get(code, ("reserved", f"reserved error code {code}"))
    return {"code": code, "meaning": meaning, "message": text}


STATUS_FLAG_NAMES = (
    "power_low",
    "permanent_error",
    "temporary_error",
    "manufacturer_5",
    "manufacturer_6",
    "manufacturer_7",
)
_APPLICATION_STATUS = (None, "application_busy", "application_error", "abnormal_condition")


def _status_flags(status: int) -> tuple[str, ...]:
    flags = []
    app = _APPLICATION_STATUS[status & 3]
    if app:
        flags.append(app)
    for bit, name in enumerate(STATUS_FLAG_NAMES, start=2):
        if status >> bit & 1:
            flags.append(name)
    return tuple(flags)


STATUS_FLAGS: tuple[tuple[str, ...], ...] = tuple(_status_flags(s) for s in range(256))


def status_dict(status: int) -> dict[str, Any]:
    """The uniform format's ``status``: ``{"code": n, "flags": [...]}`` (§5.2 names)."""
    return {"code": status, "flags": list(STATUS_FLAGS[status])}


class Tpl:
    __slots__ = (
        "ci",
        "header",
        "content",
        "address",
        "acc",
        "sts",
        "cfg",
        "mode",
        "blocks",
        "cfg_ext",
        "counter",
        "payload",
    )

    def __init__(self, ci: int, header: str, content: str) -> None:
        self.ci = ci
        self.header = header
        self.content = content
        self.address: int | None = None  # offset of ID(4) M(2) VER TYPE of a long header
        self.acc: int | None = None
        self.sts: int | None = None
        self.cfg = 0
        self.mode = 0
        self.blocks = 0  # NNNN: encrypted 16-byte blocks (modes 5/7)
        self.cfg_ext = b""
        self.counter = b""  # mode 10: 4-byte message counter as transmitted
        self.payload = 0  # offset of the first APL byte (after the header)


def parse(data: bytes, pos: int, end: int) -> Tpl:
    ci = data[pos]
    entry = CI_TABLE.get(ci)
    if entry is None:
        raise DecodeError("unknown_ci", f"unknown or unsupported CI {ci:02X} at offset {pos}", layer="tpl", offset=pos)
    header, content = entry
    tpl = Tpl(ci, header, content)
    q = pos + 1
    if header == _NONE:
        tpl.payload = q
        return tpl
    need = 12 if header == _LONG else 4
    if q + need > end:
        raise DecodeError(
            "too_short",
            f"TPL {header} header (CI {ci:02X}) needs {need} bytes, {end - q} present",
            layer="tpl",
            offset=q,
        )
    if header == _LONG:
        tpl.address = q
        q += 8
    tpl.acc = data[q]
    tpl.sts = data[q + 1]
    cfg = tpl.cfg = data[q + 2] | data[q + 3] << 8
    q += 4
    mode = tpl.mode = (cfg >> 8) & 0x1F
    if mode == 5 or mode == 0 or mode == 2:
        tpl.blocks = (cfg >> 4) & 0x0F
    elif mode == 7:
        tpl.blocks = (cfg >> 4) & 0x0F
        if q + 1 > end:
            raise DecodeError("too_short", "mode 7 CFG extension missing", layer="tpl", offset=q)
        tpl.cfg_ext = bytes(data[q : q + 1])
        q += 1
    elif mode == 10:
        if q + 6 > end:
            raise DecodeError("too_short", "mode 10 CFG extension and message counter missing", layer="tpl", offset=q)
        tpl.cfg_ext = bytes(data[q : q + 2])
        tpl.counter = bytes(data[q + 2 : q + 6])
        q += 6
    tpl.payload = q
    return tpl
