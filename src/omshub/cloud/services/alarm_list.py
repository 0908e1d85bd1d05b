"""Alarms as people look at them: filtered (state, kind, severity, property, subject, acknowledged),
described (the subject by the name people know it by, the severity, the acknowledgement), and
acknowledged with a note (who and when kept on the alarm, the act in the audit log). Raising and
clearing is services/alarms.py's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.alarms import ACK_NOTE_MAX, KINDS, SEVERITIES, ack_note_problem, kinds_of_severity, severity
from omshub.cloud.domain.errors import Invalid, not_found
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Alarm, Gateway, Installation, Meter, MeteringPoint
from omshub.cloud.store.models_billing import Property, Unit
from omshub.times import iso, utc


@dataclass(frozen=True)
class AlarmFilter:
    active: bool | None = None
    kind: str | None = None
    severity: str | None = None
    property_id: int | None = None
    subject_type: str | None = None
    subject_id: int | None = None
    acknowledged: bool | None = None


def _property_meters(tenant_id: int, property_id: int):
    """The meters installed now at a metering point of the property's units."""
    return (
        select(Installation.meter_pk)
        .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
        .join(Unit, Unit.id == MeteringPoint.unit_id)
        .where(
            Installation.tenant_id == tenant_id,
            Installation.removed_at.is_(None),
            Unit.tenant_id == tenant_id,
            Unit.property_id == property_id,
        )
    )


def alarm_query(session: Session, tenant_id: int, f: AlarmFilter) -> Select:
    """The tenant's alarms that pass the filter (unordered: the caller pages them by id)."""
    if f.kind is not None and f.kind not in KINDS:
        raise Invalid(f"unknown alarm kind {f.kind!r}", field="kind", german="Diese Alarmart gibt es nicht.")
    if f.severity is not None and f.severity not in SEVERITIES:
        raise Invalid(
            f"severity must be one of {', '.join(SEVERITIES)}",
            field="severity",
            german="Die Dringlichkeit muss kritisch, Warnung oder Hinweis sein.",
        )
    stmt = select(Alarm).where(Alarm.tenant_id == tenant_id)
    if f.active is not None:
        stmt = stmt.where(Alarm.active.is_(f.active))
    if f.kind:
        stmt = stmt.where(Alarm.kind == f.kind)
    if f.severity:
        stmt = stmt.where(Alarm.kind.in_(kinds_of_severity(f.severity)))
    if f.subject_type:
        stmt = stmt.where(Alarm.subject_type == f.subject_type)
    if f.subject_id is not None:
        stmt = stmt.where(Alarm.subject_id == f.subject_id)
    if f.acknowledged is not None:
        ack = Alarm.acknowledged_at.is_not(None)
        stmt = stmt.where(ack if f.acknowledged else ~ack)
    if f.property_id is not None:
        if (
            session.scalar(select(Property.id).where(Property.id == f.property_id, Property.tenant_id == tenant_id))
            is None
        ):
            raise not_found(f"property {f.property_id}", f"Die Liegenschaft {f.property_id}")
        meters = _property_meters(tenant_id, f.property_id)
        gateways = select(Meter.gateway_id).where(Meter.tenant_id == tenant_id, Meter.id.in_(meters))
        stmt = stmt.where(
            or_(
                and_(Alarm.subject_type == "meter", Alarm.subject_id.in_(meters)),
                and_(Alarm.subject_type == "gateway", Alarm.subject_id.in_(gateways)),
            )
        )
    return stmt


def describe(session: Session, tenant_id: int, alarms: list[Alarm]) -> list[dict]:
    """The alarms as plain data, each subject named (a gateway's serial and name, a meter's
    manufacturer and number with its metering point) — looked up for the whole page at once."""
    gw_ids = {a.subject_id for a in alarms if a.subject_type == "gateway"}
    meter_ids = {a.subject_id for a in alarms if a.subject_type == "meter"}
    gateways = (
        {
            i: (serial, name)
            for i, serial, name in session.execute(
                select(Gateway.id, Gateway.serial, Gateway.name).where(
                    Gateway.tenant_id == tenant_id, Gateway.id.in_(gw_ids)
                )
            )
        }
        if gw_ids
        else {}
    )
    meters = (
        {
            i: f"{mfct} {mid}"
            for i, mfct, mid in session.execute(
                select(Meter.id, Meter.manufacturer, Meter.meter_id).where(
                    Meter.tenant_id == tenant_id, Meter.id.in_(meter_ids)
                )
            )
        }
        if meter_ids
        else {}
    )
    points = (
        {
            m: (p_id, ref, address)
            for m, p_id, ref, address in session.execute(
                select(Installation.meter_pk, MeteringPoint.id, MeteringPoint.ref, MeteringPoint.address)
                .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
                .where(
                    Installation.tenant_id == tenant_id,
                    Installation.removed_at.is_(None),
                    Installation.meter_pk.in_(meter_ids),
                )
            )
        }
        if meter_ids
        else {}
    )
    out = []
    for a in alarms:
        subject: dict = {"type": a.subject_type, "id": a.subject_id}
        if a.subject_type == "gateway" and a.subject_id in gateways:
            subject["name"], subject["label"] = gateways[a.subject_id]
        elif a.subject_type == "meter" and a.subject_id in meters:
            subject["name"] = meters[a.subject_id]
            if a.subject_id in points:
                p_id, ref, address = points[a.subject_id]
                subject["metering_point"] = {"id": p_id, "ref": ref, "address": address}
        out.append(
            {
                "id": a.id,
                "kind": a.kind,
                "severity": severity(a.kind),
                "subject": subject,
                "message": a.message,
                "details": a.details or {},
                "active": a.active,
                "raised_at": iso(a.raised_at),
                "cleared_at": iso(a.cleared_at),
                "acknowledged": None
                if a.acknowledged_at is None
                else {"at": iso(a.acknowledged_at), "by": a.acknowledged_by or "", "note": a.ack_note or ""},
            }
        )
    return out


def one(session: Session, tenant_id: int, alarm_id: int) -> Alarm:
    alarm = session.scalar(select(Alarm).where(Alarm.id == alarm_id, Alarm.tenant_id == tenant_id))
    if alarm is None:
        raise not_found(f"alarm {alarm_id}", f"Der Alarm {alarm_id}")
    return alarm


def acknowledge(session: Session, tenant_id: int, alarm_id: int, note: str, *, actor: str, now: datetime) -> Alarm:
    """A person saw the alarm and says what is being done (`note`): kept on the alarm, which stays
    active until its cause goes away, and written to the audit log. A second acknowledgement
    replaces the note (the audit log keeps both)."""
    problem = ack_note_problem(note)
    if problem is not None:
        raise Invalid(
            "the note is empty"
            if problem == "empty"
            else f"the note must be text of at most {ACK_NOTE_MAX} characters",
            code="invalid_note",
            field="note",
            german="Bitte schreiben Sie dazu, was getan wird oder warum der Alarm warten kann."
            if problem == "empty"
            else f"Die Notiz darf höchstens {ACK_NOTE_MAX} Zeichen lang sein und keine Steuerzeichen enthalten.",
        )
    alarm = one(session, tenant_id, alarm_id)
    alarm.acknowledged_at = utc(now)
    alarm.acknowledged_by = actor
    alarm.ack_note = note.strip()
    [described] = describe(session, tenant_id, [alarm])
    subject = described["subject"].get("name") or alarm.subject_type
    audit(
        session,
        tenant_id,
        actor,
        "alarm.acknowledge",
        {"alarm_id": alarm.id, "kind": alarm.kind, "subject": subject, "note": alarm.ack_note},
    )
    return alarm
