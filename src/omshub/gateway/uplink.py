"""The transport contract: every uplink transport (HTTPS in ``transport_http``, CoAP and MQTT in
``transport_coap``/``transport_mqtt``) only carries bytes, ``send(body) -> response body``. The
envelope and the response map themselves are built and checked in :mod:`omshub.protocol.envelope`;
a transport raises that module's ``TransportError``, ``PayloadTooLarge`` or ``UplinkRejected``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class UplinkTransport(Protocol):
    name: str
    cred_in_envelope: bool  # True when the credential travels in the envelope (`cred`): CoAP, MQTT

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes: ...
    async def close(self) -> None: ...


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
