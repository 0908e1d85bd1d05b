"""A customer's history for an energy-service provider they name (FFVAV §5(4): "on request, billing
and historical consumption data must be passed to an energy service provider named by the
customer"), only with their recorded consent (HeizkostenV §6b: the data serve billing and the
information duties; anything else needs its own basis) — docs/customer-information.md §Privacy.

A consent records who (the occupant), when and how (`given_by`: an operator, with the `evidence`,
e.g. "signed form of 2026-12-01", or the occupant in the portal), to whom (`provider`,
`provider_contact`) and what (`scope`: the months from/to and the kinds of consumption). It can be
withdrawn (by the operator or the occupant); the row stays as evidence. The export is the
occupant's own monthly information records (only their stays' months) within the scope, as JSON or
CSV; refused without a consent in force; every export is audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, NotFound
from omshub.cloud.services.properties import tenant_row
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_billing import Occupant
from omshub.cloud.store.models_customers import CustomerConsent, CustomerRecord

KINDS = ("heat", "hot_water", "hca")
_MONTH = re.compile(r"^(19|20)\d\d-(0[1-9]|1[0-2])$")
CSV_COLUMNS = ["month", "unit", "day_from", "day_to", "kind", "value", "unit_of_measure", "status", "revision"]


def _scope(scope: dict) -> dict:
    first, last = scope.get("from"), scope.get("to")
    for name, value in (("from", first), ("to", last)):
        if not isinstance(value, str) or not _MONTH.match(value):
            raise Invalid(
                f"scope.{name}: a month like 2025-01, got {value!r}",
                german=f"scope.{name}: ein Monat wie 2025-01, nicht {value!r}",
            )
    if first > last:  # type: ignore[operator]
        raise Invalid("scope: 'from' is after 'to'", german="scope: 'from' liegt nach 'to'")
    kinds = scope.get("kinds") or list(KINDS)
    if not isinstance(kinds, list) or not set(kinds) <= set(KINDS):
        raise Invalid(f"scope.kinds: some of {', '.join(KINDS)}", german=f"scope.kinds: Auswahl aus {', '.join(KINDS)}")
    return {"from": first, "to": last, "kinds": [k for k in KINDS if k in kinds]}


def give(
    session: Session,
    tenant_id: int,
    occupant_id: int,
    *,
    provider: str,
    provider_contact: str,
    scope: dict,
    evidence: str,
    actor: str,
    now: datetime,
) -> CustomerConsent:
    """Record a consent (audited)."""
    tenant_row(session, Occupant, tenant_id, occupant_id, "occupant", "Bewohner")
    if not provider.strip():
        raise Invalid("provider: the energy-service provider's name", german="provider: Name des Energiedienstleisters")
    row = CustomerConsent(
        tenant_id=tenant_id,
        occupant_id=occupant_id,
        provider=provider.strip(),
        provider_contact=provider_contact.strip(),
        scope=_scope(scope),
        evidence=evidence.strip(),
        given_at=now,
        given_by=actor,
        withdrawn_by="",
    )
    session.add(row)
    session.flush()
    audit(
        session,
        tenant_id,
        actor,
        "customers.consent",
        {"consent_id": row.id, "occupant_id": occupant_id, "provider": row.provider, "scope": row.scope},
    )
    return row


def get(session: Session, tenant_id: int, consent_id: int, occupant_id: int | None = None) -> CustomerConsent:
    """The tenant's consent (and, from the portal, the occupant's own: another's is not found)."""
    row = session.get(CustomerConsent, consent_id)
    if row is None or row.tenant_id != tenant_id or (occupant_id is not None and row.occupant_id != occupant_id):
        raise NotFound(f"consent {consent_id} not found", german=f"Einwilligung {consent_id} nicht gefunden")
    return row


def of_occupant(session: Session, tenant_id: int, occupant_id: int | None = None) -> list[CustomerConsent]:
    stmt = select(CustomerConsent).where(CustomerConsent.tenant_id == tenant_id)
    if occupant_id is not None:
        stmt = stmt.where(CustomerConsent.occupant_id == occupant_id)
    return list(session.scalars(stmt.order_by(CustomerConsent.id)))


def withdraw(session: Session, row: CustomerConsent, *, actor: str, now: datetime) -> CustomerConsent:
    """Withdraw a consent (audited); withdrawing again changes nothing."""
    if row.withdrawn_at is None:
        row.withdrawn_at, row.withdrawn_by = now, actor
        audit(session, row.tenant_id, actor, "customers.consent_withdrawn", {"consent_id": row.id})
    return row


def as_json(row: CustomerConsent) -> dict:
    return {
        "id": row.id,
        "occupant_id": row.occupant_id,
        "provider": row.provider,
        "provider_contact": row.provider_contact,
        "scope": row.scope,
        "evidence": row.evidence,
        "given_at": row.given_at.isoformat(),
        "given_by": row.given_by,
        "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
        "withdrawn_by": row.withdrawn_by or None,
        "in_force": row.withdrawn_at is None,
    }


def export(session: Session, tenant_id: int, consent_id: int, *, actor: str, now: datetime) -> dict:
    """The occupant's history within the consent's scope. Conflict when the consent was withdrawn."""
    row = get(session, tenant_id, consent_id)
    if row.withdrawn_at is not None:
        raise Conflict(
            f"consent {row.id} was withdrawn on {row.withdrawn_at.date().isoformat()}: no export",
            german=f"Einwilligung {row.id} wurde am {row.withdrawn_at.date().isoformat()} widerrufen: kein Export",
        )
    occupant = session.get(Occupant, row.occupant_id)
    assert occupant is not None
    scope = row.scope
    records = session.scalars(
        select(CustomerRecord)
        .where(
            CustomerRecord.tenant_id == tenant_id,
            CustomerRecord.occupant_id == row.occupant_id,
            CustomerRecord.month >= scope["from"],
            CustomerRecord.month <= scope["to"],
        )
        .order_by(CustomerRecord.month, CustomerRecord.day_from)
    ).all()
    rows = []
    for r in records:
        for line in r.content["lines"]:
            if line["kind"] not in scope["kinds"]:
                continue
            rows.append(
                {
                    "month": r.month,
                    "unit": r.content["unit"]["ref"],
                    "day_from": r.day_from.isoformat(),
                    "day_to": r.day_to.isoformat(),
                    "kind": line["kind"],
                    "value": line["month"]["value"],
                    "unit_of_measure": line["unit"],
                    "status": line["month"]["status"],
                    "revision": r.revision,
                }
            )
    audit(
        session,
        tenant_id,
        actor,
        "customers.export",
        {"consent_id": row.id, "occupant_id": row.occupant_id, "provider": row.provider, "rows": len(rows)},
    )
    return {
        "customer": {"customer_ref": occupant.customer_ref, "name": occupant.name},
        "consent": as_json(row),
        "exported_at": now.isoformat(),
        "rows": rows,
    }


def to_csv(data: dict) -> str:
    """The export's rows as CSV (comma, header line; a missing value empty, its status says why)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in data["rows"]:
        writer.writerow({**row, "value": "" if row["value"] is None else row["value"]})
    return out.getvalue()
