"""Consumption of a metering point over a period, across meter swaps (docs/billing.md §Swaps).

A metering point's register over a period is a chain of runs, one per meter installed in it: each run
starts at the period start (or the meter's installation value) and ends at the period end (or its
removal value). The consumption is the sum of the runs' differences, so a new meter that starts at 0
(or at any value) never makes the consumption jump, and the old meter's lifetime total never counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omshub.cloud.domain.billing.boundary import BoundaryValue
from omshub.cloud.domain.billing.origins import Quality

_QUALITY_RANK = {Quality.MEASURED: 0, Quality.INTERPOLATED: 1, Quality.ESTIMATED: 2, Quality.MISSING: 3}


@dataclass(frozen=True, slots=True)
class Run:
    """One meter's part of a period at a metering point."""

    meter: str
    start: BoundaryValue
    end: BoundaryValue


@dataclass(frozen=True, slots=True)
class PeriodConsumption:
    """The sum over the runs (None if a value is missing), the worst quality of the values used, and
    each run's own difference."""

    value: float | None
    quality: Quality
    runs: list[dict] = field(default_factory=list)


def worst_quality(qualities: list[Quality]) -> Quality:
    return max(qualities, key=_QUALITY_RANK.__getitem__, default=Quality.MISSING)


def period_consumption(runs: list[Run]) -> PeriodConsumption:
    """Sum of end − start over the runs. A negative run is kept as it is (raw values are evidence):
    the validation rule `negative_consumption` flags it for review."""
    parts: list[dict] = []
    total: float | None = 0.0
    for run in runs:
        delta = None
        if run.start.value is not None and run.end.value is not None:
            delta = round(run.end.value - run.start.value, 6)
        parts.append(
            {
                "meter": run.meter,
                "start": run.start.value,
                "start_origin": run.start.origin.value,
                "end": run.end.value,
                "end_origin": run.end.origin.value,
                "consumption": delta,
            }
        )
        total = None if delta is None or total is None else total + delta
    quality = worst_quality([q for r in runs for q in (r.start.quality, r.end.quality)])
    if total is None:
        quality = Quality.MISSING
    return PeriodConsumption(None if total is None else round(total, 6), quality, parts)
