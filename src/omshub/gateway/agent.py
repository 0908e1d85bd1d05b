"""The gateway agent: one sequential loop over listen windows and uplink contacts.

    sleep until the next event ─┬─ listen window  → Collector.run_window → spool
                                └─ upload/retry   → uplink session: batches from the spool until it
                                                    is empty (catch-up), ack → delete, apply config

Like the device it models, the agent does one thing at a time: a contact due during a window
happens right after it. A failed contact is retried with exponential backoff and jitter
(``retry_base_s`` doubling up to ``retry_max_s``), but never later than the next scheduled upload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from omshub import __version__ as _omshub_version
from omshub.gateway.clock import Clock, SimClock
from omshub.gateway.collector import Collector, WindowResult
from omshub.gateway.filters import TelegramFilter
from omshub.gateway.frames import RadioSource, SourceError
from omshub.gateway.schedule import Schedule, Window
from omshub.gateway.settings import GatewaySettings
from omshub.gateway.sources import open_source
from omshub.gateway.spool import Batch, Spool
from omshub.gateway.uplink import UplinkTransport, iso
from omshub.protocol.config import ConfigError, GatewayConfig, validate_config
from omshub.protocol.envelope import (
    MAX_BODY,
    PayloadTooLarge,
    ProtocolError,
    UplinkError,
    UplinkRejected,
    UplinkResponse,
    build_envelope,
    parse_response,
)

log = logging.getLogger(__name__)


class BatteryGauge(Protocol):
    """The gateway's battery as the agent accounts for it and reports it in the status. The agent
    tells it what it does (sleep until ``now``, radio on, an uplink of n bytes) and keeps
    ``consumed_mah`` across restarts; the simulator provides a model of one (``sim.battery``)."""

    consumed_mah: float

    def elapse(self, now: float) -> None: ...
    def radio_on(self, seconds: float) -> None: ...
    def uplink(self, nbytes: int) -> None: ...
    @property
    def percent(self) -> int: ...
    @property
    def millivolts(self) -> int: ...


def make_transport(settings: GatewaySettings) -> UplinkTransport:
    """The transport the settings ask for."""
    # Imported only when used: each transport's library costs start-up time a gateway on another
    # transport should not pay (python -X importtime: httpx ~0.6 s, aiomqtt ~0.26 s, aiocoap ~0.22 s).
    u = settings.uplink
    if settings.transport == "https":
        from omshub.gateway.transport_http import HttpsTransport

        return HttpsTransport(settings.server, settings.secret(), timeout_s=u.timeout_s, verify=u.verify_tls)
    if settings.transport == "coap":
        from omshub.gateway.transport_coap import CoapTransport

        return CoapTransport(settings.server, timeout_s=u.timeout_s)
    from omshub.gateway.transport_mqtt import MqttTransport

    return MqttTransport(settings.server, settings.serial, timeout_s=u.timeout_s, **u.options)


def make_clock(settings: GatewaySettings) -> Clock:
    if settings.clock.speed is None:
        return Clock()
    return SimClock(settings.clock.start if settings.clock.start is not None else time.time(), settings.clock.speed)


def write_atomically(path: Path, data: bytes) -> None:
    """Write temp file, fsync, rename over ``path``, fsync the directory: all or nothing."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass(slots=True)
class ContactResult:
    ok: bool
    uplinks: int = 0
    sent: int = 0  # telegrams acknowledged
    error: str | None = None
    responses: list[UplinkResponse] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clock: Clock | None = None,
        source: RadioSource | None = None,
        transport: UplinkTransport | None = None,
        rng: random.Random | None = None,
        battery: BatteryGauge | None = None,
    ) -> None:
        """``battery``: the gateway's battery, reported in the status (None: mains powered,
        no battery in the status)."""
        self.settings = settings
        self.serial = settings.serial
        self.clock = clock or make_clock(settings)
        self.state_dir = Path(settings.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # its spool and state: owner only
        self.config_path = self.state_dir / "config.json"
        self.spool = Spool(
            self.state_dir / "spool.sqlite3",
            max_rows=settings.spool.max_rows,
            max_bytes=settings.spool.max_bytes,
            synchronous=settings.spool.synchronous,
        )
        self._source = source
        self._transport = transport
        self.rng = rng or random.Random()
        self.config = self._load_config()
        raw_err = self.spool.get_state("cfg_error")
        self.cfg_error: dict[str, Any] | None = json.loads(raw_err) if raw_err else None
        self.filter = TelegramFilter(self.config.filters)
        self.schedule = Schedule(self.config, self.serial)
        self.battery = battery
        self.started = self.clock.now()
        if battery is not None:
            battery.consumed_mah = float(self.spool.get_state("battery_mah", "0") or 0)
            battery.elapse(self.started)
        self.heard: set[str] = set()  # meters heard since the last acknowledged uplink
        self.filtered_reported = 0  # filter drops already reported
        self._done_windows: dict[int, float] = {
            int(k): float(v) for k, v in json.loads(self.spool.get_state("done_windows", "{}") or "{}").items()
        }
        self._failures = 0
        self._retry_at: float | None = None
        self._next_upload = self.schedule.next_upload(self.started)
        self.last_window: WindowResult | None = None
        self.last_contact: ContactResult | None = None
        self.contacts = 0

    # -- configuration -------------------------------------------------------------------------
    def _load_config(self) -> GatewayConfig:
        initial = self.settings.initial_config()
        if self.config_path.exists():
            try:
                stored = validate_config(json.loads(self.config_path.read_text(encoding="utf-8")))
            except (OSError, ValueError, ConfigError) as exc:
                log.error("stored configuration %s unusable (%s); using the initial one", self.config_path, exc)
                return initial
            if stored.version >= initial.version:
                return stored
        return initial

    def apply_config(self, data: Any) -> bool:
        """Validate and apply a configuration from the head-end; on error keep the old one and
        remember the error for the next uplink (``cfg_error``)."""
        try:
            new = validate_config(data)
        except ConfigError as exc:
            version = data.get("version") if isinstance(data, dict) else None
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                version = 0
            self.cfg_error = {"version": version, "message": str(exc)[:500]}
            self.spool.set_state(cfg_error=json.dumps(self.cfg_error))
            log.warning("configuration version %s refused: %s (keeping version %d)", version, exc, self.config.version)
            return False
        # Build everything the new configuration needs before persisting it: a configuration that
        # cannot be scheduled must be refused, not saved (it would fail again on every start).
        try:
            schedule = Schedule(new, self.serial)
            next_upload = schedule.next_upload(self.clock.now())
            schedule.next_window(self.clock.now(), {})
        except Exception as exc:  # croniter's errors for schedules that never fire
            self.cfg_error = {"version": new.version, "message": f"cannot schedule: {exc}"[:500]}
            self.spool.set_state(cfg_error=json.dumps(self.cfg_error))
            log.warning("configuration version %s refused: cannot schedule (%s)", new.version, exc)
            return False
        write_atomically(self.config_path, new.model_dump_json(indent=1).encode())
        self.config = new
        self.filter = TelegramFilter(new.filters)
        self.schedule = schedule
        self.cfg_error = None
        self._done_windows = {}
        self.spool.set_state(cfg_error=None, done_windows="{}")
        self._next_upload = next_upload
        log.info("configuration version %d applied", new.version)
        return True

    # -- status ----------------------------------------------------------------------------------
    def signal_dbm(self) -> int:
        sig = getattr(self._transport, "signal_dbm", None)
        if isinstance(sig, int):
            return sig
        # Simulated modem: a stable per-site level with a few dB of fading.
        base = -110 + int.from_bytes(hashlib.sha256(self.serial.encode()).digest()[:2], "big") % 40
        return base + self.rng.randint(-3, 3)

    def next_contact(self) -> float:
        return min(self._next_upload, self._retry_at) if self._retry_at is not None else self._next_upload

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        power: dict[str, Any] = {}
        if self.battery is not None:
            self.battery.elapse(now)
            power = {"battery_pct": self.battery.percent, "battery_mv": self.battery.millivolts}
        return {
            **power,
            "rssi": self.signal_dbm(),
            "firmware": f"omshub {_omshub_version}",
            "uptime_s": int(max(0.0, now - self.started)),
            "spool": self.spool.rows,
            "spool_full": self.spool.full,
            "heard": len(self.heard),
            "filtered": self._filtered_total() - self.filtered_reported,
            "time": int(now),
            "next_contact": int(self.next_contact()),
        }

    def _filtered_total(self) -> int:
        return sum(self.filter.dropped.values())

    # -- the parts ---------------------------------------------------------------------------------
    @property
    def source(self) -> RadioSource:
        if self._source is None:
            self._source = open_source(self.settings.source, self.clock, self.serial)
        return self._source

    @property
    def transport(self) -> UplinkTransport:
        if self._transport is None:
            self._transport = make_transport(self.settings)
        return self._transport

    async def run_window(self, window: Window) -> WindowResult:
        wid = self.spool.next_window_id()
        collector = Collector(self.source, self.spool, self.clock, self.filter, self.config.keep)
        res = await collector.run_window(window, wid)
        self._done_windows[window.index] = window.start
        self.spool.set_state(done_windows=json.dumps(self._done_windows))
        if self.battery is not None:
            self.battery.elapse(self.clock.now())
            self.battery.radio_on(res.end - max(res.start, window.start))
        self._save_battery()
        self.heard |= res.heard
        self.last_window = res
        log.info(
            "window %s-%s ended (%s): %d received, %d kept, %d meters, spool %d",
            iso(window.start),
            iso(res.end),
            res.reason,
            res.received,
            res.kept,
            len(res.heard),
            self.spool.rows,
        )
        return res

    async def contact(self) -> ContactResult:
        """One uplink session: send batches until the spool is empty (or ``max_catch_up``)."""
        result = ContactResult(ok=False)
        credential = self.settings.secret() if self.transport.cred_in_envelope else None
        for _ in range(self.settings.uplink.max_catch_up):
            filtered_now = self._filtered_total()
            batch, body = self._next_body(credential)
            if self.battery is not None:
                self.battery.uplink(len(body))
            try:
                answer = await self.transport.send(body, "application/cbor")
                resp = parse_response(answer)
                if resp["ack"] != batch.seq:
                    raise ProtocolError(f"head-end acknowledged seq {resp['ack']}, sent {batch.seq}")
            except PayloadTooLarge as exc:
                if len(batch.telegrams) > 1:
                    log.warning("uplink seq %d too large (%s); halving the batch", batch.seq, exc)
                    self.spool.shrink_batch(batch.seq, len(batch.telegrams) // 2)
                    continue
                result.error = str(exc)
                break
            except (UplinkError, OSError) as exc:
                result.error = str(exc)
                if isinstance(exc, UplinkRejected):
                    log.error("uplink seq %d refused: %s", batch.seq, exc)
                else:
                    log.warning("uplink seq %d failed: %s", batch.seq, exc)
                break
            deleted = self.spool.ack(batch.seq)
            result.uplinks += 1
            result.sent += deleted
            result.responses.append(resp)
            self.filtered_reported = filtered_now
            self.heard.clear()
            self._log_answer(batch, body, resp)
            if resp["config"] is not None:
                self.apply_config(resp["config"])
            if self.spool.rows == 0:
                break
        # (max_catch_up reached without an error: the rest goes at the next scheduled contact)
        self._contact_done(result)
        return result

    def _next_body(self, credential: str | None) -> tuple[Batch, bytes]:
        """The next batch from the spool and its envelope, halved until the envelope fits MAX_BODY."""
        batch = self.spool.take_batch(self.config.upload.max_batch)
        while True:
            body = build_envelope(
                serial=self.serial,
                seq=batch.seq,
                cfg=self.config.version,
                telegrams=batch.telegrams,
                status=self.status(),
                cfg_error=self.cfg_error,
                cred=credential,
            )
            if len(body) <= MAX_BODY or len(batch.telegrams) <= 1:
                return batch, body
            batch = self.spool.shrink_batch(batch.seq, len(batch.telegrams) // 2)

    def _log_answer(self, batch: Batch, body: bytes, resp: UplinkResponse) -> None:
        for r in resp["rejected"][:20]:
            log.warning("head-end rejected telegram %s of seq %d: %s", r.get("index"), batch.seq, r.get("message"))
        if resp["time"] is not None and abs(resp["time"] - self.clock.now()) > 300 and type(self.clock) is Clock:
            log.warning("gateway clock differs from the head-end's by %.0f s", resp["time"] - self.clock.now())
        log.info(
            "uplink seq %d: %d telegrams, %d bytes; stored %s, duplicates %s",
            batch.seq,
            len(batch.telegrams),
            len(body),
            resp["stored"],
            resp["duplicates"],
        )

    def _contact_done(self, result: ContactResult) -> None:
        """Bookkeeping after a contact: counters, and when to try again (backoff after a failure)."""
        result.ok = result.error is None
        self._save_battery()
        self.contacts += 1
        self.last_contact = result
        now = self.clock.now()
        if result.ok:
            self._failures = 0
            self._retry_at = None
        else:
            self._failures += 1
            delay = min(
                self.settings.uplink.retry_max_s, self.settings.uplink.retry_base_s * 2.0 ** min(self._failures - 1, 40)
            )
            self._retry_at = now + delay * self.rng.uniform(0.5, 1.0)
            log.info("next uplink attempt at %s (failure %d)", iso(self._retry_at), self._failures)
        self._next_upload = self.schedule.next_upload(now + 1)

    # -- the loop ----------------------------------------------------------------------------------
    async def run(self, *, until: float | None = None) -> None:
        """Run until cancelled (SIGTERM) or, when given, until clock time ``until``."""
        try:
            if self.settings.uplink.contact_on_start:
                await self.contact()
            while True:
                now = self.clock.now()
                if until is not None and now >= until:
                    return
                window = self.schedule.next_window(now, self._done_windows)
                upload_at = self.next_contact()
                t = min(window.start, upload_at)
                if until is not None and t >= until:
                    await self.clock.sleep_until(until)
                    return
                await self.clock.sleep_until(t)
                if self.battery is not None:
                    self.battery.elapse(self.clock.now())
                if upload_at <= window.start:
                    await self.contact()
                elif self.spool.full:
                    log.warning("spool full: window %s skipped", iso(window.start))
                    self._done_windows[window.index] = window.start
                else:
                    try:
                        await self.run_window(window)
                    except (SourceError, OSError) as exc:  # receiver unplugged, pipe gone...
                        log.error("listen window %s failed: %s", iso(window.start), exc)
                        self._done_windows[window.index] = window.start
                        await self.clock.sleep_until(window.end)
        finally:
            self._save_battery()

    def _save_battery(self) -> None:
        if self.battery is not None:
            self.spool.set_state(battery_mah=f"{self.battery.consumed_mah:.6f}")

    async def close(self) -> None:
        try:
            if self._source is not None:
                await self._source.close()
        finally:
            try:
                if self._transport is not None:
                    await self._transport.close()
            finally:
                self.spool.close()
