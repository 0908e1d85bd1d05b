"""Validation rules (each trips and passes), degree days and their files, estimation methods."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.cloud.domain.billing import validation as v
from omshub.cloud.domain.billing.boundary import Sample, StoredValue
from omshub.cloud.domain.billing.estimation import (
    estimated_area_share,
    from_average,
    from_comparable_units,
    from_previous_period,
)
from omshub.cloud.domain.billing.weather import (
    TemperatureFileError,
    degree_days,
    parse_daily_means,
    per_mille_of,
    split_shares,
)
from omshub.times import UTC

RULES = v.ValidationRules()


def rules_of(findings) -> list[str]:
    return [f.rule for f in findings]


def test_negative_consumption_rollover_and_reset():
    assert v.check_consumption(100.0, 100.0) == []
    assert rules_of(v.check_consumption(100.0, 99.0)) == ["negative_consumption"]
    rolled = v.check_consumption(99_999_990.0, 15.0, rollover_modulus=100_000_000.0, max_delta=1000.0)
    assert rules_of(rolled) == ["rollover"] and rolled[0].details["consumption"] == 25.0
    # a wrap bigger than physically possible is no rollover
    assert rules_of(v.check_consumption(50_000_000.0, 15.0, rollover_modulus=100_000_000.0, max_delta=1000.0)) == [
        "meter_reset"
    ]
    reset = v.check_consumption(5200.0, 3.0)
    assert rules_of(reset) == ["meter_reset"] and reset[0].severity == v.ERROR
    assert "5.200" in reset[0].german and "5,200" in reset[0].message


def test_zero_consumption_counts_only_heating_season_days():
    assert rules_of(v.check_zero(0.0, date(2026, 11, 1), date(2026, 11, 30), RULES)) == ["zero_consumption"]
    assert v.check_zero(0.0, date(2026, 6, 1), date(2026, 8, 31), RULES) == []  # summer
    assert v.check_zero(1.0, date(2026, 11, 1), date(2026, 11, 30), RULES) == []
    assert v.check_zero(0.0, date(2026, 11, 1), date(2026, 11, 20), RULES) == []  # too short


def test_tolerance_bands_depend_on_the_expected_size():
    assert v.check_tolerance(150.0, 100.0, RULES) == []  # +50 % within +60 %
    high = v.check_tolerance(170.0, 100.0, RULES)
    assert rules_of(high) == ["outside_tolerance"] and "+70 %" in high[0].message
    assert v.check_tolerance(16.0, 10.0, RULES) == []  # small values: +70 % allowed
    assert rules_of(v.check_tolerance(5.0, 10.0, RULES)) == ["outside_tolerance"]  # −50 % below −40 %
    assert v.check_tolerance(5.0, None, RULES) == []


def test_implied_power_flow_and_units():
    assert rules_of(v.check_rate(30_000.0, 24.0, "energy", RULES)) == ["implausible_rate"]
    assert v.check_rate(300.0, 24.0, "energy", RULES) == []
    assert rules_of(v.check_rate(2_000.0, 24.0, "volume", RULES)) == ["implausible_rate"]
    assert rules_of(v.check_rate(5_000.0, 24.0, "hca", RULES)) == ["implausible_rate"]
    assert v.check_rate(5.0, 24.0, "hca", RULES) == []


def test_stale_future_unit_duplicates():
    b = datetime(2026, 12, 1, tzinfo=UTC)
    assert rules_of(v.check_stale(b - timedelta(days=8), b, RULES)) == ["stale_reading"]
    assert rules_of(v.check_stale(None, b, RULES)) == ["stale_reading"]
    assert v.check_stale(b - timedelta(days=2), b, RULES) == []
    s = Sample(b + timedelta(hours=2), 1.0, 9)
    assert rules_of(v.check_future(s, b, RULES)) == ["future_timestamp"]
    assert v.check_future(Sample(b + timedelta(minutes=5), 1.0), b, RULES) == []
    assert rules_of(v.check_unit("MWh", "kWh")) == ["unit_mismatch"] and v.check_unit("kWh", "kWh") == []
    same = [Sample(b, 1.0, 1), Sample(b, 1.0, 2)]
    assert v.check_duplicates(same) == []
    assert rules_of(v.check_duplicates([Sample(b, 1.0, 1), Sample(b, 2.0, 2)])) == ["conflicting_duplicate"]


def test_due_date_checks_catch_the_known_decoding_failures():
    telegram_day = date(2027, 1, 5)
    year_2128 = StoredValue(date(2128, 12, 31), 188_888.887, storage=1)
    assert set(rules_of(v.check_due_date(year_2128, telegram_day=telegram_day, total=44.592))) == {
        "due_date_after_telegram",
        "due_date_value_above_total",
    }
    good = StoredValue(date(2026, 12, 31), 44.0, storage=1)
    assert v.check_due_date(good, telegram_day=telegram_day, total=44.592, previous_value=30.0) == []
    assert rules_of(v.check_due_date(good, telegram_day=telegram_day, total=50.0, previous_value=45.0)) == [
        "due_date_value_below_previous"
    ]
    assert rules_of(v.check_due_date(good, telegram_day=telegram_day, total=50.0, installed_on=date(2027, 1, 2))) == [
        "due_date_before_installation"
    ]
    assert v.invalid_due_date("2127-15-31").rule == "invalid_due_date"


def test_a_value_after_an_open_finding_stays_pending():
    assert v.pending_after(["accepted", "open"]) is True
    assert v.pending_after(["accepted", "edited"]) is False


# -- weather ---------------------------------------------------------------------------------------


def test_degree_days_count_only_days_below_the_heating_limit():
    means = {date(2026, 11, 1) + timedelta(days=n): t for n, t in enumerate([5.0, 14.9, 15.0, 18.0, -3.0])}
    dd = degree_days(means, date(2026, 11, 1), date(2026, 11, 6))
    assert dd.value == pytest.approx(15.0 + 5.1 + 23.0)
    assert (dd.days_with_data, dd.days_missing) == (5, 1)


def test_the_per_mille_table_adds_up_to_a_year_and_splits_periods():
    assert per_mille_of(date(2026, 1, 1), date(2026, 12, 31)) == pytest.approx(1000.0)
    assert per_mille_of(date(2026, 1, 1), date(2026, 1, 31)) == pytest.approx(170.0)
    shares, method = split_shares([(date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28))])
    assert method == "per_mille" and shares == pytest.approx([170 / 320, 150 / 320])
    means = {date(2026, 1, 1) + timedelta(days=n): 0.0 for n in range(59)}
    shares, method = split_shares([(date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28))], means)
    assert method == "degree_days" and shares == pytest.approx([31 / 59, 28 / 59])


def test_both_file_layouts_are_read():
    simple = b"date,mean_c\n2026-11-01,4.5\n2026-11-02,-1.25\n"
    assert parse_daily_means(simple) == {date(2026, 11, 1): 4.5, date(2026, 11, 2): -1.25}
    dwd = (
        b"STATIONS_ID;MESS_DATUM;QN_3;  FX;  FM;QN_4; RSK;RSKF; SDK;SHK_TAG;  NM; VPM;  PM; TMK; UPM; TXK; TNK; TGK;eor\n"
        b"        433;20261101;   10;  11.2;   4.1;    3;   0.0;   0;  5.2;   0;  6.1;  8.4; 1011.2;   6.3;  84.0;  10.1;   2.0;   0.1;eor\n"
        b"        433;20261102;   10;  -999;  -999;    3;   0.0;   0;  5.2;   0;  6.1;  8.4; 1011.2;  -999;  84.0;  10.1;   2.0;   0.1;eor\n"
    )
    assert parse_daily_means(dwd) == {date(2026, 11, 1): 6.3}


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, "empty"),
        (b"day,temp\n2026-11-01,3\n", 1, "unknown header"),
        (b"date,mean_c\n2026-13-01,3\n", 2, "not a date"),
        (b"date,mean_c\n2026-11-01,warm\n", 2, "not a number"),
        (b"date,mean_c\n2026-11-01,3\n2026-11-01,4\n", 3, "twice"),
        (b"date,mean_c\n2026-11-01,300\n", 2, "outside"),
        (b"date,mean_c\n2026-11-01\n", 2, "columns"),
        (b"\x00\x01\x02", 1, "not text"),
    ],
)
def test_bad_temperature_files_name_the_line_and_the_reason(data, line, reason):
    with pytest.raises(TemperatureFileError) as e:
        parse_daily_means(data)
    assert e.value.line == line and reason in e.value.reason


@given(st.binary(max_size=400))
def test_any_bytes_give_means_or_a_clear_error(data):
    try:
        out = parse_daily_means(data)
    except TemperatureFileError as e:
        assert e.line >= 1 and e.reason
    else:
        assert all(-90 <= t <= 60 for t in out.values())


# -- estimation ------------------------------------------------------------------------------------


def test_estimation_methods_carry_their_codes_and_explanations():
    prev = from_previous_period(1200.0, previous_scale=3000.0, current_scale=2700.0, heat=True)
    assert prev is not None and prev.value == pytest.approx(1080.0) and prev.code == "07"
    assert "Gradtagzahlen" in prev.german and "degree days" in prev.explanation
    water = from_previous_period(30.0, previous_scale=365.0, current_scale=31.0, heat=False)
    assert water is not None and water.value == pytest.approx(30 * 31 / 365, rel=1e-3) and "Tage" in water.german
    assert from_previous_period(1.0, previous_scale=0.0, current_scale=1.0, heat=True) is None
    comp = from_comparable_units([(1000.0, 80.0), (500.0, 40.0), (99.0, 0.0)], own_area=60.0)
    assert comp is not None and comp.value == pytest.approx(750.0) and comp.code == "15"
    assert comp.inputs["units"] == 2
    avg = from_average(12.5, 70.0, cohort="the building")
    assert avg is not None and avg.value == pytest.approx(875.0) and avg.code == "08"
    assert from_comparable_units([], 50.0) is None


def test_the_25_percent_rule():
    share = estimated_area_share([(60.0, True), (140.0, False)])
    assert share.share == pytest.approx(0.3) and share.over_limit
    assert not estimated_area_share([(50.0, True), (150.0, False)]).over_limit


def test_the_simulators_climate_is_a_temperature_file_omshub_reads():
    """The sample series omshub makes itself (the demo's weather station): the simulator's climate as
    a `date,mean_c` file that the importer reads, with winter colder than summer."""
    from omshub.demo_billing import daily_means_csv
    from omshub.sim.weather import Weather

    class _Fleet:
        weather = Weather(seed=1)

    text = daily_means_csv(_Fleet(), date(2026, 1, 1), date(2026, 12, 31))
    means = parse_daily_means(text.encode())
    assert len(means) == 365
    january = [t for d, t in means.items() if d.month == 1]
    july = [t for d, t in means.items() if d.month == 7]
    assert sum(january) / 31 < sum(july) / 31 - 10
    assert 2000 < degree_days(means, date(2026, 1, 1), date(2026, 12, 31)).value < 5000
