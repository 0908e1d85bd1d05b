"""What the operator console shows and does for the monthly customer information
(docs/console.md §Customer information): a month's progress (records, notices by channel and
state), resending a failed or waiting e-mail notice, the occupants with their portal invitation's
state, and the background retry of due e-mail notices for every tenant (`omshub serve`)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict
from omshub.cloud.services.customer_delivery import send_due
from omshub.cloud.services.customer_settings import valid_email
from omshub.cloud.services.properties import tenant_row
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_billing import Occupant
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord, PortalAccount

log = logging.getLogger(__name__)


def month_summary(session: Session, tenant_id: int, month: str) -> dict:
    """Counts of `month`: records (complete or not), notices per channel and state, the next retry
    (a datetime)."""
    records = dict(
        session.execute(
            select(CustomerRecord.complete, func.count())
            .where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.month == month)
            .group_by(CustomerRecord.complete)
        ).all()
    )
    notices = {c: {"pending": 0, "sent": 0, "failed": 0} for c in ("email", "post")}
    base = (
        select(CustomerDelivery.channel, CustomerDelivery.state, func.count())
        .join(CustomerRecord, CustomerRecord.id == CustomerDelivery.record_id)
        .where(CustomerDelivery.tenant_id == tenant_id, CustomerRecord.month == month)
        .group_by(CustomerDelivery.channel, CustomerDelivery.state)
    )
    for channel, state, n in session.execute(base).all():
        notices.setdefault(channel, {})[state] = n
    next_retry = session.scalar(
        select(func.min(CustomerDelivery.next_attempt_at))
        .join(CustomerRecord, CustomerRecord.id == CustomerDelivery.record_id)
        .where(
            CustomerDelivery.tenant_id == tenant_id,
            CustomerRecord.month == month,
            CustomerDelivery.state == "pending",
            CustomerDelivery.channel == "email",
        )
    )
    return {
        "month": month,
        "records": sum(records.values()),
        "complete_records": records.get(True, 0),
        "notices": notices,
        "next_attempt_at": next_retry,
    }


def resend(session: Session, tenant_id: int, delivery_id: int, *, actor: str, now: datetime) -> CustomerDelivery:
    """Make a failed or waiting e-mail notice due now (the next send attempt takes it), to the
    occupant's current address."""
    delivery = tenant_row(session, CustomerDelivery, tenant_id, delivery_id, "delivery", "Zustellung")
    if delivery.channel != "email" or delivery.state == "sent":
        raise Conflict(
            "only an e-mail notice that failed or waits can be sent again",
            german="Nur eine fehlgeschlagene oder wartende E-Mail-Benachrichtigung kann erneut gesendet werden",
        )
    before = delivery.state
    # the occupant's address as it is now: a wrong one corrected since the notice was planned is used
    record = session.get(CustomerRecord, delivery.record_id)
    occupant = session.get(Occupant, record.occupant_id) if record and record.occupant_id else None
    if occupant is not None and valid_email(occupant.email):
        delivery.address = occupant.email.strip()
    delivery.state, delivery.next_attempt_at = "pending", now
    audit(session, tenant_id, actor, "customers.resend", {"delivery_id": delivery.id, "state_before": before})
    session.flush()
    return delivery


def invitation_state(account: PortalAccount | None, now: datetime) -> str:
    """none | invited | expired | active | locked"""
    if account is None:
        return "none"
    if account.locked_at is not None:
        return "locked"
    if account.password_hash:
        return "active"
    if account.invite_expires_at is not None and account.invite_expires_at > now:
        return "invited"
    return "expired"


def invitations_stmt(tenant_id: int, search: str | None):
    """The tenant's occupants (matching `search` in name, customer number or e-mail), for keyset
    pages by occupant id."""
    stmt = select(Occupant).where(Occupant.tenant_id == tenant_id)
    if search:
        like = f"%{search.strip().lower()}%"
        stmt = stmt.where(
            func.lower(Occupant.name).like(like)
            | func.lower(Occupant.customer_ref).like(like)
            | func.lower(Occupant.email).like(like)
        )
    return stmt


def accounts_of(session: Session, tenant_id: int, occupant_ids: list[int]) -> dict[int, PortalAccount]:
    rows = session.scalars(
        select(PortalAccount).where(PortalAccount.tenant_id == tenant_id, PortalAccount.occupant_id.in_(occupant_ids))
    )
    return {a.occupant_id: a for a in rows}


def send_all_due(db, now: datetime, *, limit: int = 200) -> dict:
    """Send every tenant's due e-mail notices (the background retry); one tenant's failure is logged
    and the others still go. -> {tenant_id: counts}"""
    with db.transaction(write=False) as session:
        tenants = session.scalars(
            select(CustomerDelivery.tenant_id)
            .where(
                CustomerDelivery.channel == "email",
                CustomerDelivery.state == "pending",
                CustomerDelivery.next_attempt_at <= now,
            )
            .distinct()
        ).all()
    out: dict = {}
    for tenant_id in tenants:
        try:
            with db.transaction() as session:
                out[tenant_id] = send_due(session, tenant_id, now, limit=limit)
        except Exception:
            log.exception("customer notices of tenant %s failed", tenant_id)
            out[tenant_id] = "failed"
    return out
