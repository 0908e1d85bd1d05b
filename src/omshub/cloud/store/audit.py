"""The audit trail: one row per change people or programs made (who, what, when, details)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from omshub.cloud.store.models import AuditEntry


def audit(session: Session, tenant_id: int | None, actor: str, action: str, details: dict | None = None) -> None:
    session.add(AuditEntry(tenant_id=tenant_id, actor=actor, action=action, details=details or {},
                           at=datetime.now(UTC)))
