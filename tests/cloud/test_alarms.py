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


def _summary(r):
    """The reading as the decode batch passes it: registers worked out, the data not parsed; the
    previous one only the meter row's summary (time and registers, no data at all)."""
    from omshub.cloud.decode.rows import StoredReading
    from omshub.cloud.domain.alarms import error_causes
    from omshub.cloud.domain.registers import registers

    return StoredReading(
        r.id,
        r.tenant_id,
        r.meter_pk,
        None,
        r.timestamp,
        None,
        {},
        None,
        None,
        reports_error=bool(error_causes(r.data)[0]),
        registers=registers(r.data),
    )


def test_the_batch_readings_raise_what_stored_rows_raise(s):
    """The decode batch hands on_readings its readings with the registers worked out and the
    previous reading only as the meter row's summary; the alarms must be the same as for the
    stored rows, also at the edge of the tolerance."""
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
    raised_somewhere = 0
    for before, after in cases:
        for late in (False, True):  # the second reading in time arrives after the first, or (spooled) before it
            got = []
            for batch in (False, True):
                m = meter(s, t)
                earlier_at, later_at = T0 + days(1), T0 + days(2)
                if late:
                    previous, new = reading(s, m, later_at, energy=after), reading(s, m, earlier_at, energy=before)
                else:
                    previous, new = reading(s, m, earlier_at, energy=before), reading(s, m, later_at, energy=after)
                if batch:
                    alarms.on_readings(s, [(m, _summary(new), _summary(previous))], T0 + days(3))
                else:
                    alarms.on_reading(s, m, new, previous, T0 + days(3))
                got.append(sorted((a.kind, a.message.split(":", 1)[1]) for a in _active(s) if a.subject_id == m.id))
            assert got[0] == got[1], (before, after, late)
            raised_somewhere += bool(got[0])
    assert raised_somewhere >= 4


def test_meter_error_from_a_batch_reading_reads_the_data_only_when_it_reports_one(s):
    t = tenant(s)
    m = meter(s, t)
    bad = reading(s, m, T0, energy=1.0, status=0x04, flags=["power_low"])
    summary = _summary(bad)
    summary._data_json = None
    summary._data = bad.data  # (the batch parses it back from its JSON)
    alarms.on_readings(s, [(m, summary, None)], T0)
    [a] = _active(s, "meter_error")
    assert "power low" in a.message and a.details["reading_id"] == bad.id
    good = _summary(reading(s, m, T0 + days(1), energy=2.0))
    assert good.reports_error is False and good.data is None
    alarms.on_readings(s, [(m, good, summary)], T0 + days(1))
    assert _active(s, "meter_error") == []


def test_meter_silent_clears_when_the_meter_is_heard_again_in_the_batch(s):
    from types import SimpleNamespace

    t = tenant(s)
    back = meter(s, t, last_heard_at=T0)
    spooled = meter(s, t, last_heard_at=T0)
    quiet = meter(s, t, last_heard_at=T0)
    alarms.evaluate(s, T0 + days(4))
    assert len(_active(s, "meter_silent")) == 3

    def state(m, heard_at):  # the meter as the decode batch left it
        return SimpleNamespace(id=m.id, tenant_id=t.id, last_heard_at=heard_at)

    now = T0 + days(5)
    heard = [state(back, now - days(0.1)), state(spooled, T0 + days(0.5))]  # a spooled telegram: still silent
    alarms.on_readings(s, [], now, heard=heard)
    assert {a.subject_id for a in _active(s, "meter_silent")} == {spooled.id, quiet.id}
    # the evaluation agrees: it raises no new one for the meter heard again
    back.last_heard_at = now - days(0.1)
    alarms.evaluate(s, now)
    assert {a.subject_id for a in _active(s, "meter_silent")} == {spooled.id, quiet.id}


def test_a_batch_costs_the_same_statements_for_few_or_many_alarmed_meters(s):
    """No per-reading loads: the statements of on_readings do not grow with the readings of
    meters that have active alarms (meter_silent, meter_error, negative_consumption)."""
    from sqlalchemy import event

    t = tenant(s)

    def batch_statements(n: int) -> int:
        ms = [meter(s, t, last_heard_at=T0) for _ in range(n)]
        first = [reading(s, m, T0 + days(1), energy=10.0, status=0x04, flags=["power_low"]) for m in ms]
        alarms.on_readings(s, [(m, r, None) for m, r in zip(ms, first, strict=True)], T0 + days(1))
        alarms.evaluate(s, T0 + days(5))  # silent too
        later = [reading(s, m, T0 + days(6), energy=9.0) for m in ms]
        heard = [type("M", (), {"id": m.id, "tenant_id": t.id, "last_heard_at": T0 + days(6)}) for m in ms]
        s.flush()
        count = [0]

        def seen(*_a):
            count[0] += 1

        engine = s.get_bind()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            events = [(m, _summary(r2), _summary(r1)) for m, r1, r2 in zip(ms, first, later, strict=True)]
            alarms.on_readings(s, events, T0 + days(6), heard=heard)
            s.flush()
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        kinds = {(a.subject_id, a.kind) for a in _active(s) if a.subject_id in {m.id for m in ms}}
        assert kinds == {(m.id, "negative_consumption") for m in ms}  # error and silence cleared, drop raised
        return count[0]

    few, many = batch_statements(2), batch_statements(40)
    # the look-up, the insert, the clear (on PostgreSQL the bulk paths of many rows go to the
    # driver directly and are not seen here: fewer, never more)
    assert many <= few <= 5, (few, many)
