"""The monthly consumption information record per unit and occupant (HeizkostenV §6a(2), FFVAV §4(4);
docs/customer-information.md §Record): for a closed month M, each line (heat in kWh, hot water in m³
where metered, allocator units — in kWh only by a declared, versioned conversion) with M, M−1 and M
a year before, the property's and the cohort's average user, and the 13 months of the chart.

An occupant's record covers only the days of their stay; months outside the stay are not theirs to
see (`before_move_in`, `after_move_out`). A unit nobody lived in during M gets one record without an
occupant (for the owner). Stored idempotently: computing a month again changes nothing unless the
billing values changed, and then the record's `revision` grows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from omshub.cloud.domain import customer_info as ci
from omshub.cloud.domain.billing.periods import local_midnight
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.customer_inputs import (
    Stay,
    UnitFacts,
    attach_points,
    load_consumption,
    load_stays,
    load_units,
    segment_figure,
    tenant_is,
    unit_figure,
    whole_month,
)
from omshub.cloud.services.customer_settings import settings_of
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_customers import CustomerRecord

BATCH = 2000  # units per batch: a few queries each, bounded memory
HISTORY = 13  # months in the chart: M and the twelve before it
# the measurement basis of a comparison (docs/customer-information.md §Benchmark): what was measured where,
# per what; the comparison users are measured on the same basis as the unit (consumption side, in the flat)
BASIS = {
    "heat": "unit_heat_meter_kwh_per_m2_same_month",
    "hot_water": "unit_hot_water_meter_m3_per_m2_same_month",
    "hca": "unit_allocators_units_per_m2_same_month_same_property",
}


def check_month(text: str, now: datetime, zone: str = "Europe/Berlin") -> str:
    """ "2026-11" if that month is over in `zone` at `now`; else Invalid (the information is computed
    after the month is closed)."""
    t = (text or "").strip()
    if not re.fullmatch(r"\d{4}-\d{2}", t, re.ASCII) or not 1 <= int(t[5:]) <= 12 or not 1970 <= int(t[:4]) <= 9998:
        raise Invalid(f"month must be written YYYY-MM (e.g. 2026-11), got {text!r}", german="Monat: JJJJ-MM")
    _, last = ci.month_days(t)
    if local_midnight(last, zone).timestamp() + 86_400 > now.timestamp():
        raise Invalid(
            f"month {t} is not over yet: its information is computed after the month is closed",
            german=f"Der Monat {t} ist noch nicht vorbei: die Information entsteht nach dem Monatsabschluss",
        )
    return t


class _Month:
    """What one month's run needs across batches: settings, labels, the benchmark groups."""

    def __init__(self, session: Session, tenant_id: int, month: str) -> None:
        self.session, self.tenant_id, self.month = session, tenant_id, month
        self.settings = settings_of(session, tenant_id)
        self.labels = [ci.shift_month(month, -k) for k in range(HISTORY - 1, -1, -1)]
        self.first, _ = ci.month_days(self.labels[0])
        _, self.last = ci.month_days(month)
        # (kind, group) -> [(value, area)] of units measured for the whole month M
        self.groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        self.averages: dict[tuple[str, str], tuple[float | None, int]] = {}  # (per m², size), once per group

    def cohort(self, u: UnitFacts) -> str:
        s = self.settings
        return ci.cohort_key(u.energy_carrier, u.size_class, u.area_m2, s["cohort_keys"], s["flat_size_bins"])

    def collect_groups(self, progress: Callable[[str, int], None] | None) -> None:
        """First pass: every unit's whole-month value of M, into its property's and cohort's group
        (only measured and interpolated values: an estimate is no benchmark)."""
        after = seen = 0
        while units := load_units(self.session, self.tenant_id, after, BATCH):
            after = units[-1].unit_id
            by_id = {u.unit_id: u for u in units}
            attach_points(self.session, self.tenant_id, by_id)
            ids = [pid for u in units for pts in u.points.values() for pid, _ in pts]
            consumption = load_consumption(self.session, self.tenant_id, ids, [self.month])
            for u in units:
                for kind, pts in u.points.items():
                    fig = unit_figure(pts, self.month, consumption)
                    if fig["status"] in ("measured", "interpolated") and u.area_m2 > 0:
                        self.groups[(kind, f"property:{u.property_id}")].append((fig["value"], u.area_m2))
                        self.groups[(kind, f"cohort:{self.cohort(u)}")].append((fig["value"], u.area_m2))
            seen += len(units)
            if progress:
                progress("benchmarks", seen)
        self.averages = {key: (ci.average_per_m2(samples), len(samples)) for key, samples in self.groups.items()}
        self.groups.clear()


def _figure(m: _Month, u: UnitFacts, kind: str, label: str, stay: Stay | None, consumption: dict) -> dict:
    pts = u.points[kind]
    if stay is None or (stay.moved_in <= m.first and (stay.moved_out is None or stay.moved_out >= m.last)):
        return unit_figure(pts, label, consumption)  # the stay covers all 13 months: the unit's values
    days = ci.stay_in_month(label, stay.moved_in, stay.moved_out)
    if days is None:
        first, _ = ci.month_days(label)
        return {"value": None, "status": "before_move_in" if first < stay.moved_in else "after_move_out"}
    if whole_month(label, *days):
        return unit_figure(pts, label, consumption)
    return segment_figure(m.session, m.tenant_id, pts, u.zone, *days)


def _converted(fig: dict, factor: float | None) -> dict:
    if factor is None or fig["value"] is None:
        return fig
    return {**fig, "value": round(fig["value"] * factor, 1)}


def _line(m: _Month, u: UnitFacts, kind: str, stay: Stay | None, share: float, consumption: dict) -> dict:
    s = m.settings
    conversion = s["hca_conversion"] if kind == "hca" else None
    factor = float(conversion["kwh_per_unit"]) if conversion else None
    figs = {label: _converted(_figure(m, u, kind, label, stay, consumption), factor) for label in m.labels}
    unit = "kWh" if factor else ci.KIND_UNITS[kind]
    basis = BASIS[kind] + (f"|converted:{conversion['method']}:{conversion['version']}" if conversion else "")
    benchmarks = {}
    for name, key in (("property", f"property:{u.property_id}"), ("cohort", f"cohort:{m.cohort(u)}")):
        per_m2, size = m.averages.get((kind, key), (None, 0))
        if kind == "hca" and name == "cohort" and factor is None:
            # allocator units of different buildings are not on the same basis: no cohort comparison
            benchmarks[name] = {"key": key, "size": 0, "basis": basis, "per_m2": None, "value": None}
            benchmarks[name]["status"] = "not_comparable"
            continue
        bm = ci.benchmark(per_m2, size, u.area_m2, share, basis, int(s["min_cohort"]), key.split(":", 1)[1])
        benchmarks[name] = _converted(bm, factor) if bm["value"] is not None else bm
    notes = []
    if kind == "hca":
        notes.append(f"hca_converted:{conversion['method']}:{conversion['version']}" if conversion else "hca_units")
    return {
        "kind": kind,
        "unit": unit,
        "month": figs[m.month],
        "previous": figs[m.labels[-2]],
        "last_year": figs[m.labels[0]],
        "history": [{"month": label, **figs[label]} for label in m.labels],
        "benchmarks": benchmarks,
        "notes": notes,
    }


def _content(m: _Month, u: UnitFacts, stay: Stay | None, consumption: dict) -> tuple[dict, tuple]:
    first, last = ci.month_days(m.month)
    days = ci.stay_in_month(m.month, stay.moved_in, stay.moved_out) if stay else (first, last)
    assert days is not None  # only stays that touch M get a record
    share = ((days[1] - days[0]).days + 1) / ((last - first).days + 1)
    lines = [_line(m, u, kind, stay, share, consumption) for kind in ("heat", "hot_water", "hca") if kind in u.points]
    content = {
        "month": m.month,
        "days": [days[0].isoformat(), days[1].isoformat()],
        "unit": {"id": u.unit_id, "ref": u.ref, "name": u.name, "area_m2": u.area_m2},
        "property": {"id": u.property_id, "name": u.property_name, "address": u.property_address},
        "occupant": None
        if stay is None
        else {"id": stay.occupant_id, "name": stay.name, "moved_in": stay.moved_in.isoformat()},
        "lines": lines,
    }
    return content, days


def _store(
    m: _Month, u: UnitFacts, stay: Stay | None, content: dict, days, now: datetime, existing, counts, new
) -> None:
    fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    gaps = ci.gaps_of(content["lines"])
    key = stay.occupancy_id if stay else 0
    row = existing.get((u.unit_id, key))
    if row is None:
        new.append(
            {
                "tenant_id": m.tenant_id,
                "property_id": u.property_id,
                "unit_id": u.unit_id,
                "occupant_id": stay.occupant_id if stay else None,
                "stay_key": key,
                "month": m.month,
                "day_from": days[0],
                "day_to": days[1],
                "content": content,
                "fingerprint": fingerprint,
                "complete": not gaps,
                "gaps": gaps,
                "revision": 1,
                "computed_at": now,
                "changed_at": now,
            }
        )
        counts["new"] += 1
    elif row.fingerprint != fingerprint:
        # the letter of the new revision says which information it corrects (the fingerprint is of the
        # values only, so this note never makes a record look changed)
        earlier = {"revision": row.revision, "date": row.changed_at.date().isoformat()}
        content = {**content, "corrects": earlier}
        row.content, row.fingerprint, row.complete, row.gaps = content, fingerprint, not gaps, gaps
        row.day_from, row.day_to, row.revision, row.changed_at = days[0], days[1], row.revision + 1, now
        counts["changed"] += 1
    else:
        counts["unchanged"] += 1


def build_month(
    session: Session,
    tenant_id: int,
    month: str,
    *,
    actor: str,
    now: datetime,
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Compute and store the records of `month` for every unit of the tenant. Returns counts."""
    month = check_month(month, now)
    m = _Month(session, tenant_id, month)
    m.collect_groups(progress)
    counts: dict = {"month": month, "units": 0, "new": 0, "changed": 0, "unchanged": 0, "incomplete": 0}
    after = 0
    while units := load_units(session, tenant_id, after, BATCH):
        after = units[-1].unit_id
        by_id = {u.unit_id: u for u in units}
        attach_points(session, tenant_id, by_id)
        ids = [pid for u in units for pts in u.points.values() for pid, _ in pts]
        consumption = load_consumption(session, tenant_id, ids, m.labels)
        stays = load_stays(session, tenant_id, list(by_id), *ci.month_days(month))
        existing = {
            (r.unit_id, r.stay_key): r
            for r in session.scalars(
                select(CustomerRecord).where(
                    tenant_is(CustomerRecord.tenant_id, tenant_id),
                    CustomerRecord.month == month,
                    CustomerRecord.unit_id.in_(list(by_id)),
                )
            )
        }
        new: list[dict] = []
        with session.no_autoflush:  # the occupants' own boundary values are read in between
            for u in units:
                for stay in stays.get(u.unit_id) or [None]:
                    content, days = _content(m, u, stay, consumption)
                    _store(m, u, stay, content, days, now, existing, counts, new)
                    counts["incomplete"] += bool(ci.gaps_of(content["lines"]))
        if new:
            session.execute(insert(CustomerRecord), new)
        counts["units"] += len(units)
        if progress:
            progress("records", counts["units"])
        session.flush()
    audit(session, tenant_id, actor, "customers.records", counts)
    return counts
