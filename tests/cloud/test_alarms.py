"""Alarm rules: raise, no duplicates, clear when the cause goes away (omshub.cloud.services.alarms)."""

from __future__ import annotations

from datetime import timedelta

from omshub.cloud.services import alarms
from omshub.cloud.store.models import Alarm

from .domain_fixtures import T0, days, gateway, meter, reading, tenant


def _active(s, kind=None):
    s.flush()
    q = s.query(Alarm).filter_by(active=True)
    if kind:
        q = q.filter_by(kind=kind)
    return q.all()


def test_meter_error_from_status_and_error_flags(s):
    t = tenant(s)
    m = meter(s, t)
    r1 = reading(s, m, T0, energy=1.0, status=0x04, flags=["power_low"])
    alarms.on_reading(s, m, r1, None, T0)
    [a] = _active(s, "meter_error")
    assert "power low" in a.message and a.subject_type == "meter" and a.subject_id == m.id
    # still in error (now error flags record): same alarm, refreshed, no duplicate
    r2 = reading(
        s,
        m,
        T0 + days(1),
        [
            {
                "quantity": "error_flags",
                "value": 0x10,
                "storage": 0,
                "tariff": 0,
                "subunit": 0,
                "function": "instantaneous",
            }
        ],
        energy=2.0,
    )
    alarms.on_reading(s, m, r2, r1, T0 + days(1))
    [b] = _active(s, "meter_error")
    assert b.id == a.id and "0x10" in b.message
    # busy and manufacturer bits are not errors; a clean telegram clears
    r3 = reading(s, m, T0 + days(2), energy=3.0, status=0x21, flags=["application_busy", "manufacturer_5"])
    alarms.on_reading(s, m, r3, r2, T0 + days(2))
    assert _active(s, "meter_error") == []
    cleared = s.get(Alarm, a.id)
    assert cleared.cleared_at is not None and not cleared.active
    # an older reading arriving late does not re-raise or clear
    late = reading(s, m, T0 + days(1.5), energy=2.5, status=0x08, flags=["permanent_error"])
    alarms.on_reading(s, m, late, r3, T0 + days(3))
    assert _active(s, "meter_error") == []


def test_counter_backwards_raised_once_and_cleared_when_back_above(s):
    t = tenant(s)
    m = meter(s, t, device_type="water")
    r1 = reading(s, m, T0, volume=100.0)
    alarms.on_reading(s, m, r1, None, T0)
    r2 = reading(s, m, T0 + days(1), volume=99.0)
    alarms.on_reading(s, m, r2, r1, T0 + days(1))
    [a] = _active(s, "negative_consumption")
    assert a.details["quantity"] == "volume" and "backwards" in a.message
    r3 = reading(s, m, T0 + days(2), volume=99.5)  # rising again but still below: stays active
    alarms.on_reading(s, m, r3, r2, T0 + days(2))
    assert [x.id for x in _active(s, "negative_consumption")] == [a.id]
    r4 = reading(s, m, T0 + days(3), volume=100.2)
    alarms.on_reading(s, m, r4, r3, T0 + days(3))
    assert _active(s, "negative_consumption") == []
    # a late older reading above a newer one is also "backwards" (ordered by time)
    late = reading(s, m, T0 + days(2.5), volume=150.0)
    alarms.on_reading(s, m, late, r4, T0 + days(4))
    assert len(_active(s, "negative_consumption")) == 1


def test_wrong_key_raised_and_cleared_by_good_decode(s):
    t = tenant(s)
    m = meter(s, t)
    alarms.on_decode_failure(s, m, "wrong_key", T0)
    alarms.on_decode_failure(s, m, "wrong_key", T0 + timedelta(minutes=1))
    alarms.on_decode_failure(s, m, "no_key", T0)
    alarms.on_decode_failure(s, None, "wrong_key", T0)
    [a] = _active(s)
    assert a.kind == "wrong_key"
    r = reading(s, m, T0 + days(1), energy=1.0)
    alarms.on_reading(s, m, r, None, T0 + days(1))
    assert _active(s) == []


def test_evaluate_gateway_missed_contact(s):
    t = tenant(s)
    g = gateway(s, t, next_contact_at=T0, last_contact_at=T0 - days(1))
    quiet = gateway(s, t)  # never contacted, nothing expected: no alarm
    alarms.evaluate(s, T0 + timedelta(minutes=10))
    assert _active(s) == []  # within the grace period
    alarms.evaluate(s, T0 + timedelta(hours=1))
    alarms.evaluate(s, T0 + timedelta(hours=2))
    [a] = _active(s)
    assert a.kind == "gateway_missed_contact" and a.subject_type == "gateway" and a.subject_id == g.id
    assert quiet.id != a.subject_id
    # the gateway calls in: ingest moves next_contact_at forward -> cleared
    g.last_contact_at = T0 + timedelta(hours=3)
    g.next_contact_at = T0 + days(1)
    alarms.evaluate(s, T0 + timedelta(hours=3))
    assert _active(s) == []


def test_evaluate_meter_silent(s):
    t = tenant(s)
    heard = meter(s, t, last_heard_at=T0)
    never = meter(s, t, created_at=T0)
    fresh = meter(s, t, created_at=T0 + days(3))
    alarms.evaluate(s, T0 + days(2))
    assert _active(s) == []
    alarms.evaluate(s, T0 + days(3.5))
    alarms.evaluate(s, T0 + days(3.6))
    got = {a.subject_id: a for a in _active(s, "meter_silent")}
    assert set(got) == {heard.id, never.id} and fresh.id not in got
    assert "never heard" in got[never.id].message
    heard.last_heard_at = T0 + days(3.55)
    alarms.evaluate(s, T0 + days(3.7))
    assert {a.subject_id for a in _active(s, "meter_silent")} == {never.id}
    # the N-days setting
    alarms.evaluate(s, T0 + days(3.7), silent_days=10)
    assert _active(s, "meter_silent") == []
    assert s.query(Alarm).filter_by(kind="meter_silent").count() == 2  # history kept


def test_wrong_key_stays_when_a_later_telegram_of_the_batch_failed(s):
    # The pipeline stores a batch's outcomes first (key_status = the last one), then its readings:
    # a good telegram followed by a wrong-key one must leave the alarm active.
    t = tenant(s)
    m = meter(s, t)
    alarms.on_decode_failure(s, m, "wrong_key", T0)
    m.key_status = "wrong"
    alarms.on_reading(s, m, reading(s, m, T0, energy=1.0), None, T0)
    assert [a.kind for a in _active(s)] == ["wrong_key"]
    m.key_status = "present"
    alarms.on_reading(s, m, reading(s, m, T0 + days(1), energy=2.0), None, T0 + days(1))
    assert _active(s) == []


def test_the_pipeline_pre_filter_asks_the_same_rules_as_on_reading(s):
    """The decode pipeline calls on_reading only where its pre-filter says an alarm may come; the
    filter must agree with on_reading on every case, also at the edge of the tolerance (it once
    copied the rule as `b < a` and drifted)."""
    from omshub.cloud.decode.alarm_hooks import may_alarm
    from omshub.cloud.decode.rows import StoredReading

    def stored(r):
        return StoredReading(
            r.id, r.tenant_id, r.meter_pk, r.telegram_id, r.timestamp, r.received_at, {}, r.data, r.fingerprint
        )

    t = tenant(s)
    cases = [
        (100.0, 100.0),
        (100.0, 101.0),
        (100.0, 99.0),
        (100.0, 100.0 - 1e-12),
        (100.0, 100.0 - 1e-6),
        (0.0, -1e-10),
        (0.0, -1e-8),
        (1e6, 1e6 - 1e-4),
        (1e6, 1e6 - 1e-2),
    ]
    for before, after in cases:
        for late in (False, True):  # the second reading in time arrives after the first, or (spooled) before it
            m = meter(s, t)
            earlier_at, later_at = T0 + days(1), T0 + days(2)
            if late:
                previous, new = reading(s, m, later_at, energy=after), reading(s, m, earlier_at, energy=before)
            else:
                previous, new = reading(s, m, earlier_at, energy=before), reading(s, m, later_at, energy=after)
            expected = may_alarm(stored(new), stored(previous))
            alarms.on_reading(s, m, new, previous, T0 + days(3))
            raised = any(a.subject_id == m.id for a in _active(s, "negative_consumption"))
            assert expected == raised, (before, after, late)
