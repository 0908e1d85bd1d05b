"""One metering point's billing values for a period, from its inputs (billing_inputs.py): the boundary
values with their origin and code, the consumption across its meters, and the validation findings
(docs/billing.md). No database here: billing_close.py loads and stores.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from omshub.cloud.domain.billing import validation as v
from omshub.cloud.domain.billing.boundary import BoundaryRules, BoundaryValue, Sample, boundary_value, stored_value_at
from omshub.cloud.domain.billing.consumption import PeriodConsumption, Run, period_consumption
from omshub.cloud.domain.billing.origins import Origin, tabelle_s_code
from omshub.cloud.domain.billing.periods import Period, due_date_in, local_midnight
from omshub.cloud.domain.registers import CUMULATIVE_UNITS
from omshub.cloud.services.billing_inputs import MeterRun, PointInputs


@dataclass
class Boundary:
    at: datetime
    day: date
    reason: str  # month | due_date | move_in | move_out | start (a period that is not a month)
    value: BoundaryValue
    code: str | None


@dataclass
class PointResult:
    point_id: int
    quantity: str
    boundaries: list[Boundary] = field(default_factory=list)
    consumption: PeriodConsumption | None = None
    runs: list[Run] = field(default_factory=list)
    findings: list[v.Finding] = field(default_factory=list)
    # the occupant segments of the period and the station's daily means for a split by degree days
    # (billing_close.py sets them for a unit with occupancies; billing_store.py computes and stores)
    segments: list = field(default_factory=list)
    means: dict | None = None
    unit_id: int | None = None


def _reason(day: date, due: tuple[int, int]) -> str:
    """`due_date` where the boundary ends the due date (a main reading), else `month`."""
    due_day = due_date_in(day.year - (day.month == 1 and day.day == 1), *due)
    return "due_date" if day == due_day + timedelta(days=1) else "month"


def _installed(run: MeterRun, at: datetime) -> bool:
    return run.installed_at <= at and (run.removed_at is None or run.removed_at > at)


def _value_at(inputs: PointInputs, at: datetime, day: date, rules: BoundaryRules) -> BoundaryValue:
    """The register of whichever meter is installed at `at`; missing if none is."""
    known = inputs.memo.get((at, day))
    if known is not None:  # the period's start and end are both a boundary and a run's end
        return known
    run = next((r for r in inputs.runs if _installed(r, at)), None)
    if run is None:
        return BoundaryValue(at, None, Origin.MISSING, {"reason": "no meter installed"})
    samples, stored = inputs.samples.get(run.meter_pk, []), inputs.stored.get(run.meter_pk, [])
    if run.quantity == "hca" and _reason(day, inputs.due) == "due_date":
        value = _hca_before_reset(at, day, samples, stored, rules)
    else:
        value = boundary_value(at, day, samples, stored, rules)
    value.details["meter"] = run.label
    inputs.memo[(at, day)] = value
    return value


def _hca_before_reset(at: datetime, day: date, samples: list[Sample], stored, rules: BoundaryRules) -> BoundaryValue:
    """A heat cost allocator starts counting from 0 at its due date: the value at the due-date boundary
    is the one it stored for the due date, else its last reading before (when close enough); readings
    after the reset are never interpolated with those before."""
    hit = stored_value_at(day, list(stored))
    if hit is not None:
        details = {"storage": hit.storage, "stored_day": hit.day.isoformat(), "telegram_id": hit.telegram_id}
        return BoundaryValue(at, hit.value, Origin.METER_STORED, details)
    before = [s for s in samples if s.at <= at]
    if before and at - before[-1].at <= rules.measured_within:
        details = {"telegram_id": before[-1].telegram_id, "distance_s": int((before[-1].at - at).total_seconds())}
        return BoundaryValue(at, before[-1].value, Origin.MEASURED, details)
    return BoundaryValue(at, None, Origin.MISSING, {"reason": "no due-date value stored by the allocator"})


def _reset_value(at: datetime, run: MeterRun) -> BoundaryValue:
    return BoundaryValue(at, 0.0, Origin.MEASURED, {"source": "due_date_reset", "meter": run.label})


def _due_boundaries_inside(inputs: PointInputs, period: Period) -> list[tuple[datetime, date]]:
    """The due-date boundaries strictly inside the period (an allocator resets there)."""
    out = []
    for year in range(period.first_day.year, period.last_day.year + 1):
        day = due_date_in(year, *inputs.due) + timedelta(days=1)
        if period.first_day < day <= period.last_day:
            out.append((local_midnight(day, inputs.zone), day))
    return out


def _run_start(inputs: PointInputs, run: MeterRun, quantity: str, period: Period, rules: BoundaryRules):
    if run.installed_at <= period.start:
        if quantity == "hca" and _reason(period.first_day, inputs.due) == "due_date":
            return _reset_value(period.start, run)
        return _value_at(inputs, period.start, period.first_day, rules)
    if quantity in run.initial_values:
        details = {"source": "installation", "meter": run.label}
        return BoundaryValue(run.installed_at, float(run.initial_values[quantity]), Origin.MEASURED, details)
    first = next((s for s in inputs.samples.get(run.meter_pk, []) if s.at >= run.installed_at), None)
    if first is None:
        return BoundaryValue(run.installed_at, None, Origin.MISSING, {"reason": "no reading after installation"})
    return BoundaryValue(first.at, first.value, Origin.MEASURED, {"source": "first_reading", "meter": run.label})


def _run_end(inputs: PointInputs, run: MeterRun, quantity: str, period: Period, rules: BoundaryRules):
    if run.removed_at is None or run.removed_at >= period.end:
        return _value_at(inputs, period.end, period.last_day + timedelta(days=1), rules)
    if run.final_values and quantity in run.final_values:
        details = {"source": "removal", "meter": run.label}
        return BoundaryValue(run.removed_at, float(run.final_values[quantity]), Origin.MEASURED, details)
    before = [s for s in inputs.samples.get(run.meter_pk, []) if s.at <= run.removed_at]
    if not before:
        return BoundaryValue(run.removed_at, None, Origin.MISSING, {"reason": "no reading before removal"})
    return BoundaryValue(before[-1].at, before[-1].value, Origin.MEASURED, {"source": "last_reading"})


def _boundaries(inputs: PointInputs, period: Period, rules: BoundaryRules) -> list[Boundary]:
    """The period's start and end, and every move-in and move-out day inside it."""
    days = {period.first_day: "month", period.last_day + timedelta(days=1): "month"}
    if period.kind != "month":
        days[period.first_day] = "start"
    for stay in inputs.stays:
        if period.first_day < stay.moved_in <= period.last_day:
            days.setdefault(stay.moved_in, "move_in")
        if stay.moved_out is not None and period.first_day <= stay.moved_out < period.last_day:
            days.setdefault(stay.moved_out + timedelta(days=1), "move_out")
    out = []
    for day in sorted(days):
        at = local_midnight(day, inputs.zone)
        reason = days[day] if days[day] != "month" else _reason(day, inputs.due)
        value = _value_at(inputs, at, day, rules)
        if value.origin is Origin.MISSING and value.details.get("reason") == "no meter installed":
            continue  # before the first installation or after the last removal: nothing to bill
        out.append(Boundary(at, day, reason, value, tabelle_s_code(value.origin, main=reason == "due_date")))
    return out


def boundary_times(inputs: PointInputs, period: Period) -> list[tuple[datetime, date]] | None:
    """The period's start and end (UTC moment, local day) when nothing else inside the period needs
    the readings around it; None for a point with a move, an installation or removal, or an
    allocator's due date inside the period (billing_readings.py then reads all its readings)."""
    inside = period.first_day + timedelta(days=1), period.last_day
    for stay in inputs.stays:
        if inside[0] <= stay.moved_in <= inside[1] or (
            stay.moved_out is not None and period.first_day <= stay.moved_out < period.last_day
        ):
            return None
    for run in inputs.runs:
        if period.start < run.installed_at < period.end or (
            run.removed_at is not None and period.start < run.removed_at < period.end
        ):
            return None
        if run.installed_from != "given" and run.installed_at >= period.start:
            return None
        if run.quantity == "hca" and _due_boundaries_inside(inputs, period):
            return None
    return [(period.start, period.first_day), (period.end, period.last_day + timedelta(days=1))]


def _usable_stored(inputs: PointInputs) -> dict[int, list]:
    """The stored values a boundary may take: those that fit the meter's readings around their day and
    are not dated after their telegram. The others only raise findings (_meter_findings)."""
    out = {}
    allocators = {r.meter_pk for r in inputs.runs if r.quantity == "hca"}
    for meter_pk, stored in inputs.stored.items():
        samples = inputs.samples.get(meter_pk, [])
        times = [s.at for s in samples]
        keep = []
        for sv in stored:
            at = local_midnight(sv.day + timedelta(days=1), inputs.zone)
            i = bisect.bisect_left(times, at)
            before, after = (samples[i - 1] if i > 0 else None), (samples[i] if i < len(samples) else None)
            dated_later = sv.received_at is not None and at > sv.received_at + timedelta(days=1)
            # an allocator's stored value counts its finished billing period: no bracket by readings
            fits = meter_pk in allocators or not v.check_stored_between_readings(sv, before, after)
            if not dated_later and fits:
                keep.append(sv)
        out[meter_pk] = keep
    return out


def quantity_of(inputs: PointInputs) -> str | None:
    return next((r.quantity for r in inputs.runs if r.quantity in CUMULATIVE_UNITS), None)


def compute_point(
    inputs: PointInputs,
    period: Period,
    *,
    rules: v.ValidationRules,
    boundary_rules: BoundaryRules,
    expected: float | None = None,
) -> PointResult | None:
    """The point's values of `period`; None if no meter with a cumulative register was installed in it.
    `expected`: the consumption expected for the period (last year's, degree-day scaled), for the
    tolerance check."""
    quantity = quantity_of(inputs)
    runs_in = [
        r for r in inputs.runs if r.installed_at < period.end and (r.removed_at is None or r.removed_at > period.start)
    ]
    if quantity is None or not runs_in:
        return None
    checked = dataclasses.replace(inputs, stored=_usable_stored(inputs), memo={})
    result = PointResult(inputs.point_id, quantity, _boundaries(checked, period, boundary_rules))
    runs = []
    for r in runs_in:
        if r.quantity != quantity:
            continue
        start, end = (
            _run_start(checked, r, quantity, period, boundary_rules),
            _run_end(checked, r, quantity, period, boundary_rules),
        )
        for at, day in _due_boundaries_inside(checked, period) if quantity == "hca" else ():
            if start.at < at < end.at:
                runs.append(Run(r.label, start, _value_at(checked, at, day, boundary_rules)))
                start = _reset_value(at, r)
        runs.append(Run(r.label, start, end))
    result.runs = runs
    result.consumption = period_consumption(runs)
    result.findings = _findings(inputs, period, runs, runs_in, result.consumption, rules, expected)
    return result


def _findings(inputs, period, runs, runs_in, consumption, rules, expected) -> list[v.Finding]:
    out: list[v.Finding] = []
    for run in runs:
        if run.start.value is not None and run.end.value is not None:
            hours = (run.end.at - run.start.at).total_seconds() / 3600
            limit = {
                "energy": rules.max_power_kw,
                "volume": rules.max_flow_m3h,
                "hca": rules.max_hca_units_per_day / 24,
            }
            out += v.check_consumption(
                run.start.value,
                run.end.value,
                rollover_modulus=rollover_modulus(run.start.value),
                max_delta=limit.get(quantity_of(inputs) or "", 0) * hours,
            )
    if consumption.value is not None:
        hours = (period.end - period.start).total_seconds() / 3600
        out += v.check_rate(consumption.value, hours, quantity_of(inputs) or "", rules)
        out += v.check_zero(consumption.value, period.first_day, period.last_day, rules)
        out += v.check_tolerance(consumption.value, expected, rules)
    for run in runs_in:
        out += _meter_findings(inputs, run, period, rules)
    return _unique_rules(out)


def _meter_findings(inputs: PointInputs, run: MeterRun, period: Period, rules: v.ValidationRules) -> list[v.Finding]:
    samples = inputs.samples.get(run.meter_pk, [])
    received = inputs.received.get(run.meter_pk, [])
    out: list[v.Finding] = []
    in_period = [(s, r) for s, r in zip(samples, received, strict=False) if period.start <= s.at < period.end]
    for s, r in in_period:
        out += v.check_future(s, r, rules)
    out += v.check_duplicates([s for s, _ in in_period])
    # the register between consecutive readings: a drop inside the period is found even where the
    # boundary values alone would hide it (a reset followed by enough consumption)
    resets = [at for at, _ in _due_boundaries_inside(inputs, period)] + [period.start]
    for (a, _), (b, _) in zip(in_period, in_period[1:], strict=False):
        if run.quantity == "hca" and any(a.at <= at <= b.at for at in resets):
            continue  # an allocator's reset at its due date
        if b.value < a.value:
            out += v.check_consumption(
                a.value,
                b.value,
                rollover_modulus=rollover_modulus(a.value),
                max_delta=_max_delta(run, a, b, rules),
                reset_drop_share=rules.reset_drop_share,
            )
    if run.removed_at is None or run.removed_at >= period.end:
        last = max((s.at for s in samples if s.at <= period.end), default=None)
        out += v.check_stale(last, period.end, rules)
    out += [v.invalid_due_date(text) for text in inputs.bad_dates.get(run.meter_pk, [])]
    out += _due_date_findings(inputs, run, samples)
    if run.quantity != "hca":  # an allocator's stored values count units of an earlier billing period
        out += _stored_against_readings(inputs, run, samples, period)
    return out


def _stored_against_readings(inputs: PointInputs, run: MeterRun, samples: list[Sample], period: Period):
    """Each stored value for a day of the period (or the day before it) between the readings around
    the end of that day."""
    out: list[v.Finding] = []
    seen: set[tuple] = set()
    times = [s.at for s in samples]
    for stored in inputs.stored.get(run.meter_pk, []):
        day = stored.day + timedelta(days=1)
        if not (period.first_day <= day <= period.last_day + timedelta(days=1)) or (stored.day, stored.value) in seen:
            continue
        seen.add((stored.day, stored.value))
        at = local_midnight(day, inputs.zone)
        i = bisect.bisect_left(times, at)
        before = samples[i - 1] if i > 0 else None
        after = samples[i] if i < len(samples) else None
        out += v.check_stored_between_readings(stored, before, after)
    return out


def rollover_modulus(before: float) -> float | None:
    """Where a register this full wraps: the next power of ten above it (a display of n digits wraps at
    10**n of its unit), if the register has reached 90 % of it — a register wraps only when nearly
    full. None otherwise."""
    if before < 10:
        return None
    modulus = float(10 ** math.ceil(math.log10(before + 1)))
    return modulus if before >= 0.9 * modulus else None


def _hourly_limit(quantity: str | None, rules: v.ValidationRules) -> float:
    """The most a register can physically advance in an hour (the plausible maximum power, flow or
    allocator units)."""
    limits = {"energy": rules.max_power_kw, "volume": rules.max_flow_m3h, "hca": rules.max_hca_units_per_day / 24}
    return limits.get(quantity or "", 0.0)


def _max_delta(run: MeterRun, a: Sample, b: Sample, rules: v.ValidationRules) -> float:
    return _hourly_limit(run.quantity, rules) * (b.at - a.at).total_seconds() / 3600


def _due_date_findings(inputs: PointInputs, run: MeterRun, samples: list[Sample]) -> list[v.Finding]:
    """Each stored value against the telegram that carried it and the stored value of the day before
    it (of any storage number: month-end values move up a number every month)."""
    totals = {s.telegram_id: s.value for s in samples}
    out: list[v.Finding] = []
    previous: tuple[date, float] | None = None
    current: tuple[date, float] | None = None
    for stored in sorted(inputs.stored.get(run.meter_pk, []), key=lambda s: (s.day, s.storage)):
        if current is not None and stored.day != current[0]:
            previous = current
        telegram_day = stored.received_at.date() if stored.received_at else stored.day
        hca = run.quantity == "hca"  # its stored values are units of an earlier billing period
        out += v.check_due_date(
            stored,
            telegram_day=telegram_day,
            total=None if hca else _total(stored, totals),
            installed_on=run.installed_at.date() if run.installed_from == "given" else None,
            previous_value=previous[1] if previous and not hca else None,
        )
        current = (stored.day, stored.value)
    return out


def _total(stored, totals: dict) -> float | None:
    """The register of the reading that carried a stored value: its own, else that of its telegram
    (never that of another reading: a reading whose telegram retention removed has none)."""
    if stored.total is not None:
        return stored.total
    return None if stored.telegram_id is None else totals.get(stored.telegram_id)


def _unique_rules(findings: list[v.Finding]) -> list[v.Finding]:
    """One finding per rule and period (the queue's key): the first, with how often it tripped."""
    first: dict[str, v.Finding] = {}
    count: dict[str, int] = {}
    for f in findings:
        first.setdefault(f.rule, f)
        count[f.rule] = count.get(f.rule, 0) + 1
    return [
        v.Finding(f.rule, f.severity, f.message, f.german, {**f.details, "times": count[f.rule]})
        if count[f.rule] > 1
        else f
        for f in first.values()
    ]
