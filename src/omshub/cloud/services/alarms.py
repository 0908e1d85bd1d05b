"""Alarms (issue 3 item 10): raised when a cause appears, cleared when it goes away.

Kinds and subjects:
* `gateway_missed_contact` (gateway) — no uplink by its expected next contact + grace;
* `gateway_seq_reset` (gateway) — an uplink came under a seq the gateway had already used, with
  other telegrams: it lost its uplink state (spool) and numbers from 1 again. Its uplinks are
  stored all the same (by content); cleared once its seq passes the highest it had used before
  (from then on its numbers are new again), checked by the periodic evaluation;
* `meter_silent` (meter) — not heard for N days (from registration when never heard);
* `meter_error` (meter) — the latest telegram's status byte or error-flags record reports an error;
* `wrong_key` (meter) — decryption failed with the stored key (cleared by the next good decode);
* `negative_consumption` (meter) — a cumulative register went backwards (cleared when it is
  back at or above the value before the drop).
At most one active alarm per (tenant, kind, subject); a repeated cause updates it. Cleared
alarms stay stored as history. The caller commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.services.consumption import CUMULATIVE_UNITS, register_value
from omshub.cloud.store.models import Alarm, Gateway, Meter, Reading

GATEWAY_MISSED_CONTACT = "gateway_missed_contact"
GATEWAY_SEQ_RESET = "gateway_seq_reset"
METER_SILENT = "meter_silent"
METER_ERROR = "meter_error"
WRONG_KEY = "wrong_key"
NEGATIVE_CONSUMPTION = "negative_consumption"
KINDS = (GATEWAY_MISSED_CONTACT, GATEWAY_SEQ_RESET, METER_SILENT, METER_ERROR, WRONG_KEY, NEGATIVE_CONSUMPTION)
DEFAULT_GRACE = timedelta(minutes=30)
# Status bits (docs/oms-protocol.md §5.2): application error / abnormal condition, power low,
# permanent error, temporary error. "busy" (01) and the manufacturer bits are not errors.
_STATUS_ERROR_FLAGS = ("application_error", "abnormal_condition", "power_low", "permanent_error",
                       "temporary_error")


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def active_alarm(session: Session, tenant_id: int, kind: str, subject_type: str, subject_id: int) -> Alarm | None:
    return session.scalars(select(Alarm).where(
        Alarm.tenant_id == tenant_id, Alarm.active.is_(True), Alarm.kind == kind,
        Alarm.subject_type == subject_type, Alarm.subject_id == subject_id)
        .order_by(Alarm.id)).first()


def raise_alarm(session: Session, tenant_id: int, kind: str, subject_type: str, subject_id: int,
                message: str, details: dict, now: datetime, *, existing: Alarm | None = None,
                lookup: bool = True) -> Alarm:
    """Raise (or refresh the message/details of) the one active alarm for (kind, subject).
    `lookup=False`: the caller knows none is active."""
    alarm = existing
    if alarm is None and lookup:
        alarm = active_alarm(session, tenant_id, kind, subject_type, subject_id)
    if alarm is None:
        alarm = Alarm(tenant_id=tenant_id, kind=kind, subject_type=subject_type, subject_id=subject_id,
                      message=message, details=details, active=True, raised_at=_utc(now))
        session.add(alarm)
        session.flush()  # later look-ups in the same transaction must see it (no duplicates)
        if subject_type == "meter" and kind in _READING_KINDS:
            _alarmed_meters(session, tenant_id).add(subject_id)
    else:
        alarm.message = message
        alarm.details = details
    return alarm


def clear_alarm(alarm: Alarm | None, now: datetime) -> None:
    if alarm is not None and alarm.active:
        alarm.active = False
        alarm.cleared_at = _utc(now)


def error_causes(data: dict | None) -> tuple[list[str], dict]:
    """What a decoded telegram reports as errors: (readable causes, details)."""
    causes: list[str] = []
    details: dict = {}
    if not isinstance(data, dict):
        return causes, details
    status = data.get("status") or {}
    if isinstance(status, dict):
        flags = [f for f in status.get("flags") or () if f in _STATUS_ERROR_FLAGS]
        if flags:
            causes.append("status " + ", ".join(f.replace("_", " ") for f in flags))
            details["status"] = status.get("code")
            details["status_flags"] = flags
    for rec in data.get("records") or ():
        if (isinstance(rec, dict) and rec.get("quantity") == "error_flags" and not rec.get("storage")
                and isinstance(rec.get("value"), int) and rec["value"] != 0):
            causes.append(f"error flags 0x{rec['value']:X}")
            details["error_flags"] = rec["value"]
            break
    return causes, details


# The kinds on_reading may clear or refresh (meter_silent is evaluate()'s).
_READING_KINDS = (WRONG_KEY, METER_ERROR, NEGATIVE_CONSUMPTION)
_CACHE_KEY = "omshub.alarmed_meters"


def _alarmed_meters(session: Session, tenant_id: int) -> set[int]:
    """Meters of the tenant with an active alarm of _READING_KINDS — loaded once per transaction,
    so a reading of a meter without alarms (nearly all) costs no query."""
    txn = session.get_transaction()
    cache = session.info.get(_CACHE_KEY)
    if cache is None or cache[0] is not txn:
        cache = (txn, {})
        session.info[_CACHE_KEY] = cache
    per_tenant = cache[1]
    if tenant_id not in per_tenant:
        per_tenant[tenant_id] = set(session.scalars(select(Alarm.subject_id).where(
            Alarm.tenant_id == tenant_id, Alarm.active.is_(True), Alarm.subject_type == "meter",
            Alarm.kind.in_(_READING_KINDS))))
    return per_tenant[tenant_id]


def _meter_alarms(session: Session, meter: Meter) -> dict[str, Alarm]:
    rows = session.scalars(select(Alarm).where(
        Alarm.tenant_id == meter.tenant_id, Alarm.active.is_(True), Alarm.subject_type == "meter",
        Alarm.subject_id == meter.id))
    return {a.kind: a for a in rows}


def _label(meter: Meter) -> str:
    return f"meter {meter.manufacturer} {meter.meter_id}"


def on_reading(session: Session, meter: Meter, reading: Reading, previous_reading: Reading | None,
               now: datetime) -> None:
    """Alarms from a newly stored reading; `previous_reading` is the meter's reading before it
    (None for the first). An older reading arriving late is only compared, never used to clear."""
    alarmed = meter.id in _alarmed_meters(session, meter.tenant_id)
    active = _meter_alarms(session, meter) if alarmed else {}
    # It decoded: the key is right — unless a later telegram of the same batch failed with it
    # (the pipeline leaves key_status at the last outcome).
    if meter.key_status != "wrong":
        clear_alarm(active.get(WRONG_KEY), now)
    newest = previous_reading is None or _utc(previous_reading.timestamp) <= _utc(reading.timestamp)

    if newest:
        causes, details = error_causes(reading.data)
        if causes:
            details["reading_id"] = reading.id
            raise_alarm(session, meter.tenant_id, METER_ERROR, "meter", meter.id,
                        f"{_label(meter)} reports an error: " + "; ".join(causes), details, now,
                        existing=active.get(METER_ERROR), lookup=alarmed)
        else:
            clear_alarm(active.get(METER_ERROR), now)

    alarm = active.get(NEGATIVE_CONSUMPTION)
    if alarm is not None and newest:
        q = alarm.details.get("quantity")
        before = alarm.details.get("previous_value")
        value = register_value(reading.data, q) if isinstance(q, str) else None
        if value is not None and isinstance(before, (int, float)) and value >= before:
            clear_alarm(alarm, now)
            alarm = None
    if previous_reading is None:
        return
    earlier, later = (previous_reading, reading) if newest else (reading, previous_reading)
    for quantity in CUMULATIVE_UNITS:
        a = register_value(earlier.data, quantity)
        b = register_value(later.data, quantity)
        if a is None or b is None or b >= a - 1e-9 * max(1.0, abs(a)):
            continue
        unit = CUMULATIVE_UNITS[quantity]
        raise_alarm(session, meter.tenant_id, NEGATIVE_CONSUMPTION, "meter", meter.id,
                    f"{_label(meter)}: {quantity} went backwards from {a:g} to {b:g} {unit}",
                    {"quantity": quantity, "previous_value": a, "value": b, "unit": unit,
                     "previous_reading_id": earlier.id, "reading_id": later.id,
                     "at": _utc(later.timestamp).isoformat()},
                    now, existing=alarm, lookup=alarmed)
        break


def on_decode_failure(session: Session, meter: Meter | None, code: str, now: datetime) -> None:
    """A telegram of `meter` failed to decode with `code`; only a wrong key is an alarm."""
    if meter is None or code != "wrong_key":
        return
    raise_alarm(session, meter.tenant_id, WRONG_KEY, "meter", meter.id,
                f"{_label(meter)}: the stored key does not decrypt its telegrams",
                {"code": code}, now)


def on_seq_reuse(session: Session, tenant_id: int, gateway_id: int, serial: str, seq: int,
                 highest_seq: int | None, stored: int, now: datetime) -> Alarm:
    """A gateway's uplink `seq` was stored before with other telegrams (`stored` of this one's
    were new); `highest_seq` is the highest seq it had sent."""
    alarm = active_alarm(session, tenant_id, GATEWAY_SEQ_RESET, "gateway", gateway_id)
    details = dict(alarm.details or {}) if alarm is not None else {
        "highest_seq_before": highest_seq, "first_reused_seq": seq, "first_reused_at": _utc(now).isoformat(),
        "reused_uplinks": 0, "telegrams_stored": 0}
    details["last_reused_seq"] = seq
    details["reused_uplinks"] = int(details.get("reused_uplinks") or 0) + 1
    details["telegrams_stored"] = int(details.get("telegrams_stored") or 0) + stored
    highest = details.get("highest_seq_before")
    message = (f"gateway {serial} numbers its uplinks from {details['first_reused_seq']} again (it had reached "
               f"{highest}): it lost its uplink state. Its new uplinks are stored by their content; "
               f"{details['reused_uplinks']} so far reused a seq")
    return raise_alarm(session, tenant_id, GATEWAY_SEQ_RESET, "gateway", gateway_id, message, details, now,
                       existing=alarm, lookup=False)


def _clear_passed_seq_resets(session: Session, now: datetime) -> None:
    """A gateway whose seq passed the highest it had used before the reset uses new numbers again."""
    for alarm, last_seq in session.execute(
            select(Alarm, Gateway.last_seq).join(Gateway, Gateway.id == Alarm.subject_id)
            .where(Alarm.active.is_(True), Alarm.kind == GATEWAY_SEQ_RESET, Alarm.subject_type == "gateway")):
        highest = (alarm.details or {}).get("highest_seq_before")
        if last_seq is not None and (not isinstance(highest, int) or last_seq > highest):
            clear_alarm(alarm, now)


def evaluate(session: Session, now: datetime, *, silent_days: int = 3,
             grace: timedelta = DEFAULT_GRACE) -> None:
    """Periodic check over all tenants: gateways past their expected contact, silent meters."""
    now = _utc(now)
    active = {(a.tenant_id, a.kind, a.subject_id): a for a in session.scalars(select(Alarm).where(
        Alarm.active.is_(True), Alarm.kind.in_((GATEWAY_MISSED_CONTACT, METER_SILENT))))}

    late = now - grace
    missed = set()
    for gw_id, tenant_id, serial, expected, last in session.execute(
            select(Gateway.id, Gateway.tenant_id, Gateway.serial, Gateway.next_contact_at,
                   Gateway.last_contact_at)
            .where(Gateway.next_contact_at.is_not(None), Gateway.next_contact_at < late)):
        missed.add((tenant_id, GATEWAY_MISSED_CONTACT, gw_id))
        key = (tenant_id, GATEWAY_MISSED_CONTACT, gw_id)
        message = (f"gateway {serial} missed its expected contact at {_utc(expected).isoformat()}"
                   + (f" (last contact {_utc(last).isoformat()})" if last else " (never contacted)"))
        raise_alarm(session, tenant_id, GATEWAY_MISSED_CONTACT, "gateway", gw_id, message,
                    {"expected_contact_at": _utc(expected).isoformat(),
                     "last_contact_at": _utc(last).isoformat() if last else None}, now,
                    existing=active.get(key))

    cutoff = now - timedelta(days=silent_days)
    silent = set()
    heard = func.coalesce(Meter.last_heard_at, Meter.created_at)
    for m_id, tenant_id, mfct, mid, last in session.execute(
            select(Meter.id, Meter.tenant_id, Meter.manufacturer, Meter.meter_id, Meter.last_heard_at)
            .where(heard < cutoff)):
        key = (tenant_id, METER_SILENT, m_id)
        silent.add(key)
        if key in active:
            continue  # the message does not change while it stays silent
        # none active (checked above): insert without a look-up per meter
        session.add(Alarm(tenant_id=tenant_id, kind=METER_SILENT, subject_type="meter", subject_id=m_id,
                          message=f"meter {mfct} {mid} not heard for more than {silent_days} days"
                          + (f" (last heard {_utc(last).isoformat()})" if last else " (never heard)"),
                          details={"last_heard_at": _utc(last).isoformat() if last else None, "days": silent_days},
                          active=True, raised_at=now))

    for key, alarm in active.items():
        if key not in missed and key not in silent:
            clear_alarm(alarm, now)
    _clear_passed_seq_resets(session, now)
