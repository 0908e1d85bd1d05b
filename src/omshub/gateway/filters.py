"""Telegram filters (docs/formats.md §3 ``filters``), applied to the link-layer header only.

The gateway never decrypts (it holds no key): it reads the header with
``omshub.codec.peek_header`` and decides. Semantics of ``mode``:

* ``whitelist`` — a telegram is kept only if it matches every *non-empty* list: its meter is in
  ``meters``, its manufacturer in ``manufacturers``, its device type in ``device_types`` and its CI
  in ``ci``. Empty lists do not restrict (the factory default keeps everything).
* ``blacklist`` — a telegram is dropped if it matches any entry of any list.

Frames outside 10..512 bytes and frames whose header cannot be parsed are dropped too. Every drop
is counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from omshub.protocol.config import Filters
from omshub.protocol.envelope import MAX_FRAME, MIN_FRAME


def _peek(raw: bytes) -> dict:
    """The codec's header peek; ValueError("invalid_header:<code>") when it fails."""
    # Imported on the first frame, not with the gateway: importing the codec takes longer than
    # importing the whole agent (python -X importtime: ~0.6 s against ~0.3 s), and commands such as
    # `omshub gateway status` never read a frame.
    from omshub.codec import DecodeError, peek_header

    try:
        return peek_header(raw)
    except DecodeError as exc:
        raise ValueError(f"invalid_header:{exc.code}") from None


@dataclass(slots=True, frozen=True)
class Header:
    manufacturer: str
    id: str
    version: int
    device_type: int
    ci: int

    @property
    def meter_key(self) -> str:
        """Identity of the transmitting device: manufacturer, id, version, device type."""
        return f"{self.manufacturer}.{self.id}.{self.version:02X}.{self.device_type:02X}"


def read_header(raw: bytes) -> Header:
    """The link-layer header of a frame; raises ValueError (reason) when it can't be read."""
    if not MIN_FRAME <= len(raw) <= MAX_FRAME:
        raise ValueError("frame_size")
    h = _peek(raw)
    if h.get("manufacturer") is None or h.get("id") is None:  # wired M-Bus frame: not from the radio
        raise ValueError("invalid_header:not_wmbus")
    # The codec's peek is lenient; a radio frame worth an uplink has a real manufacturer code and
    # all the bytes its L-field announces (trailing receiver bytes are fine: the head-end cuts them).
    if not str(h["manufacturer"]).isalpha():
        raise ValueError("invalid_header:manufacturer")
    if h.get("crc") is None and raw[0] + 1 > len(raw):
        raise ValueError("invalid_header:truncated")
    return Header(
        manufacturer=h["manufacturer"],
        id=str(h["id"]).upper(),
        version=int(h["version"]),
        device_type=int(h["device_type_code"]),
        ci=int(h["ci"]),
    )


class TelegramFilter:
    """Decides keep/drop for each frame and counts drops by reason."""

    def __init__(self, spec: Filters) -> None:
        self.mode = spec.mode
        self.meters_full = {(m.manufacturer, m.id.upper()) for m in spec.meters if m.manufacturer}
        self.meters_any = {m.id.upper() for m in spec.meters if not m.manufacturer}
        self.manufacturers = set(spec.manufacturers)
        self.device_types = set(spec.device_types)
        self.cis = {int(c, 16) for c in spec.ci}
        self.dropped: Counter[str] = Counter()
        # the meters a window waits for before it may end early (whitelist only)
        self.expected: frozenset[tuple[str | None, str]] = (
            frozenset({(m.manufacturer, m.id.upper()) for m in spec.meters})
            if self.mode == "whitelist"
            else frozenset()
        )

    def _meter_listed(self, h: Header) -> bool:
        return (h.manufacturer, h.id) in self.meters_full or h.id in self.meters_any

    def check(self, raw: bytes) -> tuple[Header | None, str | None]:
        """(header, None) to keep the frame; (header or None, reason) to drop it (and count it)."""
        try:
            h = read_header(raw)
        except ValueError as exc:
            unreadable = str(exc).split(":")[0]
            self.dropped[unreadable] += 1
            return None, unreadable
        reason = self._reason(h)
        if reason is not None:
            self.dropped[reason] += 1
        return h, reason

    def _reason(self, h: Header) -> str | None:
        has_meters = bool(self.meters_full or self.meters_any)
        if self.mode == "whitelist":
            if has_meters and not self._meter_listed(h):
                return "meter_not_listed"
            if self.manufacturers and h.manufacturer not in self.manufacturers:
                return "manufacturer"
            if self.device_types and h.device_type not in self.device_types:
                return "device_type"
            if self.cis and h.ci not in self.cis:
                return "ci"
            return None
        if has_meters and self._meter_listed(h):
            return "meter_blacklisted"
        if h.manufacturer in self.manufacturers:
            return "manufacturer"
        if h.device_type in self.device_types:
            return "device_type"
        if h.ci in self.cis:
            return "ci"
        return None

    def expected_heard(self, heard: set[tuple[str, str]]) -> bool:
        """True when every whitelisted meter is in ``heard`` ({(manufacturer, id)})."""
        if not self.expected:
            return False
        ids = {i for _, i in heard}
        return all((m, i) in heard if m else i in ids for m, i in self.expected)
