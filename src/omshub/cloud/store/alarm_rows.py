"""Alarm rows: raised when a cause appears, cleared when it goes away, with the rules of
domain/alarms.py. At most one active alarm per (tenant, kind, subject); a repeated cause updates
it. Cleared alarms stay stored as history. The caller commits.

Here too the events that ingest and decode report: a stored reading (`on_reading`), a telegram
that failed to decode (`on_decode_failure`), a gateway that reused a seq (`on_seq_reuse`); the
periodic evaluation is services/alarms.py's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.alarms import (
    GATEWAY_SEQ_RESET,
    METER_ERROR,
    NEGATIVE_CONSUMPTION,
    READING_KINDS,
    WRONG_KEY,
    backwards_register,
    drop_recovered,
    error_causes,
)
from omshub.cloud.domain.registers import CUMULATIVE_UNITS, register_value, registers
from omshub.cloud.store.models import Alarm, Meter, Reading
from omshub.times import utc

_CACHE_KEY = "omshub.alarmed_meters"


def active_alarm(session: Session, tenant_id: int, kind: str, subject_type: str, subject_id: int) -> Alarm | None:
    return session.scalars(
        select(Alarm)
        .where(
            Alarm.tenant_id == tenant_id,
            Alarm.active.is_(True),
            Alarm.kind == kind,
            Alarm.subject_type == subject_type,
            Alarm.subject_id == subject_id,
        )
        .order_by(Alarm.id)
    ).first()


def raise_alarm(
    session: Session,
    tenant_id: int,
    kind: str,
    subject_type: str,
    subject_id: int,
    message: str,
    details: dict,
    now: datetime,
    *,
    existing: Alarm | None = None,
    lookup: bool = True,
) -> Alarm:
    """Raise (or refresh the message/details of) the one active alarm for (kind, subject).
    `lookup=False`: the caller knows none is active."""
    alarm = existing
    if alarm is None and lookup:
        alarm = active_alarm(session, tenant_id, kind, subject_type, subject_id)
    if alarm is None:
        alarm = Alarm(
            tenant_id=tenant_id,
            kind=kind,
            subject_type=subject_type,
            subject_id=subject_id,
            message=message,
            details=details,
            active=True,
            raised_at=utc(now),
        )
        session.add(alarm)
        session.flush()  # later look-ups in the same transaction must see it (no duplicates)
        if subject_type == "meter" and kind in READING_KINDS:
            _alarmed_meters(session, tenant_id).add(subject_id)
    else:
        alarm.message = message
        alarm.details = details
    return alarm


def clear_alarm(alarm: Alarm | None, now: datetime) -> None:
    if alarm is not None and alarm.active:
        alarm.active = False
        alarm.cleared_at = utc(now)


def _alarmed_meters(session: Session, tenant_id: int) -> set[int]:
    """Meters of the tenant with an active alarm of READING_KINDS — loaded once per transaction,
    so a reading of a meter without alarms (nearly all) costs no query."""
    txn = session.get_transaction()
    cache = session.info.get(_CACHE_KEY)
    if cache is None or cache[0] is not txn:
        cache = (txn, {})
        session.info[_CACHE_KEY] = cache
    per_tenant: dict[int, set[int]] = cache[1]
    if tenant_id not in per_tenant:
        per_tenant[tenant_id] = set(
            session.scalars(
                select(Alarm.subject_id).where(
                    Alarm.tenant_id == tenant_id,
                    Alarm.active.is_(True),
                    Alarm.subject_type == "meter",
                    Alarm.kind.in_(READING_KINDS),
                )
            )
        )
    return per_tenant[tenant_id]


def _meter_alarms(session: Session, meter: Meter) -> dict[str, Alarm]:
    rows = session.scalars(
        select(Alarm).where(
            Alarm.tenant_id == meter.tenant_id,
            Alarm.active.is_(True),
            Alarm.subject_type == "meter",
            Alarm.subject_id == meter.id,
        )
    )
    return {a.kind: a for a in rows}


def _label(meter: Meter) -> str:
    return f"meter {meter.manufacturer} {meter.meter_id}"


def on_reading(
    session: Session, meter: Meter, reading: Reading, previous_reading: Reading | None, now: datetime
) -> None:
    """Alarms from a newly stored reading; `previous_reading` is the meter's reading before it
    (None for the first). An older reading arriving late is only compared, never used to clear."""
    alarmed = meter.id in _alarmed_meters(session, meter.tenant_id)
    active = _meter_alarms(session, meter) if alarmed else {}
    # It decoded: the key is right — unless a later telegram of the same batch failed with it
    # (the pipeline leaves key_status at the last outcome).
    if meter.key_status != "wrong":
        clear_alarm(active.get(WRONG_KEY), now)
    newest = previous_reading is None or utc(previous_reading.timestamp) <= utc(reading.timestamp)

    if newest:
        causes, details = error_causes(reading.data)
        if causes:
            details["reading_id"] = reading.id
            raise_alarm(
                session,
                meter.tenant_id,
                METER_ERROR,
                "meter",
                meter.id,
                f"{_label(meter)} reports an error: " + "; ".join(causes),
                details,
                now,
                existing=active.get(METER_ERROR),
                lookup=alarmed,
            )
        else:
            clear_alarm(active.get(METER_ERROR), now)

    alarm = active.get(NEGATIVE_CONSUMPTION)
    if alarm is not None and newest:
        q = alarm.details.get("quantity")
        value = register_value(reading.data, q) if isinstance(q, str) else None
        if drop_recovered(alarm.details.get("previous_value"), value):
            clear_alarm(alarm, now)
            alarm = None
    if previous_reading is None:
        return
    earlier, later = (previous_reading, reading) if newest else (reading, previous_reading)
    drop = backwards_register(registers(earlier.data), registers(later.data))
    if drop is None:
        return
    quantity, a, b = drop
    unit = CUMULATIVE_UNITS[quantity]
    raise_alarm(
        session,
        meter.tenant_id,
        NEGATIVE_CONSUMPTION,
        "meter",
        meter.id,
        f"{_label(meter)}: {quantity} went backwards from {a:g} to {b:g} {unit}",
        {
            "quantity": quantity,
            "previous_value": a,
            "value": b,
            "unit": unit,
            "previous_reading_id": earlier.id,
            "reading_id": later.id,
            "at": utc(later.timestamp).isoformat(),
        },
        now,
        existing=alarm,
        lookup=alarmed,
    )


def on_decode_failure(session: Session, meter: Meter | None, code: str, now: datetime) -> None:
    """A telegram of `meter` failed to decode with `code`; only a wrong key is an alarm."""
    if meter is None or code != "wrong_key":
        return
    raise_alarm(
        session,
        meter.tenant_id,
        WRONG_KEY,
        "meter",
        meter.id,
        f"{_label(meter)}: the stored key does not decrypt its telegrams",
        {"code": code},
        now,
    )


def on_seq_reuse(
    session: Session,
    tenant_id: int,
    gateway_id: int,
    serial: str,
    seq: int,
    highest_seq: int | None,
    stored: int,
    now: datetime,
) -> Alarm:
    """A gateway's uplink `seq` was stored before with other telegrams (`stored` of this one's
    were new); `highest_seq` is the highest seq it had sent. Cleared by the periodic evaluation
    once its seq passes that (services/alarms.py)."""
    alarm = active_alarm(session, tenant_id, GATEWAY_SEQ_RESET, "gateway", gateway_id)
    details = (
        dict(alarm.details or {})
        if alarm is not None
        else {
            "highest_seq_before": highest_seq,
            "first_reused_seq": seq,
            "first_reused_at": utc(now).isoformat(),
            "reused_uplinks": 0,
            "telegrams_stored": 0,
        }
    )
    details["last_reused_seq"] = seq
    details["reused_uplinks"] = int(details.get("reused_uplinks") or 0) + 1
    details["telegrams_stored"] = int(details.get("telegrams_stored") or 0) + stored
    highest = details.get("highest_seq_before")
    message = (
        f"gateway {serial} numbers its uplinks from {details['first_reused_seq']} again (it had reached "
        f"{highest}): it lost its uplink state. Its new uplinks are stored by their content; "
        f"{details['reused_uplinks']} so far reused a seq"
    )
    return raise_alarm(
        session,
        tenant_id,
        GATEWAY_SEQ_RESET,
        "gateway",
        gateway_id,
        message,
        details,
        now,
        existing=alarm,
        lookup=False,
    )
