"""One listen window: configure the receiver, take frames until the window ends, filter, spool.

A window ends at its scheduled end, or early when every whitelisted meter was heard (in a frame
the head-end can decode without a learned format, see `counts_as_full`), when
``max_telegrams`` telegrams were kept, or when the spool is full (collection stops; the agent
reports ``spool_full``).  With ``keep = "newest_per_kind"`` the spool holds the newest telegram per
meter and kind in a window; kind = CI and length class (length rounded up to 16 bytes), so a meter's
full and compact frames are both kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from omshub.gateway.clock import Clock
from omshub.gateway.filters import Header, TelegramFilter
from omshub.gateway.frames import RadioSource
from omshub.gateway.schedule import Window
from omshub.gateway.spool import Spool

log = logging.getLogger(__name__)


def telegram_kind(header: Header, raw: bytes) -> str:
    return f"{header.ci:02X}/{(len(raw) + 15) // 16}"


# Compact frames (values only) can be decoded only with a format learned from a full frame, so a
# meter heard only in compact frames does not count as heard for ending a window early.
_COMPACT_CIS = frozenset({0x79, 0x7B, 0x73})
# ELL with encryption hides the transport CI: full and compact frames differ only in length.
_ENCRYPTED_ELL_CIS = frozenset({0x8D, 0x8F})


def counts_as_full(header: Header, kinds_heard: set[str]) -> bool:
    """Has this meter been heard well enough for the head-end to decode it?"""
    if header.ci in _COMPACT_CIS:
        return False
    if header.ci in _ENCRYPTED_ELL_CIS:
        return len(kinds_heard) >= 2  # both the full and the compact length class seen
    return True


@dataclass(slots=True)
class WindowResult:
    start: float
    end: float  # when it actually ended
    reason: str  # "time" | "all_heard" | "max_telegrams" | "spool_full" | "source_ended"
    received: int = 0  # frames from the source inside the window
    kept: int = 0  # frames that passed the filters and were spooled
    stale: int = 0  # frames stamped before the window opened (ignored)
    heard: set[str] = field(default_factory=set)  # meter keys that passed the filters


class Collector:
    def __init__(
        self, source: RadioSource, spool: Spool, clock: Clock, filt: TelegramFilter, keep: str = "newest_per_kind"
    ) -> None:
        self.source = source
        self.spool = spool
        self.clock = clock
        self.filter = filt
        self.keep = keep
        self._modes: list[str] | None = None

    async def _configure(self, modes: Sequence[str]) -> None:
        if modes == self._modes:
            return
        try:
            await self.source.set_link_modes(list(modes))
            self._modes = list(modes)
        except Exception as exc:  # a receiver that refuses keeps its previous mode; listen anyway
            log.warning("radio source refused link modes %s: %s", ",".join(modes), exc)

    async def run_window(self, window: Window, window_id: int) -> WindowResult:
        spec = window.spec
        res = WindowResult(start=window.start, end=window.start, reason="time")
        if self.spool.full:
            res.reason = "spool_full"
            return res
        await self._configure(spec.link_modes)
        heard_pairs: set[tuple[str, str]] = set()
        kinds_by_meter: dict[str, set[str]] = {}
        frames = self.source.frames()
        try:
            while True:
                if self.clock.now() >= window.end:
                    break
                try:
                    ok, frame = await self.clock.run_until(frames.__anext__(), window.end)
                except StopAsyncIteration:
                    res.reason = "source_ended"
                    break
                if not ok or frame is None or frame.rx_time >= window.end:
                    break
                if frame.rx_time < window.start:
                    res.stale += 1
                    continue
                res.received += 1
                header, reason = self.filter.check(frame.raw)
                if reason is not None or header is None:
                    continue
                kind = telegram_kind(header, frame.raw)
                key = f"{header.meter_key}/{kind}" if self.keep == "newest_per_kind" else None
                if not self.spool.put(
                    frame.raw, frame.rx_time, frame.rssi, frame.link_mode, window=window_id, dedup_key=key
                ):
                    res.reason = "spool_full"
                    log.warning(
                        "spool full (%d telegrams, %d bytes): collection stopped", self.spool.rows, self.spool.bytes
                    )
                    break
                res.kept += 1
                res.heard.add(header.meter_key)
                kinds = kinds_by_meter.setdefault(header.meter_key, set())
                kinds.add(kind)
                if counts_as_full(header, kinds):
                    heard_pairs.add((header.manufacturer, header.id))
                if res.kept >= spec.max_telegrams:
                    res.reason = "max_telegrams"
                    break
                if self.filter.expected and self.filter.expected_heard(heard_pairs):
                    res.reason = "all_heard"
                    break
        finally:
            await frames.aclose()
            res.end = min(max(self.clock.now(), window.start), window.end)
        return res
