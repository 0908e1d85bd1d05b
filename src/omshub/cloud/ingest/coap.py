"""The head-end's CoAP uplink endpoint (docs/formats.md §2.6, docs/transports.md).

A gateway POSTs its envelope (CBOR, credential in ``cred``) confirmably to ``/u``; large batches
arrive in Block1 blocks (RFC 7959), put together by ``Block1Assembly`` within two bounds: one body
at most ``max_body`` bytes (4.13 with Size1 at the first block past it), all unfinished transfers
together at most ``max_pending`` bytes (5.03, try later). The
envelope goes to an uplink handler — normally ``omshub.cloud.ingest.uplink.handle_uplink`` bound to the
database — run in a worker thread because it is synchronous and commits to the database before
it returns. The answer is ``2.04 Changed`` with the response map in the request's encoding, or
an error code with a UTF-8 diagnostic payload ``"<code>: <message>"`` (RFC 7252 §5.5.2).

API (used by ``omshub serve``)::

    server = CoapServer.for_database(db, host="::", port=5683)
    await server.start()      # binds UDP; returns when it is listening
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial

import aiocoap
import aiocoap.resource
import cbor2
import orjson
from aiocoap.blockwise import Block2Cache, ContinueException, IncompleteException
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber

from omshub.cloud.store.outage import database_outage
from omshub.protocol.envelope import MAX_BODY
from omshub.protocol.topics import COAP_UPLINK_SEGMENTS

log = logging.getLogger(__name__)

#: (body, content_type, transport, credential) -> response map; raises UplinkRejected
UplinkHandler = Callable[[bytes, str, str, "str | None"], dict]

DEFAULT_PORT = 5683
UPLINK_PATH = COAP_UPLINK_SEGMENTS
MAX_PENDING = 32 * 1024 * 1024  # all unfinished Block1 transfers together (settings.coap_max_pending)
MAX_TRANSMIT_WAIT_S = 93  # RFC 7252 §4.8.2: a sender gives up on a block after this long
CT_CBOR = 60
CT_JSON = 50
_CONTENT_TYPES = {CT_CBOR: "application/cbor", CT_JSON: "application/json"}

# HTTP-style statuses from the ingest layer -> CoAP response codes (422 has no common CoAP
# counterpart understood by constrained clients, so it becomes 4.00 with the reason attached).
_STATUS_TO_CODE = {
    400: Code.BAD_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    413: Code.REQUEST_ENTITY_TOO_LARGE,
    415: Code.UNSUPPORTED_CONTENT_FORMAT,
    422: Code.BAD_REQUEST,
    429: Code.SERVICE_UNAVAILABLE,
    503: Code.SERVICE_UNAVAILABLE,
}


def rejection_of(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, code, message) when ``exc`` is an uplink rejection (protocol.envelope.UplinkRejected or
    any exception carrying the same attributes), else None (an internal error)."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    if isinstance(status, int) and 400 <= status < 600 and isinstance(code, str):
        return status, code, str(getattr(exc, "message", None) or exc)
    return None


def database_handler(db) -> UplinkHandler:
    """The production handler: ``ingest.handle_uplink`` bound to ``db``."""
    from omshub.cloud.ingest.uplink import handle_uplink

    def handle(body: bytes, content_type: str, transport: str, credential: str | None) -> dict:
        return handle_uplink(db, body, content_type=content_type, transport=transport, credential=credential)

    return handle


def _error(code: Code, diagnostic: str) -> aiocoap.Message:
    # Diagnostic payloads are meant for people; keep them short on the narrow link.
    return aiocoap.Message(code=code, payload=diagnostic.encode("utf-8", "replace")[:512])


class _Refused(aiocoap.error.ConstructionRenderableError):
    """A Block1 transfer refused: `code` and a diagnostic `"<code>: <message>"` payload."""

    def __init__(self, code: Code, diagnostic: str, size1: int | None = None):
        super().__init__(diagnostic)
        self.code, self._size1 = code, size1

    def to_message(self) -> aiocoap.Message:
        message = _error(self.code, self.message)
        if self._size1 is not None:
            message.opt.size1 = self._size1
        return message


class Block1Assembly:
    """Block1 transfers (RFC 7959) put together in memory, bounded: each at most `max_body` bytes,
    all unfinished ones together at most `max_pending`, each dropped `ttl_s` after its last block
    (aiocoap's own assembly has no limit, and keeps finished bodies until they time out)."""

    def __init__(self, max_body: int, max_pending: int, ttl_s: float = 2 * MAX_TRANSMIT_WAIT_S):
        self.max_body, self.max_pending, self.ttl_s = max_body, max_pending, ttl_s
        self._parts: dict[tuple, tuple[aiocoap.Message, float]] = {}
        self.pending = 0  # bytes held

    def _drop(self, key) -> None:
        part = self._parts.pop(key, None)
        if part is not None:
            self.pending -= len(part[0].payload)

    def _expire(self, now: float) -> None:
        for key in [k for k, (_m, until) in self._parts.items() if until < now]:
            self._drop(key)

    def too_large(self) -> _Refused:
        return _Refused(
            Code.REQUEST_ENTITY_TOO_LARGE,
            f"body_too_large: an uplink body is at most {self.max_body} bytes",
            self.max_body,
        )

    def feed(self, request: aiocoap.Message) -> aiocoap.Message:
        """The whole request when its last block came (or it had none); else raises
        ContinueException (2.31, send the next block) or _Refused / IncompleteException."""
        block1 = request.opt.block1
        announced = request.opt.size1
        if announced is not None and announced > self.max_body:
            raise self.too_large()
        if block1 is None:
            return request
        now = time.monotonic()
        self._expire(now)
        key = (
            request.remote.blockwise_key,
            request.code,
            request.get_cache_key([OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.OBSERVE]),
        )
        if block1.block_number == 0:
            self._drop(key)  # a new transfer from the same place replaces an unfinished one
            assembled = None
        else:
            assembled = self._parts.get(key, (None, 0))[0]
            if assembled is None or block1.start != len(assembled.payload):
                self._drop(key)
                raise IncompleteException()
        if not block1.is_valid_for_payload_size(len(request.payload)):
            self._drop(key)
            raise aiocoap.error.BadRequest("payload size does not match the Block1 option")
        if block1.start + len(request.payload) > self.max_body:
            self._drop(key)
            raise self.too_large()
        if self.pending + len(request.payload) > self.max_pending:
            self._drop(key)
            log.warning(
                "CoAP: %d bytes of unfinished blockwise uplinks held; refusing a block from %s",
                self.pending,
                request.remote.hostinfo,
            )
            raise _Refused(Code.SERVICE_UNAVAILABLE, "busy: too many uplinks in transfer, try again later")
        if assembled is None:
            assembled = request.copy()
        else:
            self._drop(key)
            assembled.payload += request.payload
            assembled.opt.block1 = block1
            assembled.token, assembled.mid = request.token, request.mid
        if block1.more:
            self._parts[key] = (assembled, now + self.ttl_s)
            self.pending += len(assembled.payload)
            raise ContinueException(block1)
        return assembled


class UplinkResource(aiocoap.resource.Resource):
    """``POST /u``: one uplink envelope in, the response map out."""

    def __init__(
        self,
        handler: UplinkHandler,
        *,
        max_body: int = MAX_BODY,
        max_pending: int = MAX_PENDING,
        executor: Executor | None = None,
    ):
        super().__init__()
        self._handler = handler
        self._max_body = max_body
        self._executor = executor
        self.assembly = Block1Assembly(max_body, max_pending)
        self._responses = Block2Cache()  # answers larger than a datagram go back in Block2 blocks

    async def render_to_pipe(self, pipe) -> None:
        # Blocks are put together here, not by aiocoap, whose assembly has no size limit: an
        # oversized transfer is refused at its first block past the limit (or by its Size1).
        request = self.assembly.feed(pipe.request)
        response = await self._responses.extract_or_insert(request, lambda: self.render(request))
        response.opt.block1 = request.opt.block1
        pipe.add_response(response, is_last=True)

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        content_format = request.opt.content_format
        fmt = CT_CBOR if content_format is None else int(content_format)
        if fmt not in _CONTENT_TYPES:
            return _error(
                Code.UNSUPPORTED_CONTENT_FORMAT,
                f"unsupported_content_format: content format {fmt} is not 60 (cbor) or 50 (json)",
            )
        body = request.payload
        if len(body) > self._max_body:
            return self.assembly.too_large().to_message()
        content_type = _CONTENT_TYPES[fmt]
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, partial(self._handler, body, content_type, "coap", None)
            )
        except Exception as exc:
            rejected = rejection_of(exc)
            if rejected is None:
                if database_outage.failed(exc):  # one log line per outage; the gateway retries
                    return _error(Code.SERVICE_UNAVAILABLE, "database_unavailable: try again later")
                log.exception("CoAP uplink from %s failed", request.remote.hostinfo)
                return _error(Code.INTERNAL_SERVER_ERROR, "internal_error: the uplink could not be stored")
            status, code, message = rejected
            fallback = Code.INTERNAL_SERVER_ERROR if status >= 500 else Code.BAD_REQUEST
            return _error(_STATUS_TO_CODE.get(status, fallback), f"{code}: {message}")
        payload = cbor2.dumps(result) if fmt == CT_CBOR else orjson.dumps(result)
        return aiocoap.Message(code=Code.CHANGED, payload=payload, content_format=fmt)


def _bound_port(context: aiocoap.Context) -> int | None:
    """The UDP port the OS chose for ``port=0`` (aiocoap does not expose it directly)."""
    for interface in context.request_interfaces:
        message_interface = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        transport = getattr(message_interface, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            return sock.getsockname()[1]
    return None


class CoapServer:
    """The CoAP uplink endpoint on one UDP address; start/stop in the serving event loop.
    ``port=0`` lets the OS choose; ``port`` holds the real one after ``start()``."""

    def __init__(
        self,
        handler: UplinkHandler,
        *,
        host: str = "::",
        port: int = DEFAULT_PORT,
        max_body: int = MAX_BODY,
        max_pending: int = MAX_PENDING,
        executor: Executor | None = None,
    ):
        self.host = host
        self.port = port
        self._resource = UplinkResource(handler, max_body=max_body, max_pending=max_pending, executor=executor)
        self._context: aiocoap.Context | None = None

    @property
    def assembly(self) -> Block1Assembly:
        """The Block1 transfers in progress (``pending``: bytes held)."""
        return self._resource.assembly

    @classmethod
    def for_database(cls, db, **kwargs) -> CoapServer:
        """A server storing uplinks through ``ingest.handle_uplink`` into ``db``."""
        return cls(database_handler(db), **kwargs)

    async def start(self) -> None:
        if self._context is not None:
            return
        site = aiocoap.resource.Site()
        site.add_resource(UPLINK_PATH, self._resource)
        try:
            # udp6 only: the tcp/tls/ws server transports would open ports nobody asked for.
            self._context = await aiocoap.Context.create_server_context(
                site, bind=(self.host, self.port), transports=["udp6"]
            )
        except OSError as exc:
            raise OSError(exc.errno, f"CoAP server cannot bind udp {self.host}:{self.port}: {exc.strerror}") from exc
        if self.port == 0:
            self.port = _bound_port(self._context) or 0
        log.info("CoAP uplink endpoint listening on udp [%s]:%d/u", self.host, self.port)

    async def stop(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.shutdown()

    async def __aenter__(self) -> CoapServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()
