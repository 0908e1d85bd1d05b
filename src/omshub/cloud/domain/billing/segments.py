"""A metering point's consumption per occupant segment of a period (HeizkostenV §9b; docs/billing.md
§Occupant segments).

A move-in or move-out inside the period cuts it into segments (periods.segments). Each segment's
consumption comes, in this order, from:

1. the register at its two boundaries (the close computes a value at every move day): an interim
   reading, Tabelle S 12 (11 where the segment ends at the due date); 13 where a boundary value was
   interpolated linearly in time; an estimated or edited boundary gives its own code;
2. otherwise (a boundary value missing, or a meter swap or an allocator's reset inside the period):
   the period's consumption split — for heat (energy, allocator units) by degree days (14), from
   the weather station's daily means where they cover every day, else by the VDI 2067 monthly
   per-mille table (also 14: it is the table of degree-day shares); water and hot water by days (13).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from omshub.cloud.domain.billing.boundary import BoundaryValue
from omshub.cloud.domain.billing.origins import TABELLE_S, Origin
from omshub.cloud.domain.billing.periods import Segment
from omshub.cloud.domain.billing.weather import split_shares

HEAT = ("energy", "hca")
_READ = (Origin.METER_STORED, Origin.MEASURED)


@dataclass(frozen=True, slots=True)
class SegmentConsumption:
    """One occupant's (None: vacant) part of a period and its consumption with its code."""

    occupant: str | None
    first_day: date
    last_day: date
    start: datetime
    end: datetime
    value: float | None
    code: str | None
    method: str  # readings | split_by_days | split_by_degree_days | missing
    details: dict = field(default_factory=dict)


def _code(a: BoundaryValue, b: BoundaryValue, main: bool, codes: dict[datetime, str | None]) -> str | None:
    for v in (a, b):
        if v.origin in (Origin.ESTIMATED, Origin.EDITED):
            return codes.get(v.at) or TABELLE_S["estimate"]
    if a.origin is Origin.INTERPOLATED or b.origin is Origin.INTERPOLATED:
        return TABELLE_S["split_by_days"]
    return TABELLE_S["main_reading"] if main else TABELLE_S["interim_reading"]


def segment_consumption(
    segments: list[Segment],
    values: dict[datetime, BoundaryValue],
    total: float | None,
    *,
    quantity: str,
    readable: bool,
    due_end: datetime | None = None,
    codes: dict[datetime, str | None] | None = None,
    means: dict[date, float] | None = None,
) -> list[SegmentConsumption]:
    """Each segment's consumption. `values`: the boundary values by time (start, end, move days);
    `total`: the period's consumption; `readable`: the register can be read across the period
    (one meter, no reset inside), so boundary differences count; `due_end`: the due-date boundary
    (a segment ending there is a main reading); `codes`: the stored code of each boundary value
    (an estimate's method code); `means`: the station's daily means for a split by degree days."""
    codes = codes or {}
    out: list[SegmentConsumption] = []
    read = []
    for seg in segments:
        a, b = values.get(seg.period.start), values.get(seg.period.end)
        if readable and a is not None and b is not None and a.value is not None and b.value is not None:
            value = round(b.value - a.value, 6)
            details = {"start": a.value, "start_origin": a.origin.value, "end": b.value, "end_origin": b.origin.value}
            read.append(
                SegmentConsumption(
                    seg.occupant,
                    seg.period.first_day,
                    seg.period.last_day,
                    seg.period.start,
                    seg.period.end,
                    value,
                    _code(a, b, seg.period.end == due_end, codes),
                    "readings",
                    details,
                )
            )
        else:
            break
    if len(read) == len(segments):
        return read
    parts = [(seg.period.first_day, seg.period.last_day) for seg in segments]
    if quantity in HEAT:
        shares, basis = split_shares(parts, means)
        code, method = TABELLE_S["split_by_degree_days"], "split_by_degree_days"
    else:
        days = [(last - first).days + 1 for first, last in parts]
        shares, basis = [d / sum(days) for d in days], "days"
        code, method = TABELLE_S["split_by_days"], "split_by_days"
    for seg, share in zip(segments, shares, strict=True):
        part: float | None = None if total is None else round(total * share, 6)
        out.append(
            SegmentConsumption(
                seg.occupant,
                seg.period.first_day,
                seg.period.last_day,
                seg.period.start,
                seg.period.end,
                part,
                code if part is not None else None,
                method if part is not None else "missing",
                {"share": round(share, 6), "basis": basis, "period_consumption": total},
            )
        )
    return out
