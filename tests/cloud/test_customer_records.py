"""The monthly information record against hand-computed values (tests/cloud/customer_scenario.py
says where the numbers come from): whole month, move-in and move-out mid-month, a meter swap inside an
occupant's days, a missing month last year, an estimated month, the property and cohort benchmarks,
allocator units, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.customer_delivery import _address_key
from omshub.cloud.services.customer_records import build_month, check_month
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models_customers import CustomerRecord
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW


@pytest.fixture
def scenario(s, hub):
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    sc.counts = build_month(s, t.id, "2026-11", actor="test", now=NOW)
    return sc


def _record(s, sc, name: str) -> CustomerRecord:
    return s.scalar(
        select(CustomerRecord).where(
            CustomerRecord.occupant_id == sc.occupants[name], CustomerRecord.month == "2026-11"
        )
    )


def _line(rec: CustomerRecord, kind: str) -> dict:
    return next(line for line in rec.content["lines"] if line["kind"] == kind)


def test_a_whole_month_with_previous_month_last_year_and_benchmarks(s, scenario):
    rec = _record(s, scenario, "Anna")
    heat = _line(rec, "heat")
    assert heat["unit"] == "kWh"
    assert heat["month"] == {"value": 500, "status": "measured"}
    assert heat["previous"] == {"value": 300, "status": "measured"}
    assert heat["last_year"] == {"value": 550, "status": "measured"}
    # property: WE01 500/50, WE02 1100/100, WE03 700/70 (WE04 is estimated: no benchmark) -> 2300/220
    prop = heat["benchmarks"]["property"]
    assert prop["size"] == 3 and prop["per_m2"] == pytest.approx(2300 / 220, abs=1e-4)
    assert prop["value"] == pytest.approx(round(2300 / 220 * 50, 1))  # 522.7
    # cohort district_heat × 7-12 × 50-80 m²: WE01 500/50, WE03 700/70, WE05 600/60, WE06 440/55
    cohort = heat["benchmarks"]["cohort"]
    assert cohort["key"] == "energy_carrier=district_heat|size_class=7-12|flat_size=50-80"
    assert cohort["size"] == 4 and cohort["value"] == pytest.approx(round(2240 / 235 * 50, 1))  # 476.6
    assert cohort["basis"] == "unit_heat_meter_kwh_per_m2_same_month"
    assert [h["month"] for h in heat["history"]] == [f"2025-{m:02d}" for m in (11, 12)] + [
        f"2026-{m:02d}" for m in range(1, 12)
    ]
    assert heat["history"][1] == {"month": "2025-12", "value": None, "status": "not_collected"}
    assert rec.complete and rec.gaps == [] and rec.day_from.isoformat() == "2026-11-01"


def test_move_out_and_move_in_mid_month_split_the_month_and_hide_the_other_occupants_months(s, scenario):
    carl, dora = _record(s, scenario, "Carl"), _record(s, scenario, "Dora")
    assert (carl.day_from.isoformat(), carl.day_to.isoformat()) == ("2026-11-01", "2026-11-15")
    assert _line(carl, "heat")["month"] == {"value": 300.0, "status": "measured"}  # 10300 - 10000
    assert _line(carl, "heat")["previous"]["value"] == 400 and _line(carl, "heat")["last_year"]["value"] == 650
    heat = _line(dora, "heat")
    assert heat["month"] == {"value": 400.0, "status": "interpolated"}  # 10700 - 10300
    # Dora was not there before: her M-1, last year and earlier chart months are not hers to see
    assert heat["previous"] == {"value": None, "status": "before_move_in"}
    assert heat["last_year"] == {"value": None, "status": "before_move_in"}
    assert all(h["status"] == "before_move_in" for h in heat["history"][:-1])
    # benchmarks scaled to her 15 of 30 days
    assert heat["benchmarks"]["property"]["value"] == pytest.approx(round(2300 / 220 * 70 * 0.5, 1))


def test_a_meter_swap_inside_an_occupants_days(s, scenario):
    frida, bert = _record(s, scenario, "Frida"), _record(s, scenario, "Bert")
    # Frida from 10 Nov: old meter 4500 -> 5000 (removed), new meter 0 -> 300: 800 kWh
    assert _line(frida, "heat")["month"] == {"value": 800.0, "status": "measured"}
    assert _line(bert, "heat")["month"] == {"value": 300.0, "status": "measured"}
    assert _line(frida, "hot_water")["month"] == {"value": 2.5, "status": "measured"}
    assert _line(frida, "hot_water")["unit"] == "m³"
    # the cohort 80-120 m² has WE02 and WE07 only: fewer than 3, not shown
    assert _line(frida, "heat")["benchmarks"]["cohort"]["status"] == "too_small"
    assert _line(frida, "heat")["benchmarks"]["property"]["value"] == pytest.approx(round(2300 / 220 * 100 * 0.7, 1))


def test_estimated_month_and_missing_last_year_are_marked_and_make_the_record_incomplete(s, scenario):
    rec = _record(s, scenario, "Emil")
    heat = _line(rec, "heat")
    assert heat["month"] == {"value": 640, "status": "estimated"}
    assert heat["last_year"] == {"value": None, "status": "not_collected"}  # never a silent zero
    assert not rec.complete and rec.gaps == ["estimated:heat"]


def test_allocator_units_stay_units_unless_a_declared_conversion_exists(s, scenario, hub):
    gina = _line(_record(s, scenario, "Gina"), "hca")
    assert gina["unit"] == "units" and gina["notes"] == ["hca_units"]
    assert gina["month"]["value"] == 120
    assert gina["benchmarks"]["cohort"]["status"] == "not_comparable"
    tenant_id = _record(s, scenario, "Gina").tenant_id
    conv = {"method": "annual_bill_ratio", "version": "2026-1", "kwh_per_unit": 7.5}
    update_settings(s, tenant_id, {"hca_conversion": conv}, actor="test", now=NOW)
    counts = build_month(s, tenant_id, "2026-11", actor="test", now=NOW)
    assert counts["changed"] == 1
    rec = _record(s, scenario, "Gina")
    gina = _line(rec, "hca")
    assert gina["unit"] == "kWh" and gina["month"]["value"] == 900.0
    assert gina["notes"] == ["hca_converted:annual_bill_ratio:2026-1"] and rec.revision == 2


def test_computing_again_changes_nothing(s, scenario):
    tenant_id = _record(s, scenario, "Anna").tenant_id
    assert scenario.counts["new"] == 10  # 7 occupants' stays (2 units split), WE05-07 vacant
    again = build_month(s, tenant_id, "2026-11", actor="test", now=NOW)
    assert (again["new"], again["changed"], again["unchanged"]) == (0, 0, 10)


def test_a_month_not_over_is_refused(s, hub):
    t = hub.tenant()
    with pytest.raises(Invalid, match="not over"):
        build_month(s, t.id, "2026-12", actor="test", now=NOW)
    with pytest.raises(Invalid, match="YYYY-MM"):
        build_month(s, t.id, "2026-13", actor="test", now=datetime(2027, 1, 5, tzinfo=UTC))


def test_the_cohort_is_configurable(s, scenario):
    tenant_id = _record(s, scenario, "Anna").tenant_id
    update_settings(s, tenant_id, {"cohort_keys": ["energy_carrier"], "min_cohort": 2}, actor="test", now=NOW)
    build_month(s, tenant_id, "2026-11", actor="test", now=NOW)
    cohort = _line(_record(s, scenario, "Frida"), "heat")["benchmarks"]["cohort"]
    # every measured district-heat unit: WE01 500/50, WE02 1100/100, WE03 700/70, WE05 600/60, WE06 440/55,
    # WE07 990/90 -> 4330 kWh / 425 m²; Frida: × 100 m² × 21/30 days
    assert cohort["key"] == "energy_carrier=district_heat" and cohort["size"] == 6
    assert cohort["value"] == pytest.approx(round(4330 / 425 * 100 * 0.7, 1))


@given(st.text(max_size=12) | st.from_regex(r"\A\d{4}-\d{2}\Z"))
def test_any_month_text_is_taken_or_refused_with_a_reason(text):
    try:
        month = check_month(text, datetime(2030, 1, 1, tzinfo=UTC))
    except Invalid as exc:
        assert "month" in exc.message or "Monat" in exc.german
    else:
        assert len(month) == 7 and 1 <= int(month[5:]) <= 12


@given(st.text(max_size=200))
def test_any_postal_address_sorts(address):
    key = _address_key(address)
    assert isinstance(key, tuple) and len(key) == 4
