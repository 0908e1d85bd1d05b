"""The head-end's MQTT uplink bridge (docs/formats.md §2.6, docs/transports.md).

Subscribes to ``omshub/up/+`` (QoS 1, as an MQTT 5 client announcing a Maximum Packet Size of
``max_body`` + 8 KiB: the broker drops larger publishes instead of delivering them); each
message is one gateway's envelope. It goes to the
uplink handler (normally ``ingest.handle_uplink`` bound to the database, run in a worker thread:
it commits before it returns) and the response map is published to ``omshub/down/<serial>``
(QoS 1). Refusals are published there too, as ``{"error": {"status", "code", "message"},
"seq": n}``. The bridge reconnects with backoff when the broker goes away; gateways retry what
was not answered.

API (used by ``omshub serve``)::

    bridge = MqttBridge.for_database(db, "mqtt://127.0.0.1:1883")
    await bridge.start()      # starts the background task; waits up to connect_timeout_s
    ...                       # for the first subscription, then keeps retrying in the background
    await bridge.stop()
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

import aiomqtt
import cbor2
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from omshub.cloud.ingest.coap import database_handler, rejection_of
from omshub.cloud.store.outage import database_outage
from omshub.protocol.envelope import MAX_BODY, UplinkRejected, parse_body
from omshub.protocol.topics import (
    DEFAULT_PREFIX,
    SERIAL_RE,
    BrokerAddress,
    down_topic,
    parse_broker_url,
    topic_serial,
    up_filter,
)

log = logging.getLogger(__name__)

UplinkHandler = Callable[[bytes, str, str, "str | None"], dict]
# A PUBLISH is its payload plus the fixed header, the topic (<prefix>/up/<serial>, a few hundred
# bytes at most) and, in MQTT 5, properties: a body up to max_body + this still reaches the bridge
# (and gets its 413 answer); a larger packet the broker drops instead of delivering it.
PACKET_OVERHEAD = 8 * 1024
# uplinks received but not yet handled (the client acknowledges on receipt): beyond, new ones are
# discarded with a warning and their gateways retry; at most this many bodies are held at once
MAX_QUEUED = 64


def bridge_client(
    address: BrokerAddress,
    *,
    identifier: str,
    username: str | None,
    password: str | None,
    tls_context: ssl.SSLContext | None,
    max_packet: int,
) -> aiomqtt.Client:
    """The bridge's broker connection: MQTT 5, so it can tell the broker the largest packet it
    takes (Maximum Packet Size) — the client library would otherwise read any payload, up to
    256 MB, into memory before the bridge could look at its size."""
    if address.tls and tls_context is None:
        tls_context = ssl.create_default_context()
    properties = Properties(PacketTypes.CONNECT)
    properties.MaximumPacketSize = max_packet
    return aiomqtt.Client(
        address.host,
        address.port,
        identifier=identifier,
        username=username or address.username,
        password=password or address.password,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        properties=properties,
        max_queued_incoming_messages=MAX_QUEUED,
        tls_context=tls_context,
        keepalive=60,
        timeout=10.0,
    )


MAX_SEQ = (1 << 63) - 1


def _peek_envelope(body: bytes, is_json: bool) -> dict | None:
    """The envelope as a map when the uplink parser takes it, else None (the handler then says
    what is wrong). Its parser, so nothing it refuses (e.g. a bignum) reaches the answer."""
    try:
        return parse_body(body, "application/json" if is_json else "application/cbor")
    except UplinkRejected:
        return None


def _peek_seq(body: bytes) -> int | None:
    """``seq`` from the first entries of a CBOR envelope map without decoding the rest (for a body
    too large to decode, so the refusal can still name the uplink it refuses)."""
    import io

    head = body[:512]  # gateways put v, gw, seq, cfg first; a batch never has to be touched
    if not head or not 0xA0 <= head[0] <= 0xBB:
        return None
    decoder = cbor2.CBORDecoder(io.BytesIO(head[1:] if head[0] <= 0xB7 else head[1 + (1 << (head[0] - 0xB8)) :]))
    try:
        for _ in range(8):
            key, value = decoder.decode(), decoder.decode()
            if key == "seq":
                real = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ
                return value if real else None
    except Exception:
        return None
    return None


class MqttBridge:
    """Bridges ``<prefix>/up/+`` to the uplink handler and answers on ``<prefix>/down/<serial>``.

    ``shared_group``: subscribe as ``$share/<group>/<prefix>/up/+`` so several head-end
    processes split the uplinks between them (MQTT 5 / Mosquitto >= 1.6 shared subscriptions).
    """

    def __init__(
        self,
        handler: UplinkHandler,
        broker_url: str = "mqtt://127.0.0.1:1883",
        *,
        prefix: str = DEFAULT_PREFIX,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        shared_group: str | None = None,
        max_body: int = MAX_BODY,
        concurrency: int = 4,
        executor: Executor | None = None,
        connect_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.broker = parse_broker_url(broker_url)
        self.prefix = prefix
        self.topic = up_filter(prefix)
        self.subscription = f"$share/{shared_group}/{self.topic}" if shared_group else self.topic
        self._handler = handler
        self._client_kwargs: dict[str, Any] = {
            "identifier": client_id or f"omshub-headend-{uuid.uuid4().hex[:12]}",
            "username": username,
            "password": password,
            "tls_context": tls_context,
        }
        self._max_body = max_body
        self._executor = executor
        self._slots = asyncio.Semaphore(concurrency)
        self._connect_timeout_s = connect_timeout_s
        self._max_backoff_s = max_backoff_s
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self.handled = 0  # uplinks answered (success or refusal), for status and tests

    @classmethod
    def for_database(cls, db, broker_url: str, **kwargs) -> MqttBridge:
        """A bridge storing uplinks through ``ingest.handle_uplink`` into ``db``."""
        return cls(database_handler(db), broker_url, **kwargs)

    @property
    def ready(self) -> bool:
        """Connected and subscribed."""
        return self._ready.is_set()

    async def wait_ready(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="omshub-mqtt-bridge")
        if not await self.wait_ready(self._connect_timeout_s):
            log.warning(
                "MQTT bridge: broker %s:%d not reachable yet; retrying in the background",
                self.broker.host,
                self.broker.port,
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        # Handlers already running in threads finish (and commit); their answers are dropped
        # with the connection and the gateways retry.
        for t in list(self._inflight):
            t.cancel()
        self._ready.clear()

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                async with bridge_client(
                    self.broker, **self._client_kwargs, max_packet=self._max_body + PACKET_OVERHEAD
                ) as client:
                    await client.subscribe(self.subscription, qos=1)
                    self._ready.set()
                    backoff = 1.0
                    log.info(
                        "MQTT bridge subscribed to %s on %s:%d", self.subscription, self.broker.host, self.broker.port
                    )
                    async for message in client.messages:
                        await self._slots.acquire()
                        task = asyncio.create_task(self._process(client, message))
                        self._inflight.add(task)
                        task.add_done_callback(self._done)
            except aiomqtt.MqttError as exc:
                self._ready.clear()
                log.warning(
                    "MQTT bridge: broker %s:%d: %s; reconnecting in %.0f s",
                    self.broker.host,
                    self.broker.port,
                    exc,
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    def _done(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT bridge: answering an uplink failed: %s", task.exception())

    async def _process(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        serial = topic_serial(topic)
        if not SERIAL_RE.match(serial):
            # No valid down topic to answer on; the gateway cannot be a conforming one.
            log.warning("MQTT bridge: ignoring uplink on %r: not a valid gateway serial", topic)
            return
        down = down_topic(serial, self.prefix)
        body = message.payload if isinstance(message.payload, (bytes, bytearray)) else b""
        body = bytes(body)
        is_json = body[:1] == b"{"  # CBOR envelopes are maps (0xA0-0xBF), never '{'
        if len(body) <= self._max_body:
            envelope = _peek_envelope(body, is_json)
            seq = envelope.get("seq") if envelope is not None else None
            if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
                seq = None  # echo only a real seq back
        else:
            envelope, seq = None, (None if is_json else _peek_seq(body))

        async def refuse(status: int, code: str, text: str) -> None:
            log.warning("MQTT uplink on %s refused: %d %s: %s", topic, status, code, text[:300])
            answer = {"error": {"status": status, "code": code, "message": text}, "seq": seq}
            await client.publish(down, orjson.dumps(answer) if is_json else cbor2.dumps(answer), qos=1)
            self.handled += 1

        if len(body) > self._max_body:
            log.warning(
                "MQTT bridge: uplink of %d bytes on %r refused: the limit is %d", len(body), topic, self._max_body
            )
            return await refuse(413, "body_too_large", f"an uplink body is at most {self._max_body} bytes")
        if envelope is not None and envelope.get("gw") != serial:
            # Answers go to the topic's gateway: never let one gateway speak for another.
            return await refuse(
                403,
                "topic_mismatch",
                f"envelope gw {repr(envelope.get('gw'))[:70]} does not match topic serial {serial!r}",
            )
        content_type = "application/json" if is_json else "application/cbor"
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, partial(self._handler, body, content_type, "mqtt", None)
            )
        except Exception as exc:
            rejected = rejection_of(exc)
            if rejected is None:
                if database_outage.failed(exc):  # one log line per outage; the gateway retries
                    return await refuse(503, "database_unavailable", "the database is unreachable; try again later")
                log.exception("MQTT uplink from %s failed", serial)
                return await refuse(500, "internal_error", "the uplink could not be stored")
            return await refuse(*rejected)
        await client.publish(down, orjson.dumps(result) if is_json else cbor2.dumps(result), qos=1)
        self.handled += 1
