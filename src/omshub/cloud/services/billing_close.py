"""Closing a billing period: boundary values, consumption and validation findings for every metering
point of a tenant, stored idempotently (docs/billing.md §Closing a period).

Running it again changes nothing unless the data changed. A value an operator edited or estimated
keeps its value; what omshub computes is updated next to it (`computed_*`). A value that changes after
it was exported is marked `export_stale` for re-export. A finding that a later run no longer finds is
`cleared`; decided findings stay decided.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing import validation as v
from omshub.cloud.domain.billing.boundary import BoundaryRules
from omshub.cloud.domain.billing.origins import Origin
from omshub.cloud.domain.billing.periods import Period, billing_year, month_period, parse_month, segments
from omshub.cloud.domain.billing.segments import HEAT
from omshub.cloud.domain.billing.weather import degree_days
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.billing_compute import boundary_times, compute_point
from omshub.cloud.services.billing_estimate import estimate_missing
from omshub.cloud.services.billing_inputs import PointInputs, load_points
from omshub.cloud.services.billing_readings import load_readings_near
from omshub.cloud.services.billing_settings import current, rules_of
from omshub.cloud.services.billing_store import store_results
from omshub.cloud.services.weather import station_means
from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import one_of
from omshub.cloud.store.models import Installation, MeteringPoint, Tenant
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue
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
    session.flush()  # what the caller added is read by the queries below, which bypass the session
    counts = {
        "points": 0,
        "values_changed": 0,
        "findings_open": 0,
        "findings_cleared": 0,
        "export_stale": 0,
        "estimated": 0,
    }
    labels: set[str] = set()
    after = seen = 0
    scales: dict = {}  # degree-day scale per (station, period): once per close, not per point
    while batch := _points(session, tenant_id, after, first, last):
        after = batch[-1]
        inputs = load_points(session, tenant_id, batch, first, last, with_readings=False)
        periods = {pid: _period_cached(period_text, p.zone, p.due) for pid, p in inputs.items()}
        load_readings_near(session, inputs, first, last, functools.partial(_times, periods))
        results = _compute(session, inputs, periods, period_text, rules, boundary_rules, scales)
        store_results(session, tenant_id, results, now, counts)
        labels.update(label for _, label, _ in results)
        counts["points"] += len(results)
        seen += len(batch)
        if progress:
            progress(seen)
        session.flush()
    methods = current(session, tenant_id)["auto_estimate"]
    if methods and counts["points"]:
        for label in sorted(labels):
            counts["estimated"] += estimate_missing(session, tenant_id, label, methods, now=now)
    audit(session, tenant_id, actor, "billing.close", {"period": period_text.strip(), **counts})
    return {"period": period_text.strip(), **counts}


def _times(periods: dict[int, Period], p: PointInputs):
    return boundary_times(p, periods[p.point_id])


@functools.lru_cache(maxsize=64)
def _period_cached(text: str, zone: str, due: tuple[int, int]) -> Period:
    return period_of(text, PointInputs(0, "", None, None, zone, due, None))


def _compute(session, inputs: dict[int, PointInputs], periods: dict, text: str, rules, boundary_rules, scales) -> list:
    out = []
    previous = {}
    labels = {pid: _previous_label(per, text) for pid, per in periods.items()}
    for row in session.connection().execute(
        select(BillingConsumption.metering_point_id, BillingConsumption.period, BillingConsumption.value).where(
            one_of(session, BillingConsumption.metering_point_id, inputs),
            BillingConsumption.period.in_(sorted(set(labels.values()))),
        )
    ):
        if labels.get(row.metering_point_id) == row.period:
            previous[row.metering_point_id] = row.value
    for pid, p in inputs.items():
        period = periods[pid]
        expected = _expected(session, p, period, previous.get(pid), scales)
        result = compute_point(p, period, rules=rules, boundary_rules=boundary_rules, expected=expected)
        if result is not None and p.unit_id is not None and p.stays:
            result.segments, result.unit_id = segments(period, p.stays, p.zone), p.unit_id
            if p.station_id is not None and result.quantity in HEAT and len(result.segments) > 1:
                key = ("means", p.station_id, period.first_day, period.last_day)
                if key not in scales:
                    scales[key] = station_means(session, p.station_id, period.first_day, period.last_day)
                result.means = scales[key]
        if result is not None:
            out.append((period, _label(period, text), result))
    return out


def _expected(session, p: PointInputs, period: Period, last_year: float | None, scales: dict) -> float | None:
    """Last year's consumption of the same period, scaled by degree days for heat where the point's
    property has a weather station covering both periods."""
    if last_year is None or p.station_id is None or not p.runs or p.runs[0].quantity != "energy":
        return last_year
    key = (p.station_id, period.first_day, period.last_day)
    if key not in scales:
        scales[key] = _scale(session, p.station_id, period)
    scale = scales[key]
    return last_year if scale is None else last_year * scale


def _scale(session, station_id: int, period: Period) -> float | None:
    """Degree days of the period / those of the same period a year before; None if either is not
    covered by the station's series."""
    year = timedelta(days=365)
    means = station_means(session, station_id, period.first_day - year, period.last_day)
    now = degree_days(means, period.first_day, period.last_day)
    then = degree_days(means, _year_before(period.first_day), _year_before(period.last_day))
    if now.days_missing or then.days_missing or then.value <= 0:
        return None
    return now.value / then.value


def _year_before(day: date) -> date:
    return day.replace(year=day.year - 1) if not (day.month == 2 and day.day == 29) else date(day.year - 1, 2, 28)


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
