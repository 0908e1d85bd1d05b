"""Alarms that help: grouped per cause (a gateway that is down is one alarm listing its silent
meters), cleared when the cause goes away with the history kept, filtered (kind, severity,
property, acknowledged) and acknowledged with a note (who, when, audited)."""

from __future__ import annotations

from datetime import timedelta

from omshub.cloud.services import alarms
from omshub.cloud.services.alarm_list import AlarmFilter, alarm_query, describe
from omshub.cloud.store.models import Alarm, AuditEntry, Gateway
from omshub.cloud.store.models_billing import Property, Unit

from .domain_fixtures import T0, days, gateway, install, meter, point, tenant


def _active(s, kind=None):
    s.flush()
    q = s.query(Alarm).filter_by(active=True)
    if kind:
        q = q.filter_by(kind=kind)
    return q.all()


def test_a_gateway_down_is_one_alarm_listing_its_silent_meters(s):
    t = tenant(s)
    g = gateway(s, t, next_contact_at=T0, last_contact_at=T0 - timedelta(hours=1))
    fine = gateway(s, t, next_contact_at=T0 + days(30), last_contact_at=T0 + days(3))
    mine = [meter(s, t, gateway_id=g.id, last_heard_at=T0 - timedelta(hours=1)) for _ in range(5)]
    broken = meter(s, t, gateway_id=fine.id, last_heard_at=T0 - timedelta(hours=1))  # its gateway is fine
    alarms.evaluate(s, T0 + timedelta(hours=1))
    [early] = _active(s)
    assert early.kind == "gateway_missed_contact" and early.details["silent_meter_count"] == 0
    alarms.evaluate(s, T0 + days(3.5))
    by_kind = {}
    for a in _active(s):
        by_kind.setdefault(a.kind, []).append(a)
    [gw_alarm] = by_kind["gateway_missed_contact"]
    assert gw_alarm.id == early.id and gw_alarm.subject_id == g.id  # the same alarm, now listing its meters
    assert gw_alarm.details["silent_meter_count"] == 5
    assert sorted(m["id"] for m in gw_alarm.details["silent_meters"]) == sorted(m.id for m in mine)
    assert "5 of its meters" in gw_alarm.message
    # the one meter whose gateway is fine has its own alarm: a different cause
    assert [a.subject_id for a in by_kind["meter_silent"]] == [broken.id]
    # the gateway calls in and its meters are heard: its alarm clears, kept as history
    s.get(Gateway, g.id).next_contact_at = T0 + days(4.5)
    for m in mine[:4]:
        m.last_heard_at = T0 + days(3.6)
    alarms.evaluate(s, T0 + days(3.7))
    assert s.get(Alarm, gw_alarm.id).active is False and s.get(Alarm, gw_alarm.id).cleared_at is not None
    # the one meter still silent with its gateway back: now a cause of its own
    assert {a.subject_id for a in _active(s, "meter_silent")} == {broken.id, mine[4].id}
    assert _active(s, "gateway_missed_contact") == []


def test_a_gateway_without_schedule_whose_meters_fell_silent_with_it(s):
    t = tenant(s)
    g = gateway(s, t, last_contact_at=T0)
    quiet = gateway(s, t, last_contact_at=T0)  # no meters: no alarm (nothing expected of it)
    ms = [meter(s, t, gateway_id=g.id, last_heard_at=T0) for _ in range(3)]
    alarms.evaluate(s, T0 + days(3.5))
    [a] = _active(s)
    assert a.kind == "gateway_missed_contact" and a.subject_id == g.id != quiet.id
    assert a.details["silent_meter_count"] == 3 and a.details["expected_contact_at"] is None
    assert "not heard for more than 3 days" in a.message
    for m in ms:
        m.last_heard_at = T0 + days(3.6)
    s.get(Gateway, g.id).last_contact_at = T0 + days(3.6)
    alarms.evaluate(s, T0 + days(3.7))
    assert _active(s) == []
    assert s.query(Alarm).filter_by(tenant_id=t.id).count() == 1  # history kept


def test_a_meter_silent_before_its_gateway_went_keeps_its_own_alarm(s):
    t = tenant(s)
    g = gateway(s, t, next_contact_at=T0 + days(10), last_contact_at=T0 + days(9))
    m = meter(s, t, gateway_id=g.id, last_heard_at=T0)
    alarms.evaluate(s, T0 + days(3.5))
    [own] = _active(s, "meter_silent")
    s.get(Gateway, g.id).next_contact_at = T0 + days(3.6)
    alarms.evaluate(s, T0 + days(4))
    assert [a.id for a in _active(s, "meter_silent")] == [own.id] and own.subject_id == m.id
    [gw_alarm] = _active(s, "gateway_missed_contact")
    assert gw_alarm.details["silent_meter_count"] == 0


def test_a_gateway_that_calls_in_but_hears_none_of_its_meters(s):
    t = tenant(s)
    g = gateway(s, t, next_contact_at=T0 + days(30), last_contact_at=T0 + days(3))
    ms = [meter(s, t, gateway_id=g.id, last_heard_at=T0) for _ in range(3)]
    alarms.evaluate(s, T0 + days(3.5))
    [a] = _active(s)  # its reception is the cause: one alarm, not three
    assert a.kind == "gateway_meters_silent" and a.subject_type == "gateway" and a.subject_id == g.id
    assert a.details["silent_meter_count"] == 3 and "3 of its meters" in a.message
    ms[0].last_heard_at = T0 + days(3.6)  # one is heard again: most are still silent, the same alarm
    alarms.evaluate(s, T0 + days(3.65))
    [b] = _active(s)
    assert b.id == a.id and b.details["silent_meter_count"] == 2
    ms[1].last_heard_at = T0 + days(3.66)  # two of three heard: the last one is silent on its own
    alarms.evaluate(s, T0 + days(3.7))
    assert s.get(Alarm, a.id).active is False
    assert [x.subject_id for x in _active(s, "meter_silent")] == [ms[2].id]
    assert _active(s, "gateway_meters_silent") == []


def _alarm(s, t, kind, subject_type, subject_id, active=True):
    a = Alarm(
        tenant_id=t.id,
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        message="m",
        details={},
        active=active,
        raised_at=T0,
    )
    s.add(a)
    s.flush()
    return a


def _ids(s, t, **kw):
    return sorted(a.id for a in s.scalars(alarm_query(s, t.id, AlarmFilter(**kw))))


def test_filters_by_kind_severity_property_and_acknowledgement(s):
    t, other = tenant(s), tenant(s)
    prop = Property(tenant_id=t.id, ref="L-1", name="Lindenhof", created_at=T0)
    s.add(prop)
    s.flush()
    unit = Unit(tenant_id=t.id, property_id=prop.id, ref="W1", area_m2=60.0, created_at=T0)
    s.add(unit)
    s.flush()
    g_in, g_out = gateway(s, t), gateway(s, t)
    m_in = meter(s, t, gateway_id=g_in.id)
    m_out = meter(s, t, gateway_id=g_out.id)
    p = point(s, t)
    p.unit_id = unit.id
    install(s, p, m_in, T0)
    a_gw = _alarm(s, t, "gateway_missed_contact", "gateway", g_in.id)
    a_meter = _alarm(s, t, "meter_error", "meter", m_in.id)
    a_out = _alarm(s, t, "wrong_key", "meter", m_out.id)
    a_gw_out = _alarm(s, t, "gateway_seq_reset", "gateway", g_out.id, active=False)
    foreign = _alarm(s, other, "wrong_key", "meter", m_out.id)
    everything = _ids(s, t)
    assert foreign.id not in everything and len(everything) == 4
    assert _ids(s, t, property_id=prop.id) == sorted([a_gw.id, a_meter.id])
    assert _ids(s, t, severity="critical") == sorted([a_gw.id, a_out.id])
    assert _ids(s, t, severity="info") == [a_gw_out.id]
    assert _ids(s, t, kind="meter_error", property_id=prop.id) == [a_meter.id]
    assert _ids(s, t, active=False) == [a_gw_out.id]
    [described] = describe(s, t.id, [a_meter])
    assert described["subject"]["name"] == f"KAM {m_in.meter_id}" and described["severity"] == "warning"
    assert described["subject"]["metering_point"]["ref"] == p.ref and described["acknowledged"] is None


def test_acknowledge_through_the_api(hub, client):
    t = hub.tenant()
    gw = hub.gateway(t)
    with hub.db.transaction() as s:
        alarm_id = _alarm(s, t, "gateway_missed_contact", "gateway", gw.id).id
    admin, viewer = hub.headers(t, "operator"), hub.headers(t, "viewer")
    url = f"/api/v1/alarms/{alarm_id}/acknowledge"
    r = client.post(url, json={"note": "  "}, headers={**admin, "Accept-Language": "de"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert "Bitte schreiben Sie dazu" in err["message"] and err["fields"][0]["field"] == "note"
    assert client.post(url, json={"note": "Techniker informiert"}, headers=viewer).status_code == 403
    r = client.post(url, json={"note": "Techniker informiert"}, headers=admin)
    assert r.status_code == 200, r.text
    ack = r.json()["acknowledged"]
    assert ack["note"] == "Techniker informiert" and ack["by"] and ack["at"].endswith("Z")
    assert r.json()["active"] is True and r.json()["subject"]["name"] == gw.serial  # acknowledged, still active
    listed = client.get("/api/v1/alarms", params={"acknowledged": "false"}, headers=viewer).json()["items"]
    assert alarm_id not in [a["id"] for a in listed]
    listed = client.get("/api/v1/alarms", params={"acknowledged": "true"}, headers=viewer).json()["items"]
    assert [a["id"] for a in listed] == [alarm_id]
    with hub.db.session() as s:
        [entry] = s.query(AuditEntry).filter_by(tenant_id=t.id, action="alarm.acknowledge").all()
    assert entry.details["note"] == "Techniker informiert" and entry.details["subject"] == gw.serial
    assert client.post("/api/v1/alarms/999999/acknowledge", json={"note": "x"}, headers=admin).status_code == 404
    bad = client.get("/api/v1/alarms", params={"severity": "loud"}, headers=viewer)
    assert bad.status_code == 422
