"""Closing a billing period: boundary values, consumption and validation findings for every metering
point of a tenant, stored idempotently (docs/billing.md §Closing a period).

Running it again changes nothing unless the data changed. A value an operator edited or estimated
keeps its value; what omshub computes is updated next to it (`computed_*`). A value that changes after
it was exported is marked `export_stale` for re-export. A finding that a later run no longer finds is
`cleared`; decided findings stay decided.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing import validation as v
from omshub.cloud.domain.billing.boundary import BoundaryRules, BoundaryValue
from omshub.cloud.domain.billing.consumption import Run, period_consumption
from omshub.cloud.domain.billing.origins import QUALITY_OF_ORIGIN, Origin
from omshub.cloud.domain.billing.periods import Period, billing_year, month_period, parse_month
from omshub.cloud.domain.billing.weather import degree_days
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.billing_compute import Boundary, PointResult, compute_point
from omshub.cloud.services.billing_inputs import PointInputs, load_points
from omshub.cloud.services.billing_settings import rules_of
from omshub.cloud.services.weather import station_means
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Installation, MeteringPoint, Tenant
from omshub.cloud.store.models_billing import BillingConsumption, BillingFinding, BillingValue
from omshub.cloud.store.retention import register_protector

BATCH = 500  # metering points per batch: a few queries each, bounded memory
OPERATOR_ORIGINS = (Origin.EDITED.value, Origin.ESTIMATED.value)


def period_of(text: str, inputs: PointInputs | None = None) -> Period:
    """ "2026-11" -> that month; "2026" -> the billing year with the point's due date ending in 2026."""
    t = text.strip()
    if re.fullmatch(r"\d{4}", t):
        due = inputs.due if inputs else (12, 31)
        return billing_year(due[0], due[1], int(t), inputs.zone if inputs else "Europe/Berlin")
    try:
        return parse_month(t, inputs.zone if inputs else "Europe/Berlin")
    except ValueError as e:
        raise Invalid(
            f"period: {e}; or a year (YYYY) for the billing year", german="Zeitraum: JJJJ-MM oder JJJJ"
        ) from None


def _label(period: Period, text: str) -> str:
    return period.label if period.kind == "month" else f"year:{text.strip()}"


def _previous_label(period: Period, text: str) -> str:
    if period.kind == "month":
        return f"{period.first_day.year - 1:04d}-{period.first_day.month:02d}"
    return f"year:{int(text.strip()) - 1}"


def _points(session: Session, tenant_id: int, after: int, first: datetime, last: datetime) -> list[int]:
    """The next batch of points that had an installation in [first, last]."""
    return list(
        session.scalars(
            select(MeteringPoint.id)
            .where(
                MeteringPoint.tenant_id == tenant_id,
                MeteringPoint.id > after,
                MeteringPoint.id.in_(
                    select(Installation.metering_point_id).where(
                        (Installation.installed_at <= last) | (Installation.installed_from == "first_reading"),
                        (Installation.removed_at.is_(None)) | (Installation.removed_at >= first),
                    )
                ),
            )
            .order_by(MeteringPoint.id)
            .limit(BATCH)
        )
    )


def close_period(
    session: Session,
    tenant_id: int,
    period_text: str,
    *,
    actor: str,
    now: datetime,
    rules: v.ValidationRules | None = None,
    boundary_rules: BoundaryRules | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Close `period_text` ("2026-11" or "2026") for every metering point of the tenant, with the
    tenant's rules (billing_settings.py) unless others are given. Returns counts."""
    tenant_rules, tenant_boundary_rules = rules_of(session, tenant_id)
    rules, boundary_rules = rules or tenant_rules, boundary_rules or tenant_boundary_rules
    widest = period_of(period_text)
    margin = boundary_rules.interpolate_within + timedelta(days=400 if widest.kind == "year" else 2)
    first, last = widest.start - margin, widest.end + margin
    counts = {"points": 0, "values_changed": 0, "findings_open": 0, "findings_cleared": 0, "export_stale": 0}
    after = seen = 0
    while batch := _points(session, tenant_id, after, first, last):
        after = batch[-1]
        inputs = load_points(session, tenant_id, batch, first, last)
        results = _compute(session, inputs, period_text, rules, boundary_rules)
        _store(session, tenant_id, results, now, counts)
        counts["points"] += len(results)
        seen += len(batch)
        if progress:
            progress(seen)
        session.flush()
    audit(session, tenant_id, actor, "billing.close", {"period": period_text.strip(), **counts})
    return {"period": period_text.strip(), **counts}


def _compute(session, inputs: dict[int, PointInputs], text: str, rules, boundary_rules) -> list:
    out = []
    previous = {}
    periods = {pid: period_of(text, p) for pid, p in inputs.items()}
    labels = {pid: _previous_label(per, text) for pid, per in periods.items()}
    for row in session.execute(
        select(BillingConsumption.metering_point_id, BillingConsumption.period, BillingConsumption.value).where(
            BillingConsumption.metering_point_id.in_(list(inputs))
        )
    ):
        if labels.get(row.metering_point_id) == row.period:
            previous[row.metering_point_id] = row.value
    for pid, p in inputs.items():
        period = periods[pid]
        expected = _expected(session, p, period, previous.get(pid))
        result = compute_point(p, period, rules=rules, boundary_rules=boundary_rules, expected=expected)
        if result is not None:
            out.append((period, _label(period, text), result))
    return out


def _expected(session, p: PointInputs, period: Period, last_year: float | None) -> float | None:
    """Last year's consumption of the same period, scaled by degree days for heat where the point's
    property has a weather station covering both periods."""
    if last_year is None or p.station_id is None or p.runs[0].quantity != "energy":
        return last_year
    year = timedelta(days=365)
    means = station_means(session, p.station_id, period.first_day - year, period.last_day)
    now = degree_days(means, period.first_day, period.last_day)
    then = degree_days(means, _year_before(period.first_day), _year_before(period.last_day))
    if now.days_missing or then.days_missing or then.value <= 0:
        return last_year
    return last_year * now.value / then.value


def _year_before(day: date) -> date:
    return day.replace(year=day.year - 1) if not (day.month == 2 and day.day == 29) else date(day.year - 1, 2, 28)


def _store(session: Session, tenant_id: int, results: list, now: datetime, counts: dict) -> None:
    ids = [r.point_id for _, _, r in results]
    values = {
        (b.metering_point_id, b.quantity, b.boundary_at): b
        for b in session.scalars(select(BillingValue).where(BillingValue.metering_point_id.in_(ids)))
    }
    findings = {
        (f.metering_point_id, f.quantity, f.period, f.rule): f
        for f in session.scalars(select(BillingFinding).where(BillingFinding.metering_point_id.in_(ids)))
    }
    consumption = {
        (c.metering_point_id, c.quantity, c.period): c
        for c in session.scalars(select(BillingConsumption).where(BillingConsumption.metering_point_id.in_(ids)))
    }
    # per point, the earliest period with an open finding (one pass, not one per point)
    first_open: dict[int, str] = {}
    for f in findings.values():
        if f.state == "open" and f.period < first_open.get(f.metering_point_id, "~"):
            first_open[f.metering_point_id] = f.period
    for period, label, result in results:
        pending = first_open.get(result.point_id, "~") < label
        errors = any(f.severity == v.ERROR for f in result.findings)
        state = "pending" if pending else ("review" if errors else "ok")
        for b in result.boundaries:
            _store_value(session, tenant_id, result, b, values, state, now, counts)
        _apply_operator_values(result, values)
        _store_consumption(session, tenant_id, period, label, result, consumption, now)
        _store_findings(session, tenant_id, label, result, findings, now, counts)


def _value_fields(b: Boundary) -> dict:
    return {
        "value": b.value.value,
        "origin": b.value.origin.value,
        "quality": QUALITY_OF_ORIGIN[b.value.origin].value,
        "code": b.code,
        "details": _plain(b.value.details),
    }


def _plain(details: dict) -> dict:
    return {k: (val.isoformat() if isinstance(val, (datetime, date)) else val) for k, val in details.items()}


def _store_value(session, tenant_id, result: PointResult, b: Boundary, values, state, now, counts) -> None:
    fields = _value_fields(b)
    row = values.get((result.point_id, result.quantity, b.at))
    if row is None:
        row = BillingValue(
            tenant_id=tenant_id,
            metering_point_id=result.point_id,
            quantity=result.quantity,
            boundary_at=b.at,
            boundary_day=b.day,
            reason=b.reason,
            method=None,
            computed_value=fields["value"],
            computed_origin=fields["origin"],
            computed_details=fields["details"],
            state=state,
            computed_at=now,
            changed_at=now,
            export_stale=False,
            **fields,
        )
        session.add(row)
        values[(result.point_id, result.quantity, b.at)] = row
        counts["values_changed"] += 1
        return
    computed = (fields["value"], fields["origin"], fields["details"])
    if computed != (row.computed_value, row.computed_origin, row.computed_details):
        row.computed_value, row.computed_origin, row.computed_details = computed
        row.computed_at = now
    operator_set = row.origin in OPERATOR_ORIGINS
    changed = not operator_set and (row.value, row.origin, row.code) != (
        fields["value"],
        fields["origin"],
        fields["code"],
    )
    if changed:
        for name, val in fields.items():
            setattr(row, name, val)
        row.changed_at = now
        counts["values_changed"] += 1
        if row.exported_at is not None and not row.export_stale:
            row.export_stale = True
            counts["export_stale"] += 1
    if row.reason != b.reason:
        row.reason = b.reason
    if not operator_set and row.state != state:
        row.state = state


def _apply_operator_values(result: PointResult, values: dict) -> None:
    """Where an operator set a boundary value (edited or estimated), the period's consumption uses it."""
    set_by_hand = {
        at: row
        for (point, quantity, at), row in values.items()
        if point == result.point_id and quantity == result.quantity and row.origin in OPERATOR_ORIGINS
    }
    if not set_by_hand or not result.runs:
        return

    def swap(bv: BoundaryValue) -> BoundaryValue:
        row = set_by_hand.get(bv.at)
        if row is None or bv.details.get("source"):  # an installation's or a reset's own value stays
            return bv
        return BoundaryValue(bv.at, row.value, Origin(row.origin), {"billing_value": row.id})

    result.runs = [Run(r.meter, swap(r.start), swap(r.end)) for r in result.runs]
    result.consumption = period_consumption(result.runs)


def _store_consumption(session, tenant_id, period: Period, label: str, result: PointResult, existing, now) -> None:
    c = result.consumption
    if c is None:
        return
    row = existing.get((result.point_id, result.quantity, label))
    fields = {"value": c.value, "quality": c.quality.value, "runs": c.runs}
    if row is None:
        session.add(
            BillingConsumption(
                tenant_id=tenant_id,
                metering_point_id=result.point_id,
                quantity=result.quantity,
                period=label,
                start_at=period.start,
                end_at=period.end,
                computed_at=now,
                **fields,
            )
        )
    elif (row.value, row.quality, row.runs) != (c.value, c.quality.value, c.runs):
        row.value, row.quality, row.runs, row.computed_at = c.value, c.quality.value, c.runs, now


def _store_findings(session, tenant_id, label: str, result: PointResult, existing, now, counts) -> None:
    found = {f.rule: f for f in result.findings}
    for rule, f in found.items():
        row = existing.get((result.point_id, result.quantity, label, rule))
        if row is None:
            row = BillingFinding(
                tenant_id=tenant_id,
                metering_point_id=result.point_id,
                quantity=result.quantity,
                period=label,
                rule=rule,
                state="open",
                created_at=now,
                severity=f.severity,
                message=f.message,
                german=f.german,
                details=_plain(f.details),
            )
            session.add(row)
            existing[(result.point_id, result.quantity, label, rule)] = row
            counts["findings_open"] += 1
        elif row.state in ("open", "cleared"):
            if row.state == "cleared":
                row.state = "open"
                counts["findings_open"] += 1
            row.severity, row.message, row.german, row.details = f.severity, f.message, f.german, _plain(f.details)
    for (point, quantity, period, rule), row in existing.items():
        ours = (point, quantity, period) == (result.point_id, result.quantity, label)
        if ours and rule not in found and row.state == "open":
            row.state, row.decided_at, row.note = "cleared", now, "no longer found"
            counts["findings_cleared"] += 1


def month_text(day: date) -> str:
    return month_period(day.year, day.month).label


def retention_horizon(session: Session, tenant_id: int, now: datetime) -> datetime | None:
    """Retention's protector (store/retention.py): keep every reading and telegram from a little
    before the earliest boundary value that has not been exported (or changed since), so an open
    period can always be computed again from its evidence."""
    first = session.scalar(
        select(func.min(BillingValue.boundary_at)).where(
            BillingValue.tenant_id == tenant_id,
            (BillingValue.exported_at.is_(None)) | (BillingValue.export_stale.is_(True)),
        )
    )
    # the readings around a boundary that interpolation may use (the widest setting allowed)
    return None if first is None else first - timedelta(days=92)


register_protector("billing", retention_horizon)


def reclose_recent(db, now: datetime, *, months: int = 2) -> dict:
    """Close again the last `months` calendar months each tenant has already closed, so that late
    telegrams (a gateway that was offline for days) reach the values they affect; a value that changes
    after it was exported is marked for re-export. Run by the maintenance schedule."""
    labels = []
    year, month = now.year, now.month
    for _ in range(months):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        labels.append(f"{year:04d}-{month:02d}")
    done: dict[str, list[str]] = {}
    with db.session() as session:
        tenants = list(session.scalars(select(Tenant.id)))
        closed = set(
            session.execute(
                select(BillingConsumption.tenant_id, BillingConsumption.period)
                .where(BillingConsumption.period.in_(labels))
                .distinct()
            ).all()
        )
    for tenant_id in tenants:
        for label in labels:
            if (tenant_id, label) in closed:
                with db.transaction() as session:
                    close_period(session, tenant_id, label, actor="maintenance", now=now)
                done.setdefault(str(tenant_id), []).append(label)
    return {"reclosed": done}
