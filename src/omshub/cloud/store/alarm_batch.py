"""The alarms of a batch of stored readings, with the rules of domain/alarms.py:
meter_error raised or cleared by the newest reading, negative_consumption raised when a register
went backwards and cleared when it is back, wrong_key cleared by a good decode, meter_silent
cleared when the meter is heard again. One query loads the active alarms of all the batch's meters
(per few hundred meters); the changes are written at the end in at most three statements (new
alarms, refreshed ones, cleared ones). No meter and no reading is loaded one by one: meters and
readings are read by attribute (a Meter or the decode batch's MeterState; a Reading or its
StoredReading). The caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from omshub.cloud.domain.alarms import (
    METER_ERROR,
    METER_SILENT,
    NEGATIVE_CONSUMPTION,
    WRONG_KEY,
    backwards_register,
    drop_recovered,
    silence_ended,
)
from omshub.cloud.domain.registers import CUMULATIVE_UNITS
from omshub.cloud.store.database import BulkSql, db_json, json_text
from omshub.cloud.store.models import Alarm
from omshub.cloud.store.reading_values import reading_error_causes
from omshub.cloud.store.reading_values import reading_registers as typed_registers
from omshub.times import utc

_CHUNK = 500  # ids per IN list

# --- what the alarm rules read of a reading: one place, so the reading store's layout can change ---


def reading_registers(reading) -> Mapping[str, float]:
    """The reading's cumulative registers (store/reading_values.py: the decode batch's in-memory
    reading has them worked out; a stored row keeps them as typed columns)."""
    return typed_registers(reading)


def reading_errors(reading) -> tuple[list[str], dict]:
    """What the reading's telegram reports as errors (store/reading_values.py). A reading of the
    decode batch knows already whether it reports any (`reports_error`), so a clean one (nearly
    all) is not looked at again."""
    if getattr(reading, "reports_error", None) is False:
        return [], {}
    return reading_error_causes(reading)


# --- the batch ---


class _Active:
    """An active alarm of a meter of the batch as the batch changes it (id None: new)."""

    __slots__ = ("id", "kind", "details", "message", "refreshed", "cleared_at", "meter")

    def __init__(self, id: int | None, kind: str, details: dict, meter=None, message: str = "") -> None:
        self.id, self.kind, self.details, self.meter, self.message = id, kind, details, meter, message
        self.refreshed = False
        self.cleared_at: datetime | None = None


class _Batch:
    """The active alarms of the batch's meters (meter id -> kind -> _Active) and the changes."""

    def __init__(self, session: Session, meters: Mapping[int, object], now: datetime) -> None:
        self.session, self.now = session, utc(now)
        self.active: dict[int, dict[str, _Active]] = {}
        self.new: list[_Active] = []
        self.changed: dict[int, _Active] = {}
        self.sql = BulkSql(session, session.get_bind().dialect.name == "sqlite")
        tenants = sorted({m.tenant_id for m in meters.values()})  # type: ignore[attr-defined]
        ids = sorted(meters)
        in_tenants, tenant_params = self.sql.isin("tenant_id", tenants)
        true = "1" if self.sql.sqlite else "true"
        for i in range(0, len(ids), _CHUNK):
            in_meters, meter_params = self.sql.isin("subject_id", ids[i : i + _CHUNK])
            for alarm_id, tenant_id, kind, subject_id, details in self.sql.rows(
                # tenant and active first: the (tenant_id, active) index answers it
                f"SELECT id, tenant_id, kind, subject_id, details FROM alarms WHERE {in_tenants} "
                f"AND active = {true} AND subject_type = 'meter' AND {in_meters}",
                (*tenant_params, *meter_params),
            ):
                if meters[subject_id].tenant_id == tenant_id:  # type: ignore[attr-defined]
                    self.active.setdefault(subject_id, {})[kind] = _Active(alarm_id, kind, dict(db_json(details) or {}))

    def raise_(self, meter, kind: str, message: str, details: dict) -> None:
        alarms = self.active.setdefault(meter.id, {})
        alarm = alarms.get(kind)
        if alarm is None:
            alarm = alarms[kind] = _Active(None, kind, details, meter, message)
            self.new.append(alarm)
        else:
            alarm.message, alarm.details, alarm.refreshed = message, details, True
            if alarm.id is not None:
                self.changed[alarm.id] = alarm

    def clear(self, meter_id: int, kind: str) -> None:
        alarm = self.active.get(meter_id, {}).pop(kind, None)
        if alarm is not None:
            alarm.cleared_at = self.now
            if alarm.id is not None:
                self.changed[alarm.id] = alarm

    def write(self) -> None:
        """The batch's changes in at most three statements; Alarm rows of the session that they
        changed are expired (read again when next used)."""
        s = self.session
        if self.new:
            s.execute(
                insert(Alarm),
                [
                    {
                        "tenant_id": a.meter.tenant_id,
                        "kind": a.kind,
                        "subject_type": "meter",
                        "subject_id": a.meter.id,
                        "message": a.message,
                        "details": a.details,
                        "active": a.cleared_at is None,
                        "raised_at": self.now,
                        "cleared_at": a.cleared_at,
                    }
                    for a in self.new
                ],
            )
        changed = sorted(self.changed.items())
        # refreshed, then cleared (an alarm may be both): each in one bulk statement
        self.sql.update(
            "alarms",
            ("message", "details"),
            ("text", "json"),
            [(a.message, json_text(a.details), i) for i, a in changed if a.refreshed],
        )
        when = self.sql.time(self.now)
        self.sql.update(
            "alarms",
            ("active", "cleared_at"),
            ("boolean", "timestamptz"),
            [(False, when, i) for i, a in changed if a.cleared_at is not None],
        )
        if self.changed:
            for obj in list(s.identity_map.values()):
                if isinstance(obj, Alarm) and obj.id in self.changed:
                    s.expire(obj)


def on_readings(session: Session, events: Sequence[tuple], now: datetime, *, heard: Iterable = ()) -> None:
    """Alarms from a batch of newly stored readings, in order: `events` are (meter, reading, the
    meter's reading before it or None); `heard`: the batch's meters whose telegrams came in, with
    their last_heard_at as the batch set it (their meter_silent alarms clear, the evaluation's rule:
    domain/alarms.silence_ended)."""
    heard = list(heard)
    meters: dict[int, object] = {m.id: m for m in heard}
    meters.update((m.id, m) for m, _r, _p in events)
    if not meters:
        return
    batch = _Batch(session, meters, now)
    for meter in heard:
        silent = batch.active.get(meter.id, {}).get(METER_SILENT)
        if silent is not None and silence_ended(meter.last_heard_at, batch.now, silent.details.get("days")):
            batch.clear(meter.id, METER_SILENT)
    for meter, reading, previous in events:
        _apply_reading(batch, meter, reading, previous)
    batch.write()


def on_reading(session: Session, meter, reading, previous_reading, now: datetime) -> None:
    """Alarms from one newly stored reading; `previous_reading` is the meter's reading before it
    (None for the first). An older reading arriving late is only compared, never used to clear."""
    on_readings(session, [(meter, reading, previous_reading)], now)


def _label(meter) -> str:
    return f"meter {meter.manufacturer} {meter.meter_id}"


def _apply_reading(batch: _Batch, meter, reading, previous) -> None:
    # It decoded: the key is right — unless a later telegram of the same batch failed with it
    # (the pipeline leaves key_status at the last outcome).
    if meter.key_status != "wrong":
        batch.clear(meter.id, WRONG_KEY)
    newest = previous is None or utc(previous.timestamp) <= utc(reading.timestamp)

    if newest:
        causes, details = reading_errors(reading)
        if causes:
            details["reading_id"] = reading.id
            batch.raise_(meter, METER_ERROR, f"{_label(meter)} reports an error: " + "; ".join(causes), details)
        else:
            batch.clear(meter.id, METER_ERROR)

    alarm = batch.active.get(meter.id, {}).get(NEGATIVE_CONSUMPTION)
    if alarm is not None and newest:
        q = alarm.details.get("quantity")
        value = reading_registers(reading).get(q) if isinstance(q, str) else None
        if drop_recovered(alarm.details.get("previous_value"), value):
            batch.clear(meter.id, NEGATIVE_CONSUMPTION)
    if previous is None:
        return
    earlier, later = (previous, reading) if newest else (reading, previous)
    drop = backwards_register(reading_registers(earlier), reading_registers(later))
    if drop is None:
        return
    quantity, a, b = drop
    unit = CUMULATIVE_UNITS[quantity]
    details = {
        "quantity": quantity,
        "previous_value": a,
        "value": b,
        "unit": unit,
        "previous_reading_id": earlier.id,
        "reading_id": later.id,
        "at": utc(later.timestamp).isoformat(),
    }
    message = f"{_label(meter)}: {quantity} went backwards from {a:g} to {b:g} {unit}"
    batch.raise_(meter, NEGATIVE_CONSUMPTION, message, details)
