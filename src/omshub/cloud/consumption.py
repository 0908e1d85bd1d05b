"""Consumption of a metering point over a period, across meter swaps (issue 3 items 7, 9).

Consumption is the difference of a cumulative register (energy for heat meters, volume for
water and gas, HCA units for heat cost allocators) between the period's start and end. A
metering point may have had several meters in the period: for every installation overlapping
it, (value at the end of the overlap, or the final value at removal) − (value at its start, or
the initial value at installation) is summed. A boundary value is the reading at or just before
the boundary; the initial/final values of a swap count as readings at the swap time. The result
says which readings were used and flags gaps (no reading, or only an old one, near a boundary).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Installation, Meter, MeteringPoint, Reading

# quantity -> canonical unit (omshub.codec.units)
CUMULATIVE_UNITS = {"energy": "kWh", "volume": "m3", "hca": "HCA"}
_BY_DEVICE_TYPE = {
    "heat": "energy", "heat_inlet": "energy", "heat_cooling": "energy", "cooling": "energy",
    "cooling_inlet": "energy", "electricity": "energy", "steam": "energy",
    "water": "volume", "warm_water": "volume", "hot_water": "volume", "cold_water": "volume",
    "dual_register_water": "volume", "waste_water": "volume", "gas": "volume", "oil": "volume",
    "heat_cost_allocator": "hca",
}
DEFAULT_MAX_GAP = timedelta(days=2)
_SCAN = 50  # readings looked at per boundary to find one carrying the register


def cumulative_quantity(device_type: str | None) -> str | None:
    """The register whose difference is consumption for this device type (None: unknown)."""
    return _BY_DEVICE_TYPE.get((device_type or "").lower())


def register_value(data: dict | None, quantity: str) -> float | None:
    """The current (storage 0, tariff 0, subunit 0, instantaneous) value of `quantity` in a
    decoded telegram, or None when absent or not a number."""
    return registers(data, (quantity,)).get(quantity)


def registers(data: dict | None, quantities=CUMULATIVE_UNITS) -> dict[str, float]:
    """{quantity: register_value(data, quantity)} of those `quantities` present, in one pass over
    the records (the first current, numeric record of a quantity counts)."""
    out: dict[str, float] = {}
    if not isinstance(data, dict):
        return out
    for rec in data.get("records") or ():
        if type(rec) is not dict:
            continue
        quantity = rec.get("quantity")
        if (type(quantity) is str and quantity in quantities and quantity not in out and not rec.get("storage")
                and not rec.get("tariff") and not rec.get("subunit")
                and rec.get("function", "instantaneous") == "instantaneous"):
            value = rec.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[quantity] = float(value)
    return out


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


@dataclass
class Point:
    """A register value at a time: a reading, or an installation's initial/final value."""
    value: float
    at: datetime
    source: str  # "reading" | "initial" | "final"
    reading_id: int | None = None

    def as_dict(self) -> dict:
        return {"value": self.value, "timestamp": self.at, "source": self.source,
                "reading_id": self.reading_id}


def _reading_at_or_before(session: Session, meter_pk: int, at: datetime, quantity: str,
                          not_before: datetime) -> Point | None:
    rows = session.scalars(select(Reading).where(
        Reading.meter_pk == meter_pk, Reading.timestamp <= at, Reading.timestamp >= not_before)
        .order_by(Reading.timestamp.desc(), Reading.id.desc()).limit(_SCAN))
    for r in rows:
        v = register_value(r.data, quantity)
        if v is not None:
            return Point(v, _utc(r.timestamp), "reading", r.id)
    return None


def _reading_after(session: Session, meter_pk: int, after: datetime, quantity: str,
                   until: datetime) -> Point | None:
    rows = session.scalars(select(Reading).where(
        Reading.meter_pk == meter_pk, Reading.timestamp > after, Reading.timestamp <= until)
        .order_by(Reading.timestamp, Reading.id).limit(_SCAN))
    for r in rows:
        v = register_value(r.data, quantity)
        if v is not None:
            return Point(v, _utc(r.timestamp), "reading", r.id)
    return None


def _initial(inst: Installation, quantity: str) -> Point | None:
    v = (inst.initial_values or {}).get(quantity)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Point(float(v), _utc(inst.installed_at), "initial")
    return None


def _final(inst: Installation, quantity: str) -> Point | None:
    v = (inst.final_values or {}).get(quantity)
    if inst.removed_at is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
        return Point(float(v), _utc(inst.removed_at), "final")
    return None


def _later(a: Point | None, b: Point | None) -> Point | None:
    if a is None or b is None:
        return a or b
    return a if a.at >= b.at else b


def consumption(session: Session, point: MeteringPoint, start: datetime, end: datetime, *,
                quantity: str | None = None, now: datetime | None = None,
                max_gap: timedelta = DEFAULT_MAX_GAP) -> dict:
    """Consumption of `point` in [start, end]. `quantity` defaults to the register of the first
    installed meter's device type. Times in the result are datetimes (the API renders them)."""
    start, end = _utc(start), _utc(end)
    now = _utc(now or datetime.now(timezone.utc))
    installs = list(session.execute(
        select(Installation, Meter).join(Meter, Meter.id == Installation.meter_pk).where(
            Installation.tenant_id == point.tenant_id, Installation.metering_point_id == point.id,
            Installation.installed_at < end,
            (Installation.removed_at.is_(None)) | (Installation.removed_at > start))
        .order_by(Installation.installed_at, Installation.id)).all())
    if quantity is None:
        quantity = next((q for _, m in installs if (q := cumulative_quantity(m.device_type))), None)
    result = {"metering_point": {"id": point.id, "ref": point.ref}, "from": start, "to": end,
              "quantity": quantity, "unit": CUMULATIVE_UNITS.get(quantity or "", ""), "value": None,
              "complete": False, "segments": [], "gaps": [], "warnings": []}
    if quantity is None:
        result["warnings"].append("no installed meter with a known cumulative register; pass quantity=")
        return result
    if not installs:
        result["gaps"].append({"message": "no meter installed at this metering point in the period"})
        return result

    total, complete = 0.0, True
    for inst, meter in installs:
        seg_from = max(start, _utc(inst.installed_at))
        removed = _utc(inst.removed_at) if inst.removed_at is not None else None
        seg_to = min(end, removed) if removed is not None else end
        seg = {"installation_id": inst.id,
               "meter": {"id": meter.id, "manufacturer": meter.manufacturer, "meter_id": meter.meter_id},
               "from": seg_from, "to": seg_to, "start": None, "end": None, "consumption": None,
               "flags": []}
        installed = _utc(inst.installed_at)

        begin = _later(_initial(inst, quantity),
                       _reading_at_or_before(session, meter.id, seg_from, quantity, installed))
        if begin is not None and begin.at > seg_from:
            begin = None  # an initial value is only valid from installation on
        if begin is None:
            begin = _reading_after(session, meter.id, seg_from, quantity, seg_to)
            if begin is not None:
                seg["flags"].append("start_after_boundary")
                result["gaps"].append({"installation_id": inst.id, "boundary": "start", "at": seg_from,
                                       "message": f"no reading of {quantity} at or before {seg_from.isoformat()}; "
                                                  f"used the first one after it ({begin.at.isoformat()})"})
        elif seg_from - begin.at > max_gap:
            seg["flags"].append("start_stale")
            result["gaps"].append({"installation_id": inst.id, "boundary": "start", "at": seg_from,
                                   "message": f"last reading before the start is from {begin.at.isoformat()}"})

        finish = _final(inst, quantity) if removed is not None and removed <= end else None
        if finish is None:
            finish = _reading_at_or_before(session, meter.id, seg_to, quantity, installed)
            effective = min(seg_to, now)
            if finish is not None and effective - finish.at > max_gap:
                seg["flags"].append("end_stale")
                result["gaps"].append({"installation_id": inst.id, "boundary": "end", "at": seg_to,
                                       "message": f"last reading before the end is from {finish.at.isoformat()}"})
        seg["start"] = begin.as_dict() if begin else None
        seg["end"] = finish.as_dict() if finish else None
        if begin is None or finish is None or finish.at < begin.at:
            complete = False
            seg["flags"].append("no_data")
            result["gaps"].append({"installation_id": inst.id, "boundary": "start" if begin is None else "end",
                                   "message": f"no reading of {quantity} for meter "
                                              f"{meter.manufacturer} {meter.meter_id} in the period"})
        else:
            delta = finish.value - begin.value
            seg["consumption"] = delta
            total += delta
            if delta < 0:
                seg["flags"].append("negative")
                result["warnings"].append(
                    f"negative consumption {delta:g} {result['unit']} on meter {meter.manufacturer} "
                    f"{meter.meter_id}: the counter went backwards (reset or wrong swap values?)")
        result["segments"].append(seg)

    first = _utc(installs[0][0].installed_at)
    if first > start:
        result["gaps"].append({"boundary": "start", "at": start,
                               "message": f"no meter installed before {first.isoformat()}"})
    result["value"] = round(total, 9) if complete else None
    result["complete"] = complete
    return result
