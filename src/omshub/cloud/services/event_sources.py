"""What happened elsewhere, as webhook events (services/webhooks.py): run by the delivery worker
for every tenant with a webhook endpoint. Each source keeps a cursor per tenant (EventCursor); a
tenant's first scan starts at the present (its history is not replayed to a new endpoint).

* `alarm.raised` / `alarm.cleared` — alarms by id / by the time they were cleared;
* `period.closed` — a period whose billing values were computed (once per period; later changes
  come as `value.changed_after_export`);
* `value.changed_after_export` — a boundary value that changed after it was exported (billing marks
  it `export_stale`), once per version, naming the export that delivered it;
* `monthly_information.ready` — a month whose customer information records were computed
  (services/customer_records.build_month, one transaction for the whole month): once per month,
  with its counts and the API paths of its records and summary (read from customer_records, so the
  customer run needs no hook).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.exports.v1 import utc_text
from omshub.cloud.services.export_runs import export_id_of
from omshub.cloud.services.webhooks import emit
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Alarm, MeteringPoint, Tenant
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue
from omshub.cloud.store.models_customers import CustomerRecord
from omshub.cloud.store.models_exports import EventCursor, ExportItem, ExportRun, WebhookEndpoint

_EPOCH = "1970-01-01T00:00:00+00:00"


def _cursor(session: Session, tenant_id: int, source: str, present: str) -> tuple[EventCursor, bool]:
    row = session.scalar(select(EventCursor).where(EventCursor.tenant_id == tenant_id, EventCursor.source == source))
    if row is None:
        row = EventCursor(tenant_id=tenant_id, source=source, position=present)
        session.add(row)
        return row, True
    return row, False


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else _EPOCH


def scan(db: Database, now: datetime) -> int:
    """Emit the events of every tenant with an enabled endpoint; how many were new."""
    with db.session() as session:
        tenants = session.scalars(
            select(WebhookEndpoint.tenant_id).where(WebhookEndpoint.enabled.is_(True)).distinct()
        ).all()
    emitted = 0
    for tenant_id in tenants:
        with db.transaction() as session:
            emitted += _alarms(session, tenant_id, now) + _periods(session, tenant_id, now)
            emitted += _changed_values(session, tenant_id, now) + _monthly_information(session, tenant_id, now)
    return emitted


def _alarms(session: Session, tenant_id: int, now: datetime) -> int:
    n = 0
    top = session.scalar(select(func.max(Alarm.id)).where(Alarm.tenant_id == tenant_id)) or 0
    raised, fresh = _cursor(session, tenant_id, "alarm_raised", str(top))
    if not fresh:
        q = select(Alarm).where(Alarm.tenant_id == tenant_id, Alarm.id > int(raised.position)).order_by(Alarm.id)
        for a in session.scalars(q.limit(1000)):
            n += _emit_alarm(session, a, "alarm.raised", now)
            raised.position = str(a.id)
    last_clear = session.scalar(select(func.max(Alarm.cleared_at)).where(Alarm.tenant_id == tenant_id))
    cleared, fresh = _cursor(session, tenant_id, "alarm_cleared", _iso(last_clear))
    if not fresh:
        since = datetime.fromisoformat(cleared.position)
        q = select(Alarm).where(Alarm.tenant_id == tenant_id, Alarm.cleared_at > since).order_by(Alarm.cleared_at)
        for a in session.scalars(q.limit(1000)):
            n += _emit_alarm(session, a, "alarm.cleared", now)
            cleared.position = _iso(a.cleared_at)
    return n


def _emit_alarm(session: Session, a: Alarm, type_: str, now: datetime) -> int:
    data = {"alarm_id": a.id, "kind": a.kind, "subject_type": a.subject_type, "subject_id": a.subject_id,
            "message": a.message, "raised_at": utc_text(a.raised_at), "cleared_at": utc_text(a.cleared_at)}  # fmt: skip
    return emit(session, a.tenant_id, type_, f"{type_}:{a.id}", data, now=now) is not None


def _periods(session: Session, tenant_id: int, now: datetime) -> int:
    latest = session.scalar(
        select(func.max(BillingConsumption.computed_at)).where(BillingConsumption.tenant_id == tenant_id)
    )
    cursor, fresh = _cursor(session, tenant_id, "period_closed", _iso(latest))
    if fresh:
        return 0
    since = datetime.fromisoformat(cursor.position)
    q = (
        select(BillingConsumption.period, func.count(), func.max(BillingConsumption.computed_at))
        .where(BillingConsumption.tenant_id == tenant_id, BillingConsumption.computed_at > since)
        .group_by(BillingConsumption.period)
    )
    n = 0
    for period, points, last in session.execute(q).all():
        data = {"period": period, "metering_points": points}
        n += emit(session, tenant_id, "period.closed", f"period.closed:{period}", data, now=now) is not None
        cursor.position = max(cursor.position, _iso(last))
    return n


def _changed_values(session: Session, tenant_id: int, now: datetime) -> int:
    latest = session.scalar(
        select(func.max(BillingValue.changed_at)).where(
            BillingValue.tenant_id == tenant_id, BillingValue.export_stale.is_(True)
        )
    )
    cursor, fresh = _cursor(session, tenant_id, "value_changed", _iso(latest))
    if fresh:
        return 0
    since = datetime.fromisoformat(cursor.position)
    q = (
        select(BillingValue, MeteringPoint.ref)
        .join(MeteringPoint, MeteringPoint.id == BillingValue.metering_point_id)
        .where(BillingValue.tenant_id == tenant_id, BillingValue.export_stale.is_(True),
               BillingValue.changed_at > since)
        .order_by(BillingValue.changed_at)
        .limit(1000)
    )  # fmt: skip
    slug = session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id)) or ""
    n = 0
    for v, point_ref in session.execute(q).all():
        number = session.scalar(
            select(ExportRun.number)
            .join(ExportItem, ExportItem.run_id == ExportRun.id)
            .where(ExportItem.tenant_id == tenant_id, ExportItem.kind == "value", ExportItem.row_id == v.id,
                   ExportRun.state == "ok")
            .order_by(ExportItem.id.desc())
            .limit(1)
        )  # fmt: skip
        data = {"value_id": v.id, "metering_point": point_ref, "register": v.quantity,
                "boundary_utc": utc_text(v.boundary_at), "value": v.value, "origin": v.origin, "tabelle_s": v.code,
                "changed_at": utc_text(v.changed_at), "exported_at": utc_text(v.exported_at),
                "previous_export_id": export_id_of(slug, number) if number else None}  # fmt: skip
        key = f"value.changed_after_export:{v.id}:{utc_text(v.changed_at)}"
        n += emit(session, tenant_id, "value.changed_after_export", key, data, now=now) is not None
        cursor.position = _iso(v.changed_at)
    return n


CUSTOMER_API = "/api/v1/customer-info"


def _monthly_information(session: Session, tenant_id: int, now: datetime) -> int:
    latest = session.scalar(select(func.max(CustomerRecord.computed_at)).where(CustomerRecord.tenant_id == tenant_id))
    cursor, fresh = _cursor(session, tenant_id, "monthly_information", _iso(latest))
    if fresh:
        return 0
    since = datetime.fromisoformat(cursor.position)
    months = session.execute(
        select(CustomerRecord.month, func.max(CustomerRecord.computed_at))
        .where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.computed_at > since)
        .group_by(CustomerRecord.month)
        .order_by(CustomerRecord.month)
    ).all()
    n = 0
    for month, last in months:
        records, complete, units, occupants = session.execute(
            select(
                func.count(),
                func.count().filter(CustomerRecord.complete.is_(True)),
                func.count(func.distinct(CustomerRecord.unit_id)),
                func.count(func.distinct(CustomerRecord.occupant_id)),
            ).where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.month == month)
        ).one()
        data = {
            "month": month, "records": records, "complete": complete, "incomplete": records - complete,
            "units": units, "occupants": occupants, "computed_at": utc_text(last),
            "api": {
                "records": f"{CUSTOMER_API}/records?month={month}",
                "summary": f"{CUSTOMER_API}/summary?month={month}",
                "record_pdf": f"{CUSTOMER_API}/records/{{record_id}}/pdf",
            },
        }  # fmt: skip
        n += emit(session, tenant_id, "monthly_information.ready", f"monthly_information.ready:{month}", data,
                  now=now) is not None  # fmt: skip
        cursor.position = max(cursor.position, _iso(last))
    return n
