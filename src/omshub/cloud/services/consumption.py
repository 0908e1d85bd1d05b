"""Consumption of a metering point over a period, across meter swaps.

Consumption is the difference of a cumulative register (energy for heat meters, volume for
water and gas, HCA units for heat cost allocators) between the period's start and end. A
metering point may have had several meters in the period: for every installation overlapping
it, (value at the end of the overlap, or the final value at removal) − (value at its start, or
the initial value at installation) is summed. A boundary value is the reading at or just before
the boundary; the initial/final values of a swap count as readings at the swap time. The result
says which readings were used, flags gaps (no reading, or only an old one, near a boundary) and
which part of the period the value covers; it is `complete` only when that is all of it. An
installation made without a date counts from the meter's first reading (effective_installed_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.registers import CUMULATIVE_UNITS, cumulative_quantity, register_value, registers
from omshub.cloud.store.models import Installation, Meter, MeteringPoint, Reading
from omshub.cloud.store.reading_values import reading_value
from omshub.times import utc, utcnow

# register arithmetic lives in domain/registers.py; named here too for the API and the tests
__all__ = [
    "CUMULATIVE_UNITS",
    "DEFAULT_MAX_GAP",
    "INCOMPLETE_FLAGS",
    "Point",
    "consumption",
    "cumulative_quantity",
    "effective_installed_at",
    "register_value",
    "registers",
]

DEFAULT_MAX_GAP = timedelta(days=2)
_SCAN = 50  # readings looked at per boundary to find one carrying the register


@dataclass
class Point:
    """A register value at a time: a reading, or an installation's initial/final value."""

    value: float
    at: datetime
    source: str  # "reading" | "initial" | "final"
    reading_id: int | None = None

    def as_dict(self) -> dict:
        return {"value": self.value, "timestamp": self.at, "source": self.source, "reading_id": self.reading_id}


def _reading_at_or_before(
    session: Session, meter_pk: int, at: datetime, quantity: str, not_before: datetime
) -> Point | None:
    rows = session.scalars(
        select(Reading)
        .where(Reading.meter_pk == meter_pk, Reading.timestamp <= at, Reading.timestamp >= not_before)
        .order_by(Reading.timestamp.desc(), Reading.id.desc())
        .limit(_SCAN)
    )
    for r in rows:
        v = reading_value(r, quantity)  # the reading's typed register column
        if v is not None:
            return Point(v, utc(r.timestamp), "reading", r.id)
    return None


def _reading_after(session: Session, meter_pk: int, after: datetime, quantity: str, until: datetime) -> Point | None:
    rows = session.scalars(
        select(Reading)
        .where(Reading.meter_pk == meter_pk, Reading.timestamp > after, Reading.timestamp <= until)
        .order_by(Reading.timestamp, Reading.id)
        .limit(_SCAN)
    )
    for r in rows:
        v = reading_value(r, quantity)  # the reading's typed register column
        if v is not None:
            return Point(v, utc(r.timestamp), "reading", r.id)
    return None


def _initial(inst: Installation, quantity: str) -> Point | None:
    v = (inst.initial_values or {}).get(quantity)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Point(float(v), utc(inst.installed_at), "initial")
    return None


def _final(inst: Installation, quantity: str) -> Point | None:
    v = (inst.final_values or {}).get(quantity)
    if inst.removed_at is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
        return Point(float(v), utc(inst.removed_at), "final")
    return None


def _later(a: Point | None, b: Point | None) -> Point | None:
    if a is None or b is None:
        return a or b
    return a if a.at >= b.at else b


def effective_installed_at(session: Session, inst: Installation) -> datetime:
    """When the installation starts counting. An installation given without a date
    (installed_from "first_reading") starts at the meter's first reading after the previous
    installation change of its metering point and of its meter (its recorded installed_at, the
    registration, until a reading arrives)."""
    recorded = utc(inst.installed_at)
    if inst.installed_from != "first_reading":
        return recorded
    before = session.scalar(
        select(func.max(Installation.removed_at)).where(
            Installation.tenant_id == inst.tenant_id,
            Installation.id != inst.id,
            (Installation.metering_point_id == inst.metering_point_id) | (Installation.meter_pk == inst.meter_pk),
            Installation.removed_at.is_not(None),
            Installation.removed_at <= recorded,
        )
    )
    query = select(func.min(Reading.timestamp)).where(Reading.meter_pk == inst.meter_pk)
    if before is not None:
        query = query.where(Reading.timestamp >= before)
    if inst.removed_at is not None:
        query = query.where(Reading.timestamp < inst.removed_at)
    first = session.scalar(query)
    return recorded if first is None else utc(first)


def _share(a: datetime, b: datetime, whole: float) -> float:
    return round(max(0.0, (b - a).total_seconds()) / whole, 6) if whole > 0 else 0.0


# segment flags that mean the value does not cover its segment (so the result is not complete)
INCOMPLETE_FLAGS = ("no_data", "start_after_boundary")


def consumption(
    session: Session,
    point: MeteringPoint,
    start: datetime,
    end: datetime,
    *,
    quantity: str | None = None,
    now: datetime | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> dict:
    """Consumption of `point` in [start, end]. `quantity` defaults to the register of the first
    installed meter's device type. Times in the result are datetimes (the API renders them).

    `complete` is true only when the value covers the whole period: every installation has a
    reading (or initial value) at or before its start and one near its end, and meters were
    installed all through the period. `covered_from` / `covered_to` / `covered_share` (of the
    period's length) say which part the value covers, for the result and for each installation;
    `uncovered` lists the parts it does not."""
    start, end = utc(start), utc(end)
    now = utc(now or utcnow())
    installs = _installations(session, point, start, end)
    if quantity is None:
        quantity = next((q for _, m, _ in installs if (q := cumulative_quantity(m.device_type))), None)
    result: dict[str, Any] = {
        "metering_point": {"id": point.id, "ref": point.ref},
        "from": start,
        "to": end,
        "quantity": quantity,
        "unit": CUMULATIVE_UNITS.get(quantity or "", ""),
        "value": None,
        "complete": False,
        "covered_from": None,
        "covered_to": None,
        "covered_share": 0.0,
        "uncovered": [],
        "segments": [],
        "gaps": [],
        "warnings": [],
    }
    whole = (end - start).total_seconds()
    if quantity is None:
        result["warnings"].append("no installed meter with a known cumulative register; pass quantity=")
        return result
    if not installs:
        result["gaps"].append({"message": "no meter installed at this metering point in the period"})
        result["uncovered"].append({"from": start, "to": end})
        return result

    total, complete = 0.0, True
    covered: list[tuple[datetime, datetime]] = []
    for inst, meter, installed in installs:
        seg, delta, cover = _segment(
            session, result, inst, meter, installed, quantity, (start, end, whole), now, max_gap
        )
        if delta is not None and cover is not None:  # (both or neither)
            total += delta
            covered.append(cover)
        if any(flag in seg["flags"] for flag in INCOMPLETE_FLAGS):
            complete = False
        result["segments"].append(seg)
    complete = _coverage(result, installs[0][2], covered, start, end, whole) and complete
    result["value"] = (
        round(total, 9) if covered and not any("no_data" in g["flags"] for g in result["segments"]) else None
    )
    result["complete"] = complete and result["value"] is not None
    return result


def _installations(
    session: Session, point: MeteringPoint, start: datetime, end: datetime
) -> list[tuple[Installation, Meter, datetime]]:
    """The point's installations overlapping [start, end): (installation, meter, counted from),
    in the order they were installed."""
    rows = session.execute(
        select(Installation, Meter)
        .join(Meter, Meter.id == Installation.meter_pk)
        .where(
            Installation.tenant_id == point.tenant_id,
            Installation.metering_point_id == point.id,
            # (an installation counted from the first reading may start before its recorded time)
            (Installation.installed_at < end) | (Installation.installed_from == "first_reading"),
            (Installation.removed_at.is_(None)) | (Installation.removed_at > start),
        )
        .order_by(Installation.installed_at, Installation.id)
    ).all()
    installs = []
    for inst, meter in rows:
        installed = effective_installed_at(session, inst)
        if installed < end:
            installs.append((inst, meter, installed))
    installs.sort(key=lambda x: (x[2], x[0].id))
    return installs


def _segment_start(
    session: Session,
    result: dict,
    seg: dict,
    inst: Installation,
    meter: Meter,
    installed: datetime,
    quantity: str,
    max_gap: timedelta,
) -> Point | None:
    """The register value an installation's part of the period starts from (flags and gaps noted)."""
    seg_from, seg_to = seg["from"], seg["to"]
    begin = _later(
        _initial(inst, quantity) if inst.installed_from == "given" else None,
        _reading_at_or_before(session, meter.id, seg_from, quantity, installed),
    )
    if begin is not None and begin.at > seg_from:
        begin = None  # an initial value is only valid from installation on
    if begin is None:
        begin = _reading_after(session, meter.id, seg_from, quantity, seg_to)
        if begin is not None:
            seg["flags"].append("start_after_boundary")
            result["gaps"].append(
                {
                    "installation_id": inst.id,
                    "boundary": "start",
                    "at": seg_from,
                    "message": f"no reading of {quantity} at or before {seg_from.isoformat()}; "
                    f"used the first one after it ({begin.at.isoformat()}): the "
                    f"consumption before it is not counted",
                }
            )
    elif seg_from - begin.at > max_gap:
        seg["flags"].append("start_stale")
        result["gaps"].append(
            {
                "installation_id": inst.id,
                "boundary": "start",
                "at": seg_from,
                "message": f"last reading before the start is from {begin.at.isoformat()}",
            }
        )
    return begin


def _segment_end(
    session: Session,
    result: dict,
    seg: dict,
    inst: Installation,
    meter: Meter,
    installed: datetime,
    quantity: str,
    removed: datetime | None,
    end: datetime,
    now: datetime,
    max_gap: timedelta,
) -> Point | None:
    """The register value an installation's part of the period ends at (flags and gaps noted)."""
    seg_to = seg["to"]
    finish = _final(inst, quantity) if removed is not None and removed <= end else None
    if finish is None:
        finish = _reading_at_or_before(session, meter.id, seg_to, quantity, installed)
        effective = min(seg_to, now)
        if finish is not None and effective - finish.at > max_gap:
            seg["flags"].append("end_stale")
            result["gaps"].append(
                {
                    "installation_id": inst.id,
                    "boundary": "end",
                    "at": seg_to,
                    "message": f"last reading before the end is from {finish.at.isoformat()}: "
                    f"the consumption after it is not counted",
                }
            )
    return finish


def _segment(
    session: Session,
    result: dict,
    inst: Installation,
    meter: Meter,
    installed: datetime,
    quantity: str,
    period: tuple[datetime, datetime, float],
    now: datetime,
    max_gap: timedelta,
) -> tuple[dict, float | None, tuple[datetime, datetime] | None]:
    """One installation's part of the period: (its segment, its consumption, the part it covers)
    — (segment, None, None) when it has no data."""
    start, end, whole = period
    seg_from = max(start, installed)
    removed = utc(inst.removed_at) if inst.removed_at is not None else None
    seg_to = min(end, removed) if removed is not None else end
    seg: dict[str, Any] = {
        "installation_id": inst.id,
        "meter": {"id": meter.id, "manufacturer": meter.manufacturer, "meter_id": meter.meter_id},
        "installed_at": installed,
        "installed_from": inst.installed_from,
        "from": seg_from,
        "to": seg_to,
        "start": None,
        "end": None,
        "consumption": None,
        "covered_from": None,
        "covered_to": None,
        "covered_share": 0.0,
        "flags": [],
    }
    begin = _segment_start(session, result, seg, inst, meter, installed, quantity, max_gap)
    finish = _segment_end(session, result, seg, inst, meter, installed, quantity, removed, end, now, max_gap)
    seg["start"] = begin.as_dict() if begin else None
    seg["end"] = finish.as_dict() if finish else None
    if begin is None or finish is None or finish.at < begin.at:
        seg["flags"].append("no_data")
        result["gaps"].append(
            {
                "installation_id": inst.id,
                "boundary": "start" if begin is None else "end",
                "message": f"no reading of {quantity} for meter {meter.manufacturer} {meter.meter_id} in the period",
            }
        )
        return seg, None, None
    delta = finish.value - begin.value
    seg["consumption"] = delta
    if delta < 0:
        seg["flags"].append("negative")
        result["warnings"].append(
            f"negative consumption {delta:g} {result['unit']} on meter {meter.manufacturer} "
            f"{meter.meter_id}: the counter went backwards (reset or wrong swap values?)"
        )
    # a value read at most max_gap before the end stands for the end (as one before the
    # start stands for the start); an older one (or a period not over yet) covers up to it
    cov_from = max(seg_from, begin.at)
    cov_to = seg_to if seg_to - finish.at <= max_gap else max(cov_from, finish.at)
    seg["covered_from"], seg["covered_to"] = cov_from, cov_to
    seg["covered_share"] = _share(cov_from, cov_to, whole)
    return seg, delta, (cov_from, cov_to)


def _coverage(
    result: dict,
    first: datetime,
    covered: list[tuple[datetime, datetime]],
    start: datetime,
    end: datetime,
    whole: float,
) -> bool:
    """Which parts of the period the value covers (and does not) into `result`. -> False when
    not all of it."""
    complete = True
    if first > start:
        complete = False
        result["gaps"].append(
            {
                "boundary": "start",
                "at": start,
                "message": f"no meter installed (or, for a meter imported without an "
                f"installation date, no reading) before {first.isoformat()}",
            }
        )
    # the parts of the period the value does not cover (before, between and after the segments)
    at = start
    for cov_from, cov_to in sorted(covered):
        if cov_from > at:
            result["uncovered"].append({"from": at, "to": cov_from})
        at = max(at, cov_to)
    if at < end:
        result["uncovered"].append({"from": at, "to": end})
    if result["uncovered"]:
        complete = False
    if covered:
        result["covered_from"] = min(c[0] for c in covered)
        result["covered_to"] = max(c[1] for c in covered)
        result["covered_share"] = min(1.0, round(sum(_share(a, b, whole) for a, b in covered), 6))
    return complete
