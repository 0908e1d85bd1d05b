"""The console's search over meters, metering points and gateways, and the audit log (admins):
`GET /api/v1/search?q=…`, `GET /api/v1/audit`. The search's rules: services/search.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from omshub.cloud.api.common import DbSession, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.services import search as search_service
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models import AuditEntry

router = APIRouter(prefix="/api/v1", tags=["console"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


@router.get("/search", summary="Find meters, metering points and gateways by what people type")
def search(principal: Viewer, session: DbSession, q: Annotated[Text, Query(max_length=200)] = "") -> dict:
    """A meter number or its beginning (with or without the manufacturer: `KAM 3100`), part of a
    metering point's number, address or customer reference, part of a gateway's serial or name."""
    return search_service.search(session, principal.tenant_id, q)


@router.get("/audit", summary="The tenant's audit log, newest first (admins)")
def audit_log(
    principal: Admin,
    session: DbSession,
    action: str | None = Query(None, max_length=64, pattern=r"^[a-z_.]+$"),
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    """Who changed what: users, tokens, gateways, keys, time settings; each entry with its details."""
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == principal.tenant_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=AuditEntry.id, descending=True)
    return page(
        [{"id": e.id, "at": iso(e.at), "actor": e.actor, "action": e.action, "details": e.details or {}} for e in rows],
        nxt,
    )
