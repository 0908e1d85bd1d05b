"""When things happen: cron expressions with seconds in the configuration's time zone, shifted by
the gateway's stable spread offset (docs/formats.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from omshub.protocol.config import CollectionWindow, GatewayConfig, cron_for_croniter, spread_offset


def next_fire(cron: str, tz: str, after: float, offset: int = 0) -> float:
    """The first time >= ``after`` at which ``cron`` (shifted by ``offset`` s) fires."""
    base = datetime.fromtimestamp(after - offset - 1, ZoneInfo(tz))
    t = croniter(cron_for_croniter(cron), base).get_next(float)
    while t + offset < after:  # croniter works on whole seconds; `after` may have a fraction
        t = croniter(cron_for_croniter(cron), datetime.fromtimestamp(t, ZoneInfo(tz))).get_next(float)
    return t + offset


def prev_fire(cron: str, tz: str, at: float, offset: int = 0) -> float:
    """The last time <= ``at`` at which ``cron`` (shifted by ``offset`` s) fired."""
    base = datetime.fromtimestamp(at - offset + 1, ZoneInfo(tz))
    t = croniter(cron_for_croniter(cron), base).get_prev(float)
    while t + offset > at:
        t = croniter(cron_for_croniter(cron), datetime.fromtimestamp(t, ZoneInfo(tz))).get_prev(float)
    return t + offset


@dataclass(slots=True, frozen=True)
class Window:
    index: int  # position in config.collection
    start: float
    end: float
    spec: CollectionWindow


class Schedule:
    """The configured listen windows and uploads for one gateway."""

    def __init__(self, config: GatewayConfig, serial: str) -> None:
        self.config = config
        self.offset = spread_offset(serial, config.spread_s)

    def next_window(self, now: float, done: dict[int, float] | None = None) -> Window:
        """The window open at ``now`` (not yet done) or else the next one to open.

        ``done`` maps a window's index to the start of its last completed occurrence, so a window
        that ended early is not re-entered.
        """
        done = done or {}
        best: Window | None = None
        tz = self.config.timezone
        for i, spec in enumerate(self.config.collection):
            p = prev_fire(spec.cron, tz, now, self.offset)
            if p + spec.duration_s > now and done.get(i) != p:
                w = Window(i, p, p + spec.duration_s, spec)
            else:
                n = next_fire(spec.cron, tz, max(now, p + 1), self.offset)
                if done.get(i) == n:
                    n = next_fire(spec.cron, tz, n + 1, self.offset)
                w = Window(i, n, n + spec.duration_s, spec)
            if best is None or w.start < best.start:
                best = w
        assert best is not None  # the schema requires at least one window
        return best

    def next_upload(self, after: float) -> float:
        return next_fire(self.config.upload.cron, self.config.timezone, after, self.offset)
