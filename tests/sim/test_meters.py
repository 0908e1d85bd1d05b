from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from omshub.sim.consumption import HEAT_CAPACITY_KWH_M3K
from omshub.sim.meters import STATUS_ERROR, _end_of_day


def _by(fleet, kind, security=None):
    return [m for m in fleet.meters if m.kind == kind and (security is None or m.security == security)]


def _value(records, quantity, storage=0):
    return next(r["value"] for r in records if r["quantity"] == quantity and r["storage"] == storage)


def test_schedule_interval_jitter_and_access_number(fleet, winter):
    m = _by(fleet, "heat", "ell")[0]
    i = m.first_index_at_or_after(winter)
    times = [m.transmission_time(i + k) for k in range(50)]
    assert times[0] >= winter and m.transmission_time(i - 1) < winter
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(m.interval_s - m.jitter_s <= g <= m.interval_s + m.jitter_s for g in gaps)
    assert len({round(g, 3) for g in gaps}) > 10  # jittered, not a fixed period
    assert [m.access_number(i + k) for k in range(3)] == [(m.access_number(i) + k) % 256 for k in range(3)]
    assert [m.is_compact(k) for k in range(9)] == [False] + [True] * 7 + [False]


def test_counters_are_monotonic_over_a_year(fleet):
    start = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
    for m in fleet.meters:
        if m.kind == "hca":
            continue
        main = "energy" if m.kind == "heat" else "volume"
        last_main = last_volume = -1.0
        for k in range(0, 400):
            recs, _ = m.records(start + k * 86_400 + (k * 7919) % 86_400)
            assert _value(recs, main) >= last_main
            assert _value(recs, "volume") >= last_volume
            last_main, last_volume = _value(recs, main), _value(recs, "volume")


def test_hca_counts_up_within_a_billing_period_and_restarts(fleet):
    m = _by(fleet, "hca")[0]
    values = []
    for day in range(1, 31):
        values.append(_value(m.records(datetime(2025, 12, day, 12, tzinfo=UTC).timestamp())[0], "hca"))
    assert values == sorted(values) and values[-1] > 0
    jan = m.records(datetime(2026, 1, 2, 12, tzinfo=UTC).timestamp())[0]
    assert _value(jan, "hca") < values[-1]  # restarted at the due date
    assert _value(jan, "date", 1) == "2025-12-31"
    assert _value(jan, "hca", 1) >= values[-1]  # last period's total


def test_heat_meter_physics(fleet, winter):
    for m in _by(fleet, "heat"):
        reg = m.registers(winter)
        delta = reg["flow_c"] - reg["return_c"]
        assert reg["power_kw"] > 0 and delta > 0
        assert reg["power_kw"] == pytest.approx(reg["flow_m3h"] * delta * HEAT_CAPACITY_KWH_M3K)
        # within an hour the registers integrate power and flow exactly
        t0 = winter + 60
        a, b = m.registers(t0), m.registers(t0 + 1800)
        assert b["energy_kwh"] - a["energy_kwh"] == pytest.approx(reg["power_kw"] * 0.5)
        assert b["volume_m3"] - a["volume_m3"] == pytest.approx(reg["flow_m3h"] * 0.5)
        # over a winter month: energy ≈ volume × ΔT × c with ΔT in the heating curve's range
        c, d = m.registers(winter), m.registers(winter + 30 * 86_400)
        mean_delta = (d["energy_kwh"] - c["energy_kwh"]) / ((d["volume_m3"] - c["volume_m3"]) * HEAT_CAPACITY_KWH_M3K)
        assert 8.0 <= mean_delta <= 25.0


def test_annual_consumption_matches_the_configuration(fleet):
    y0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    y1 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for m in _by(fleet, "heat"):
        used = m.registers(y1)["energy_kwh"] - m.registers(y0)["energy_kwh"]
        assert used == pytest.approx(m.annual + m.annual_hot_water, rel=0.02)


def test_winter_month_uses_much_more_heat_than_a_summer_month(fleet):
    m = _by(fleet, "heat", "7")[0]

    def month(mm):
        a = datetime(2026, mm, 1, tzinfo=UTC).timestamp()
        return m.registers(a + 28 * 86_400)["energy_kwh"] - m.registers(a)["energy_kwh"]

    assert month(1) > 3 * month(7)  # summer still has hot water


def test_due_date_and_monthly_values(fleet):
    m = _by(fleet, "heat", "ell")[0]
    t = datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp()
    recs, _ = m.records(t)
    assert _value(recs, "date", 1) == "2025-12-31"
    assert _value(recs, "energy", 1) == float(int(m.registers(_end_of_day(date(2025, 12, 31), m.tz))["energy_kwh"]))
    assert _value(recs, "date", 2) == "2026-02-28"
    monthly = [_value(recs, "energy", s) for s in range(2, 2 + m.monthly)]
    assert len(monthly) == 12 and monthly == sorted(monthly, reverse=True)
    assert monthly[0] == float(int(m.registers(_end_of_day(date(2026, 2, 28), m.tz))["energy_kwh"]))
    assert _value(recs, "energy") >= monthly[0]
    # months before the epoch hold the initial reading
    early, _ = m.records(datetime(2025, 3, 10, tzinfo=UTC).timestamp())
    assert _value(early, "energy", 4) == _value(early, "energy", 13) == float(int(m.initial))
    assert _value(early, "energy", 3) > float(int(m.initial))


def test_error_flags_and_status(fleet, winter):
    meters = [m for m in fleet.meters if m.error_rate > 0]
    seen = set()
    for m in meters:
        for day in range(20):
            recs, status = m.records(winter + day * 86_400)
            flags = _value(recs, "error_flags")
            assert (status == STATUS_ERROR) == (flags != 0)
            seen.add(status)
    assert seen == {0, STATUS_ERROR}
    assert all(m.records(winter + d * 86_400)[1] == 0 for m in _by(fleet, "water") for d in range(5))


def test_meter_datetime_is_local_time(fleet):
    m = fleet.meters[0]
    recs, _ = m.records(datetime(2026, 7, 1, 10, 0, 30, tzinfo=UTC).timestamp())
    assert _value(recs, "datetime") == "2026-07-01T12:00"  # CEST
