"""Alarms: the periodic evaluation (gateways past their expected contact,
silent meters, seq resets the gateway has climbed past). The rules are domain/alarms.py's; the rows
and the events ingest and decode report (a reading, a failed decode, a reused seq) are
store/alarm_rows.py's and store/alarm_batch.py's, named here too for the API, the console and the commands.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.alarms import (
    DEFAULT_GRACE,
    DEFAULT_SILENT_DAYS,
    GATEWAY_MISSED_CONTACT,
    GATEWAY_SEQ_RESET,
    GROUPED_METERS_MAX,
    KINDS,
    METER_ERROR,
    METER_SILENT,
    NEGATIVE_CONSUMPTION,
    WRONG_KEY,
    error_causes,
    gateway_down,
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
    """Periodic check over all tenants: gateways past their expected contact, silent meters.
    Grouped per cause: the silent meters of a gateway that is down themselves are listed in the
    gateway's one alarm (an outage of a gateway is one alarm, not one per meter); a meter that fell
    silent while its gateway was fine keeps its own alarm."""
    now = utc(now)
    active = {
        (a.tenant_id, a.kind, a.subject_id): a
        for a in session.scalars(
            select(Alarm).where(Alarm.active.is_(True), Alarm.kind.in_((GATEWAY_MISSED_CONTACT, METER_SILENT)))
        )
    }
    cutoff = now - timedelta(days=silent_days)
    down = _gateways_down(session, now, grace, cutoff)
    grouped: dict[int, list[dict]] = {}
    silent = set()
    heard = func.coalesce(Meter.last_heard_at, Meter.created_at)
    for m_id, tenant_id, mfct, mid, last, gw_id in session.execute(
        select(Meter.id, Meter.tenant_id, Meter.manufacturer, Meter.meter_id, Meter.last_heard_at, Meter.gateway_id)
        .where(heard < cutoff)
        .order_by(Meter.id)
    ):
        key = (tenant_id, METER_SILENT, m_id)
        if key in active:
            silent.add(key)  # silent before its gateway went (its own cause); the message does not change
            continue
        gw = down.get(gw_id) if gw_id is not None else None
        if gw_id is not None and gw is not None and gw[0] == tenant_id:
            grouped.setdefault(gw_id, []).append(
                {"id": m_id, "meter": f"{mfct} {mid}", "last_heard_at": utc(last).isoformat() if last else None}
            )
            continue
        silent.add(key)
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
    missed = _raise_gateways_down(session, now, down, grouped, active, silent_days)
    for key, alarm in active.items():
        if key not in missed and key not in silent:
            clear_alarm(alarm, now)
    _clear_passed_seq_resets(session, now)


def _gateways_down(session: Session, now: datetime, grace: timedelta, cutoff: datetime) -> dict[int, tuple]:
    """The gateways that are down (domain/alarms.gateway_down): id -> (tenant, serial, expected
    contact or None, last contact)."""
    down = {}
    for gw_id, tenant_id, serial, expected, last, created in session.execute(
        select(
            Gateway.id,
            Gateway.tenant_id,
            Gateway.serial,
            Gateway.next_contact_at,
            Gateway.last_contact_at,
            Gateway.created_at,
        ).where(
            or_(
                Gateway.next_contact_at < now - grace,
                and_(
                    Gateway.next_contact_at.is_(None),
                    func.coalesce(Gateway.last_contact_at, Gateway.created_at) < cutoff,
                ),
            )
        )
    ):
        if gateway_down(expected, last or created, now, grace, cutoff):
            down[gw_id] = (tenant_id, serial, expected, last)
    return down


def _raise_gateways_down(
    session: Session, now: datetime, down: dict[int, tuple], grouped: dict[int, list[dict]], active: dict, days: int
) -> set:
    """One gateway_missed_contact alarm per gateway down: a gateway that missed its expected contact,
    or one without an expected contact whose meters fell silent with it; listing those meters."""
    raised = set()
    for gw_id, (tenant_id, serial, expected, last) in down.items():
        meters = grouped.get(gw_id, [])
        if expected is None and not meters:
            continue
        key = (tenant_id, GATEWAY_MISSED_CONTACT, gw_id)
        raised.add(key)
        message = (
            f"gateway {serial} missed its expected contact at {utc(expected).isoformat()}"
            if expected
            else f"gateway {serial} not heard for more than {days} days"
        ) + (f" (last contact {utc(last).isoformat()})" if last else " (never contacted)")
        if meters:
            message += f"; {len(meters)} of its meters not heard for more than {days} days"
        raise_alarm(
            session,
            tenant_id,
            GATEWAY_MISSED_CONTACT,
            "gateway",
            gw_id,
            message,
            {
                "expected_contact_at": utc(expected).isoformat() if expected else None,
                "last_contact_at": utc(last).isoformat() if last else None,
                "silent_meter_count": len(meters),
                "silent_meters": meters[:GROUPED_METERS_MAX],
                "days": days,
            },
            now,
            existing=active.get(key),
        )
    return raised
