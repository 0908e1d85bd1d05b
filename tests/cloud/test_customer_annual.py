"""The annual information: heat weather-corrected by degree days, hot water never; refused while a
required content block is missing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from omshub.cloud.domain.customer_info import weather_corrected
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.customer_annual import REQUIRED_BLOCKS, annual_information
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models_billing import Property, WeatherDay, WeatherStation
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW, T0


def _year(sc, point: int, quantity: str, year: int, monthly: float) -> None:
    for month in range(1, 13):
        sc.consumption(point, quantity, f"{year}-{month:02d}", monthly)


def test_heat_is_weather_corrected_hot_water_is_not_and_blocks_are_required(s, hub):
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    station = WeatherStation(tenant_id=t.id, code="K1", name="Klima", created_at=T0)
    s.add(station)
    s.flush()
    # 2024: 7.5 °C every day -> 12.5 degree days a day; 2025: 5 °C -> 15 a day
    day = date(2024, 1, 1)
    while day <= date(2025, 12, 31):
        s.add(WeatherDay(station_id=station.id, day=day, mean_c=7.5 if day.year == 2024 else 5.0))
        day += timedelta(days=1)
    prop = s.scalar(select(Property).where(Property.tenant_id == t.id, Property.name == "Lindenhof"))
    prop.weather_station_id = station.id
    # WE01 has heat only; WE02 heat and hot water: 2025 heat 120/month, 2024 100/month; hot water 3 and 2.5 m³
    _year(sc, sc.points["MP2"], "energy", 2025, 120.0)
    _year(sc, sc.points["MP2"], "energy", 2024, 100.0)
    _year(sc, sc.points["MP2W"], "volume", 2025, 3.0)
    _year(sc, sc.points["MP2W"], "volume", 2024, 2.5)
    s.flush()
    with pytest.raises(Invalid, match="content blocks missing: energy_mix") as refused:
        annual_information(s, t.id, sc.units["WE02"], 2025)
    assert "Bausteine" in refused.value.german
    blocks = {name: f"Text zu {name}" for name in REQUIRED_BLOCKS}
    update_settings(s, t.id, {"annual_blocks": {**blocks, "dispute_resolution": " "}}, actor="t", now=NOW)
    with pytest.raises(Invalid, match="dispute_resolution"):
        annual_information(s, t.id, sc.units["WE02"], 2025)
    update_settings(s, t.id, {"annual_blocks": blocks}, actor="t", now=NOW)
    info = annual_information(s, t.id, sc.units["WE02"], 2025)
    heat, water = info["lines"]
    assert heat["current"] == {"value": 1440.0, "status": "measured"}
    assert heat["previous"] == {"value": 1200.0, "status": "measured"}
    dd = heat["corrected"]["degree_days"]
    assert dd == {"current": 365 * 15.0, "previous": 366 * 12.5, "reference": 366 * 12.5}  # 2024 is a leap year
    # 2025 was colder: its 1,440 kWh correspond to 1,440 x 4,575 / 5,475 = 1,203.3 kWh in 2024's climate
    assert heat["corrected"]["current"] == round(1440 * 4575 / 5475, 1) == 1203.3
    assert heat["corrected"]["previous"] == 1200.0
    assert water["kind"] == "hot_water" and water["corrected"] is None
    assert water["current"]["value"] == 36.0 and water["previous"]["value"] == 30.0
    assert info["blocks"]["energy_mix"] == "Text zu energy_mix"
    # a fixed reference climate (long-term mean) corrects both periods
    update_settings(s, t.id, {"reference_degree_days": 5000.0}, actor="t", now=NOW)
    heat = annual_information(s, t.id, sc.units["WE02"], 2025)["lines"][0]
    assert heat["corrected"]["previous"] == round(1200 * 5000 / 4575, 1)


def test_weather_correction_needs_all_figures():
    assert weather_corrected(None, 3000, 2500) is None
    assert weather_corrected(100.0, 0, 2500) is None
    assert weather_corrected(100.0, 2000, 2500) == 125.0
