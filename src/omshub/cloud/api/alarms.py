"""Alarms (`/api/v1/alarms`): listed newest first and filtered (services/alarm_list.py), acknowledged
with a note; raised and cleared by services/alarms.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from omshub.cloud.api.common import DbSession, Id, Limit, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.domain.alarms import ACK_NOTE_MAX, KINDS, SEVERITIES
from omshub.cloud.services import alarm_list
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models import Alarm
from omshub.times import utcnow

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
KIND_PATTERN = "^(" + "|".join(KINDS) + ")$"
SEVERITY_PATTERN = "^(" + "|".join(SEVERITIES) + ")$"


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(..., max_length=ACK_NOTE_MAX, description="what is being done, or why the alarm can wait")


@router.get("", summary="List alarms (newest first)")
def list_alarms(
    principal: Viewer,
    session: DbSession,
    active: bool | None = None,
    kind: str | None = Query(None, pattern=KIND_PATTERN),
    severity: str | None = Query(None, pattern=SEVERITY_PATTERN),
    property_id: Id | None = Query(
        None, description="alarms of the meters installed at the property, and their gateways"
    ),
    subject_type: str | None = Query(None, pattern="^(gateway|meter)$"),
    subject_id: Id | None = None,
    acknowledged: bool | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    f = alarm_list.AlarmFilter(active, kind, severity, property_id, subject_type, subject_id, acknowledged)
    stmt = alarm_list.alarm_query(session, principal.tenant_id, f)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Alarm.id, descending=True)
    return page(alarm_list.describe(session, principal.tenant_id, rows), nxt)


@router.get("/{alarm_id}", summary="One alarm")
def read_alarm(alarm_id: Id, principal: Viewer, session: DbSession) -> dict:
    return alarm_list.describe(session, principal.tenant_id, [alarm_list.one(session, principal.tenant_id, alarm_id)])[
        0
    ]


@router.post("/{alarm_id}/acknowledge", summary="Acknowledge an alarm with a note (audited)")
def acknowledge_alarm(alarm_id: Id, body: AckIn, principal: Operator, session: DbSession) -> dict:
    alarm = alarm_list.acknowledge(
        session, principal.tenant_id, alarm_id, body.note, actor=principal.name, now=utcnow()
    )
    return alarm_list.describe(session, principal.tenant_id, [alarm])[0]
