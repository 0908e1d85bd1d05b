"""Gateway side of the MQTT uplink (docs/formats.md §2.6, docs/transports.md).

The gateway subscribes to ``omshub/down/<serial>`` (QoS 1) and only then publishes its envelope
(CBOR, credential in ``cred``) to ``omshub/up/<serial>`` (QoS 1). The head-end's bridge answers
on the down topic with the response map; the answer belonging to this uplink is the one whose
``ack`` equals the envelope's ``seq`` (stale answers to an earlier, abandoned attempt are
skipped). An error answer is ``{"error": {"status", "code", "message"}, "seq": n}``.

A PUBACK only means the broker has the message: the uplink counts as delivered when the answer
arrives, so a head-end crash between PUBACK and commit costs a retry, never telegrams.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiomqtt
import cbor2
import orjson

from omshub.protocol.envelope import MAX_RESPONSE, PayloadTooLarge, TransportError, UplinkError, UplinkRejected
from omshub.protocol.topics import DEFAULT_PREFIX, SERIAL_RE, BrokerAddress, down_topic, parse_broker_url, up_topic


def make_client(
    address: BrokerAddress,
    *,
    identifier: str,
    username: str | None = None,
    password: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    keepalive: int = 60,
    timeout: float = 10.0,
) -> aiomqtt.Client:
    if address.tls and tls_context is None:
        tls_context = ssl.create_default_context()
    return aiomqtt.Client(
        address.host,
        address.port,
        identifier=identifier,
        username=username or address.username,
        password=password or address.password,
        # MQTT 3.1.1 with a clean session: a gateway that gave up on an answer does not want
        # it queued for its next contact, and retrying repeats the seq anyway.
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=True,
        tls_context=tls_context,
        keepalive=keepalive,
        timeout=timeout,
    )


def _envelope_seq(body: bytes, content_type: str) -> int:
    try:
        envelope = cbor2.loads(body) if content_type == "application/cbor" else orjson.loads(body)
    except Exception as exc:  # cbor2 raises several types on bad input
        raise ValueError(f"MQTT uplink body is not a valid {content_type} envelope: {exc}") from None
    seq = envelope.get("seq") if isinstance(envelope, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("MQTT uplink envelope has no integer 'seq' to correlate the answer with")
    return seq


def _decode_answer(payload: bytes) -> Any:
    if payload[:1] == b"{":  # a CBOR map never starts with '{' (0x7B is a text string)
        return orjson.loads(payload)
    return cbor2.loads(payload)


class MqttTransport:
    """UplinkTransport over MQTT. One broker connection per upload session: opened on the first
    ``send``, reused for the following batches, closed by ``close()`` (or after an error)."""

    name = "mqtt"
    cred_in_envelope = True

    def __init__(
        self,
        broker_url: str,
        serial: str,
        *,
        timeout_s: float = 60.0,
        prefix: str = DEFAULT_PREFIX,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        keepalive: int = 60,
    ):
        if not SERIAL_RE.match(serial):
            raise ValueError(f"gateway serial {serial!r} must be 1-64 characters [A-Za-z0-9._-]")
        if timeout_s <= 0:
            raise ValueError(f"MQTT timeout must be positive, got {timeout_s}")
        self.broker = parse_broker_url(broker_url)
        self.serial = serial
        self.timeout_s = timeout_s
        self.up_topic = up_topic(serial, prefix)
        self.down_topic = down_topic(serial, prefix)
        self._client_kwargs: dict[str, Any] = {
            "identifier": client_id or f"omshub-gw-{serial}",
            "username": username,
            "password": password,
            "tls_context": tls_context,
            "keepalive": keepalive,
            "timeout": min(timeout_s, 30.0),
        }
        self._client: aiomqtt.Client | None = None

    async def _connect(self) -> aiomqtt.Client:
        if self._client is None:
            client = make_client(self.broker, **self._client_kwargs)
            await client.__aenter__()
            try:
                # Subscribed (SUBACK received) before the first publish: the answer cannot
                # overtake the subscription.
                await client.subscribe(self.down_topic, qos=1)
            except BaseException:
                await client.__aexit__(None, None, None)
                raise
            self._client = client
        return self._client

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        if content_type not in ("application/cbor", "application/json"):
            raise ValueError(f"MQTT uplink content type {content_type!r} must be application/cbor or json")
        seq = _envelope_seq(body, content_type)
        where = f"{self.broker.host}:{self.broker.port}"
        try:
            async with asyncio.timeout(self.timeout_s):
                client = await self._connect()
                await client.publish(self.up_topic, body, qos=1)
                return await self._answer(client, seq)
        except TimeoutError:
            await self._drop()
            raise TransportError(
                f"MQTT: no answer for seq {seq} on {self.down_topic} within {self.timeout_s:g} s"
            ) from None
        except aiomqtt.MqttError as exc:
            await self._drop()
            raise TransportError(f"MQTT: broker {where}: {exc}") from exc
        except OSError as exc:
            await self._drop()
            raise TransportError(f"MQTT: cannot reach broker {where}: {exc}") from exc

    async def _answer(self, client: aiomqtt.Client, seq: int) -> bytes:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, (bytes, bytearray)) or len(payload) > MAX_RESPONSE:
                continue
            try:
                answer = _decode_answer(bytes(payload))
            except Exception:  # garbage on our topic is skipped, not fatal
                continue
            if not isinstance(answer, dict):
                continue
            if answer.get("ack") == seq:
                return bytes(payload)
            error = answer.get("error")
            # Only an error naming our seq is ours; one for an undecodable body cannot be
            # correlated (someone else's garbage on our topic) and is skipped like a stale answer.
            if isinstance(error, dict) and answer.get("seq") == seq:
                raise _refusal(seq, error)
        raise aiomqtt.MqttError("subscription ended")

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except Exception:  # the connection is already broken
                pass
            # aiomqtt leaves the reason of an unexpected disconnection in a future nobody awaits
            # once we stop using the client; we reported it already, so mark it retrieved.
            disconnected = getattr(client, "_disconnected", None)
            if isinstance(disconnected, asyncio.Future) and disconnected.done() and not disconnected.cancelled():
                disconnected.exception()

    async def close(self) -> None:
        await self._drop()


def _refusal(seq: int, error: dict[str, Any]) -> UplinkError:
    status = error.get("status")
    text = f"MQTT: head-end refused seq {seq}: {status} {error.get('code')}: {error.get('message')}"
    if status == 413:
        return PayloadTooLarge(text)
    if isinstance(status, int) and 400 <= status < 500:
        code = error.get("code")
        return UplinkRejected(status, code if isinstance(code, str) else "rejected", text)
    return TransportError(text)  # 5xx: the head-end failed, try again later
