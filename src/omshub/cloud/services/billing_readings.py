"""Which readings a close reads (docs/billing.md §Closing a period).

A month of daily readings is some 50 rows per metering point, and a close of 100,000 points would
spend most of its time turning them into Python objects, although only a few of them can change a
value or a finding. So for a regular point the database picks the readings that can matter:

- every reading within `NEAR` of each boundary (the nearest ones on either side are among them),
- the first reading of each new stored-values blob (a meter repeats its month-end value in every
  telegram of the month; the old loader read each blob once, too),
- the readings the validation rules look at between the boundaries: where the register fell (both
  readings of the pair), where two readings share a time, and where a reading is dated after its
  reception.

A point whose boundaries these do not bracket (a gap, a meter that sends less than daily), or that
has something inside the period that needs the readings around it (a move, a swap, a stored value
for a day inside the period, an allocator's due date), gets all its readings, as before. The
computation (billing_compute.py) is the same either way: it sees every reading it would use.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import case, or_, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from omshub.cloud.services.billing_inputs import PointInputs, load_all_readings, take_readings
from omshub.cloud.store.database import db_time_set, one_of
from omshub.cloud.store.models import Reading

NEAR = timedelta(hours=36)  # a daily meter has a reading on each side of a boundary within this

# a point's boundaries (UTC moment and local day), or None: the point needs all its readings
BoundaryTimes = list[tuple[datetime, date]] | None


def load_readings_near(
    session: Session,
    points: dict[int, PointInputs],
    first: datetime,
    last: datetime,
    times_of: Callable[[PointInputs], BoundaryTimes],
) -> dict[str, int]:
    """Fill the points' samples and stored values from their readings in [first, last]: for the
    points whose boundaries `times_of` gives, only those that can matter (module doc); for the
    others, and for those whose boundaries the selected readings do not bracket, all of them.
    Returns how many points took which way."""
    times = {pid: times_of(p) for pid, p in points.items()}
    selective = {pid: p for pid, p in points.items() if times[pid]}
    full = {pid: p for pid, p in points.items() if not times[pid]}
    if selective:
        moments = sorted({t for pid in selective for t, _ in times[pid] or ()})
        _load_selected(session, selective, first, last, moments)
        for pid, p in selective.items():
            if not bracketed(p, times[pid] or []):
                p.samples, p.received, p.stored, p.bad_dates = {}, {}, {}, {}
                full[pid] = p
    if full:
        load_all_readings(session, full, first, last)
    return {"selected": len(points) - len(full), "all_readings": len(full)}


class _Row(NamedTuple):
    meter_pk: int
    timestamp: datetime
    received_at: datetime
    telegram_id: int | None
    energy: float | None
    volume: float | None
    hca: float | None
    stored: bytes | None


def _load_selected(
    session: Session, points: dict[int, PointInputs], first: datetime, last: datetime, moments: list[datetime]
) -> None:
    """One scan of the readings from just before the first boundary to `last` (after the last
    boundary for the stored values a meter sends later), with raw times: most rows are only compared
    with their neighbours, and only the notable ones are converted."""
    owner = {run.meter_pk: (p, run.quantity) for p in points.values() for run in p.runs}
    quantity_of = {meter_pk: q for meter_pk, (_, q) in owner.items()}
    near = or_(*(Reading.timestamp.between(t - NEAR, t + NEAR) for t in moments))
    scan = session.connection().execute(
        select(
            Reading.id,
            Reading.meter_pk,
            type_coerce(Reading.timestamp, NullType()),  # raw: db_time converts the notable ones
            type_coerce(Reading.received_at, NullType()),
            Reading.telegram_id,
            Reading.energy,
            Reading.volume,
            Reading.hca,
            type_coerce(Reading.stored, NullType()),
            case((near, 1), else_=0),
        )
        .where(
            one_of(session, Reading.meter_pk, owner),
            Reading.timestamp >= max(first, moments[0] - NEAR),
            Reading.timestamp <= last,
        )
        .order_by(Reading.meter_pk, Reading.timestamp, Reading.id)
    )
    rows = [
        _Row(r[1], db_time_set(r[2]), db_time_set(r[3]), r[4], r[5], r[6], r[7], None if r[8] is None else bytes(r[8]))
        for r in notable(scan.fetchall(), quantity_of)
    ]
    take_readings(owner, rows)


_COLUMN_INDEX = {"energy": 5, "volume": 6, "hca": 7}


def notable(rows, quantity_of: dict[int, str | None]) -> list:
    """The readings that can matter (module doc) among `rows` (id, meter, time, received, telegram,
    energy, volume, hca, stored blob, near a boundary: 1), sorted by meter, time and id; in order."""
    out: list = []
    meter = blob = column = None
    previous = None  # the meter's previous reading with a value
    for row in rows:
        if row[1] != meter:
            meter, blob, previous = row[1], None, None
            column = _COLUMN_INDEX.get(quantity_of.get(meter) or "")
        stored = row[8]
        keep = row[9] == 1 or (stored is not None and stored != blob)
        if stored is not None:
            blob = stored
        value = None if column is None else row[column]
        if value is not None:
            if row[2] > row[3]:  # dated after its reception (the rule applies its tolerance)
                keep = True
            if previous is not None and (value < previous[column] or row[2] == previous[2]):
                # the register fell, or two readings of the same time: both readings of the pair
                if not out or out[-1] is not previous:
                    out.append(previous)
                keep = True
            previous = row
        if keep:
            out.append(row)
    return out


def bracketed(p: PointInputs, times: list[tuple[datetime, date]]) -> bool:
    """Whether the readings taken bracket each boundary within `NEAR` (then the nearest readings on
    both sides are among them) and no stored value is for a day strictly inside the boundaries (its
    check needs the readings around the end of that day)."""
    for at, _ in times:
        run = next((r for r in p.runs if r.installed_at <= at and (r.removed_at is None or r.removed_at > at)), None)
        if run is None:
            continue
        samples = p.samples.get(run.meter_pk, [])
        i = bisect.bisect_left(samples, at, key=lambda s: s.at)
        if i == 0 or at - samples[i - 1].at > NEAR or i == len(samples) or samples[i].at - at > NEAR:
            return False
    days = {day for _, day in times}
    lo, hi = min(days), max(days)
    for stored in p.stored.values():
        for sv in stored:
            answers = sv.day + timedelta(days=1)  # a value stored for D is the register at D+1 00:00
            if lo < answers < hi and answers not in days:
                return False
    return True
