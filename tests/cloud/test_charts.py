"""The figures behind the console's charts (services/charts.py): consumption per local day and
month for a meter and a metering point (across a swap), registers over time, a gateway's contacts
and battery, telegrams by state per day; and the reading of a stored uplink's status."""

from __future__ import annotations

from datetime import date, timedelta

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from omshub.cloud.domain.charts import buckets, thin
from omshub.cloud.services import charts
from omshub.cloud.store.models import Uplink

from .domain_fixtures import T0, days, gateway, install, meter, point, reading, tenant

NOW = T0 + days(10)  # 2026-01-11 00:00 UTC


def _daily(s, m, n, step=10.0, start=100.0, hour=12):
    for k in range(n):
        reading(s, m, T0 + days(k) + timedelta(hours=hour), energy=start + step * k, flow_temperature=60.0 + k)


def test_buckets_are_local_days_and_months_with_dst():
    [spring] = buckets(date(2026, 3, 29), date(2026, 3, 29), "day", "Europe/Berlin")
    assert spring.end - spring.start == timedelta(hours=23)
    months = buckets(date(2026, 1, 15), date(2026, 3, 2), "month", "Europe/Berlin")
    assert [b.label for b in months] == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert months[0].start.isoformat() == "2025-12-31T23:00:00+00:00"
    assert thin(list(range(1000)), 5) == [0, 250, 500, 749, 999] and thin([1, 2], 5) == [1, 2]


def test_a_meters_consumption_per_day_and_month(s):
    t = tenant(s)
    m = meter(s, t)
    _daily(s, m, 8)
    out = charts.meter_consumption(s, t.id, m.id, "day", date(2026, 1, 1), date(2026, 1, 12), NOW)
    assert out["quantity"] == "energy" and out["unit"] == "kWh" and out["zone"] == "Europe/Berlin"
    values = {b["date"]: b["value"] for b in out["buckets"]}
    assert values["2026-01-01"] is None  # nothing before its start
    assert [values[f"2026-01-0{d}"] for d in range(2, 9)] == [10.0] * 7
    assert values["2026-01-09"] is None and values["2026-01-11"] is None  # no reading that day
    assert values["2026-01-12"] is None and out["buckets"][-1]["current"]  # still running
    # without a range: the last 30 days up to the meter's latest reading, however long ago that was
    later = charts.meter_consumption(s, t.id, m.id, "day", None, None, NOW + days(200))
    assert later["buckets"][-1]["date"] == "2026-01-08" and len(later["buckets"]) == 30
    assert all(b["complete"] for b in out["buckets"] if b["value"] is not None)
    month = charts.meter_consumption(s, t.id, m.id, "month", date(2026, 1, 1), date(2026, 1, 31), NOW)
    [jan] = month["buckets"]
    # no reading before the month: from its first reading on, not complete
    assert jan["date"] == "2026-01-01" and jan["value"] == 70.0 and not jan["complete"] and jan["current"]


def test_a_metering_points_consumption_across_a_swap(s):
    t = tenant(s)
    old, new = meter(s, t), meter(s, t)
    p = point(s, t)
    install(s, p, old, T0 - days(1), removed=T0 + days(3), final={"energy": 140.0})
    install(s, p, new, T0 + days(3), initial={"energy": 0.0})
    _daily(s, old, 3)  # 100, 110, 120
    for k in range(3, 7):
        reading(s, new, T0 + days(k) + timedelta(hours=12), energy=5.0 * (k - 2))
    out = charts.point_consumption(s, t.id, p.id, "day", date(2026, 1, 2), date(2026, 1, 6), NOW)
    values = [b["value"] for b in out["buckets"]]
    assert out["unit"] == "kWh" and len(values) == 5
    # day 4 (the swap at 00:00 UTC): the old meter's last 20 kWh, then the new one's first 5
    assert values[0] == 10.0 and values[1] == 10.0 and values[2] == 25.0 and values[3] == 5.0


def test_registers_over_time_and_telegrams_by_state(s):
    t = tenant(s)
    m = meter(s, t)
    _daily(s, m, 5)
    out = charts.meter_series(s, t.id, m.id, date(2026, 1, 1), date(2026, 1, 10), NOW)
    assert len(out["at"]) == 5 and out["series"]["energy"] == [100.0, 110.0, 120.0, 130.0, 140.0]
    assert out["series"]["flow_temperature"][0] == 60.0 and out["units"]["flow_temperature"] == "C"
    assert "volume" not in out["series"]
    by_state = charts.telegrams_by_state(s, t.id, date(2026, 1, 1), date(2026, 1, 10), NOW)
    assert by_state["states"] == ["decoded"]
    assert [d["counts"].get("decoded", 0) for d in by_state["days"]][:6] == [1, 1, 1, 1, 1, 0]


def test_a_gateways_contacts_and_battery(s):
    t = tenant(s)
    g = gateway(s, t)
    for k, pct in enumerate([90, 88, None]):
        status = {"battery_pct": pct, "rssi": -70 - k} if pct is not None else {}
        body = cbor2.dumps(
            {"v": 1, "gw": g.serial, "seq": k, "cfg": 0, "status": status, "t0": 0, "batch": {"data": b"x" * 50}}
        )
        s.add(
            Uplink(
                tenant_id=t.id,
                gateway_id=g.id,
                seq=k,
                received_at=T0 + days(k),
                content_type="application/cbor",
                body=body,
                telegram_count=k,
                response={},
            )
        )
    s.flush()
    out = charts.gateway_history(s, t.id, g.id, date(2026, 1, 1), date(2026, 1, 10), NOW)
    assert [c["telegrams"] for c in out["contacts"]] == [0, 1, 2]
    assert [b["value"] for b in out["battery_pct"]] == [90, 88] and out["rssi_dbm"][1]["value"] == -71


def test_ranges_are_checked(s, client, hub):
    t = hub.tenant()
    h = hub.headers(t, "viewer")
    m = hub.meter(t, "31000009")
    r = client.get(
        f"/api/v1/charts/meters/{m}/consumption",
        params={"period": "day", "from": "2026-01-05", "to": "2026-01-01"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "to"
    r = client.get(
        f"/api/v1/charts/meters/{m}/consumption",
        params={"period": "day", "from": "2020-01-01", "to": "2026-01-01"},
        headers=h,
    )
    assert r.status_code == 422
    assert client.get(f"/api/v1/charts/meters/{m}/consumption", params={"period": "week"}, headers=h).status_code == 422
    assert client.get("/api/v1/charts/meters/999999/series", headers=h).status_code == 404
    assert client.get("/api/v1/charts/telegrams", headers=h).status_code == 200
    # a range of millennia is refused before a bucket is made (it once took the API fuzz past its timeout)
    for path, period in (("telegrams", None), (f"meters/{m}/consumption", "day"), (f"meters/{m}/consumption", "month")):
        params = {"from": "0001-01-01", "to": "9999-12-31", **({"period": period} if period else {})}
        r = client.get(f"/api/v1/charts/{path}", params=params, headers=h, timeout=5)
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "to", r.text


@given(st.binary(max_size=300))
def test_reading_an_uplinks_status_never_fails(body):
    assert charts.uplink_status(body, "application/cbor") is None or isinstance(
        charts.uplink_status(body, "application/cbor"), dict
    )
    assert charts.uplink_status(body, "application/json") is None or True


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5))
def test_the_status_is_found_before_the_telegrams(status):
    body = cbor2.dumps({"v": 1, "gw": "G", "seq": 1, "status": status, "batch": {"data": b"\x00" * 10}})
    assert charts.uplink_status(body, "application/cbor") == status
