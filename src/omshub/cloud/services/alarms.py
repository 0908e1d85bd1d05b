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
    GATEWAY_METERS_SILENT,
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
    "GATEWAY_METERS_SILENT",
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
    Grouped per cause: the silent meters of a gateway that is down are listed in the gateway's
    one alarm; a gateway that still calls in while most of its meters (two or more) fell silent
    is one `gateway_meters_silent` alarm listing them (its reception, not each meter); a meter
    silent on its own, or silent before its gateway went, keeps its own alarm."""
    now = utc(now)
    kinds = (GATEWAY_MISSED_CONTACT, GATEWAY_METERS_SILENT, METER_SILENT)
    active = {
        (a.tenant_id, a.kind, a.subject_id): a
        for a in session.scalars(select(Alarm).where(Alarm.active.is_(True), Alarm.kind.in_(kinds)))
    }
    cutoff = now - timedelta(days=silent_days)
    down = _gateways_down(session, now, grace, cutoff)
    heard = func.coalesce(Meter.last_heard_at, Meter.created_at)
    rows = session.execute(
        select(Meter.id, Meter.tenant_id, Meter.manufacturer, Meter.meter_id, Meter.last_heard_at, Meter.gateway_id)
        .where(heard < cutoff)
        .order_by(Meter.id)
    ).all()
    quiet = _gateways_all_silent(session, rows)
    grouped: dict[int, list[dict]] = {}
    deaf: dict[int, tuple[int, list[dict]]] = {}
    silent = set()
    for m_id, tenant_id, mfct, mid, last, gw_id in rows:
        key = (tenant_id, METER_SILENT, m_id)
        entry = {"id": m_id, "meter": f"{mfct} {mid}", "last_heard_at": utc(last).isoformat() if last else None}
        if key in active:
            silent.add(key)  # silent before its gateway went (its own cause); the message does not change
        elif gw_id is not None and gw_id in down and down[gw_id][0] == tenant_id:
            grouped.setdefault(gw_id, []).append(entry)
        elif gw_id is not None and gw_id in quiet:
            deaf.setdefault(gw_id, (tenant_id, []))[1].append(entry)
        else:
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
                    details={"last_heard_at": entry["last_heard_at"], "days": silent_days},
                    active=True,
                    raised_at=now,
                )
            )
    raised = _raise_gateways_down(session, now, down, grouped, active, silent_days)
    raised |= _raise_gateways_deaf(session, now, deaf, active, silent_days)
    for key, alarm in active.items():
        if key not in raised and key not in silent:
            clear_alarm(alarm, now)
    _clear_passed_seq_resets(session, now)


def _gateways_all_silent(session: Session, rows) -> set[int]:
    """The gateways (of the silent meters `rows`) most of whose meters (two or more) are silent."""
    silent: dict[int, int] = {}
    for row in rows:
        if row[5] is not None:
            silent[row[5]] = silent.get(row[5], 0) + 1
    candidates = sorted(g for g, n in silent.items() if n >= 2)
    totals: dict[int, int] = {}
    for i in range(0, len(candidates), 500):
        for gw_id, n in session.execute(
            select(Meter.gateway_id, func.count())
            .where(Meter.gateway_id.in_(candidates[i : i + 500]))
            .group_by(Meter.gateway_id)
        ):
            if gw_id is not None:
                totals[gw_id] = n
    return {g for g in candidates if 2 * silent[g] > totals.get(g, 0)}


def _raise_gateways_deaf(
    session: Session, now: datetime, deaf: dict[int, tuple[int, list[dict]]], active: dict, days: int
) -> set:
    """One gateway_meters_silent alarm per gateway that calls in but hears few of its meters."""
    raised = set()
    serials = dict(session.execute(select(Gateway.id, Gateway.serial).where(Gateway.id.in_(sorted(deaf)))).all())
    for gw_id, (tenant_id, meters) in deaf.items():
        key = (tenant_id, GATEWAY_METERS_SILENT, gw_id)
        raised.add(key)
        raise_alarm(
            session,
            tenant_id,
            GATEWAY_METERS_SILENT,
            "gateway",
            gw_id,
            f"gateway {serials.get(gw_id, gw_id)} calls in, but {len(meters)} of its meters were not heard "
            f"for more than {days} days",
            {"silent_meter_count": len(meters), "silent_meters": meters[:GROUPED_METERS_MAX], "days": days},
            now,
            existing=active.get(key),
        )
    return raised


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
