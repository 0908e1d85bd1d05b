"""Alarms: the periodic evaluation (gateways past their expected contact,
silent meters, seq resets the gateway has climbed past). The rules are domain/alarms.py's; the rows
and the events ingest and decode report (a reading, a failed decode, a reused seq) are
store/alarm_rows.py's and store/alarm_batch.py's, named here too for the API, the console and the commands.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.alarms import (
    DEFAULT_GRACE,
    DEFAULT_SILENT_DAYS,
    GATEWAY_MISSED_CONTACT,
    GATEWAY_SEQ_RESET,
    KINDS,
    METER_ERROR,
    METER_SILENT,
    NEGATIVE_CONSUMPTION,
    WRONG_KEY,
    error_causes,
)
from omshub.cloud.store.alarm_batch import on_reading, on_readings
from omshub.cloud.store.alarm_rows import (
    active_alarm,
    clear_alarm,
    on_decode_failure,
    on_seq_reuse,
    raise_alarm,
)
from omshub.cloud.store.models import Alarm, Gateway, Meter
from omshub.times import utc

__all__ = [
    "DEFAULT_GRACE",
    "GATEWAY_MISSED_CONTACT",
    "GATEWAY_SEQ_RESET",
    "KINDS",
    "METER_ERROR",
    "METER_SILENT",
    "NEGATIVE_CONSUMPTION",
    "WRONG_KEY",
    "active_alarm",
    "clear_alarm",
    "error_causes",
    "evaluate",
    "on_decode_failure",
    "on_reading",
    "on_readings",
    "on_seq_reuse",
    "raise_alarm",
]


def _clear_passed_seq_resets(session: Session, now: datetime) -> None:
    """A gateway whose seq passed the highest it had used before the reset uses new numbers again."""
    for alarm, last_seq in session.execute(
        select(Alarm, Gateway.last_seq)
        .join(Gateway, Gateway.id == Alarm.subject_id)
        .where(Alarm.active.is_(True), Alarm.kind == GATEWAY_SEQ_RESET, Alarm.subject_type == "gateway")
    ):
        highest = (alarm.details or {}).get("highest_seq_before")
        if last_seq is not None and (not isinstance(highest, int) or last_seq > highest):
            clear_alarm(alarm, now)


def evaluate(
    session: Session, now: datetime, *, silent_days: int = DEFAULT_SILENT_DAYS, grace: timedelta = DEFAULT_GRACE
) -> None:
    """Periodic check over all tenants: gateways past their expected contact, silent meters."""
    now = utc(now)
    active = {
        (a.tenant_id, a.kind, a.subject_id): a
        for a in session.scalars(
            select(Alarm).where(Alarm.active.is_(True), Alarm.kind.in_((GATEWAY_MISSED_CONTACT, METER_SILENT)))
        )
    }

    late = now - grace
    missed = set()
    for gw_id, tenant_id, serial, expected, last in session.execute(
        select(Gateway.id, Gateway.tenant_id, Gateway.serial, Gateway.next_contact_at, Gateway.last_contact_at).where(
            Gateway.next_contact_at.is_not(None), Gateway.next_contact_at < late
        )
    ):
        if expected is None:  # (not selected)
            continue
        missed.add((tenant_id, GATEWAY_MISSED_CONTACT, gw_id))
        key = (tenant_id, GATEWAY_MISSED_CONTACT, gw_id)
        message = f"gateway {serial} missed its expected contact at {utc(expected).isoformat()}" + (
            f" (last contact {utc(last).isoformat()})" if last else " (never contacted)"
        )
        raise_alarm(
            session,
            tenant_id,
            GATEWAY_MISSED_CONTACT,
            "gateway",
            gw_id,
            message,
            {
                "expected_contact_at": utc(expected).isoformat(),
                "last_contact_at": utc(last).isoformat() if last else None,
            },
            now,
            existing=active.get(key),
        )

    cutoff = now - timedelta(days=silent_days)
    silent = set()
    heard = func.coalesce(Meter.last_heard_at, Meter.created_at)
    for m_id, tenant_id, mfct, mid, last in session.execute(
        select(Meter.id, Meter.tenant_id, Meter.manufacturer, Meter.meter_id, Meter.last_heard_at).where(heard < cutoff)
    ):
        key = (tenant_id, METER_SILENT, m_id)
        silent.add(key)
        if key in active:
            continue  # the message does not change while it stays silent
        # none active (checked above): insert without a look-up per meter
        session.add(
            Alarm(
                tenant_id=tenant_id,
                kind=METER_SILENT,
                subject_type="meter",
                subject_id=m_id,
                message=f"meter {mfct} {mid} not heard for more than {silent_days} days"
                + (f" (last heard {utc(last).isoformat()})" if last else " (never heard)"),
                details={"last_heard_at": utc(last).isoformat() if last else None, "days": silent_days},
                active=True,
                raised_at=now,
            )
        )

    for key, alarm in active.items():
        if key not in missed and key not in silent:
            clear_alarm(alarm, now)
    _clear_passed_seq_resets(session, now)
