"""Billing exports (`/api/v1/exports`, docs/exports.md): pull the reading export v1 or the SAP IS-U
upload of a period (cursor pages, `changed_since`), record an export, the history of runs and their
files, the tenant's SAP code mappings, and scheduled SFTP jobs (`/api/v1/export-jobs`)."""

from __future__ import annotations

import gzip
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from omshub.cloud.api.common import DbSession, Id, Text, TimeQuery, parse_time
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.guard import read_body
from omshub.cloud.domain.exports.v1 import ROW_ID
from omshub.cloud.services import export_arge, export_runs, export_sap, exports_v1, sftp_jobs
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.customer_records import check_month
from omshub.cloud.store.database import Database
from omshub.times import utcnow

router = APIRouter(prefix="/api/v1", tags=["exports"])
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _pull(request: Request, principal: Principal, kind: str, period: str, fmt: str, changed_since, cursor, limit):
    db: Database = request.app.state.db
    scope = exports_v1.Scope(period, parse_time(changed_since, "changed_since"), cursor, limit)
    exports_v1.check_scope(scope)
    full = f"{kind}-{fmt}"
    name = export_runs.file_name(full, period, "pull")
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    tail: dict = {}
    batches = exports_v1.rows(db, principal.tenant_id, scope, extras=kind == "sap", swaps_only=kind == "sap")
    if limit is None:
        body = export_runs.render(db, principal.tenant_id, full, batches, {"period": period}, tail)
        return StreamingResponse(body, media_type=_MEDIA[fmt], headers=headers)
    # a page is bounded by `limit`: gathered, so its next cursor can go in a header (and the JSON)
    page = list(batches)
    count = sum(len(b) for b in page)
    last = page[-1][-1][ROW_ID] if page and page[-1] else None
    cursor_next = last if count >= limit else None
    tail["next_cursor"] = cursor_next
    content = b"".join(export_runs.render(db, principal.tenant_id, full, iter(page), {"period": period}, tail))
    if cursor_next:
        headers["X-Next-Cursor"] = cursor_next
    return Response(content, media_type=_MEDIA[fmt], headers=headers)


_PULL_DOC = (
    "`period`: 2026-11 or year:2026; `changed_since`: only rows changed after that time; `limit` and `cursor`: "
    "pages (next cursor in the `X-Next-Cursor` header and the JSON's `next_cursor`)."
)


@router.get("/exports/readings", summary="Pull the reading export v1 of a period (CSV or JSON)", description=_PULL_DOC)
def pull_readings(
    request: Request,
    principal: Viewer,
    period: Annotated[Text, Query(max_length=16)],
    format: str = Query("csv", pattern="^(csv|json)$"),
    changed_since: TimeQuery | None = None,
    cursor: Annotated[Text | None, Query(max_length=40)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
):
    return _pull(request, principal, "v1", period, format, changed_since, cursor, limit)


@router.get("/exports/sap", summary="Pull the SAP IS-U meter-reading upload of a period", description=_PULL_DOC)
def pull_sap(
    request: Request,
    principal: Viewer,
    period: Annotated[Text, Query(max_length=16)],
    format: str = Query("csv", pattern="^(csv|json)$"),
    changed_since: TimeQuery | None = None,
    cursor: Annotated[Text | None, Query(max_length=40)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
):
    return _pull(request, principal, "sap", period, format, changed_since, cursor, limit)


class ExportIn(BaseModel):
    format: str = Field(description="v1-csv | v1-json | sap-csv | sap-json")
    period: Text = Field(max_length=16)
    mode: str = Field("all", description="all: every row; changes: only rows new or changed since the last export")


def run_json(run) -> dict:
    return {
        "id": run.id,
        "export_id": None,
        "number": run.number,
        "channel": run.channel,
        "job_id": run.job_id,
        "format": run.format,
        "scope": run.scope,
        "state": run.state,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "rows": run.rows,
        "file_name": run.file_name,
        "sha256": run.sha256,
        "size": run.size,
        "target": run.target,
        "error": run.error,
    }


@router.post("/exports", status_code=201, summary="Export a period now (recorded: re-exports refer to it)")
def export_now(request: Request, body: ExportIn, principal: Operator) -> dict:
    db: Database = request.app.state.db
    result = export_runs.export_now(
        db, principal.tenant_id, body.format, body.period, mode=body.mode, actor=principal.name, now=utcnow()
    )
    return {"run_id": result.run_id, "export_id": result.export_id, "state": result.state, "rows": result.rows,
            "file_name": result.file_name, "sha256": result.sha256, "size": result.size}  # fmt: skip


@router.get("/exports/runs", summary="The history of export runs (newest first)")
def runs(
    principal: Viewer, session: DbSession, job: Id | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict:
    rows = sftp_jobs.list_runs(session, principal.tenant_id, job, limit)
    return {"items": [{**run_json(r), "export_id": sftp_jobs.export_id(session, r)} for r in rows]}


@router.get("/exports/runs/{run_id}/file", summary="Download the file an export run delivered")
def run_file(run_id: Id, principal: Viewer, session: DbSession) -> Response:
    run = sftp_jobs.get_run(session, principal.tenant_id, run_id)
    content = gzip.decompress(run.content_gz) if run.content_gz else b""
    return Response(
        content,
        media_type=_MEDIA["json" if run.format.endswith("json") else "csv"],
        headers={"Content-Disposition": f'attachment; filename="{run.file_name or "export"}"'},
    )


@router.get("/exports/sap-mapping", summary="The tenant's SAP IS-U code mappings (over the defaults)")
def sap_mapping(principal: Viewer, session: DbSession) -> dict:
    return export_sap.mapping_of(session, principal.tenant_id)


@router.put("/exports/sap-mapping", summary="Set the tenant's SAP IS-U code mappings")
def set_sap_mapping(body: dict, principal: Admin, session: DbSession) -> dict:
    return export_sap.set_mapping(session, principal.tenant_id, body, actor=principal.name, now=utcnow())


class JobIn(BaseModel):
    name: Text = Field(min_length=1, max_length=100)
    format: str = Field(description="v1-csv | v1-json | sap-csv | sap-json")
    scope: str = Field("previous_month", max_length=32, description="previous_month, or a period like 2026-11")
    cron: Text = Field(max_length=100, description="minute hour day month weekday, e.g. `0 6 2 * *`")
    timezone: Text = Field("Europe/Berlin", max_length=64)
    host: Text = Field(max_length=255)
    port: int = Field(22, ge=1, le=65535)
    username: Text = Field(max_length=100)
    directory: Text = Field(".", max_length=500)
    private_key: str = Field(max_length=20000, description="OpenSSH or PEM private key (kept encrypted)")
    host_key: Text = Field(
        "", max_length=5000, description="the server's public host key line; empty: trust on first use"
    )
    enabled: bool = True


@router.post("/export-jobs", status_code=201, summary="Create a scheduled SFTP export job")
def create_job(request: Request, body: JobIn, principal: Admin, session: DbSession) -> dict:
    keystore = request.app.state.keystore
    job = sftp_jobs.create_job(
        session, keystore, principal.tenant_id, body.model_dump(), actor=principal.name, now=utcnow()
    )
    return sftp_jobs.job_json(job)


@router.get("/export-jobs", summary="The tenant's export jobs")
def list_jobs(principal: Viewer, session: DbSession) -> dict:
    return {"items": [sftp_jobs.job_json(j) for j in sftp_jobs.list_jobs(session, principal.tenant_id)]}


@router.delete("/export-jobs/{job_id}", status_code=204, summary="Delete an export job (its run history stays)")
def delete_job(job_id: Id, principal: Admin, session: DbSession) -> Response:
    sftp_jobs.delete_job(session, principal.tenant_id, job_id, actor=principal.name)
    return Response(status_code=204)


@router.post("/export-jobs/{job_id}/run", summary="Run an export job now")
def run_job(request: Request, job_id: Id, principal: Operator) -> dict:
    state = request.app.state
    run = sftp_jobs.run_job(state.db, state.keystore, principal.tenant_id, job_id, now=utcnow(), actor=principal.name)
    return run


async def _arge_body(request: Request) -> bytes:
    return await read_body(request, request.app.state.settings.max_import_body, "the ARGE import")


@router.post(
    "/arge/import",
    summary="Import ARGE HeiWaKo / bved A, L and M records (all or nothing)",
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def arge_import(principal: Operator, body: Annotated[bytes, Depends(_arge_body)], session: DbSession) -> dict:
    """Fixed-width records (version 03.10, ISO-8859-1, CR LF): L records create or update properties,
    M records units and occupants with their occupancy period. A refusal (422) lists every problem
    with its line and field (number, name, positions); nothing is imported then."""
    return export_arge.import_records(session, principal.tenant_id, body, actor=principal.name)


@router.get(
    "/arge/e898",
    summary="ARGE E898 records of a month's customer information PDFs (document type VDA)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}, "application/zip": {}}}},
)
def arge_e898(
    principal: Viewer, session: DbSession, month: Annotated[Text, Query(max_length=7)], bundle: bool = False
) -> Response:
    """One E898 record (120 characters, ISO-8859-1, CR LF) per monthly information record of the month;
    `bundle=true`: a zip with the records and every PDF under the file name its record names."""
    month = check_month(month, utcnow())
    if bundle:
        content = export_arge.e898_bundle(session, principal.tenant_id, month)
        name, media = f"E898_{month}.zip", "application/zip"
    else:
        content = export_arge.e898_file(session, principal.tenant_id, month)
        name, media = f"E898_{month}.txt", "text/plain; charset=iso-8859-1"
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
