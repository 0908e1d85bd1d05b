"""CoAP uplink: gateway transport against the head-end's CoAP server, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from datetime import UTC, datetime

import cbor2
import orjson
import pytest
from sqlalchemy import select

from omshub.cloud.ingest.coap import CoapServer
from omshub.cloud.services.accounts import hash_secret
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Gateway, Telegram, Tenant
from omshub.gateway.frames import ReceivedFrame
from omshub.gateway.transport_coap import CoapTransport
from omshub.gateway.uplink import UplinkTransport
from omshub.protocol.envelope import (
    PayloadTooLarge,
    TransportError,
    UplinkRejected,
    build_envelope,
    decode_envelope,
    parse_response,
)
from omshub.sim.linkemu import UdpProxy

CRED = "gw-secret-credential"


def frames(n: int, seed: int = 1) -> list[ReceivedFrame]:
    rng = random.Random(seed)
    return [
        ReceivedFrame(rng.randbytes(rng.randint(50, 110)), 1_700_000_000 + i * 3, -rng.randint(40, 100), "T1")
        for i in range(n)
    ]


class Rejected(Exception):
    """Shaped like ingest.UplinkRejected (status, code, message)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Recorder:
    """An uplink handler that checks the credential and answers like ingest does."""

    def __init__(self, delay_s: float = 0.0):
        self.calls: list[tuple[bytes, str, str, str | None]] = []
        self.delay_s = delay_s

    def __call__(self, body: bytes, content_type: str, transport: str, credential: str | None) -> dict:
        self.calls.append((body, content_type, transport, credential))
        if self.delay_s:
            time.sleep(self.delay_s)
        env = decode_envelope(body, content_type)
        if env.get("cred") != CRED:
            raise Rejected(401, "bad_credential", "unknown gateway credential")
        if env.get("v") != 1:
            raise Rejected(422, "bad_envelope", "v: must be 1")
        if env.get("gw") == "crash":
            raise RuntimeError("database is on fire")
        return {
            "ack": env["seq"],
            "stored": len(env["telegrams"]),
            "duplicates": 0,
            "rejected": [],
            "config": None,
            "time": 1_700_000_500,
        }


async def serving(handler, **kwargs) -> tuple[CoapServer, str]:
    server = CoapServer(handler, host="127.0.0.1", port=0, **kwargs)
    await server.start()
    assert server.port > 0
    return server, f"coap://127.0.0.1:{server.port}/u"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_round_trip_small_batch():
    async def main():
        handler = Recorder()
        server, url = await serving(handler)
        transport = CoapTransport(url, timeout_s=10)
        assert isinstance(transport, UplinkTransport) and transport.cred_in_envelope
        try:
            sent = frames(3)
            body = build_envelope(serial="GW-1", seq=5, cfg=0, telegrams=sent, cred=CRED)
            answer = parse_response(await transport.send(body))
        finally:
            await transport.close()
            await server.stop()
        assert answer["ack"] == 5 and answer["stored"] == 3
        ((got, content_type, name, credential),) = handler.calls
        assert (got, content_type, name, credential) == (body, "application/cbor", "coap", None)

    run(main())


def test_blockwise_batch_of_250_telegrams_arrives_intact():
    async def main():
        handler = Recorder()
        server, _ = await serving(handler)
        proxy = UdpProxy(("127.0.0.1", server.port))
        await proxy.start()
        transport = CoapTransport(f"coap://127.0.0.1:{proxy.port}", timeout_s=20)
        sent = frames(250, seed=7)
        body = build_envelope(serial="GW-1", seq=9, cfg=2, telegrams=sent, cred=CRED)
        try:
            answer = parse_response(await transport.send(body))
        finally:
            await transport.close()
            await proxy.stop()
            await server.stop()
        assert 20_000 < len(body) < 30_000
        assert answer == {
            "ack": 9,
            "stored": 250,
            "duplicates": 0,
            "rejected": [],
            "config": None,
            "time": 1_700_000_500,
        }
        assert handler.calls[0][0] == body  # reassembled byte for byte
        assert [t["raw"] for t in decode_envelope(handler.calls[0][0])["telegrams"]] == [f.raw for f in sent]
        # Block1 in blocks of 1,024 bytes: one datagram per block each way.
        blocks = -(-len(body) // 1024)
        assert proxy.stats.packets_up == blocks and proxy.stats.packets_down == blocks
        assert proxy.stats.bytes_up < len(body) * 1.05

    run(main())


def test_wrong_credential_is_401_unauthorized():
    async def main():
        server, url = await serving(Recorder())
        transport = CoapTransport(url, timeout_s=10)
        try:
            body = build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=frames(2), cred="wrong")
            with pytest.raises(UplinkRejected) as err:
                await transport.send(body)
        finally:
            await transport.close()
            await server.stop()
        assert err.value.status == 401
        assert "4.01" in str(err.value) and "bad_credential" in str(err.value)

    run(main())


def test_malformed_envelope_is_400_and_handler_crash_is_retryable_500():
    async def main():
        server, url = await serving(Recorder())
        transport = CoapTransport(url, timeout_s=10)
        try:
            bad = cbor2.dumps({"v": 2, "gw": "GW-1", "seq": 1, "cfg": 0, "cred": CRED})
            with pytest.raises(UplinkRejected) as err:
                await transport.send(bad)
            crash = build_envelope(serial="crash", seq=1, cfg=0, cred=CRED)
            with pytest.raises(TransportError) as failed:
                await transport.send(crash)
        finally:
            await transport.close()
            await server.stop()
        assert err.value.status == 400 and "v: must be 1" in str(err.value)
        assert not isinstance(failed.value, UplinkRejected) and "5.00" in str(failed.value)
        assert "on fire" not in str(failed.value)  # internals stay in the head-end's log

    run(main())


def test_body_over_limit_is_refused_with_413_before_reassembly():
    async def main():
        handler = Recorder()
        server, url = await serving(handler, max_body=4_000)
        transport = CoapTransport(url, timeout_s=10)
        try:
            big = build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=frames(100), cred=CRED)
            with pytest.raises(PayloadTooLarge) as err:
                await transport.send(big)
            small = build_envelope(serial="GW-1", seq=2, cfg=0, telegrams=frames(5), cred=CRED)
            assert parse_response(await transport.send(small))["ack"] == 2
        finally:
            await transport.close()
            await server.stop()
        assert len(big) > 4_000 and "4.13" in str(err.value)
        assert len(handler.calls) == 1  # the big one never reached the handler

    run(main())


def test_json_envelope_gets_json_answer():
    async def main():
        server, url = await serving(Recorder())
        transport = CoapTransport(url, timeout_s=10)
        try:
            body = build_envelope(serial="GW-1", seq=3, cfg=0, telegrams=frames(2), cred=CRED, encoding="json")
            answer = await transport.send(body, "application/json")
        finally:
            await transport.close()
            await server.stop()
        assert orjson.loads(answer)["ack"] == 3

    run(main())


def test_slow_or_absent_head_end_times_out_as_transport_error():
    async def main():
        server, url = await serving(Recorder(delay_s=1.5))
        transport = CoapTransport(url, timeout_s=0.5)
        body = build_envelope(serial="GW-1", seq=1, cfg=0, cred=CRED)
        try:
            started = time.monotonic()
            with pytest.raises(TransportError, match="no answer"):
                await transport.send(body)
            assert time.monotonic() - started < 1.4
        finally:
            await server.stop()
        # Nobody listening any more: an ICMP error or the timeout, either way a TransportError.
        with pytest.raises(TransportError):
            await transport.send(body)
        await transport.close()

    run(main())


def test_link_down_at_udp_level_is_transport_error():
    async def main():
        server, _ = await serving(Recorder())
        proxy = UdpProxy(("127.0.0.1", server.port))
        await proxy.start()
        proxy.down = True
        transport = CoapTransport(f"coap://127.0.0.1:{proxy.port}/u", timeout_s=0.8)
        try:
            with pytest.raises(TransportError):
                await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, cred=CRED))
            proxy.down = False  # link back: the retry (aiocoap retransmits, then we resend) passes
            answer = await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, cred=CRED))
        finally:
            await transport.close()
            await proxy.stop()
            await server.stop()
        assert parse_response(answer)["ack"] == 1 and proxy.stats.dropped >= 1

    run(main())


@pytest.mark.parametrize("url", ["http://h/u", "coap://", "coap://h/u?x=1", "coap://h:99999/u", "coap://h:x/u"])
def test_bad_url_is_refused(url):
    with pytest.raises(ValueError, match="CoAP head-end URL"):
        CoapTransport(url)


def headend_database(tmp_path, serial: str = "GW-1", credential: str = CRED):
    """A real head-end database (SQLite, migrated) with one tenant and one gateway."""

    db = Database(f"sqlite:///{tmp_path / 'headend.sqlite3'}")
    db.migrate()
    now = datetime.now(UTC)
    with db.transaction() as s:
        tenant = Tenant(slug="t1", name="Tenant 1", created_at=now)
        s.add(tenant)
        s.flush()
        s.add(
            Gateway(
                tenant_id=tenant.id, serial=serial, name=serial, credential_hash=hash_secret(credential), created_at=now
            )
        )
    return db


def stored_telegrams(db) -> list[bytes]:

    with db.session() as s:
        return list(s.scalars(select(Telegram.raw).order_by(Telegram.id)))


def test_into_the_real_ingest_with_blockwise_and_retry(tmp_path):
    db = headend_database(tmp_path)

    async def main():
        server = CoapServer.for_database(db, host="127.0.0.1", port=0)
        await server.start()
        transport = CoapTransport(f"coap://127.0.0.1:{server.port}/u", timeout_s=20)
        sent = frames(250, seed=21)
        body = build_envelope(
            serial="GW-1", seq=1, cfg=0, telegrams=sent, cred=CRED, status={"battery_pct": 97, "spool": 250}
        )
        try:
            first = parse_response(await transport.send(body))
            again = parse_response(await transport.send(body))  # the answer was lost: retry
            with pytest.raises(UplinkRejected) as err:
                await transport.send(build_envelope(serial="GW-1", seq=2, cfg=0, cred="not-it"))
        finally:
            await transport.close()
            await server.stop()
        return sent, first, again, err.value

    try:
        sent, first, again, refused = run(main())
        assert (first["ack"], first["stored"], first["duplicates"]) == (1, 250, 0)
        assert again["ack"] == 1 and again["stored"] == 250  # acknowledged again, nothing new
        assert stored_telegrams(db) == [f.raw for f in sent]
        assert refused.status == 401
    finally:
        db.dispose()


def test_server_reports_a_busy_port_clearly():
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
            busy.bind(("127.0.0.1", 0))
            server = CoapServer(Recorder(), host="127.0.0.1", port=busy.getsockname()[1])
            with pytest.raises(OSError, match="CoAP server cannot bind udp 127.0.0.1"):
                await server.start()
            await server.stop()

    run(main())


def test_an_incomplete_block_transfer_is_sent_again_other_refusals_are_not():
    """4.08 Request Entity Incomplete: the head-end lost earlier blocks (it restarted, or the transfer
    outlived its time): the whole upload sent again succeeds, so the agent retries it. A 4.00 is
    final; a 4.13 asks for smaller uplinks."""
    import aiocoap
    from aiocoap.numbers.codes import Code

    from omshub.gateway.transport_coap import _refusal
    from omshub.protocol.envelope import PayloadTooLarge, TransportError, UplinkRejected

    def answer(code):
        return _refusal("coap://h/u", aiocoap.Message(code=code, payload=b"why"))

    incomplete = answer(Code.REQUEST_ENTITY_INCOMPLETE)
    assert isinstance(incomplete, TransportError) and not isinstance(incomplete, UplinkRejected)
    assert isinstance(answer(Code.BAD_REQUEST), UplinkRejected)
    assert isinstance(answer(Code.REQUEST_ENTITY_TOO_LARGE), PayloadTooLarge)
