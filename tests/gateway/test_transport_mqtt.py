"""MQTT uplink: gateway transport and head-end bridge through the Mosquitto at OMSHUB_TEST_MQTT."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import aiomqtt
import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.cloud.app import _start_transports
from omshub.cloud.ingest.mqtt import MqttBridge, _peek_seq
from omshub.cloud.settings import load_settings
from omshub.gateway.transport_mqtt import MqttTransport, _envelope_seq
from omshub.gateway.uplink import UplinkTransport
from omshub.protocol.envelope import (
    PayloadTooLarge,
    TransportError,
    UplinkRejected,
    build_envelope,
    decode_envelope,
    parse_response,
)
from omshub.protocol.topics import BrokerAddress, parse_broker_url
from omshub.sim.linkemu import TcpProxy
from tests.gateway.test_transport_coap import CRED, Recorder, frames, headend_database, stored_telegrams

BROKER = os.environ.get("OMSHUB_TEST_MQTT", "")


def _broker_reachable() -> bool:
    if not BROKER:
        return False
    address = parse_broker_url(BROKER)
    try:
        with socket.create_connection((address.host, address.port), timeout=1):
            return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(
    not _broker_reachable(),
    reason=f"no MQTT broker: set OMSHUB_TEST_MQTT=host:port to a running Mosquitto (scripts/test does); got {BROKER!r}",
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def gateway_transport(broker: str, prefix: str, **kwargs) -> MqttTransport:
    # A client id of its own: parallel tests (xdist) would otherwise kick each other off the
    # broker, since a gateway's default client id is derived from its serial.
    return MqttTransport(broker, "GW-1", prefix=prefix, client_id=f"test-{uuid.uuid4().hex}", **kwargs)


async def bridged(handler) -> tuple[MqttBridge, str]:
    prefix = f"omshub-test-{uuid.uuid4().hex[:10]}"  # tests (and xdist workers) don't meet
    bridge = MqttBridge(handler, BROKER, prefix=prefix)
    await bridge.start()
    assert bridge.ready
    return bridge, prefix


@needs_broker
def test_round_trip_250_telegrams():
    async def main():
        handler = Recorder()
        bridge, prefix = await bridged(handler)
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        assert isinstance(transport, UplinkTransport) and transport.cred_in_envelope
        sent = frames(250, seed=3)
        try:
            first = build_envelope(serial="GW-1", seq=41, cfg=0, telegrams=sent, cred=CRED)
            second = build_envelope(serial="GW-1", seq=42, cfg=0, telegrams=sent[:1], cred=CRED)
            a1 = parse_response(await transport.send(first))
            a2 = parse_response(await transport.send(second))  # same connection, next batch
        finally:
            await transport.close()
            await bridge.stop()
        assert (a1["ack"], a1["stored"], a2["ack"], a2["stored"]) == (41, 250, 42, 1)
        body, content_type, name, credential = handler.calls[0]
        assert (body, content_type, name, credential) == (first, "application/cbor", "mqtt", None)
        assert [t["raw"] for t in decode_envelope(body)["telegrams"]] == [f.raw for f in sent]

    run(main())


@needs_broker
def test_wrong_credential_and_foreign_topic_are_refused():
    async def main():
        handler = Recorder()
        bridge, prefix = await bridged(handler)
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        try:
            with pytest.raises(UplinkRejected) as bad_cred:
                await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, cred="wrong"))
            # a gateway publishing another gateway's envelope on its own topic
            with pytest.raises(UplinkRejected) as foreign:
                await transport.send(build_envelope(serial="GW-2", seq=2, cfg=0, cred=CRED))
        finally:
            await transport.close()
            await bridge.stop()
        assert bad_cred.value.status == 401 and "bad_credential" in str(bad_cred.value)
        assert foreign.value.status == 403 and "topic_mismatch" in str(foreign.value)
        assert len(handler.calls) == 1  # the foreign envelope never reached the handler

    run(main())


@needs_broker
def test_oversized_body_is_413_before_the_handler():
    async def main():
        handler = Recorder()
        prefix = f"omshub-test-{uuid.uuid4().hex[:10]}"
        bridge = MqttBridge(handler, BROKER, prefix=prefix, max_body=2_000)
        await bridge.start()
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        try:
            with pytest.raises(PayloadTooLarge, match="413"):
                await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=frames(40), cred=CRED))
        finally:
            await transport.close()
            await bridge.stop()
        assert handler.calls == []

    run(main())


@needs_broker
def test_stale_answers_on_the_down_topic_are_skipped():
    async def main():
        bridge, prefix = await bridged(Recorder(delay_s=0.5))
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        address = parse_broker_url(BROKER)

        async def stale_answer():
            await asyncio.sleep(0.2)  # while the head-end works on seq 7
            async with aiomqtt.Client(address.host, address.port) as other:
                await other.publish(f"{prefix}/down/GW-1", cbor2.dumps({"ack": 6, "stored": 0}), qos=1)
                await other.publish(f"{prefix}/down/GW-1", b"\xff garbage", qos=1)

        try:
            body = build_envelope(serial="GW-1", seq=7, cfg=0, telegrams=frames(2), cred=CRED)
            answer, _ = await asyncio.gather(transport.send(body), stale_answer())
        finally:
            await transport.close()
            await bridge.stop()
        assert parse_response(answer)["ack"] == 7

    run(main())


@needs_broker
def test_no_head_end_means_timeout():
    async def main():
        transport = gateway_transport(BROKER, f"omshub-test-{uuid.uuid4().hex[:10]}", timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(TransportError, match="no answer for seq 1"):
            await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, cred=CRED))
        await transport.close()
        assert time.monotonic() - started < 2

    run(main())


@needs_broker
def test_connection_cut_then_reconnect_on_next_send():
    async def main():
        bridge, prefix = await bridged(Recorder())
        address = parse_broker_url(BROKER)
        proxy = TcpProxy((address.host, address.port))
        await proxy.start()
        transport = gateway_transport(f"127.0.0.1:{proxy.port}", prefix, timeout_s=3)
        try:
            ok = await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, cred=CRED))
            proxy.down = True
            with pytest.raises(TransportError):
                await transport.send(build_envelope(serial="GW-1", seq=2, cfg=0, cred=CRED))
            proxy.down = False
            again = await transport.send(build_envelope(serial="GW-1", seq=2, cfg=0, cred=CRED))
        finally:
            await transport.close()
            await proxy.stop()
            await bridge.stop()
        assert parse_response(ok)["ack"] == 1 and parse_response(again)["ack"] == 2
        assert proxy.stats.connections == 2

    run(main())


def test_unreachable_broker_is_transport_error():
    async def main():
        with socket.socket() as s:  # a port with nobody listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        transport = MqttTransport(f"mqtt://127.0.0.1:{port}", "GW-1", timeout_s=2)
        with pytest.raises(TransportError, match="127.0.0.1"):
            await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, cred=CRED))
        await transport.close()

    run(main())


@pytest.mark.parametrize(
    "url, expected",
    [
        ("127.0.0.1:1883", ("127.0.0.1", 1883, False, None)),
        ("mqtt://broker", ("broker", 1883, False, None)),
        ("mqtts://gw:s%40cret@broker:8884", ("broker", 8884, True, "gw")),
    ],
)
def test_broker_urls(url, expected):
    a = parse_broker_url(url)
    assert (a.host, a.port, a.tls, a.username) == expected
    if a.username:
        assert a.password == "s@cret"


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "mqtt://b:99999", "mqtt://b/path"])
def test_bad_broker_urls(url):
    with pytest.raises(ValueError, match="MQTT broker URL"):
        parse_broker_url(url)


def test_bad_serial_and_envelope_without_seq():
    with pytest.raises(ValueError, match="serial"):
        MqttTransport("127.0.0.1:1883", "GW/1")
    transport = MqttTransport("127.0.0.1:1883", "GW-1")
    with pytest.raises(ValueError, match="seq"):
        asyncio.run(transport.send(cbor2.dumps({"v": 1})))


@needs_broker
def test_into_the_real_ingest(tmp_path):

    db = headend_database(tmp_path)

    async def main():
        prefix = f"omshub-test-{uuid.uuid4().hex[:10]}"
        bridge = MqttBridge.for_database(db, BROKER, prefix=prefix)
        await bridge.start()
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        sent = frames(250, seed=22)
        try:
            body = build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=sent, cred=CRED)
            first = parse_response(await transport.send(body))
            again = parse_response(await transport.send(body))
        finally:
            await transport.close()
            await bridge.stop()
        return sent, first, again

    try:
        sent, first, again = run(main())
        assert (first["ack"], first["stored"], again["ack"]) == (1, 250, 1)
        assert stored_telegrams(db) == [f.raw for f in sent]
    finally:
        db.dispose()


@given(st.text(max_size=80))
def test_any_broker_url_parses_or_is_refused_clearly(text):
    try:
        address = parse_broker_url(text)
    except ValueError as exc:
        assert "MQTT broker URL" in str(exc)
    else:
        assert isinstance(address, BrokerAddress) and address.host and 0 < address.port < 65536


@given(st.binary(max_size=200))
def test_any_body_yields_a_seq_or_a_clear_error(body):
    try:
        seq = _envelope_seq(body, "application/cbor")
    except ValueError as exc:
        assert "envelope" in str(exc)
    else:
        assert isinstance(seq, int)


@given(st.binary(max_size=600))
def test_bridge_seq_peek_never_raises(body):

    seq = _peek_seq(body)
    assert seq is None or isinstance(seq, int)


def test_bridge_seq_peek_reads_only_the_head():

    body = build_envelope(serial="GW-1", seq=123456, cfg=0, telegrams=frames(300), cred=CRED)
    assert _peek_seq(body) == 123456
    assert _peek_seq(cbor2.dumps({"batch": {"data": b"x" * 5000}, "seq": 1})) is None


@needs_broker
def test_serve_settings_choose_prefix_and_shared_group(tmp_path):
    """`omshub serve --mqtt-prefix P --mqtt-shared-group G`: the head-end's bridge takes the
    gateways' uplinks on P/up/<serial> through the shared subscription $share/G/P/up/+."""

    db = headend_database(tmp_path)
    prefix = f"omshub-test-{uuid.uuid4().hex[:10]}/site-1"
    settings = load_settings(None, environ={}, mqtt_url=BROKER, mqtt_prefix=prefix, mqtt_shared_group="headends")

    class App:
        class state:
            pass

    async def main():
        [bridge] = await _start_transports(App, settings, db)
        assert bridge.subscription == f"$share/headends/{prefix}/up/+" and bridge.ready
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        sent = frames(5, seed=23)
        try:
            answer = parse_response(
                await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=sent, cred=CRED))
            )
        finally:
            await transport.close()
            await bridge.stop()
        return sent, answer

    try:
        sent, answer = run(main())
        assert (answer["ack"], answer["stored"]) == (1, 5)
        assert stored_telegrams(db) == [f.raw for f in sent]
    finally:
        db.dispose()
