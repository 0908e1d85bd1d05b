"""CoAP and MQTT uplinks are bounded too (issue 9 item 7): the CoAP server's blockwise assembly
(each transfer and all unfinished ones together) and the MQTT bridge's largest packet."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiocoap
import aiomqtt
import pytest
from aiocoap.numbers.codes import Code

from omshub.cloud.ingest.coap import Block1Assembly, CoapServer
from omshub.cloud.ingest.mqtt import MqttBridge
from omshub.protocol.envelope import PayloadTooLarge, build_envelope, parse_response
from omshub.protocol.topics import parse_broker_url

from ..gateway.test_transport_coap import CRED, Recorder, frames
from ..gateway.test_transport_mqtt import BROKER, gateway_transport, needs_broker

BLOCK = 1024


class Sink:
    """An uplink handler taking any body (the bounds come before it)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, body: bytes, content_type: str, transport: str, credential: str | None) -> dict:
        self.bodies.append(body)
        return {"ack": 0, "stored": 0, "duplicates": 0, "rejected": [], "config": None, "time": 0}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _block(client: aiocoap.Context, url: str, number: int, more: bool, payload: bytes) -> aiocoap.Message:
    request = aiocoap.Message(code=Code.POST, uri=url, payload=payload, block1=(number, more, 6), content_format=60)
    return await client.request(request, handle_blockwise=False).response


def test_coap_unfinished_transfers_together_are_bounded():
    """Each source may hold an unfinished transfer; all of them together at most max_pending
    bytes: past it a block gets 5.03 (the gateway retries later), and a finished or refused
    transfer frees what it held."""

    async def main():
        handler = Sink()
        server = CoapServer(handler, host="127.0.0.1", port=0, max_body=4 * BLOCK, max_pending=6000)
        await server.start()
        url = f"coap://127.0.0.1:{server.port}/u"
        clients = [await aiocoap.Context.create_client_context() for _ in range(3)]  # three source ports
        assembly = server.assembly
        try:
            a, b, c = clients
            for n in range(3):
                assert (await _block(a, url, n, True, b"a" * BLOCK)).code == Code.CONTINUE
            assert assembly.pending == 3 * BLOCK
            assert (await _block(b, url, 0, True, b"b" * BLOCK)).code == Code.CONTINUE
            assert (await _block(b, url, 1, True, b"b" * BLOCK)).code == Code.CONTINUE
            busy = await _block(b, url, 2, True, b"b" * BLOCK)
            assert busy.code == Code.SERVICE_UNAVAILABLE and busy.payload.startswith(b"busy:")
            assert assembly.pending == 3 * BLOCK  # b's transfer was dropped
            # a's transfer finishes: the handler gets the whole body, nothing stays held
            done = await _block(a, url, 3, False, b"a" * 100)
            assert done.code == Code.CHANGED and handler.bodies == [b"a" * (3 * BLOCK + 100)]
            assert assembly.pending == 0
            # one over max_body: refused at its first block past the limit, with Size1
            for n in range(4):
                assert (await _block(c, url, n, True, b"c" * BLOCK)).code == Code.CONTINUE
            too_big = await _block(c, url, 4, True, b"c" * BLOCK)
            assert too_big.code == Code.REQUEST_ENTITY_TOO_LARGE and too_big.opt.size1 == 4 * BLOCK
            assert too_big.payload.startswith(b"body_too_large:") and assembly.pending == 0
            # a block of no transfer is "incomplete"
            assert (await _block(b, url, 4, True, b"b" * BLOCK)).code == Code.REQUEST_ENTITY_INCOMPLETE
        finally:
            for client in clients:
                await client.shutdown()
            await server.stop()

    run(main())


def test_coap_abandoned_transfers_are_dropped_after_their_time():
    async def main():
        server = CoapServer(Sink(), host="127.0.0.1", port=0)
        server.assembly.ttl_s = 0.3
        await server.start()
        url = f"coap://127.0.0.1:{server.port}/u"
        client = await aiocoap.Context.create_client_context()
        try:
            assert (await _block(client, url, 0, True, b"x" * BLOCK)).code == Code.CONTINUE
            assert server.assembly.pending == BLOCK
            time.sleep(0.4)
            other = await aiocoap.Context.create_client_context()
            assert (await _block(other, url, 0, True, b"y" * BLOCK)).code == Code.CONTINUE
            assert server.assembly.pending == BLOCK  # the abandoned one went when the next came
            await other.shutdown()
        finally:
            await client.shutdown()
            await server.stop()

    run(main())


def test_coap_announced_size_over_the_limit_is_refused_at_once():
    assembly = Block1Assembly(max_body=4096, max_pending=1 << 20)
    request = aiocoap.Message(code=Code.POST, payload=b"x" * BLOCK, block1=(0, True, 6), size1=256 << 20)
    with pytest.raises(Exception) as refused:
        assembly.feed(request)
    message = refused.value.to_message()
    assert message.code == Code.REQUEST_ENTITY_TOO_LARGE and message.opt.size1 == 4096
    assert assembly.pending == 0


@needs_broker
def test_mqtt_bridge_never_receives_a_publish_over_its_limit(caplog):
    async def main():
        handler = Recorder()
        prefix = f"omshub-test-{uuid.uuid4().hex[:10]}"
        bridge = MqttBridge(handler, BROKER, prefix=prefix, max_body=4096)
        await bridge.start()
        transport = gateway_transport(BROKER, prefix, timeout_s=10)
        address = parse_broker_url(BROKER)
        try:
            # just over the limit: it reaches the bridge, which answers 413 and logs it
            with pytest.raises(PayloadTooLarge, match="413"):
                await transport.send(build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=frames(60), cred=CRED))
            # far over it (no credentials needed to publish on an open broker): the broker drops it
            # for the bridge (MQTT 5 Maximum Packet Size), so its client never reads it into memory
            async with aiomqtt.Client(address.host, address.port, identifier=f"big-{uuid.uuid4().hex}") as other:
                await other.publish(f"{prefix}/up/GW-1", b"\xa1" + b"x" * (8 << 20), qos=1)
            await asyncio.sleep(1.0)
            assert bridge.handled == 1 and handler.calls == []  # (1: the 413 above)
            # and it goes on serving
            answer = await transport.send(build_envelope(serial="GW-1", seq=2, cfg=0, telegrams=frames(2), cred=CRED))
            assert parse_response(answer)["ack"] == 2
        finally:
            await transport.close()
            await bridge.stop()

    run(main())
    assert "refused: the limit is 4096" in caplog.text
