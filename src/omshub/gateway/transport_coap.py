"""Gateway side of the CoAP uplink (docs/formats.md §2.6, docs/transports.md).

One confirmable ``POST coap://head-end/u`` per uplink, content format 60 (CBOR) — aiocoap splits
bodies over 1,024 bytes into Block1 blocks (RFC 7959) and retransmits lost datagrams
(RFC 7252 §4.2). The credential travels inside the envelope (``cred``), so this transport adds
no header of its own. Anything but ``2.04`` with a payload — a timeout, an unreachable head-end,
a 5.xx — raises ``TransportError`` (retry later); 4.13 raises ``PayloadTooLarge`` (send a smaller
batch) and other 4.xx ``UplinkRejected`` with the HTTP-like status (retrying unchanged won't help).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiocoap
from aiocoap.numbers.codes import Code

from omshub.protocol.envelope import MAX_RESPONSE, PayloadTooLarge, TransportError, UplinkError, UplinkRejected
from omshub.protocol.topics import COAP_UPLINK_PATH

_CONTENT_FORMATS = {"application/cbor": 60, "application/json": 50}


class CoapTransport:
    """UplinkTransport over CoAP/UDP.

    ``url``: ``coap://host[:port][/path]`` (path defaults to ``/u``, port to 5683).
    ``timeout_s``: the whole exchange (all blocks, retransmissions and the head-end's work)
    must finish within it.
    """

    name = "coap"
    cred_in_envelope = True

    def __init__(self, url: str, *, timeout_s: float = 120.0):
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - validates the port (urlsplit checks it lazily)
        except ValueError as exc:
            raise ValueError(f"CoAP head-end URL {url!r} has a bad port: {exc}") from None
        if parts.scheme != "coap" or not parts.hostname:
            raise ValueError(f"CoAP head-end URL {url!r} must look like coap://host[:port]/u")
        if parts.query or parts.fragment:
            raise ValueError(f"CoAP head-end URL {url!r} must not have a query or fragment")
        if timeout_s <= 0:
            raise ValueError(f"CoAP timeout must be positive, got {timeout_s}")
        path = parts.path if parts.path not in ("", "/") else COAP_UPLINK_PATH
        self.url = f"coap://{parts.netloc}{path}"
        self.timeout_s = timeout_s
        self._context: aiocoap.Context | None = None

    async def _client(self) -> aiocoap.Context:
        if self._context is None:
            try:
                self._context = await aiocoap.Context.create_client_context(transports=["udp6"])
            except OSError as exc:
                raise TransportError(f"CoAP: cannot open a UDP socket: {exc}") from exc
        return self._context

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        content_format = _CONTENT_FORMATS.get(content_type)
        if content_format is None:
            raise ValueError(f"CoAP uplink content type {content_type!r} must be one of {sorted(_CONTENT_FORMATS)}")
        context = await self._client()
        request = aiocoap.Message(code=Code.POST, uri=self.url, payload=body, content_format=content_format)
        pending = context.request(request)
        try:
            response = await asyncio.wait_for(pending.response, self.timeout_s)
        except TimeoutError:
            await self._reset()
            raise TransportError(f"CoAP: no answer from {self.url} within {self.timeout_s:g} s") from None
        except aiocoap.error.Error as exc:
            # NetworkError, timeouts after MAX_RETRANSMIT, bad blockwise answers, ...
            await self._reset()
            raise TransportError(f"CoAP: exchange with {self.url} failed: {exc or type(exc).__name__}") from exc
        except OSError as exc:
            await self._reset()
            raise TransportError(f"CoAP: cannot reach {self.url}: {exc}") from exc
        if response.code != Code.CHANGED:
            raise _refusal(self.url, response)
        if not response.payload:
            raise TransportError(f"CoAP: head-end answered {response.code.dotted} without a response map")
        if len(response.payload) > MAX_RESPONSE:
            raise TransportError(f"CoAP: response of {len(response.payload)} bytes exceeds {MAX_RESPONSE}")
        return response.payload

    async def _reset(self) -> None:
        # An abandoned exchange keeps retransmitting and, with NSTART = 1, would hold back the
        # next request to the head-end for up to a minute: start over on a fresh socket.
        await self.close()

    async def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            try:
                await context.shutdown()
            except Exception:  # shutting down a broken context must not mask the error
                pass


def _refusal(url: str, response: aiocoap.Message) -> UplinkError:
    code = response.code
    diagnostic = response.payload[:512].decode("utf-8", "replace")
    text = f"CoAP {url}: head-end answered {code.dotted} {code.name_printable}: {diagnostic}"
    if code == Code.REQUEST_ENTITY_TOO_LARGE:
        return PayloadTooLarge(text)
    if code == Code.REQUEST_ENTITY_INCOMPLETE:
        # the head-end lost earlier blocks of this transfer (it restarted, or the transfer took longer
        # than it keeps one): the whole upload sent again succeeds
        return TransportError(text)
    if code.is_successful() or code.class_ != 4:
        return TransportError(text)  # 5.xx, or an unexpected success code: try again later
    return UplinkRejected(code.class_ * 100 + (int(code) & 0x1F), "rejected", text)
