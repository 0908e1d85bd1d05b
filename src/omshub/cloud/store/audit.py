"""The audit log: who did what, written in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from omshub.cloud.store.models import AuditEntry
from omshub.times import utcnow


def audit(session: Session, tenant_id: int | None, actor: str, action: str, details: dict | None = None) -> None:
    session.add(AuditEntry(tenant_id=tenant_id, actor=actor, action=action, details=details or {}, at=utcnow()))
