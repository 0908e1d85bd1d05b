"""Test helpers for the gateway: frames, a scheduled in-memory radio source, an in-memory head-end."""

from __future__ import annotations

import heapq
from typing import Any

import cbor2

from omshub.codec import encode_telegram
from omshub.gateway.clock import Clock
from omshub.gateway.frames import ReceivedFrame
from omshub.protocol.envelope import TransportError, decode_envelope

RECORDS = [
    {
        "quantity": "energy",
        "unit": "kWh",
        "value": 165.0,
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
    }
]


def frame(
    meter_id: str = "12345678",
    manufacturer: str = "KAM",
    device_type: int = 4,
    access: int = 0,
    compact: bool = False,
    value: float = 165.0,
) -> bytes:
    recs = [dict(RECORDS[0], value=value)]
    return encode_telegram(
        {"manufacturer": manufacturer, "id": meter_id, "version": 1, "device_type_code": device_type},
        recs,
        mode=5,
        key=bytes(16),
        access_number=access % 256,
        compact=compact,
    )


class ScheduledSource:
    """Meters transmitting periodically: meter i sends every ``interval`` s at phase ``i*step``."""

    def __init__(
        self,
        clock: Clock,
        frames_by_meter: list[bytes],
        interval: float = 60.0,
        step: float = 1.0,
        mode: str = "T1",
        rssi: int | None = -70,
    ) -> None:
        self.clock = clock
        self.frames_by_meter = frames_by_meter
        self.interval = interval
        self.step = step
        self.mode = mode
        self.rssi = rssi
        self.modes_set: list[list[str]] = []
        self.sent = 0
        self.closed = False

    async def set_link_modes(self, modes: list[str]) -> None:
        self.modes_set.append(list(modes))

    async def frames(self):
        now = self.clock.now()
        heap = []
        for i, f in enumerate(self.frames_by_meter):
            phase = (i * self.step) % self.interval
            k = -(-(now - phase) // self.interval)
            heapq.heappush(heap, (phase + k * self.interval, i))
        while True:
            t, i = heapq.heappop(heap)
            await self.clock.sleep_until(t)
            heapq.heappush(heap, (t + self.interval, i))
            self.sent += 1
            yield ReceivedFrame(self.frames_by_meter[i], t, self.rssi, self.mode)

    async def close(self) -> None:
        self.closed = True


class FakeHeadend:
    """The head-end side of §2 as far as the gateway needs it: store, dedup, ack, deliver config."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, bytes, int], dict] = {}
        self.uplinks: list[dict[str, Any]] = []
        self.desired: dict | None = None
        self.down = False
        self.fail_after_processing = False
        self.seen_seq: dict[str, int] = {}

    def handle(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        env = decode_envelope(body, content_type)
        self.uplinks.append(env)
        stored = dup = 0
        for t in env["telegrams"]:
            key = (env["gw"], t["raw"], t["rx"])
            if key in self.stored:
                dup += 1
            else:
                self.stored[key] = t
                stored += 1
        cfg = None
        if self.desired is not None and self.desired.get("version") != env["cfg"]:
            if not (env.get("cfg_error") and env["cfg_error"]["version"] == self.desired.get("version")):
                cfg = self.desired
        return cbor2.dumps(
            {"ack": env["seq"], "stored": stored, "duplicates": dup, "rejected": [], "config": cfg, "time": 0}
        )


class FakeTransport:
    name = "fake"

    def __init__(self, headend: FakeHeadend, cred_in_envelope: bool = False) -> None:
        self.headend = headend
        self.cred_in_envelope = cred_in_envelope
        self.attempts = 0
        self.closed = False

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        self.attempts += 1
        if self.headend.down:
            raise TransportError("link down")
        answer = self.headend.handle(body, content_type)
        if self.headend.fail_after_processing:
            raise TransportError("answer lost")
        return answer

    async def close(self) -> None:
        self.closed = True
