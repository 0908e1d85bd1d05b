"""Alarm rows: raised when a cause appears, cleared when it goes away, with the rules of
domain/alarms.py. At most one active alarm per (tenant, kind, subject); a repeated cause updates
it. Cleared alarms stay stored as history. The caller commits.

Here too the events that ingest and decode report: a telegram that failed to decode
(`on_decode_failure`), a gateway that reused a seq (`on_seq_reuse`); stored readings and meters
heard again are store/alarm_batch.py's (a whole decode batch at once); the periodic evaluation is
services/alarms.py's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.alarms import GATEWAY_SEQ_RESET, WRONG_KEY
from omshub.cloud.store.models import Alarm
from omshub.times import utc


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
    else:
        alarm.message = message
        alarm.details = details
    return alarm


def clear_alarm(alarm: Alarm | None, now: datetime) -> None:
    if alarm is not None and alarm.active:
        alarm.active = False
        alarm.cleared_at = utc(now)


def _label(meter) -> str:
    return f"meter {meter.manufacturer} {meter.meter_id}"


def on_decode_failure(session: Session, meter, code: str, now: datetime) -> None:
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
