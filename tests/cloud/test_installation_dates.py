"""Installation dates (issue 9 item 4) and consumption coverage (item 6).

A meter registered without an installation date counts from its first reading, so consumption
before its import is not lost; dates without a zone are read in the tenant's time zone. A
consumption result that does not cover its whole period is never `complete`, and says which part
it covers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omshub.cloud.services.consumption import consumption
from omshub.cloud.store.models import Installation
from tests.clock import DAY, WINTER, days_before

from .conftest import KEY, encode
from .domain_fixtures import T0, days, install, meter, point, reading, tenant

API = "/api/v1"


def _energy(value: float) -> list[dict]:
    return [
        {
            "quantity": "energy",
            "unit": "kWh",
            "value": value,
            "storage": 0,
            "tariff": 0,
            "subunit": 0,
            "function": "instantaneous",
        }
    ]


def test_demo_like_flow_counts_readings_older_than_the_import(hub, client, pipeline):
    """As `omshub demo` does: meters imported without dates, then their gateways upload readings
    received in the days before the import; the consumption call it prints returns a value."""
    t = hub.tenant()
    gw = hub.gateway(t)
    h = hub.headers(t)
    csv = f"manufacturer,id,device_type,gateway,metering_point\nKAM,42000001,heat,{gw.serial},P-42\n".encode()
    r = client.post(f"{API}/meters/import", headers={**h, "Content-Type": "text/csv"}, content=csv)
    assert r.status_code == 200 and r.json()["installed"] == 1
    hub.keys(t, {"42000001": KEY})
    start = days_before(28, WINTER)
    for day in range(28):  # one reading a day at 02:00 UTC, 100 kWh a day
        hub.send(
            gw,
            day + 1,
            [encode("42000001", _energy(1000.0 + 100 * day), access_number=day)],
            t0=int(start + day * DAY - 10 * 3600),
            dts=[0],
        )
    pipeline.run_until_idle()
    [p] = client.get(f"{API}/metering-points", headers=h).json()["items"]
    first = "2025-12-17T02:00:00Z"
    assert p["installation"]["installed_from"] == "first_reading"
    assert p["installation"]["installed_at"] == first
    # the demo's call: the simulated period (a day before the first reading to its end)
    frm, to = "2025-12-16T00:00:00Z", "2026-01-14T00:00:00Z"
    res = client.get(f"{API}/metering-points/{p['id']}/consumption", headers=h, params={"from": frm, "to": to}).json()
    assert res["value"] == pytest.approx(2700.0)
    assert res["complete"] is False  # nothing is known before the first reading
    assert res["covered_from"] == first and res["covered_to"] == to
    assert res["uncovered"] == [{"from": frm, "to": first}]
    assert res["covered_share"] == pytest.approx(1 - (26 / 24) / 29, abs=1e-6)
    # from the first full day on, the value covers the period
    res = client.get(
        f"{API}/metering-points/{p['id']}/consumption", headers=h, params={"from": "2025-12-18", "to": "2026-01-13"}
    ).json()  # local dates: 00:00 Berlin
    assert res["from"] == "2025-12-17T23:00:00Z" and res["to"] == "2026-01-12T23:00:00Z"
    assert res["complete"] is True and res["covered_share"] == 1.0 and res["uncovered"] == []
    assert res["value"] == pytest.approx(2600.0)


def test_import_and_install_read_dates_in_the_tenant_zone(hub, client):
    t = hub.tenant()
    h = {**hub.headers(t, "operator"), "Content-Type": "text/csv"}
    csv = (
        b"manufacturer,id,metering_point,installed_at\n"
        b"KAM,42000011,P-a,2026-01-15\n"
        b"KAM,42000012,P-b,2026-07-01T08:00\n"
        b"KAM,42000013,P-c,2026-07-01T08:00:00Z\n"
    )
    assert client.post(f"{API}/meters/import", headers=h, content=csv).status_code == 200
    got = {
        p["ref"]: (p["installation"]["installed_at"], p["installation"]["installed_from"])
        for p in client.get(f"{API}/metering-points", headers=h).json()["items"]
    }
    assert got == {
        "P-a": ("2026-01-14T23:00:00Z", "given"),
        "P-b": ("2026-07-01T06:00:00Z", "given"),
        "P-c": ("2026-07-01T08:00:00Z", "given"),
    }
    bad = (
        b"manufacturer,id,metering_point,installed_at\nKAM,42000014,P-d,2026-10-25T02:30\nKAM,42000015,P-e,31.01.2026\n"
    )
    r = client.post(f"{API}/meters/import", headers=h, content=bad)
    msg = r.json()["error"]["message"]
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_csv"
    assert "line 2: installed_at: '2026-10-25T02:30' happens twice in Europe/Berlin" in msg
    assert "line 3: installed_at: '31.01.2026' is not an ISO 8601 date or time" in msg
    assert "in Europe/Berlin" in msg.split("line 3:")[1]
    # the install, swap and remove times too
    j = hub.headers(t, "operator")
    pid = client.post(f"{API}/metering-points", headers=j, json={"ref": "P-f"}).json()["id"]
    m1 = client.post(f"{API}/meters", headers=j, json={"manufacturer": "KAM", "meter_id": "42000016"}).json()["id"]
    m2 = client.post(f"{API}/meters", headers=j, json={"manufacturer": "KAM", "meter_id": "42000017"}).json()["id"]
    r = client.post(f"{API}/metering-points/{pid}/install", headers=j, json={"meter": m1, "at": "2026-02-01"})
    assert r.status_code == 201 and r.json()["installation"]["installed_at"] == "2026-01-31T23:00:00Z"
    r = client.post(
        f"{API}/metering-points/{pid}/swap",
        headers=j,
        json={"at": "2026-03-29T02:15", "old_final_values": {}, "new_meter": m2},
    )
    assert r.status_code == 422 and r.json()["error"] == {
        "code": "invalid_time",
        "message": r.json()["error"]["message"],
    }
    assert r.json()["error"]["message"].startswith("at: '2026-03-29T02:15' does not exist in Europe/Berlin")
    r = client.post(
        f"{API}/metering-points/{pid}/swap",
        headers=j,
        json={"at": "2026-08-01T12:00", "old_final_values": {}, "new_meter": m2},
    )
    assert r.status_code == 200 and r.json()["installation"]["installed_at"] == "2026-08-01T10:00:00Z"
    # a tenant in another zone reads its dates there
    assert client.put(f"{API}/tenant/time", headers=hub.headers(t), json={"timezone": "UTC"}).status_code == 200
    r = client.post(f"{API}/metering-points/{pid}/remove", headers=j, json={"at": "2026-09-01"})
    assert r.status_code == 200
    assert r.json()["installations"][-1]["removed_at"] == "2026-09-01T00:00:00Z"


def test_install_without_a_date_counts_from_the_first_reading(hub, client, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    j = hub.headers(t, "operator")
    pid = client.post(f"{API}/metering-points", headers=j, json={"ref": "P-g"}).json()["id"]
    mid = client.post(f"{API}/meters", headers=j, json={"manufacturer": "KAM", "meter_id": "42000021"}).json()["id"]
    r = client.post(f"{API}/metering-points/{pid}/install", headers=j, json={"meter": mid})
    assert r.status_code == 201 and r.json()["installation"]["installed_from"] == "first_reading"
    r = client.post(
        f"{API}/metering-points/{pid}/install", headers=j, json={"meter": mid, "initial_values": {"energy": 1}}
    )
    assert r.status_code == 422
    hub.keys(t, {"42000021": KEY})
    hub.send(gw, 1, [encode("42000021", _energy(50.0), access_number=1)], t0=int(days_before(3, WINTER)), dts=[0])
    pipeline.run_until_idle()
    r = client.get(f"{API}/metering-points/{pid}", headers=j).json()
    assert r["installation"]["installed_at"] == "2026-01-11T12:00:00Z"


def test_first_reading_after_the_previous_installation(s):
    """A meter that read at another point before: its dateless installation starts with its first
    reading after it left that point, not with its very first."""
    from omshub.cloud.services.consumption import effective_installed_at

    t = tenant(s)
    m = meter(s, t)
    p1, p2 = point(s, t, "P-1"), point(s, t, "P-2")
    install(s, p1, m, T0, removed=T0 + days(10), final={"energy": 200.0})
    for d in (1, 5, 12, 15):
        reading(s, m, T0 + days(d), energy=100.0 + 10 * d)
    inst = Installation(
        tenant_id=t.id,
        metering_point_id=p2.id,
        meter_pk=m.id,
        installed_at=T0 + days(20),
        installed_from="first_reading",
        initial_values={},
    )
    s.add(inst)
    s.flush()
    assert effective_installed_at(s, inst) == T0 + days(12)
    res = consumption(s, p2, T0 + days(11), T0 + days(15), now=T0 + days(16))
    assert res["value"] == pytest.approx(30.0) and res["complete"] is False
    assert res["segments"][0]["installed_at"] == T0 + days(12)
    assert res["uncovered"] == [{"from": T0 + days(11), "to": T0 + days(12)}]


# --- item 6: coverage ---


def test_start_after_boundary_is_not_complete(s):
    t = tenant(s)
    m = meter(s, t, device_type="water")
    p = point(s, t)
    install(s, p, m, T0)
    reading(s, m, T0 + days(5), volume=1.0)
    reading(s, m, T0 + days(10), volume=4.0)
    res = consumption(s, p, T0 + days(2), T0 + days(10), now=T0 + days(11))
    seg = res["segments"][0]
    assert "start_after_boundary" in seg["flags"] and res["value"] == pytest.approx(3.0)
    assert res["complete"] is False
    assert (seg["covered_from"], seg["covered_to"]) == (T0 + days(5), T0 + days(10))
    assert res["covered_share"] == pytest.approx(5 / 8) == seg["covered_share"]
    assert res["uncovered"] == [{"from": T0 + days(2), "to": T0 + days(5)}]


def test_period_before_the_installation_is_not_complete(s):
    t = tenant(s)
    m = meter(s, t)
    p = point(s, t)
    install(s, p, m, T0 + days(4), initial={"energy": 0.0})
    reading(s, m, T0 + days(8), energy=40.0)
    res = consumption(s, p, T0, T0 + days(8), now=T0 + days(8))
    assert res["value"] == pytest.approx(40.0) and res["complete"] is False
    assert res["covered_from"] == T0 + days(4) and res["covered_share"] == pytest.approx(0.5)
    assert any("no meter installed" in g["message"] for g in res["gaps"])


def test_no_data_and_gaps_between_installations(s):
    t = tenant(s)
    a, b = meter(s, t), meter(s, t)
    p = point(s, t)
    install(s, p, a, T0, removed=T0 + days(3), initial={"energy": 0.0}, final={"energy": 30.0})
    install(s, p, b, T0 + days(5), initial={"energy": 0.0})
    reading(s, b, T0 + days(10), energy=50.0)
    res = consumption(s, p, T0, T0 + days(10), now=T0 + days(10))
    assert res["value"] == pytest.approx(80.0) and res["complete"] is False
    assert res["uncovered"] == [{"from": T0 + days(3), "to": T0 + days(5)}]
    assert res["covered_share"] == pytest.approx(0.8)
    # a period without any reading: no value, nothing covered
    c = meter(s, t)
    q = point(s, t, "P-2")
    install(s, q, c, T0)
    res = consumption(s, q, T0 + days(1), T0 + days(2), now=T0 + days(3))
    assert res["value"] is None and res["complete"] is False and "no_data" in res["segments"][0]["flags"]
    assert res["covered_share"] == 0.0 and res["uncovered"] == [{"from": T0 + days(1), "to": T0 + days(2)}]


def test_stale_end_and_a_period_not_over_yet(s):
    t = tenant(s)
    m = meter(s, t)
    p = point(s, t)
    install(s, p, m, T0, initial={"energy": 0.0})
    reading(s, m, T0 + days(3), energy=30.0)
    res = consumption(s, p, T0, T0 + days(10), now=T0 + days(12))
    assert "end_stale" in res["segments"][0]["flags"] and res["complete"] is False
    assert res["covered_to"] == T0 + days(3) and res["covered_share"] == pytest.approx(0.3)
    # a reading just before the end stands for the end
    reading(s, m, T0 + days(10) - timedelta(hours=1), energy=100.0)
    res = consumption(s, p, T0, T0 + days(10), now=T0 + days(12))
    assert res["complete"] is True and res["covered_share"] == 1.0 and res["value"] == pytest.approx(100.0)
    # asked while the period is still running: complete once it is over, not before
    res = consumption(s, p, T0, T0 + days(20), now=T0 + days(10))
    assert res["complete"] is False and res["covered_to"] == T0 + days(10) - timedelta(hours=1)
