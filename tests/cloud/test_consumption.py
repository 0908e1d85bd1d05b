"""Consumption of a metering point across meter swaps (omshub.cloud.services.consumption)."""

from __future__ import annotations

import pytest

from omshub.cloud.services import alarms
from omshub.cloud.services.consumption import consumption, cumulative_quantity, register_value
from omshub.cloud.store.models import Alarm

from .domain_fixtures import T0, days, install, meter, point, reading, tenant


def test_register_value_picks_current_register_only():
    data = {
        "records": [
            {"quantity": "energy", "value": 5.0, "storage": 1, "tariff": 0, "subunit": 0, "function": "instantaneous"},
            {"quantity": "energy", "value": 7.0, "storage": 0, "tariff": 1, "subunit": 0, "function": "instantaneous"},
            {
                "quantity": "energy",
                "value": None,
                "storage": 0,
                "tariff": 0,
                "subunit": 0,
                "function": "instantaneous",
                "error_value": True,
            },
            {"quantity": "energy", "value": 9.5, "storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"},
        ]
    }
    assert register_value(data, "energy") == 9.5
    assert register_value(data, "volume") is None
    assert register_value(None, "energy") is None
    assert cumulative_quantity("heat") == "energy"
    assert cumulative_quantity("warm_water") == "volume"
    assert cumulative_quantity("heat_cost_allocator") == "hca"
    assert cumulative_quantity("smoke_detector") is None


def test_single_meter_uses_readings_at_or_before_boundaries(s):
    t = tenant(s)
    m = meter(s, t)
    p = point(s, t)
    install(s, p, m, T0, initial={"energy": 100.0})
    r1 = reading(s, m, T0 + days(1), energy=110.0)
    reading(s, m, T0 + days(2), energy=120.0)
    r3 = reading(s, m, T0 + days(3), energy=135.0)
    reading(s, m, T0 + days(4), energy=150.0)
    res = consumption(s, p, T0 + days(1.5), T0 + days(3.5), now=T0 + days(10))
    assert res["quantity"] == "energy" and res["unit"] == "kWh"
    assert res["complete"] is True
    # at/just before 1.5 d is the day-1 reading (110); before 3.5 d the day-3 one (135)
    assert res["value"] == pytest.approx(25.0)
    seg = res["segments"][0]
    assert seg["start"]["reading_id"] == r1.id and seg["end"]["reading_id"] == r3.id
    assert res["gaps"] == []
    # from installation: the initial value counts as a reading at installation time
    res = consumption(s, p, T0, T0 + days(2), now=T0 + days(10))
    assert res["value"] == pytest.approx(20.0)
    assert res["segments"][0]["start"]["source"] == "initial"


def test_swap_sums_installations_without_jump(s):
    t = tenant(s)
    old, new = meter(s, t), meter(s, t)
    p = point(s, t)
    swap = T0 + days(5)
    install(s, p, old, T0, removed=swap, initial={"energy": 1000.0}, final={"energy": 1050.0})
    install(s, p, new, swap, initial={"energy": 0.0})
    reading(s, old, T0 + days(1), energy=1010.0)
    reading(s, old, T0 + days(4), energy=1040.0)
    reading(s, new, T0 + days(6), energy=5.0)
    reading(s, new, T0 + days(8), energy=20.0)
    res = consumption(s, p, T0 + days(1), T0 + days(8), now=T0 + days(8))
    # old meter: 1050 (final) - 1010; new meter: 20 - 0 (initial)
    assert res["value"] == pytest.approx(60.0)
    assert [seg["consumption"] for seg in res["segments"]] == pytest.approx([40.0, 20.0])
    assert res["segments"][0]["end"]["source"] == "final"
    assert res["segments"][1]["start"]["source"] == "initial"
    # a period entirely after the swap only sees the new meter
    res = consumption(s, p, T0 + days(6), T0 + days(8), now=T0 + days(8))
    assert len(res["segments"]) == 1 and res["value"] == pytest.approx(15.0)


def test_gaps_are_flagged(s):
    t = tenant(s)
    m = meter(s, t, device_type="water")
    p = point(s, t)
    install(s, p, m, T0)
    reading(s, m, T0 + days(1), volume=1.0)
    reading(s, m, T0 + days(20), volume=4.0)
    res = consumption(s, p, T0 + days(10), T0 + days(20), now=T0 + days(21))
    assert res["quantity"] == "volume" and res["value"] == pytest.approx(3.0)
    assert "start_stale" in res["segments"][0]["flags"]
    assert any(g["boundary"] == "start" for g in res["gaps"])
    # nothing before the start at all: the first reading after it is used and flagged
    res = consumption(s, p, T0, T0 + days(20), now=T0 + days(21))
    assert "start_after_boundary" in res["segments"][0]["flags"]
    assert res["value"] == pytest.approx(3.0)


def test_no_readings_is_incomplete(s):
    t = tenant(s)
    m = meter(s, t)
    p = point(s, t)
    install(s, p, m, T0)
    res = consumption(s, p, T0, T0 + days(1), now=T0 + days(2))
    assert res["complete"] is False and res["value"] is None
    assert "no_data" in res["segments"][0]["flags"]
    empty = point(s, t, ref="P-empty")
    res = consumption(s, empty, T0, T0 + days(1))
    assert res["value"] is None and res["quantity"] is None and res["warnings"]
    res = consumption(s, empty, T0, T0 + days(1), quantity="energy")
    assert res["gaps"] and res["value"] is None


def test_counter_backwards_gives_negative_consumption_and_alarm(s):
    t = tenant(s)
    m = meter(s, t)
    p = point(s, t)
    install(s, p, m, T0, initial={"energy": 500.0})
    r1 = reading(s, m, T0 + days(1), energy=510.0)
    alarms.on_reading(s, m, r1, None, T0 + days(1))
    r2 = reading(s, m, T0 + days(2), energy=3.0)  # counter reset
    alarms.on_reading(s, m, r2, r1, T0 + days(2))
    res = consumption(s, p, T0 + days(1), T0 + days(2), now=T0 + days(2))
    assert res["value"] == pytest.approx(-507.0)
    assert "negative" in res["segments"][0]["flags"] and res["warnings"]
    active = s.query(Alarm).filter_by(active=True, kind="negative_consumption").all()
    assert len(active) == 1
    assert active[0].details["previous_value"] == 510.0 and active[0].details["value"] == 3.0
