"""Real telegrams of district-heat and sub-metering meters whose driver files hold tests only
(landisgyr, engelmann, itron, zenner, qundis; docs/drivers.md): what omshub decodes equals what
another open decoder printed for them, field by field. The telegrams are read from
``../shared/vectors`` (never copied into the repository)."""

from __future__ import annotations

import json

import pytest

from omshub.codec import FormatCache, decode, parse_hex


def _entries(shared_vectors, driver: str) -> list[dict]:
    lines = (shared_vectors / "wmbusmeters-public.jsonl").read_text().splitlines()
    found = [e for e in map(json.loads, lines) if e["driver"] == driver]
    assert found, f"no {driver} telegram in the corpus"
    return found


def _fields(entry: dict) -> dict:
    key = bytes.fromhex(entry["key"]) if entry.get("key") else None
    return decode(parse_hex(entry["telegram"]), key=key, formats=FormatCache())["fields"]


def _monthly(fields: dict, name: str) -> dict[int, float]:
    return {m["storage"]: m[name] for m in fields.get("monthly", ())}


def test_landis_gyr_ultraheat(shared_vectors) -> None:
    for entry in _entries(shared_vectors, "ultraheat"):
        f, e = _fields(entry), entry["expected"]
        assert f["total_energy_kwh"] == pytest.approx(e["heat_kwh"])
        assert f["total_volume_m3"] == pytest.approx(e["volume_m3"])
        assert (f["flow_temperature_c"], f["return_temperature_c"]) == (e["flow_c"], e["return_c"])
        assert f["meter_datetime"].replace("T", " ").startswith(e["meter_datetime"])
        if "target_kwh" in e:
            assert f["due_date_energy_kwh"] == pytest.approx(e["target_kwh"])


def test_landis_gyr_walk_by_month_end_values(shared_vectors) -> None:
    for entry in _entries(shared_vectors, "qheat_55_us"):
        f, e = _fields(entry), entry["expected"]
        assert f["total_energy_kwh"] == e["total_energy_consumption_kwh"]
        assert f["due_datetime"].replace("T", " ") == e["key_datetime"]
        assert f["due_date_energy_kwh"] == e["key_datetime_kwh"]
        monthly = _monthly(f, "energy_kwh")
        for n in range(1, 14):  # the n-th previous month is storage n + 1
            assert monthly[n + 1] == e[f"prev_{n}_month_kwh"]
        assert f["monthly"][0]["date"].replace("T", " ") == e["prev_month_datetime"]


def test_engelmann_sensostar(shared_vectors) -> None:
    for entry in _entries(shared_vectors, "sensostar"):
        f, e = _fields(entry), entry["expected"]
        assert f["total_energy_kwh"] == e["total_kwh"]
        if "total_water_m3" in e:  # not printed for every telegram
            assert f["total_volume_m3"] == pytest.approx(e["total_water_m3"])
        if "target_kwh" in e:
            assert f["due_date_energy_kwh"] == e["target_kwh"]
        monthly = _monthly(f, "energy_kwh")
        targets = {int(k.split("_")[1]): v for k, v in e.items() if k.startswith("target_") and k[7].isdigit()}
        for storage, value in targets.items():
            assert monthly[storage] == value, storage


def test_itron_heat(shared_vectors) -> None:
    for entry in _entries(shared_vectors, "itronheat"):
        f, e = _fields(entry), entry["expected"]
        assert (f["total_energy_kwh"], f["total_volume_m3"]) == (e["total_kwh"], pytest.approx(e["total_m3"]))
        assert f["due_date"] == e["last_year_date"]
        assert f.get("due_date_energy_kwh") == e.get("last_year_kwh")  # none when only an error-state value is sent


def test_zenner_hca_profile(shared_vectors) -> None:
    for entry in _entries(shared_vectors, "caltose"):
        f, e = _fields(entry), entry["expected"]
        assert (f["current_hca"], f["due_date_hca"], f["due_date"]) == (
            e["consumption_hca"],
            e["target_hca"],
            e["target_date"],
        )
        monthly = _monthly(f, "hca")
        assert monthly[8] == e["base_hca"] and f["monthly"][0]["date"] == e["base_date"]
        for n in range(1, 5):  # the profile's n-th value is storage 8 + n
            assert monthly[8 + n] == e[f"consumption_{n}_hca"]
