"""The review queue and operator edits of billing values (docs/billing.md §Review): accept or reject a
finding, set a value by hand, or estimate it. Raw readings are never changed; every decision is
audited with who, when, why and the value before.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.origins import Origin, Quality, tabelle_s_code
from omshub.cloud.domain.errors import Conflict, Invalid
from omshub.cloud.services.billing_estimate import apply_estimate, check_method, estimate_consumption
from omshub.cloud.services.properties import tenant_row
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_billing import BillingConsumption, BillingFinding, BillingValue

DECISIONS = ("accept", "reject")
MAX_REASON = 500


def get_finding(session: Session, tenant_id: int, finding_id: int) -> BillingFinding:
    return tenant_row(session, BillingFinding, tenant_id, finding_id, "finding", "Prüfhinweis")


def get_value(session: Session, tenant_id: int, value_id: int) -> BillingValue:
    return tenant_row(session, BillingValue, tenant_id, value_id, "billing value", "Abrechnungswert")


def _reason(text: str) -> str:
    if not text or not text.strip():
        raise Invalid("a reason is required", german="Bitte einen Grund angeben")
    if len(text) > MAX_REASON:
        raise Invalid(f"the reason has at most {MAX_REASON} characters", german=f"höchstens {MAX_REASON} Zeichen")
    return text.strip()


def decide(session: Session, tenant_id: int, finding_id: int, action: str, note: str, *, actor: str, now: datetime):
    """Accept (the value is right after all) or reject (the value must not be billed as it is) a finding."""
    if action not in DECISIONS:
        raise Invalid(f"action must be one of {', '.join(DECISIONS)}", german="Aktion: accept oder reject")
    f = get_finding(session, tenant_id, finding_id)
    if f.state != "open":
        raise Conflict(
            f"the finding is {f.state}, not open", german=f"Der Prüfhinweis ist nicht mehr offen ({f.state})"
        )
    f.state = "accepted" if action == "accept" else "rejected"
    f.decided_at, f.decided_by, f.note = now, actor, _reason(note)
    audit(session, tenant_id, actor, f"billing.finding.{f.state}", {"finding": f.id, "rule": f.rule, "note": f.note})
    _settle(session, f, now)
    return f


def _settle(session: Session, f: BillingFinding, now: datetime) -> None:
    """After a decision: the period's values are billable once no finding of it is open; a rejected
    one leaves them in review until a value is set or estimated."""
    open_left = session.scalar(
        select(BillingFinding.id).where(
            BillingFinding.metering_point_id == f.metering_point_id,
            BillingFinding.quantity == f.quantity,
            BillingFinding.state == "open",
        )
    )
    if open_left is None and f.state in ("accepted", "estimated"):
        for b in session.scalars(
            select(BillingValue).where(
                BillingValue.metering_point_id == f.metering_point_id,
                BillingValue.quantity == f.quantity,
                BillingValue.state.in_(("review", "pending")),
            )
        ):
            b.state = "ok"


def edit_value(
    session: Session, tenant_id: int, value_id: int, value: float, reason: str, *, actor: str, now: datetime
):
    """Set a boundary value by hand: origin `edited`; what omshub computed stays in `computed_*`."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise Invalid("value must be a finite number ≥ 0", german="Wert muss eine endliche Zahl ≥ 0 sein")
    b = get_value(session, tenant_id, value_id)
    why = _reason(reason)
    before = {"value": b.value, "origin": b.origin, "code": b.code}
    b.value, b.origin, b.quality, b.method = float(value), Origin.EDITED.value, Quality.ESTIMATED.value, None
    b.code = tabelle_s_code(Origin.EDITED, main=b.reason == "due_date")
    b.details = {"by": actor, "at": now.isoformat(), "reason": why, "before": before}
    return _changed(session, tenant_id, b, actor, now, "billing.value.edit", before)


def _changed(session, tenant_id: int, b: BillingValue, actor: str, now: datetime, action: str, before: dict):
    b.state, b.changed_at = "ok", now
    if b.exported_at is not None:
        b.export_stale = True
    details = {"value_id": b.id, "point": b.metering_point_id, "boundary": b.boundary_at.isoformat(), "before": before}
    audit(session, tenant_id, actor, action, details | {"after": {"value": b.value, "origin": b.origin}})
    return b


def estimate_value(
    session: Session, tenant_id: int, value_id: int, method: str, reason: str, *, actor: str, now: datetime
) -> BillingValue:
    """Estimate an end-of-period value (billing_estimate.py): the period's start value + the
    estimated consumption by `method` (previous_period, comparable_units, property_average)."""
    check_method(method)
    b = get_value(session, tenant_id, value_id)
    why = _reason(reason)
    c = session.scalar(
        select(BillingConsumption)
        .where(
            BillingConsumption.metering_point_id == b.metering_point_id,
            BillingConsumption.quantity == b.quantity,
            BillingConsumption.end_at == b.boundary_at,
        )
        .order_by(BillingConsumption.period.startswith("year:"), BillingConsumption.period)  # a month first
    )
    if c is None:
        raise Conflict(
            "no closed period ends at this value", german="Kein abgeschlossener Zeitraum endet mit diesem Wert"
        )
    estimate = estimate_consumption(session, tenant_id, c, method)
    if estimate is None:
        raise Conflict(f"no data for the method {method}", german=f"Für die Methode {method} fehlen Daten")
    return apply_estimate(session, tenant_id, c, estimate, why, actor=actor, now=now)


def estimate_finding(
    session: Session, tenant_id: int, finding_id: int, method: str, note: str, *, actor: str, now: datetime
) -> BillingFinding:
    """The review queue's `estimate`: the finding's period gets an estimated end value by `method`,
    and the finding is decided as `estimated`."""
    f = get_finding(session, tenant_id, finding_id)
    if f.state != "open":
        raise Conflict(
            f"the finding is {f.state}, not open", german=f"Der Prüfhinweis ist nicht mehr offen ({f.state})"
        )
    end = session.scalar(
        select(BillingValue.id)
        .join(
            BillingConsumption,
            (BillingConsumption.metering_point_id == BillingValue.metering_point_id)
            & (BillingConsumption.quantity == BillingValue.quantity)
            & (BillingConsumption.end_at == BillingValue.boundary_at),
        )
        .where(
            BillingConsumption.metering_point_id == f.metering_point_id,
            BillingConsumption.quantity == f.quantity,
            BillingConsumption.period == f.period,
        )
    )
    if end is None:
        raise Conflict(
            "the finding's period has no end value", german="Der Zeitraum des Prüfhinweises hat keinen Endwert"
        )
    estimate_value(session, tenant_id, end, method, note, actor=actor, now=now)
    f.state, f.decided_at, f.decided_by, f.note = "estimated", now, actor, _reason(note)
    audit(session, tenant_id, actor, "billing.finding.estimated", {"finding": f.id, "rule": f.rule, "method": method})
    _settle(session, f, now)
    return f
