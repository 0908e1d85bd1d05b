"""Request bodies: authenticated before they are read, bounded while they are read (ASGI).

`RequestGuard` wraps the whole head-end app, so one place decides for every route, known or not:

* a body larger than the route's limit is refused with 413 `payload_too_large` — at once when
  `Content-Length` says so, else (chunked) as soon as the bytes read pass the limit;
* a body sent to a route that needs a credential is refused with 401 `unauthorized` before a
  byte of it is read, unless a valid one comes with it: the gateway credential in
  `Authorization: Bearer` for `POST /api/v1/uplink`, a session or API token for every other
  `/api/v1/...` route but login and health;
* an answer given before the body was read to its end closes the connection, so the server never
  goes on reading what nobody wants.

Limits (settings, bytes): `max_uplink_body` for the uplink, `max_import_body` for the CSV imports
and the key export's meter list, `max_json_body` for everything else. What a route then does with
its bounded body (validation, roles) stays the route's business.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import cbor2
import orjson
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from omshub.cloud.api.deps import SESSION_COOKIE
from omshub.cloud.api.errors import ApiError
from omshub.cloud.domain.language import number
from omshub.cloud.domain.tokens import hash_secret
from omshub.cloud.services.accounts import authenticate_token
from omshub.cloud.store.models import Gateway
from omshub.cloud.store.outage import database_outage

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
UPLINK_PATH = "/api/v1/uplink"
# the CSV imports, and the key export's list of up to 100,000 meters (~1.7 MB of JSON)
BULK_PATHS = frozenset({"/api/v1/meters/import", "/api/v1/keys/import", "/api/v1/keys/export", "/api/v1/arge/import"})
# imports whose path names what is imported: master data by kind, a weather station's days
BULK_PATTERNS = (
    re.compile(r"/api/v1/master-data/import/[a-z]+"),
    re.compile(r"/api/v1/weather-stations/\d+/days"),
)
PUBLIC_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/health"})


@dataclass(frozen=True)
class BodyLimits:
    uplink: int = 1 << 20
    json: int = 1 << 20
    csv_import: int = 10 << 20

    @classmethod
    def from_settings(cls, settings) -> BodyLimits:
        return cls(uplink=settings.max_uplink_body, json=settings.max_json_body, csv_import=settings.max_import_body)


def _route(path: str, limits: BodyLimits) -> tuple[int, str | None]:
    """(body limit, credential needed: "gateway", "token" or None) of a request path."""
    path = path.rstrip("/") or "/"
    if path == UPLINK_PATH:
        return limits.uplink, "gateway"
    if path in BULK_PATHS or any(p.fullmatch(path) for p in BULK_PATTERNS):
        return limits.csv_import, "token"
    if path.startswith(API_PREFIX) and path not in PUBLIC_PATHS:
        return limits.json, "token"
    return limits.json, None


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _session_cookie(headers: dict[bytes, bytes]) -> str | None:
    """The console's session cookie (cloud/api/deps.py) of a Cookie header, else None."""
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value
    return None


def _gateway_known(db, credential: str) -> bool:
    with db.session() as session:
        return (
            session.execute(select(Gateway.id).where(Gateway.credential_hash == hash_secret(credential))).first()
            is not None
        )


def _token_valid(db, token: str) -> bool:
    with db.session() as session:
        return authenticate_token(session, token) is not None


async def _answer(
    send, status: int, code: str, message: str, *, cbor: bool = False, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = {"error": {"code": code, "message": message}}
    payload, media = (cbor2.dumps(body), b"application/cbor") if cbor else (orjson.dumps(body), b"application/json")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    """ASGI middleware: see the module docstring. `limits` from the settings."""

    def __init__(self, app, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # (a repeated header: the last one, as for Starlette's reads)
        path, root = scope["path"], scope.get("root_path", "")
        limit, needs = _route(path[len(root) :] if root and path.startswith(root) else path, self.limits)
        uplink = needs == "gateway"
        in_cbor = uplink and not headers.get(b"content-type", b"").lower().startswith(b"application/json")
        declared_text = headers.get(b"content-length")
        declared = int(declared_text) if declared_text is not None and declared_text.isdigit() else None
        chunked = b"transfer-encoding" in headers
        if declared is not None and declared > limit:
            return await _answer(
                send,
                413,
                "payload_too_large",
                f"the request body of {declared} bytes exceeds this route's limit of {limit} bytes",
                cbor=in_cbor,
            )
        has_body = chunked or bool(declared)
        if has_body and needs is not None:
            try:
                credential = _bearer(headers) or (_session_cookie(headers) if needs == "token" else None)
                refusal = await self._authenticate(scope, needs, credential)
            except Exception as exc:
                if not database_outage.failed(exc):  # not an outage: a bug, with its traceback
                    raise
                return await _answer(
                    send,
                    503,
                    "database_unavailable",
                    "the database is unreachable; try again later",
                    cbor=in_cbor,
                    extra=((b"retry-after", b"10"),),
                )
            if refusal is not None:
                return await _answer(
                    send, 401, "unauthorized", refusal, cbor=in_cbor, extra=((b"www-authenticate", b"Bearer"),)
                )
        if not has_body:
            return await self.app(scope, receive, send)
        await self._bounded(scope, receive, send, limit, in_cbor)

    async def _authenticate(self, scope, needs: str, credential: str | None) -> str | None:
        """None when the credential is valid, else why not."""
        if needs == "gateway":
            if credential is None:
                return (
                    "missing gateway credential: over HTTP(S) it goes in the header Authorization: Bearer "
                    "<credential> (cred in the envelope is for CoAP and MQTT)"
                )
            known = await run_in_threadpool(_gateway_known, scope["app"].state.db, credential)
            return None if known else "gateway credential not valid"
        if credential is None:
            return "missing bearer token (Authorization: Bearer <token>)"
        valid = await run_in_threadpool(_token_valid, scope["app"].state.db, credential)
        return None if valid else "invalid, expired or revoked token"

    async def _bounded(self, scope, receive, send, limit: int, in_cbor: bool) -> None:
        received = 0
        body_done = False
        started = False
        answered = False  # the guard refused the body itself: the app's own answer is dropped

        async def guarded_receive():
            nonlocal received, body_done, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    answered = True
                    if not started:
                        await _answer(
                            send,
                            413,
                            "payload_too_large",
                            f"the request body exceeds this route's limit of {limit} bytes",
                            cbor=in_cbor,
                        )
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
                if not body_done:  # answered before the body was read: do not read the rest
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # the app failed on the body the guard cut off; the 413 is the answer


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """A request body read chunk by chunk, refused (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"{what} of {declared} bytes exceeds the limit of {limit} bytes",
            f"Die Datei ist zu groß: höchstens {number(limit, 'de')} Bytes.",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"{what} exceeds the limit of {limit} bytes",
                f"Die Datei ist zu groß: höchstens {number(limit, 'de')} Bytes.",
            )
    return bytes(body)
