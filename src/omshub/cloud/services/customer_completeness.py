"""Completeness of a month's information (HeizkostenV §12(1): information missing or incomplete lets
the tenant cut 3 % of the heating costs; docs/customer-information.md §Completeness): per property,
which occupants got complete information by the deadline (default the 28th of M+1, end of that local
day) and, for the others, why not — `no_data:<line>`, `estimated:<line>`, `no_meter`, `no_contact`,
`email_failed`, `not_sent_yet`, `sent_late`. An alarm is raised when the deadline is at most
`warn_days` away (or past) and occupants are still missing."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.periods import local_midnight
from omshub.cloud.domain.customer_info import shift_month
from omshub.cloud.services.customer_settings import settings_of
from omshub.cloud.store.models_billing import Occupant, Property, Unit
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord


def deadline_of(month: str, day: int, zone: str = "Europe/Berlin") -> datetime:
    """The end of `day` of the month after `month`, local time, as UTC."""
    following = shift_month(month, 1)
    return local_midnight(date(int(following[:4]), int(following[5:]), day) + timedelta(days=1), zone)


def _reasons(record: CustomerRecord, delivery: CustomerDelivery | None, deadline: datetime) -> list[str]:
    out = list(record.gaps)
    if delivery is None:
        out.append("not_sent_yet")
    elif delivery.state == "failed":
        out.append("email_failed")
    elif delivery.channel == "post" and not delivery.address.strip():
        out.append("no_contact")
    elif delivery.state != "sent":
        out.append("not_sent_yet")
    elif delivery.sent_at is not None and delivery.sent_at > deadline:
        out.append("sent_late")
    return out


def completeness(session: Session, tenant_id: int, month: str, now: datetime, *, warn_days: int = 3) -> dict:
    settings = settings_of(session, tenant_id)
    deadline = deadline_of(month, int(settings["deadline_day"]))
    rows = session.execute(
        select(CustomerRecord, Occupant, Unit.ref, Property.id, Property.name, Property.ref)
        .join(Occupant, Occupant.id == CustomerRecord.occupant_id)
        .join(Unit, Unit.id == CustomerRecord.unit_id)
        .join(Property, Property.id == CustomerRecord.property_id)
        .where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.month == month)
        .order_by(Property.id, Unit.ref, CustomerRecord.day_from)
    ).all()
    deliveries: dict[int, CustomerDelivery] = {}
    for row in session.scalars(
        select(CustomerDelivery).where(
            CustomerDelivery.tenant_id == tenant_id, CustomerDelivery.record_id.in_([r[0].id for r in rows])
        )
    ):
        deliveries[row.record_id] = row
    props: dict[int, dict] = {}
    counts: dict[str, int] = defaultdict(int)
    for record, occupant, unit_ref, pid, pname, pref in rows:
        d = deliveries.get(record.id)
        reasons = _reasons(record, d, deadline)
        prop = props.setdefault(
            pid, {"property_id": pid, "name": pname or pref, "complete": 0, "missing": 0, "units": []}
        )
        prop["complete" if not reasons else "missing"] += 1
        for reason in reasons:
            counts[reason.split(":")[0]] += 1
        prop["units"].append(
            {
                "record_id": record.id,
                "delivery_id": d.id if d else None,
                "unit_ref": unit_ref,
                "occupant": occupant.name,
                "days": [record.day_from.isoformat(), record.day_to.isoformat()],
                "channel": d.channel if d else None,
                "state": d.state if d else None,
                "sent_at": d.sent_at.isoformat() if d and d.sent_at else None,
                "last_error": d.last_error if d else "",
                "complete": not reasons,
                "reasons": reasons,
            }
        )
    missing = sum(p["missing"] for p in props.values())
    return {
        "month": month,
        "deadline": deadline.isoformat(),
        "occupants": len(rows),
        "complete": len(rows) - missing,
        "missing": missing,
        "reasons": dict(counts),
        "alarm": missing > 0 and now >= deadline - timedelta(days=warn_days),
        "properties": list(props.values()),
    }
