"""Meter keys: CSV import (admin/operator), presence listing, audited export (admin).
No read endpoint ever returns a key; only the export, which is audited, does."""

from __future__ import annotations

import email.parser
import email.policy

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from omshub.cloud.api.common import DbSession, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.errors import ApiError
from omshub.cloud.api.guard import read_body
from omshub.cloud.services import keys as key_service
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.keystore import MAX_IMPORT_BYTES
from omshub.cloud.store.models import MeterKey

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class ExportBody(BaseModel):
    meters: list[str] = Field(min_length=1, max_length=100_000)


async def _read_csv(request: Request) -> str:
    # (read after the principal is known, as the request guard made sure; bounded as it is read)
    body = await read_body(request, min(request.app.state.settings.max_import_body, MAX_IMPORT_BYTES), "key file")
    content_type = request.headers.get("content-type", "text/csv")
    if content_type.lower().startswith("multipart/form-data"):
        body = _multipart_file(bytes(body), content_type)
    try:
        return bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            422,
            "invalid_csv",
            f"key file is not UTF-8 (byte {exc.start})",
            "Die Datei ist keine CSV-Datei in UTF-8 (z. B. eine Excel-Datei); speichern Sie sie als „CSV UTF-8“.",
        ) from None


def _multipart_file(body: bytes, content_type: str) -> bytes:
    """The first file part (or the part named `file`) of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(
            422,
            "invalid_multipart",
            "multipart body could not be parsed",
            "Die hochgeladene Datei kam nicht lesbar an.",
        )
    parts = list(message.iter_parts())
    chosen = next((p for p in parts if p.get_param("name", header="content-disposition") == "file"), None)
    chosen = chosen or next((p for p in parts if p.get_filename()), None)
    if chosen is None:
        raise ApiError(
            422,
            "invalid_multipart",
            "multipart body has no file part (name it 'file')",
            "Es wurde keine Datei hochgeladen.",
        )
    payload = chosen.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


@router.post("/import", openapi_extra={"requestBody": {"content": {"text/csv": {}, "multipart/form-data": {}}}})
async def import_keys(request: Request, principal: Principal = Depends(require_role("operator"))) -> dict:
    """Import meter keys from CSV (`id,key[,manufacturer]`, header row), as `text/csv` or a
    multipart upload. Replaces existing keys of the same meters; telegrams waiting for these
    meters' keys are decoded again. Errors name the line."""
    text = await _read_csv(request)
    state = request.app.state

    def work() -> dict:
        return key_service.import_keys(
            state.db, state.keystore, principal.tenant_id, text, actor=principal.name, source="api"
        )

    result = await run_in_threadpool(work)
    wake = getattr(request.app.state, "pipeline_wakeup", None)
    if wake is not None:
        wake()
    return result


@router.get("")
def list_keys(
    session: DbSession,
    principal: Principal = Depends(require_role("operator")),
    meter_id: Text | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    """Which meters have a key (never the key itself)."""
    stmt = select(MeterKey.id, MeterKey.manufacturer, MeterKey.meter_id, MeterKey.created_at).where(
        MeterKey.tenant_id == principal.tenant_id
    )
    if meter_id:
        stmt = stmt.where(MeterKey.meter_id == meter_id.upper())
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=MeterKey.id)
    return page(
        [
            {
                "id": r.id,
                "manufacturer": r.manufacturer,
                "meter_id": r.meter_id,
                "present": True,
                "created_at": iso(r.created_at),
            }
            for r in rows
        ],
        nxt,
    )


@router.post("/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_keys(
    body: ExportBody, request: Request, session: DbSession, principal: Principal = Depends(require_role("admin"))
) -> Response:
    """The key file (CSV) for the given meters (`ID` or `MAN:ID`), e.g. for a building owner.
    Admin only; every export is audited."""
    text = key_service.export_keys(
        session, request.app.state.keystore, principal.tenant_id, body.meters, actor=principal.name, source="api"
    )
    return Response(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="meter-keys.csv"', "Cache-Control": "no-store"},
    )
