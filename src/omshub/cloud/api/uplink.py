"""`POST /api/v1/uplink`: the HTTPS transport of the gateway uplink (docs/formats.md §2.6)."""

from __future__ import annotations

import cbor2
import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from omshub.cloud.ingest.uplink import handle_uplink
from omshub.protocol.envelope import MAX_BODY, UplinkRejected

router = APIRouter(prefix="/api/v1", tags=["uplink"])


def _encode(payload: dict, content_type: str) -> tuple[bytes, str]:
    if content_type.split(";")[0].strip().lower() == "application/json":
        return orjson.dumps(payload), "application/json"
    return cbor2.dumps(payload), "application/cbor"


async def _read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise UplinkRejected(413, "payload_too_large", f"uplink body of {declared} bytes exceeds {MAX_BODY}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise UplinkRejected(413, "payload_too_large", f"uplink body exceeds {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/uplink",
    responses={
        200: {"content": {"application/cbor": {}, "application/json": {}}},
        "4XX": {
            "description": 'Refused: `{"error": {"code", "message"}}` in the request\'s encoding',
            "content": {"application/cbor": {}, "application/json": {}},
        },
    },
)
async def post_uplink(request: Request) -> Response:
    """A gateway's uplink (CBOR or JSON envelope), authenticated by `Authorization: Bearer <gateway
    credential>`. Answers the response map of docs/formats.md §2.5 in the request's encoding, after
    the uplink and its telegrams are committed."""
    content_type = request.headers.get("content-type", "application/cbor")
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    credential = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    try:
        body = await _read_bounded(request)
        result = await run_in_threadpool(
            handle_uplink,
            request.app.state.db,
            body,
            content_type=content_type,
            transport="https",
            credential=credential,
        )
        status = 200
        wake = getattr(request.app.state, "pipeline_wakeup", None)
        if wake is not None and result.get("stored"):
            wake()
    except UplinkRejected as exc:
        result, status = exc.to_dict(), exc.status
    payload, media_type = _encode(result, content_type)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(payload, status_code=status, media_type=media_type, headers=headers)
