"""One metering point's billing values from synthetic inputs (services/billing_compute.py): meters with
and without stored values, the due date, a rollover, a gap, DST months, a move-out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from omshub.cloud.domain.billing.boundary import BoundaryRules, Sample, StoredValue
from omshub.cloud.domain.billing.periods import Occupancy, billing_year, local_midnight, month_period
from omshub.cloud.domain.billing.validation import ValidationRules
from omshub.cloud.services.billing_compute import compute_point
from omshub.cloud.services.billing_inputs import MeterRun, PointInputs, stored_of
from omshub.cloud.store.reading_values import typed_values

RULES, BRULES = ValidationRules(), BoundaryRules()


def daily(first: date, days: int, start: float, per_day: float, hour: int = 11) -> list[Sample]:
    return [
        Sample(
            datetime(first.year, first.month, first.day, hour, tzinfo=UTC) + timedelta(days=n), start + per_day * n, n
        )
        for n in range(days)
    ]


def point(samples, stored=(), *, stays=(), installed=datetime(2020, 1, 1, tzinfo=UTC), due=(12, 31)) -> PointInputs:
    run = MeterRun(1, "KAM 12345678", "energy", installed, None, {}, None)
    p = PointInputs(7, "MP-7", 3, 1, "Europe/Berlin", due, None, runs=[run])
    p.samples[1] = list(samples)
    p.received[1] = [s.at for s in samples]
    p.stored[1] = list(stored)
    p.stays = list(stays)
    return p


@pytest.mark.parametrize(("year", "month", "hours"), [(2026, 10, 745), (2027, 3, 743), (2026, 11, 720)])
def test_month_boundaries_are_local_midnights_across_dst(year, month, hours):
    period = month_period(year, month)
    first = period.first_day - timedelta(days=3)
    result = compute_point(point(daily(first, 40, 100.0, 24.0)), period, rules=RULES, boundary_rules=BRULES)
    start, end = result.boundaries[0], result.boundaries[-1]
    assert start.at == local_midnight(period.first_day) and end.at == period.end
    assert (end.at - start.at) == timedelta(hours=hours)
    # 24 kWh per day at 11:00 UTC: the interpolated consumption is exactly 1 kWh per hour
    assert result.consumption.value == pytest.approx(hours)
    assert {b.value.origin.value for b in result.boundaries} == {"interpolated"}


def test_a_month_end_value_stored_by_the_meter_is_used_and_the_due_date_is_a_main_reading():
    year = billing_year(12, 31, 2026)
    december = month_period(2026, 12)
    samples = daily(date(2026, 11, 25), 45, 5000.0, 10.0)
    stored = [
        StoredValue(
            date(2026, 11, 30), 5055.0, storage=2, telegram_id=9, received_at=datetime(2026, 12, 2, tzinfo=UTC)
        ),
        StoredValue(
            date(2026, 12, 31), 5366.0, storage=1, telegram_id=40, received_at=datetime(2027, 1, 2, tzinfo=UTC)
        ),
    ]
    result = compute_point(point(samples, stored), december, rules=RULES, boundary_rules=BRULES)
    start, end = result.boundaries[0], result.boundaries[-1]
    assert (start.value.origin.value, start.value.value, start.code, start.reason) == (
        "meter_stored",
        5055.0,
        "12",
        "month",
    )
    assert (end.value.origin.value, end.value.value, end.code, end.reason) == ("meter_stored", 5366.0, "11", "due_date")
    assert result.consumption.value == pytest.approx(311.0)
    assert end.at == year.end


def test_a_gap_leaves_the_value_missing_and_says_so():
    period = month_period(2026, 11)
    samples = daily(date(2026, 10, 25), 10, 100.0, 5.0)  # nothing after 3 November
    result = compute_point(point(samples), period, rules=RULES, boundary_rules=BRULES)
    assert result.boundaries[-1].value.origin.value == "missing" and result.boundaries[-1].code is None
    assert result.consumption.value is None and result.consumption.quality.value == "missing"
    assert "stale_reading" in {f.rule for f in result.findings}


def test_a_drop_is_a_finding_never_a_silent_negative():
    period = month_period(2026, 11)
    samples = daily(date(2026, 10, 28), 10, 100.0, 5.0) + daily(date(2026, 11, 7), 30, 20.0, 5.0)
    result = compute_point(point(samples), period, rules=RULES, boundary_rules=BRULES)
    assert {"meter_reset"} <= {f.rule for f in result.findings}


def test_move_out_and_move_in_boundaries():
    period = month_period(2026, 11)
    stays = [Occupancy("1", date(2020, 1, 1), date(2026, 11, 14)), Occupancy("2", date(2026, 11, 20))]
    result = compute_point(
        point(daily(date(2026, 10, 25), 45, 0.0, 24.0), stays=stays), period, rules=RULES, boundary_rules=BRULES
    )
    reasons = [(b.day, b.reason) for b in result.boundaries]
    assert reasons == [
        (date(2026, 11, 1), "month"),
        (date(2026, 11, 15), "move_out"),
        (date(2026, 11, 20), "move_in"),
        (date(2026, 12, 1), "month"),
    ]


def test_a_meter_installed_mid_month_starts_at_its_installation_value():
    period = month_period(2026, 11)
    installed = datetime(2026, 11, 10, 8, tzinfo=UTC)
    p = point(daily(date(2026, 11, 10), 25, 3.0, 2.0), installed=installed)
    p.runs[0].initial_values = {"energy": 1.0}
    result = compute_point(p, period, rules=RULES, boundary_rules=BRULES)
    # no meter at the month's start: no boundary value there; the run starts at the installation
    assert [b.day for b in result.boundaries] == [date(2026, 12, 1)]
    assert result.consumption.runs[0]["start"] == 1.0 and result.consumption.runs[0]["start_origin"] == "measured"


class _Reading:
    def __init__(self, stored: bytes, at: datetime):
        self.stored, self.timestamp, self.received_at, self.telegram_id = stored, at, at, 5


def test_stored_dates_of_every_form_resolve_to_their_day():
    records = [
        {"quantity": "date", "unit": "", "value": "--12-31", "storage": 1, "tariff": 0, "subunit": 0},
        {"quantity": "energy", "unit": "kWh", "value": 10.0, "storage": 1, "tariff": 0, "subunit": 0},
        {"quantity": "datetime", "unit": "", "value": "2026-12-01T00:00", "storage": 2, "tariff": 0, "subunit": 0},
        {"quantity": "energy", "unit": "kWh", "value": 20.0, "storage": 2, "tariff": 0, "subunit": 0},
        {"quantity": "date", "unit": "", "value": "2026-02-31", "storage": 3, "tariff": 0, "subunit": 0},
        {"quantity": "energy", "unit": "kWh", "value": 30.0, "storage": 3, "tariff": 0, "subunit": 0},
    ]
    stored_blob = typed_values({"records": records})["stored"]
    from zoneinfo import ZoneInfo

    values, bad = stored_of(
        _Reading(stored_blob, datetime(2027, 1, 5, tzinfo=UTC)), "energy", ZoneInfo("Europe/Berlin")
    )
    assert sorted((s.storage, s.day) for s in values) == [(1, date(2026, 12, 31)), (2, date(2026, 11, 30))]
    assert bad == ["2026-02-31"]


def hca_point(samples, stored, due):
    p = point(samples, stored, due=due)
    p.runs[0].quantity = "hca"
    return p


def test_a_heat_cost_allocator_restarts_at_its_due_date():
    # 10 units a day; the allocator restarts from 0 after 31 December and stores 365 for that day
    def units(day: date) -> float:
        start = date(2026, 1, 1) if day.year == 2026 else date(2027, 1, 1)
        return 10.0 * (day - start).days

    days = [date(2026, 11, 25) + timedelta(days=n) for n in range(75)]
    samples = [Sample(datetime(d.year, d.month, d.day, 11, tzinfo=UTC), units(d), n) for n, d in enumerate(days)]
    stored = [
        StoredValue(
            date(2026, 12, 31), 3650.0, storage=1, telegram_id=40, received_at=datetime(2027, 1, 1, 11, tzinfo=UTC)
        )
    ]
    december = compute_point(
        hca_point(samples, stored, (12, 31)), month_period(2026, 12), rules=RULES, boundary_rules=BRULES
    )
    end = december.boundaries[-1]
    assert (end.reason, end.value.origin.value, end.value.value, end.code) == ("due_date", "meter_stored", 3650.0, "11")
    # from the value interpolated at 1 December 00:00 CET (30 November 23:00 UTC) to the stored 3,650
    assert december.consumption.value == pytest.approx(3650.0 - (3330.0 + 10 * 12 / 24))
    january = compute_point(
        hca_point(samples, stored, (12, 31)), month_period(2027, 1), rules=RULES, boundary_rules=BRULES
    )
    assert january.consumption.runs[0]["start"] == 0.0 and january.consumption.value == pytest.approx(
        310.0 - 10 * 13 / 24 + 10 * 11 / 24 - 10 * 11 / 24 + 10 * 13 / 24 - 10 * 13 / 24 + 10 * 13 / 24, abs=6
    )
    assert not {"meter_reset", "negative_consumption"} & {f.rule for f in december.findings + january.findings}


def test_an_allocator_due_date_inside_a_month_splits_its_consumption():
    # due date 15 September: the allocator restarts on 16 September
    def units(day: date) -> float:
        return 10.0 * ((day - date(2025, 9, 16)).days if day < date(2026, 9, 16) else (day - date(2026, 9, 16)).days)

    days = [date(2026, 8, 25) + timedelta(days=n) for n in range(45)]
    samples = [Sample(datetime(d.year, d.month, d.day, 11, tzinfo=UTC), units(d), n) for n, d in enumerate(days)]
    stored = [
        StoredValue(
            date(2026, 9, 15), 3650.0, storage=1, telegram_id=1, received_at=datetime(2026, 9, 16, 11, tzinfo=UTC)
        )
    ]
    september = compute_point(
        hca_point(samples, stored, (9, 15)), month_period(2026, 9), rules=RULES, boundary_rules=BRULES
    )
    before, after = september.consumption.runs
    assert before["end"] == 3650.0 and after["start"] == 0.0
    assert september.consumption.value == pytest.approx(before["consumption"] + after["consumption"])
    assert 290 < september.consumption.value < 310  # 30 days of 10 units
    assert not {"meter_reset", "negative_consumption"} & {f.rule for f in september.findings}


def test_a_register_that_wraps_at_its_digits_is_a_rollover_not_a_reset():
    period = month_period(2026, 11)
    # an 8-digit display at 99,999,9xx kWh wraps to 0 in the middle of the month
    samples = daily(date(2026, 10, 28), 10, 99_999_700.0, 24.0) + daily(date(2026, 11, 7), 30, 50.0, 24.0)
    result = compute_point(point(samples), period, rules=RULES, boundary_rules=BRULES)
    found = {f.rule: f for f in result.findings}
    assert "rollover" in found and "meter_reset" not in found
    assert found["rollover"].details["modulus"] == 100_000_000.0
