"""Billing periods and boundary values: the pure rules (cloud/domain/billing)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.cloud.domain.billing.boundary import (
    BoundaryRules,
    Sample,
    StoredValue,
    boundary_value,
    resolve_day_month,
)
from omshub.cloud.domain.billing.consumption import Run, period_consumption
from omshub.cloud.domain.billing.origins import Origin, Quality, tabelle_s_code
from omshub.cloud.domain.billing.periods import (
    Occupancy,
    billing_year,
    billing_year_containing,
    local_midnight,
    month_period,
    months_of,
    occupancy_problems,
    parse_month,
    segments,
)
from omshub.times import UTC


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- periods ---------------------------------------------------------------------------------------


def test_a_month_runs_from_local_midnight_to_local_midnight_across_the_autumn_switch():
    october = month_period(2026, 10)
    assert october.start == utc(2026, 9, 30, 22)  # 00:00 CEST
    assert october.end == utc(2026, 10, 31, 23)  # 00:00 CET: the month has 745 hours
    assert (october.end - october.start) == timedelta(hours=745)
    assert october.days == 31 and october.label == "2026-10"


def test_the_spring_month_is_an_hour_short():
    march = month_period(2027, 3)
    assert march.start == utc(2027, 2, 28, 23)
    assert march.end == utc(2027, 3, 31, 22)
    assert march.end - march.start == timedelta(hours=743)


def test_december_ends_on_new_year_and_other_zones_are_honoured():
    december = month_period(2026, 12, "America/New_York")
    assert december.end == utc(2027, 1, 1, 5)
    assert december.last_day == date(2026, 12, 31)


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "26-11", "", "2026-00", "abcd-ef", "1969-12"])
def test_a_bad_month_is_refused_with_the_expected_form(text):
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)


def test_billing_years_with_the_default_and_other_due_dates():
    calendar = billing_year(12, 31, 2026)
    assert (calendar.first_day, calendar.last_day, calendar.label) == (date(2026, 1, 1), date(2026, 12, 31), "2026")
    assert calendar.end == local_midnight(date(2027, 1, 1))
    june = billing_year(6, 30, 2027)
    assert (june.first_day, june.last_day, june.label) == (date(2026, 7, 1), date(2027, 6, 30), "2026/27")
    assert billing_year_containing(date(2026, 7, 1), 6, 30) == june
    assert billing_year_containing(date(2026, 6, 30), 6, 30).last_day == date(2026, 6, 30)
    leap = billing_year(2, 29, 2029)  # 29 February falls on the 28th in other years
    assert (leap.first_day, leap.last_day) == (date(2028, 3, 1), date(2029, 2, 28))
    assert [m.label for m in months_of(june)][:2] == ["2026-07", "2026-08"] and len(months_of(june)) == 12


def test_occupancies_cut_a_period_into_segments_without_gap_or_overlap():
    year = billing_year(12, 31, 2026)
    occ = [
        Occupancy("A", date(2020, 1, 1), date(2026, 3, 15)),
        Occupancy("B", date(2026, 4, 1), None),
    ]
    assert occupancy_problems(occ) == []
    parts = segments(year, occ)
    assert [(p.occupant, p.period.first_day, p.period.last_day) for p in parts] == [
        ("A", date(2026, 1, 1), date(2026, 3, 15)),
        (None, date(2026, 3, 16), date(2026, 3, 31)),
        ("B", date(2026, 4, 1), date(2026, 12, 31)),
    ]
    assert sum(p.period.days for p in parts) == year.days
    assert parts[0].period.end == parts[1].period.start


def test_overlapping_or_backwards_occupancies_are_named():
    problems = occupancy_problems(
        [
            Occupancy("A", date(2026, 1, 1), date(2026, 5, 1)),
            Occupancy("B", date(2026, 5, 1), None),
            Occupancy("C", date(2026, 6, 1), date(2026, 5, 1)),
        ]
    )
    assert any("A" in en and "overlaps B" in en and "überschneidet sich mit B" in de for en, de in problems)
    assert any(en.startswith("C: moved out") and de.startswith("C: Auszug (01.05.2026)") for en, de in problems)


@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 60)), min_size=0, max_size=6),
    st.integers(2025, 2028),
)
def test_segments_always_cover_the_period_exactly(stays, year):
    period = billing_year(12, 31, year)
    occ, cursor = [], date(year - 1, 12, 1)
    for n, (gap, length) in enumerate(stays):
        moved_in = cursor + timedelta(days=gap)
        moved_out = moved_in + timedelta(days=length)
        occ.append(Occupancy(f"o{n}", moved_in, moved_out))
        cursor = moved_out + timedelta(days=1)
    assert occupancy_problems(occ) == []
    parts = segments(period, occ)
    assert parts[0].period.first_day == period.first_day and parts[-1].period.last_day == period.last_day
    for a, b in zip(parts, parts[1:], strict=False):
        assert a.period.last_day + timedelta(days=1) == b.period.first_day
    assert sum(p.period.days for p in parts) == period.days


# -- boundary values -------------------------------------------------------------------------------

NOV = month_period(2026, 11)  # boundary: 2026-11-01 00:00 CET = 2026-10-31T23:00Z


def test_a_stored_month_end_value_answers_the_boundary_after_its_day():
    stored = [StoredValue(date(2026, 10, 31), 1234.0, storage=2, telegram_id=7, received_at=utc(2026, 11, 3))]
    samples = [Sample(utc(2026, 10, 31, 22, 30), 1230.0, 5)]
    v = boundary_value(NOV.start, NOV.first_day, samples, stored)
    assert (v.value, v.origin, v.quality) == (1234.0, Origin.METER_STORED, Quality.MEASURED)
    assert v.details == {"storage": 2, "stored_day": "2026-10-31", "telegram_id": 7}
    assert tabelle_s_code(v.origin, main=False) == "12"
    assert tabelle_s_code(v.origin, main=True) == "11"


def test_a_reading_within_the_distance_is_measured_else_interpolated_with_its_gap():
    near = [Sample(utc(2026, 10, 31, 22, 40), 100.0, 1), Sample(utc(2026, 11, 1, 10), 112.0, 2)]
    v = boundary_value(NOV.start, NOV.first_day, near)
    assert (v.value, v.origin, v.details["distance_s"]) == (100.0, Origin.MEASURED, -20 * 60)
    far = [Sample(utc(2026, 10, 31, 11), 100.0, 1), Sample(utc(2026, 11, 1, 11), 124.0, 2)]
    v = boundary_value(NOV.start, NOV.first_day, far)
    assert v.origin is Origin.INTERPOLATED and v.value == pytest.approx(112.0)
    assert v.details["gap_s"] == 86_400 and v.details["telegram_ids"] == [1, 2]
    assert tabelle_s_code(v.origin, main=False) == "13"


def test_no_value_is_made_up_where_readings_are_too_far_apart_or_one_side_is_missing():
    gap = [Sample(utc(2026, 10, 20), 100.0), Sample(utc(2026, 11, 10), 130.0)]
    v = boundary_value(NOV.start, NOV.first_day, gap)
    assert (v.value, v.origin, v.quality) == (None, Origin.MISSING, Quality.MISSING)
    assert "apart" in v.details["reason"]
    only_before = boundary_value(NOV.start, NOV.first_day, gap[:1])
    assert only_before.origin is Origin.MISSING and "after" in only_before.details["reason"]
    assert tabelle_s_code(Origin.MISSING, main=True) is None
    wider = boundary_value(NOV.start, NOV.first_day, gap, rules=BoundaryRules(interpolate_within=timedelta(days=30)))
    assert wider.origin is Origin.INTERPOLATED


@pytest.mark.parametrize(
    ("day", "month", "not_after", "expected"),
    [
        (31, 12, date(2027, 1, 10), date(2026, 12, 31)),
        (31, 12, date(2026, 12, 31), date(2026, 12, 31)),
        (1, 1, date(2026, 12, 31), date(2026, 1, 1)),
        (29, 2, date(2027, 3, 1), date(2024, 2, 29)),
        (31, 4, date(2027, 3, 1), None),
    ],
)
def test_day_month_dates_resolve_to_the_latest_occurrence_not_after_the_telegram(day, month, not_after, expected):
    assert resolve_day_month(day, month, not_after) == expected


def test_consumption_across_a_swap_never_jumps():
    start = boundary_value(NOV.start, NOV.first_day, [Sample(NOV.start, 5000.0)])
    removal = boundary_value(utc(2026, 11, 15, 9), date(2026, 11, 15), [Sample(utc(2026, 11, 15, 9), 5200.0)])
    installed = boundary_value(utc(2026, 11, 15, 9), date(2026, 11, 15), [Sample(utc(2026, 11, 15, 9), 0.0)])
    end = boundary_value(NOV.end, date(2026, 12, 1), [Sample(NOV.end, 180.0)])
    c = period_consumption([Run("old", start, removal), Run("new", installed, end)])
    assert c.value == pytest.approx(380.0) and c.quality is Quality.MEASURED
    assert [r["consumption"] for r in c.runs] == [200.0, 180.0]
    missing = boundary_value(NOV.end, date(2026, 12, 1), [])
    assert period_consumption([Run("new", installed, missing)]).value is None
