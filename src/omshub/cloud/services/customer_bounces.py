"""Bounces that arrive after the SMTP server accepted an e-mail notice (docs/customer-information.md
§Channels): the operator hands in the raw delivery status notification (RFC 3464) — `POST
/api/v1/customer-info/bounces` or `omshub customers bounce` — it is parsed (domain/dsn.py), matched
to its notice by the reference every notice carries (VERP envelope sender, `X-Omshub-Notice`), and a
permanent failure marks the notice `failed` with the reason: completeness then says `email_failed`
and the console shows it, and the operator can correct the address and resend. A `delayed` (or
other non-final) notification is only recorded. Audited; handing in the same bounce again changes
nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from omshub.cloud.domain.dsn import notice_tag, parse_dsn
from omshub.cloud.domain.errors import NotFound
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_customers import CustomerDelivery


def record_bounce(session: Session, tenant_id: int, raw: bytes, *, actor: str, now: datetime) -> dict:
    bounce = parse_dsn(raw)
    d = session.get(CustomerDelivery, bounce.delivery_id)
    if (
        d is None
        or d.tenant_id != tenant_id
        or d.channel != "email"
        or notice_tag(tenant_id, d.id, d.record_id) != bounce.tag
    ):
        raise NotFound(
            f"the bounce refers to notice {bounce.delivery_id}, which this tenant did not send",
            german=f"Der Rückläufer verweist auf Benachrichtigung {bounce.delivery_id}, die dieser Mandant nicht "
            "gesendet hat",
        )
    reason = f"bounced (DSN {bounce.status} {bounce.action}): {bounce.diagnostic or bounce.recipient}"[:500]
    details = {
        "delivery_id": d.id,
        "record_id": d.record_id,
        "action": bounce.action,
        "status": bounce.status,
        "diagnostic": bounce.diagnostic,
        "recipient": bounce.recipient,
    }
    changed = False
    if bounce.permanent and not (d.state == "failed" and d.last_error == reason):
        d.state, d.next_attempt_at, d.last_error = "failed", None, reason
        d.errors = [*d.errors, {"at": now.isoformat(), "error": reason, "bounce": True}][-20:]
        changed = True
    audit(session, tenant_id, actor, "customers.bounce" if bounce.permanent else "customers.dsn", details)
    session.flush()
    return {**details, "state": d.state, "changed": changed}
