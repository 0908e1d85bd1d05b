"""Fault test: `omshub serve` SIGKILLed while ingesting and decoding a stream of uplinks.

Every telegram of an uplink acknowledged before a kill must afterwards be stored once and
decoded once (one reading); the gateway side re-sends what was not acknowledged, like the real
gateway agent does (same seq, so a batch that was stored but whose answer was lost is not
stored twice).
"""

from __future__ import annotations

import threading
import time

import cbor2
import httpx
import pytest
from sqlalchemy import func, select

from omshub.cloud.store.models import Reading, Telegram

from .conftest import KEY, Hub, batch_envelope, encode

METERS = 50
UPLINKS = 80
PER_UPLINK = 100
T0 = 1767225600


def _frames(seq: int) -> list[bytes]:
    # each (uplink, slot) has its own access number / value, so every telegram is a distinct reading
    return [
        encode(f"5{i % METERS:07d}", energy=float(seq * 1000 + i), access_number=(seq * PER_UPLINK + i) % 256)
        for i in range(PER_UPLINK)
    ]


class Gateway:
    """Streams uplinks with increasing seq; remembers which were acknowledged."""

    def __init__(self, serial: str, credential: str, frames: dict[int, list[bytes]]) -> None:
        self.serial, self.credential, self.frames = serial, credential, frames
        self.acked: set[int] = set()

    def body(self, seq: int) -> bytes:
        return cbor2.dumps(
            batch_envelope(self.serial, seq, self.frames[seq], t0=T0 + seq * 3600, dts=list(range(PER_UPLINK)))
        )

    def stream(self, base_url: str, seqs: list[int], stop: threading.Event, pause: float = 0.0) -> None:
        with httpx.Client(base_url=base_url, timeout=20) as client:
            for seq in seqs:
                if stop.wait(pause):
                    return
                try:
                    r = client.post(
                        "/api/v1/uplink",
                        content=self.body(seq),
                        headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {self.credential}"},
                    )
                except httpx.HTTPError:
                    return  # server gone: the rest is re-sent after the restart
                if r.status_code == 200 and cbor2.loads(r.content)["ack"] == seq:
                    self.acked.add(seq)


def _count(db, *where) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Telegram).where(*where))


def _wait_decoded(db, gateway_id: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count(db, Telegram.gateway_id == gateway_id, Telegram.state == "new") == 0:
            return
        time.sleep(0.3)
    raise AssertionError("telegrams still undecoded")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_while_ingesting_and_decoding_loses_nothing(live_server, db, keystore):
    hub = Hub(db, keystore)
    tenant = hub.tenant()
    gw = hub.gateway(tenant)
    for i in range(METERS):
        hub.meter(tenant, f"5{i:07d}")
    hub.keys(tenant, {f"5{i:07d}": KEY for i in range(METERS)})
    frames = {seq: _frames(seq) for seq in range(1, UPLINKS + 1)}
    gateway = Gateway(gw.serial, gw.credential, frames)

    pending = list(range(1, UPLINKS + 1))
    kills = 0
    at_kill: list[tuple[int, int]] = []  # (decoded, new) right after each kill
    # two kills at different points of the stream: decoding in a thread of the server, then in
    # decode worker processes (the default on more than one core; with small batches, so that on
    # SQLite the idle-core worker decodes batches ahead while uplinks arrive and is killed too)
    for workers in ("0", "1"):
        server = live_server(omshub_pipeline_workers=workers, omshub_pipeline_batch="200" if workers == "1" else "1000")
        acked_before = len(gateway.acked)
        decoded_before = _count(db, Telegram.gateway_id == gw.id, Telegram.state == "decoded")
        stop = threading.Event()
        sender = threading.Thread(target=gateway.stream, args=(server.base_url, pending, stop, 0.15))
        sender.start()
        deadline = time.monotonic() + 120
        # kill once uplinks are being acknowledged, decoding has committed something and (if we
        # catch it) a backlog is waiting to be decoded
        while sender.is_alive() and time.monotonic() < deadline:
            decoded = _count(db, Telegram.gateway_id == gw.id, Telegram.state == "decoded")
            if (
                len(gateway.acked) >= acked_before + 3
                and decoded > decoded_before
                and (
                    _count(db, Telegram.gateway_id == gw.id, Telegram.state == "new") > 0
                    or len(gateway.acked) >= acked_before + 15
                )
            ):
                break
            time.sleep(0.01)
        server.kill()  # SIGKILL: no chance to clean up
        kills += 1
        stop.set()
        sender.join(30)
        pending = [seq for seq in range(1, UPLINKS + 1) if seq not in gateway.acked]
        assert pending, "the stream ended before the kill; the test did not test anything"
        at_kill.append(
            (
                _count(db, Telegram.gateway_id == gw.id, Telegram.state == "decoded"),
                _count(db, Telegram.gateway_id == gw.id, Telegram.state == "new"),
            )
        )
        acked_now = set(gateway.acked)
        # what was acknowledged is committed: all its telegrams are there, right after the kill
        for seq in acked_now:
            raws = frames[seq]
            with db.session() as s:
                stored = s.scalar(
                    select(func.count())
                    .select_from(Telegram)
                    .where(Telegram.gateway_id == gw.id, Telegram.raw.in_(raws))
                )
            assert stored == PER_UPLINK, f"uplink {seq} acknowledged but only {stored} telegrams stored"

    # final run: re-send the rest (and one acknowledged uplink again, as a lost answer would cause)
    server = live_server()
    resend = pending + [min(gateway.acked)]
    gateway.stream(server.base_url, resend, threading.Event())
    assert gateway.acked == set(range(1, UPLINKS + 1))
    _wait_decoded(db, gw.id)
    server.stop()

    total = UPLINKS * PER_UPLINK
    assert kills == 2
    assert all(decoded > 0 for decoded, _new in at_kill), f"(decoded, new) at the kills: {at_kill}"
    assert _count(db, Telegram.gateway_id == gw.id) == total
    assert _count(db, Telegram.gateway_id == gw.id, Telegram.state == "decoded") == total
    with db.session() as s:
        readings = s.scalar(select(func.count()).select_from(Reading).where(Reading.tenant_id == tenant.id))
        distinct = s.scalar(
            select(func.count(func.distinct(Reading.telegram_id))).where(Reading.tenant_id == tenant.id)
        )
    assert readings == distinct == total
