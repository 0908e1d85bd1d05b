"""The head-end's CoAP uplink endpoint (docs/formats.md §2.6, docs/transports.md).

A gateway POSTs its envelope (CBOR, credential in ``cred``) confirmably to ``/u``; large batches
arrive in Block1 blocks (RFC 7959), which aiocoap reassembles before we see the request. The
envelope goes to an uplink handler — normally ``omshub.cloud.ingest.handle_uplink`` bound to the
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
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial

import aiocoap
import aiocoap.resource
import cbor2
import orjson
from aiocoap.numbers.codes import Code

from omshub.cloud.outage import database_outage

log = logging.getLogger(__name__)

#: (body, content_type, transport, credential) -> response map; raises UplinkRejected
UplinkHandler = Callable[[bytes, str, str, "str | None"], dict]

DEFAULT_PORT = 5683
UPLINK_PATH = ("u",)
MAX_BODY = 1024 * 1024  # docs/formats.md §2.4
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
    """(status, code, message) when ``exc`` is an uplink rejection (ingest.UplinkRejected or any
    exception carrying the same attributes), else None (an internal error)."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    if isinstance(status, int) and 400 <= status < 600 and isinstance(code, str):
        return status, code, str(getattr(exc, "message", None) or exc)
    return None


def database_handler(db) -> UplinkHandler:
    """The production handler: ``ingest.handle_uplink`` bound to ``db``."""
    from omshub.cloud.ingest import handle_uplink

    def handle(body: bytes, content_type: str, transport: str, credential: str | None) -> dict:
        return handle_uplink(db, body, content_type=content_type, transport=transport,
                             credential=credential)
    return handle


def _error(code: Code, diagnostic: str) -> aiocoap.Message:
    # Diagnostic payloads are meant for people; keep them short on the narrow link.
    return aiocoap.Message(code=code, payload=diagnostic.encode("utf-8", "replace")[:512])


class UplinkResource(aiocoap.resource.Resource):
    """``POST /u``: one uplink envelope in, the response map out."""

    def __init__(self, handler: UplinkHandler, *, max_body: int = MAX_BODY,
                 executor: Executor | None = None):
        super().__init__()
        self._handler = handler
        self._max_body = max_body
        self._executor = executor

    async def render_to_pipe(self, pipe) -> None:
        # Refuse oversized Block1 transfers before aiocoap spools them in memory (it has no
        # size limit of its own): by the announced Size1 or by the block position.
        request = pipe.request
        block1 = request.opt.block1
        announced = request.opt.size1
        too_big = announced is not None and announced > self._max_body
        if block1 is not None:
            too_big = too_big or block1.start + len(request.payload) > self._max_body
        if too_big:
            response = _error(Code.REQUEST_ENTITY_TOO_LARGE,
                              f"body_too_large: an uplink body is at most {self._max_body} bytes")
            response.opt.size1 = self._max_body
            pipe.add_response(response, is_last=True)
            return
        await super().render_to_pipe(pipe)

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        content_format = request.opt.content_format
        fmt = CT_CBOR if content_format is None else int(content_format)
        if fmt not in _CONTENT_TYPES:
            return _error(Code.UNSUPPORTED_CONTENT_FORMAT,
                          f"unsupported_content_format: content format {fmt} is not 60 (cbor) or 50 (json)")
        body = request.payload
        if len(body) > self._max_body:
            response = _error(Code.REQUEST_ENTITY_TOO_LARGE,
                              f"body_too_large: an uplink body is at most {self._max_body} bytes")
            response.opt.size1 = self._max_body
            return response
        content_type = _CONTENT_TYPES[fmt]
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, partial(self._handler, body, content_type, "coap", None))
        except Exception as exc:  # noqa: BLE001 - every failure must become a CoAP answer
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

    def __init__(self, handler: UplinkHandler, *, host: str = "::", port: int = DEFAULT_PORT,
                 max_body: int = MAX_BODY, executor: Executor | None = None):
        self.host = host
        self.port = port
        self._resource = UplinkResource(handler, max_body=max_body, executor=executor)
        self._context: aiocoap.Context | None = None

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
                site, bind=(self.host, self.port), transports=["udp6"])
        except OSError as exc:
            raise OSError(exc.errno, f"CoAP server cannot bind udp {self.host}:{self.port}: "
                                     f"{exc.strerror}") from exc
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
