from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from omshub.sim.consumption import HEAT, HEAT_VOLUME, HOT_WATER, WATER, Climate, heating_curve, monthly_totals
from omshub.sim.weather import Weather

EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def climate() -> Climate:
    return Climate(Weather(seed=3), ZoneInfo("Europe/Berlin"), EPOCH)


def _month_mean(w: Weather, year: int, month: int) -> float:
    h0 = int(datetime(year, month, 1, tzinfo=UTC).timestamp() // 3600)
    return sum(w.hour_temperature(h0 + k) for k in range(24 * 28)) / (24 * 28)


def test_weather_is_deterministic_and_seeded():
    a, b, c = Weather(seed=1), Weather(seed=1), Weather(seed=2)
    hours = range(490_000, 490_000 + 500)
    assert [a.hour_temperature(h) for h in hours] == [b.hour_temperature(h) for h in hours]
    assert [a.hour_temperature(h) for h in hours] != [c.hour_temperature(h) for h in hours]


def test_weather_has_seasons_and_days():
    w = Weather(seed=5)
    assert _month_mean(w, 2026, 1) + 10 < _month_mean(w, 2026, 7)
    # afternoon warmer than before dawn, on average over a month
    h0 = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp() // 3600)
    dawn = sum(w.hour_temperature(h0 + 24 * d + 3) for d in range(30))  # 04:00 CET
    noon = sum(w.hour_temperature(h0 + 24 * d + 14) for d in range(30))  # 15:00 CET
    assert noon > dawn + 30 * 4


def test_heating_degree_days_are_plausible_for_central_europe():
    w = Weather(seed=11)
    g20 = w.heating_degree_days(date(2026, 1, 1), date(2027, 1, 1), 20.0, 15.0)
    hdd15 = w.heating_degree_days(date(2026, 1, 1), date(2027, 1, 1), 15.0, 15.0)
    assert 2800 < g20 < 4800
    assert hdd15 < g20


def test_winter_consumption_far_exceeds_summer(climate):
    heat = monthly_totals(climate.profile(20.0, 15.0, 0), HEAT, 2026)
    winter = heat[0] + heat[1] + heat[11]
    summer = heat[5] + heat[6] + heat[7]
    assert winter > 8 * summer
    assert 0.8 < sum(heat) < 1.25  # normalised to about one year of demand
    hot = monthly_totals(climate.profile(20.0, 15.0, 0), HOT_WATER, 2026)
    assert max(hot) < 1.5 * min(hot)  # hot water: all year round


def test_cumulative_integrates_rates_exactly(climate):
    p = climate.profile(20.0, 15.0, 2)
    t = datetime(2026, 2, 3, 5, 0, tzinfo=UTC).timestamp()
    for series in (HEAT, HOT_WATER, HEAT_VOLUME, WATER):
        rate = p.snapshot(t + 10).rate[series]
        assert p.cumulative(series, t + 3000) - p.cumulative(series, t + 600) == pytest.approx(rate * 2400 / 3600)


def test_daily_profile_has_night_setback(climate):
    p = climate.profile(20.0, 15.0, 0)
    night = morning = 0.0
    for day in range(10):
        base = datetime(2026, 1, 5 + day, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
        night += p.snapshot(base + 3 * 3600).rate[HEAT]
        morning += p.snapshot(base + 7 * 3600).rate[HEAT]
    assert morning > 1.5 * night


def test_before_the_epoch_nothing_is_consumed(climate):
    p = climate.profile(20.0, 15.0, 0)
    assert p.cumulative(HEAT, EPOCH - 86_400) == 0.0
    assert p.snapshot(EPOCH - 5).cumulative == (0.0,) * 5


def test_heating_curve_is_bounded():
    for outdoor in (-30.0, 0.0, 25.0):
        flow, delta = heating_curve(outdoor)
        assert 45.0 <= flow <= 75.0 and 8.0 <= delta <= 25.0
