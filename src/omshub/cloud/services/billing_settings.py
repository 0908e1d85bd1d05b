"""A tenant's billing rules: validation thresholds and boundary distances, stored as the differences
from the documented defaults (docs/billing.md §Validation rules). Every change is audited."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.boundary import BoundaryRules
from omshub.cloud.domain.billing.validation import ToleranceBand, ValidationRules
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_billing import BillingSettings

ESTIMATION = ("previous_period", "comparable_units", "property_average")
# name -> (lower bound, upper bound) of each number a tenant may set
LIMITS = {
    "zero_days": (1, 366),
    "stale_days": (1, 366),
    "future_tolerance_s": (0, 86_400),
    "max_power_kw": (0.001, 1e7),
    "max_flow_m3h": (0.001, 1e5),
    "max_hca_units_per_day": (0.001, 1e6),
    "reset_drop_share": (0.01, 1.0),
    "measured_within_s": (0, 7 * 86_400),
    "interpolate_within_s": (3_600, 92 * 86_400),
}


def defaults() -> dict:
    v, b = ValidationRules(), BoundaryRules()
    return {
        "zero_days": v.zero_days,
        "heating_months": list(v.heating_months),
        "stale_days": v.stale_days,
        "future_tolerance_s": int(v.future_tolerance.total_seconds()),
        "max_power_kw": v.max_power_kw,
        "max_flow_m3h": v.max_flow_m3h,
        "max_hca_units_per_day": v.max_hca_units_per_day,
        "bands": [{"from_value": x.from_value, "above_pct": x.above_pct, "below_pct": x.below_pct} for x in v.bands],
        "reset_drop_share": v.reset_drop_share,
        "measured_within_s": int(b.measured_within.total_seconds()),
        "interpolate_within_s": int(b.interpolate_within.total_seconds()),
        "auto_estimate": [],  # off: an operator estimates from the review queue
    }


def _problems(changes: dict) -> list[str]:
    out = []
    for name, value in changes.items():
        if name in LIMITS:
            low, high = LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                out.append(f"{name}: must be a number")
            elif not low <= value <= high:
                out.append(f"{name}: must be {low:g} to {high:g}, got {value:g}")
        elif name == "heating_months":
            if not isinstance(value, list) or not value or any(m not in range(1, 13) for m in value):
                out.append("heating_months: a list of month numbers 1 to 12")
        elif name == "auto_estimate":
            if not isinstance(value, list) or len(set(value)) != len(value) or any(m not in ESTIMATION for m in value):
                out.append(f"auto_estimate: a list of methods from {', '.join(ESTIMATION)}, each at most once")
        elif name == "bands":
            ok = (
                isinstance(value, list)
                and 0 < len(value) <= 10
                and all(
                    isinstance(b, dict)
                    and set(b) == {"from_value", "above_pct", "below_pct"}
                    and all(isinstance(b[k], (int, float)) and 0 <= b[k] <= 1e9 for k in b)
                    for b in value
                )
            )
            if not ok:
                out.append("bands: 1 to 10 of {from_value, above_pct, below_pct}, numbers ≥ 0")
        else:
            out.append(f"{name}: unknown setting; settings are {', '.join(defaults())}")
    return out


def current(session: Session, tenant_id: int) -> dict:
    row = session.scalar(select(BillingSettings).where(BillingSettings.tenant_id == tenant_id))
    return defaults() | (row.rules if row else {})


def change(session: Session, tenant_id: int, changes: dict, *, actor: str, now: datetime) -> dict:
    """Set some settings (a value equal to the default is dropped from the stored differences)."""
    problems = _problems(changes)
    if problems:
        raise Invalid(
            "; ".join(problems), code="invalid_billing_rules", german="Ungültige Einstellungen: " + "; ".join(problems)
        )
    row = session.scalar(select(BillingSettings).where(BillingSettings.tenant_id == tenant_id))
    if row is None:
        row = BillingSettings(tenant_id=tenant_id, rules={}, changed_at=now, changed_by=actor)
        session.add(row)
    before = dict(row.rules or {})
    base = defaults()
    merged = {k: val for k, val in (before | changes).items() if base.get(k) != val}
    row.rules, row.changed_at, row.changed_by = merged, now, actor
    audit(session, tenant_id, actor, "billing.rules.change", {"before": before, "after": merged})
    return current(session, tenant_id)


def rules_of(session: Session, tenant_id: int) -> tuple[ValidationRules, BoundaryRules]:
    """The tenant's rules as the domain's objects."""
    s = current(session, tenant_id)
    names = {f.name for f in fields(ValidationRules)}
    v = replace(
        ValidationRules(),
        **{
            k: s[k]
            for k in (
                "zero_days",
                "stale_days",
                "max_power_kw",
                "max_flow_m3h",
                "max_hca_units_per_day",
                "reset_drop_share",
            )
            if k in names
        },
        heating_months=tuple(s["heating_months"]),
        future_tolerance=timedelta(seconds=s["future_tolerance_s"]),
        bands=tuple(ToleranceBand(b["from_value"], b["above_pct"], b["below_pct"]) for b in s["bands"]),
    )
    b = BoundaryRules(timedelta(seconds=s["measured_within_s"]), timedelta(seconds=s["interpolate_within_s"]))
    return v, b
