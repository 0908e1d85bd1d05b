"""Alarm rules: what a decoded telegram or a pair of readings is an alarm for.
Pure: the rows are raised and cleared by store/alarm_rows.py, which applies these rules; the decode
pipeline's pre-filter (which readings need the alarm look-ups at all) asks the same functions.

Kinds and subjects:
* `gateway_missed_contact` (gateway) — no uplink by its expected next contact + grace;
* `gateway_meters_silent` (gateway) — it calls in, but most of its meters (two or more) were not
  heard for N days: its reception (antenna, filter, radio) is the cause, one alarm listing them;
* `gateway_seq_reset` (gateway) — an uplink came under a seq the gateway had already used, with
  other telegrams: it lost its uplink state (spool) and numbers from 1 again;
* `meter_silent` (meter) — not heard for N days (from registration when never heard);
* `meter_error` (meter) — the latest telegram's status byte or error-flags record reports an error;
* `wrong_key` (meter) — decryption failed with the stored key (cleared by the next good decode);
* `negative_consumption` (meter) — a cumulative register went backwards (cleared when it is
  back at or above the value before the drop).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from omshub.cloud.domain.registers import CUMULATIVE_UNITS

GATEWAY_MISSED_CONTACT = "gateway_missed_contact"
GATEWAY_SEQ_RESET = "gateway_seq_reset"
GATEWAY_METERS_SILENT = "gateway_meters_silent"
METER_SILENT = "meter_silent"
METER_ERROR = "meter_error"
WRONG_KEY = "wrong_key"
NEGATIVE_CONSUMPTION = "negative_consumption"
KINDS = (
    GATEWAY_MISSED_CONTACT,
    GATEWAY_METERS_SILENT,
    GATEWAY_SEQ_RESET,
    METER_SILENT,
    METER_ERROR,
    WRONG_KEY,
    NEGATIVE_CONSUMPTION,
)
# The kinds a new reading may clear or refresh (meter_silent is the periodic evaluation's).
READING_KINDS = (WRONG_KEY, METER_ERROR, NEGATIVE_CONSUMPTION)
DEFAULT_GRACE = timedelta(minutes=30)
DEFAULT_SILENT_DAYS = 3
# Status bits (docs/protocol.md §6.2): application error / abnormal condition, power low,
# permanent error, temporary error. "busy" (01) and the manufacturer bits are not errors.
STATUS_ERROR_FLAGS = ("application_error", "abnormal_condition", "power_low", "permanent_error", "temporary_error")
# A register counts as gone backwards only below this relative tolerance (float noise of
# conversions is no drop)
_TOLERANCE = 1e-9


def error_causes(data: dict | None) -> tuple[list[str], dict]:
    """What a decoded telegram reports as errors: (readable causes, details)."""
    causes: list[str] = []
    details: dict = {}
    if not isinstance(data, dict):
        return causes, details
    status = data.get("status") or {}
    if isinstance(status, dict):
        flags = [f for f in status.get("flags") or () if f in STATUS_ERROR_FLAGS]
        if flags:
            causes.append("status " + ", ".join(f.replace("_", " ") for f in flags))
            details["status"] = status.get("code")
            details["status_flags"] = flags
    for rec in data.get("records") or ():
        if (
            isinstance(rec, dict)
            and rec.get("quantity") == "error_flags"
            and not rec.get("storage")
            and isinstance(rec.get("value"), int)
            and rec["value"] != 0
        ):
            causes.append(f"error flags 0x{rec['value']:X}")
            details["error_flags"] = rec["value"]
            break
    return causes, details


def went_backwards(before: float, after: float) -> bool:
    """Is `after` a drop from `before` (beyond float noise)?"""
    return after < before - _TOLERANCE * max(1.0, abs(before))


def backwards_register(earlier: Mapping[str, float], later: Mapping[str, float]) -> tuple[str, float, float] | None:
    """The first cumulative register (in CUMULATIVE_UNITS order) that went backwards from the
    earlier reading's registers to the later one's: (quantity, before, after); None if none did."""
    for quantity in CUMULATIVE_UNITS:
        a = earlier.get(quantity)
        b = later.get(quantity)
        if a is not None and b is not None and went_backwards(a, b):
            return quantity, a, b
    return None


def silence_ended(last_heard_at: datetime | None, now: datetime, days: object) -> bool:
    """A meter_silent alarm (raised for `days` without a telegram) clears once the meter was heard
    within that many days of `now` — the evaluation's own rule, so a catch-up clears it and the
    next evaluation does not raise it again."""
    if last_heard_at is None:
        return False
    span = timedelta(days=days if isinstance(days, (int, float)) and days > 0 else DEFAULT_SILENT_DAYS)
    return last_heard_at >= now - span


def drop_recovered(before: float | None, value: float | None) -> bool:
    """A negative_consumption alarm clears once the register is back at or above `before`."""
    return value is not None and isinstance(before, (int, float)) and value >= before


# --- how bad an alarm is, and what an acknowledgement needs ---

CRITICAL, WARNING, INFO = "critical", "warning", "info"
SEVERITIES = (CRITICAL, WARNING, INFO)
# By kind: no data at all (a gateway down, a key that does not decrypt) is critical; data that is
# wrong or missing for one meter a warning; a gateway that renumbered its uplinks (nothing lost) info.
SEVERITY = {
    GATEWAY_MISSED_CONTACT: CRITICAL,
    GATEWAY_METERS_SILENT: CRITICAL,
    WRONG_KEY: CRITICAL,
    NEGATIVE_CONSUMPTION: WARNING,
    METER_ERROR: WARNING,
    METER_SILENT: WARNING,
    GATEWAY_SEQ_RESET: INFO,
}
ACK_NOTE_MAX = 1000
# A gateway alarm lists at most this many of the silent meters it stands for (the count is complete).
GROUPED_METERS_MAX = 500


def severity(kind: str) -> str:
    return SEVERITY.get(kind, WARNING)


def kinds_of_severity(level: str) -> tuple[str, ...]:
    return tuple(k for k in KINDS if severity(k) == level)


def ack_note_problem(note: object) -> str | None:
    """Why an acknowledgement's note is refused (None: it is fine): it says what was done or why
    the alarm can wait, so it must not be empty."""
    if not isinstance(note, str) or not note.strip():
        return "empty"
    if len(note) > ACK_NOTE_MAX:
        return "too_long"
    if "\x00" in note:
        return "control"
    return None


def gateway_down(
    next_contact_at: datetime | None,
    last_contact_at: datetime | None,
    now: datetime,
    grace: timedelta,
    silent_since: datetime,
) -> bool:
    """Is the gateway the cause of its meters' silence? It missed its expected contact (by more
    than `grace`), or, without an expected contact, was not heard since `silent_since` either."""
    if next_contact_at is not None:
        return next_contact_at < now - grace
    return last_contact_at is None or last_contact_at < silent_since
