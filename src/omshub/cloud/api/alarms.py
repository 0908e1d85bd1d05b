"""Alarms (`/api/v1/alarms`): listed, newest first; raised and cleared by alarms.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from omshub.cloud.api.common import DbSession, Id, Limit, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.domain.errors import not_found
from omshub.cloud.services import alarms as alarm_rules
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models import Alarm

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
KIND_PATTERN = "^(" + "|".join(alarm_rules.KINDS) + ")$"


def alarm_json(a: Alarm) -> dict:
    return {
        "id": a.id,
        "kind": a.kind,
        "subject": {"type": a.subject_type, "id": a.subject_id},
        "message": a.message,
        "details": a.details or {},
        "active": a.active,
        "raised_at": iso(a.raised_at),
        "cleared_at": iso(a.cleared_at),
    }


@router.get("", summary="List alarms (newest first)")
def list_alarms(
    principal: Viewer,
    session: DbSession,
    active: bool | None = None,
    kind: str | None = Query(None, pattern=KIND_PATTERN),
    subject_type: str | None = Query(None, pattern="^(gateway|meter)$"),
    subject_id: Id | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = select(Alarm).where(Alarm.tenant_id == principal.tenant_id)
    if active is not None:
        stmt = stmt.where(Alarm.active.is_(active))
    if kind:
        stmt = stmt.where(Alarm.kind == kind)
    if subject_type:
        stmt = stmt.where(Alarm.subject_type == subject_type)
    if subject_id is not None:
        stmt = stmt.where(Alarm.subject_id == subject_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Alarm.id, descending=True)
    return page([alarm_json(a) for a in rows], nxt)


@router.get("/{alarm_id}", summary="One alarm")
def read_alarm(alarm_id: Id, principal: Viewer, session: DbSession) -> dict:
    a = session.scalar(select(Alarm).where(Alarm.id == alarm_id, Alarm.tenant_id == principal.tenant_id))
    if a is None:
        raise not_found(f"alarm {alarm_id}", f"Der Alarm {alarm_id}")
    return alarm_json(a)
