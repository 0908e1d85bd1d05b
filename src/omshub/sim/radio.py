"""The simulated radio: which gateway hears which transmission, with what RSSI, and how damaged.

Link budget per (meter, gateway): ``RSSI = tx power − (path loss at 1 m + 10·n·log10(d)) − wall loss
(per meter and gateway, uniform 0..wall_loss_db_max) − building loss (meter in another building)
+ fading`` with Gaussian fading per transmission; a gateway hears a transmission when the RSSI
reaches the receiver sensitivity. So far meters are heard less, and a gateway also hears meters of
neighbouring buildings (other gateways' meters and foreign meters in nobody's list), which its
filters must drop. A received frame may be corrupted (bit flips or truncation; more likely near the
sensitivity limit) or delivered twice (a repeated transmission).

Three ways in:

* :func:`iter_events` / :func:`iter_transmissions` — pure generators over a time range, in time
  order, for tests and benchmarks (frames are only encoded when some gateway hears them);
* :class:`SimRadio` — one gateway's :class:`~omshub.gateway.frames.RadioSource`, paced by a
  gateway clock (real, accelerated or jump time);
* :func:`source_from_spec` — ``sim:FLEET.toml`` for ``omshub gateway run``.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

from omshub.codec.encode import add_format_a
from omshub.gateway.clock import Clock
from omshub.gateway.frames import ReceivedFrame, SourceError
from omshub.gateway.sources import register_source
from omshub.sim.fleet import Fleet, FleetError, load_fleet
from omshub.sim.meters import VirtualMeter, encode_transmission
from omshub.sim.noise import gaussian, gaussian_at, hash_ints, text_id, uniform
from omshub.sim.weather import unix

_FADE, _WALL, _CORRUPT, _REPEAT = 0xFAD, 0xA11, 0xC0, 0x2E
_CANDIDATE_SIGMAS = 3.0  # links whose mean RSSI is more than 3 σ below sensitivity are never heard


@dataclass(frozen=True, slots=True)
class Link:
    gateway: str
    gateway_key: int  # stable integer of the serial (names the corruption/repeat draws)
    mean_rssi: float  # dBm before fading
    fading: int  # names the link's fading draws


@dataclass(frozen=True, slots=True)
class Reception:
    gateway: str
    rx_time: float
    rssi: int
    raw: bytes
    corrupted: str | None  # None, "bitflip" or "truncated"
    repeat: bool  # the second delivery of the same transmission


@dataclass(slots=True)
class Transmission:
    meter: VirtualMeter
    index: int
    time: float
    frame: bytes
    receptions: list[Reception]


class LinkTable:
    """Every (meter, gateway) pair with a chance of reception, computed once per fleet."""

    def __init__(self, fleet: Fleet) -> None:
        r = fleet.radio
        self.fleet = fleet
        self.radio = r
        margin = _CANDIDATE_SIGMAS * r.fading_sigma_db
        budget = r.tx_power_dbm - r.path_loss_1m_db - (r.sensitivity_dbm - margin)
        # beyond these distances even a meter without walls is (3 σ) out of reach
        self.reach_same = 10 ** (max(budget, 0.0) / (10 * r.path_loss_exponent))
        self.reach_other = 10 ** (max(budget - r.building_loss_db, 0.0) / (10 * r.path_loss_exponent))
        cell = max(self.reach_other, 1.0)
        self._cell = cell
        grid: dict[tuple[int, int], list[str]] = {}
        by_site: dict[str, list[str]] = {}
        for gw in fleet.gateways.values():
            grid.setdefault(self._cell_of(gw.position), []).append(gw.serial)
            by_site.setdefault(gw.site, []).append(gw.serial)
        self._keys = {s: text_id(s) for s in fleet.gateways}
        self.links: dict[int, list[Link]] = {}
        self.heard_by: dict[str, list[VirtualMeter]] = {s: [] for s in fleet.gateways}
        for m in fleet.all_meters():
            cx, cy = self._cell_of(m.position)
            candidates = set(by_site.get(m.site, ())) if m.gateway is not None and m.site is not None else set()
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    candidates.update(grid.get((cx + dx, cy + dy), ()))
            links = []
            for serial in sorted(candidates):
                mean = self.mean_rssi(m, serial)
                if mean >= r.sensitivity_dbm - margin:
                    links.append(
                        Link(serial, self._keys[serial], mean, hash_ints(m.seed, _FADE, m.uid, self._keys[serial]))
                    )
                    self.heard_by[serial].append(m)
            self.links[m.uid] = links

    def _cell_of(self, pos: tuple[float, float]) -> tuple[int, int]:
        return (math.floor(pos[0] / self._cell), math.floor(pos[1] / self._cell))

    def mean_rssi(self, meter: VirtualMeter, serial: str) -> float:
        r = self.radio
        gw = self.fleet.gateways[serial]
        d = max(1.0, math.dist(meter.position, gw.position))
        loss = r.path_loss_1m_db + 10 * r.path_loss_exponent * math.log10(d)
        loss += r.wall_loss_db_max * uniform(meter.seed, _WALL, meter.uid, self._keys[serial])
        if meter.gateway is None or meter.site != gw.site:
            loss += r.building_loss_db
        return r.tx_power_dbm - loss


def link_table(fleet: Fleet) -> LinkTable:
    """The fleet's link table (built on first use, then kept on the fleet)."""
    table = getattr(fleet, "_link_table", None)
    if table is None:
        table = LinkTable(fleet)
        fleet._link_table = table  # type: ignore[attr-defined]
    return table


def _corrupt(frame: bytes, h: int) -> tuple[bytes, str]:
    """Damage a frame: 1-3 bit flips (60 %) or truncation (40 %), chosen by the hash ``h``."""
    if (h & 0xFF) < 154 or len(frame) <= 12:
        out = bytearray(frame)
        flips = 1 + (h >> 8) % 3
        bits: set[int] = set()
        for k in range(flips):
            bit = (h >> (16 + 13 * k)) % (len(out) * 8)
            while bit in bits:  # the same bit twice would undo the damage
                bit = (bit + 1) % (len(out) * 8)
            bits.add(bit)
            out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out), "bitflip"
    keep = 11 + (h >> 8) % (len(frame) - 12)
    return frame[:keep], "truncated"


def receptions_of(
    table: LinkTable, meter: VirtualMeter, index: int, t: float, frame: bytes | None, gateways: set[str] | None = None
) -> list[tuple[Link, float]] | list[Reception]:
    """Which gateways hear transmission ``index``. With ``frame=None`` returns (link, rssi) pairs
    (decides reception without encoding); with the frame, the :class:`Reception` list."""
    r = table.radio
    heard = []
    for link in table.links.get(meter.uid, ()):
        if gateways is not None and link.gateway not in gateways:
            continue
        rssi = link.mean_rssi + r.fading_sigma_db * gaussian_at(link.fading, index)
        if rssi >= r.sensitivity_dbm:
            heard.append((link, rssi))
    if frame is None:
        return heard
    out: list[Reception] = []
    for link, rssi in heard:
        out.extend(_deliveries(r, meter, index, t, frame, link, rssi))
    return out


def _deliveries(r, meter: VirtualMeter, index: int, t: float, frame: bytes, link: Link, rssi: float) -> list[Reception]:
    seed, uid, gk = meter.seed, meter.uid, link.gateway_key
    p_corrupt = r.corrupt_rate * (1.0 if rssi - r.sensitivity_dbm >= 6 else 4.0)
    raw, damage = frame, None
    if p_corrupt and uniform(seed, _CORRUPT, uid, index, gk) < min(1.0, p_corrupt):
        # A CRC-less frame is what a receiver hands on after the frame's CRCs passed: a frame
        # damaged on the air reaches the gateway only from a receiver that does not check, and
        # then with its block CRCs (format A), by which the head-end finds the damage.
        on_air = frame if meter.frame_format else add_format_a(frame)
        raw, damage = _corrupt(on_air, hash_ints(seed, _CORRUPT + 1, uid, index, gk))
    # the dongle's time stamp: end of the frame on air (100 kcps, 3-of-6 ≈ 0.1 ms/byte) + latency
    rx = t + 0.002 + len(frame) * 0.00012
    out = [Reception(link.gateway, rx, max(-150, min(20, round(rssi))), raw, damage, False)]
    if r.repeat_rate and uniform(seed, _REPEAT, uid, index, gk) < r.repeat_rate:
        delay = 0.02 + 1.5 * uniform(seed, _REPEAT + 1, uid, index, gk)
        rssi2 = rssi + 2.0 * gaussian(seed, _REPEAT + 2, uid, index, gk)
        out.append(Reception(link.gateway, rx + delay, max(-150, min(20, round(rssi2))), frame, None, True))
    return out


def _schedule(meters: Iterable[VirtualMeter], start: float, end: float) -> Iterator[tuple[float, VirtualMeter, int]]:
    """All transmissions of ``meters`` in [start, end), in time order (a heap of next transmissions)."""
    heap: list[tuple[float, int, int, VirtualMeter]] = []
    for m in meters:
        i = m.first_index_at_or_after(start)
        t = m.transmission_time(i)
        if t < end:
            heap.append((t, m.uid, i, m))
    heapq.heapify(heap)
    while heap:
        t, uid, i, m = heap[0]
        yield t, m, i
        nt = m.transmission_time(i + 1)
        if nt < end:
            heapq.heapreplace(heap, (nt, uid, i + 1, m))
        else:
            heapq.heappop(heap)


def _as_unix(t: float | datetime) -> float:
    return unix(t) if isinstance(t, datetime) else float(t)


def iter_events(
    fleet: Fleet,
    start: float | datetime,
    end: float | datetime,
    *,
    gateways: Iterable[str] | None = None,
    include_unheard: bool = False,
) -> Iterator[Transmission]:
    """Every transmission in [start, end) with its receptions (only at ``gateways`` if given).

    Frames are encoded only for transmissions some gateway hears (or all with ``include_unheard``).
    """
    table = link_table(fleet)
    t0, t1 = _as_unix(start), _as_unix(end)
    wanted = None if gateways is None else set(gateways)
    if wanted is not None:
        unknown = wanted - set(fleet.gateways)
        if unknown:
            raise FleetError(f"no gateway {sorted(unknown)[0]!r} in fleet {fleet.name!r}")
        seen: dict[int, VirtualMeter] = {}
        for s in wanted:
            for m in table.heard_by[s]:
                seen[m.uid] = m
        meters: Iterable[VirtualMeter] = seen.values()
    else:
        meters = fleet.all_meters() if include_unheard else [m for m in fleet.all_meters() if table.links.get(m.uid)]
    for t, m, i in _schedule(meters, t0, t1):
        heard = cast("list[tuple[Link, float]]", receptions_of(table, m, i, t, None, wanted))
        if not heard and not include_unheard:
            continue
        frame = encode_transmission(m, i, t)
        receptions: list[Reception] = []
        for link, rssi in heard:
            receptions.extend(_deliveries(table.radio, m, i, t, frame, link, rssi))
        yield Transmission(m, i, t, frame, receptions)


def iter_transmissions(
    fleet: Fleet, start: float | datetime, end: float | datetime, *, gateways: Iterable[str] | None = None
) -> Iterator[tuple[str, ReceivedFrame]]:
    """``(gateway_serial, ReceivedFrame)`` for every reception in [start, end), roughly in time order
    (a repeated delivery follows its original)."""
    for tx in iter_events(fleet, start, end, gateways=gateways):
        mode = tx.meter.link_mode
        for rec in tx.receptions:
            yield rec.gateway, ReceivedFrame(raw=rec.raw, rx_time=rec.rx_time, rssi=rec.rssi, link_mode=mode)


class SimRadio:
    """One gateway's radio (the RadioSource protocol), driven by a gateway clock.

    ``frames()`` delivers what the gateway hears from the clock's current time on, waiting for each
    frame's receive time with ``clock.sleep_until`` — with a jump-mode SimClock the next frame comes
    immediately, with ``SimClock(start, speed)`` time runs ``speed`` times faster than real time.
    Only frames of the link modes set by ``set_link_modes`` are delivered (default: all).
    """

    # simulated seconds generated per step of the internal schedule
    _HORIZON = 60.0

    def __init__(self, fleet: Fleet, gateway_serial: str, clock) -> None:
        if gateway_serial not in fleet.gateways:
            more = " ..." if len(fleet.gateways) > 5 else ""
            raise FleetError(
                f"no gateway {gateway_serial!r} in fleet {fleet.name!r} "
                f"(gateways: {', '.join(list(fleet.gateways)[:5])}{more})"
            )
        self.fleet = fleet
        self.serial = gateway_serial
        self.clock = clock
        self.modes: set[str] | None = None
        self._closed = False
        self.stats = {"frames": 0, "corrupted": 0, "repeats": 0, "foreign": 0}

    async def set_link_modes(self, modes: list[str]) -> None:
        self.modes = {m.upper() for m in modes} if modes else None

    async def close(self) -> None:
        self._closed = True

    async def frames(self) -> AsyncGenerator[ReceivedFrame, None]:
        if self._closed:
            raise FleetError(f"simulated radio of {self.serial} is closed")
        own = {m.uid for m in self.fleet.meters_of(self.serial)}
        t = opened = self.clock.now()
        pending: list[tuple[float, int, Reception, str]] = []  # (rx time, seq, reception, mode)
        seq = 0
        while not self._closed:
            horizon = t + self._HORIZON
            for tx in iter_events(self.fleet, t, horizon, gateways=[self.serial]):
                if self.modes is not None and tx.meter.link_mode not in self.modes:
                    continue
                for rec in tx.receptions:
                    heapq.heappush(pending, (rec.rx_time, seq, rec, tx.meter.link_mode))
                    seq += 1
                if tx.meter.uid not in own:
                    self.stats["foreign"] += 1
            t = horizon
            # deliver everything received before the next generated step can start
            while pending and pending[0][0] < horizon:
                rx, _, rec, mode = heapq.heappop(pending)
                if rx < opened:
                    continue  # the radio was off (no frames() iterator) when this was on air
                # (a generator lagging behind accelerated time delivers late, never drops)
                await self.clock.sleep_until(rx)
                if self._closed:
                    return
                self.stats["frames"] += 1
                self.stats["corrupted"] += rec.corrupted is not None
                self.stats["repeats"] += rec.repeat
                yield ReceivedFrame(raw=rec.raw, rx_time=rx, rssi=rec.rssi, link_mode=mode)
            await asyncio.sleep(0)


_loaded: dict[tuple[str, int, int], Fleet] = {}


def _shared_fleet(path: str) -> Fleet:
    """Gateways of one process running from the same fleet file share its (costly) tables."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    fleet = _loaded.get(key)
    if fleet is None:
        if len(_loaded) >= 8:
            _loaded.clear()
        fleet = _loaded[key] = load_fleet(path)
    return fleet


def source_from_spec(spec: str, clock: Clock, gateway_serial: str) -> SimRadio:
    """``sim:FLEET.toml`` -> the simulated radio of ``gateway_serial`` in that fleet."""
    kind, sep, path = spec.partition(":")
    if kind != "sim" or not sep or not path:
        raise SourceError(f"simulator source {spec!r} must look like sim:FLEET.toml")
    if not Path(path).is_file():
        raise SourceError(f"sim: fleet file {path} not found")
    try:
        return SimRadio(_shared_fleet(path), gateway_serial, clock)
    except FleetError as exc:
        raise SourceError(f"sim: {exc}") from None


# ``omshub gateway run`` with ``source = "sim:FLEET.toml"``: the command imports this module.
register_source("sim", lambda arg, clock, serial: source_from_spec(f"sim:{arg}", clock, serial))
