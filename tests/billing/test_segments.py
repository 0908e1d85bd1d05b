"""Consumption per occupant segment (domain/billing/segments.py), numbers by hand: readings at both
ends (12), a split by days for water (13), by degree days for heat (14), by the VDI 2067 table where
no series covers the days (14 too)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from omshub.cloud.domain.billing.boundary import BoundaryValue
from omshub.cloud.domain.billing.origins import Origin
from omshub.cloud.domain.billing.periods import Occupancy, month_period, segments
from omshub.cloud.domain.billing.segments import segment_consumption

NOVEMBER = month_period(2026, 11)
MOVES = [Occupancy("1", date(2020, 1, 1), date(2026, 11, 15)), Occupancy("2", date(2026, 11, 16))]


def test_readings_at_the_move_give_each_occupant_the_difference():
    segs = segments(NOVEMBER, MOVES)
    move = segs[1].period.start
    values = {
        NOVEMBER.start: BoundaryValue(NOVEMBER.start, 1000.0, Origin.METER_STORED),
        move: BoundaryValue(move, 1400.0, Origin.MEASURED),
        NOVEMBER.end: BoundaryValue(NOVEMBER.end, 1700.0, Origin.INTERPOLATED),
    }
    parts = segment_consumption(segs, values, 700.0, quantity="energy", readable=True)
    assert [(p.occupant, p.value, p.code, p.method) for p in parts] == [
        ("1", 400.0, "12", "readings"),
        ("2", 300.0, "13", "readings"),  # the end value interpolated: split by days
    ]


def test_water_is_split_by_days_where_the_move_has_no_value():
    segs = segments(NOVEMBER, MOVES)
    values = {NOVEMBER.start: BoundaryValue(NOVEMBER.start, 10.0, Origin.MEASURED)}
    parts = segment_consumption(segs, values, 6.0, quantity="volume", readable=True)
    # 15 and 15 of 30 days
    assert [(p.value, p.code, p.method) for p in parts] == [(3.0, "13", "split_by_days"), (3.0, "13", "split_by_days")]


def test_heat_is_split_by_degree_days_else_by_the_vdi_2067_table():
    segs = segments(NOVEMBER, MOVES)
    means = {}
    for n in range(30):
        day = date(2026, 11, 1) + timedelta(days=n)
        means[day] = 0.0 if day.day <= 15 else 10.0  # 15 x 20 = 300 and 15 x 10 = 150 degree days
    parts = segment_consumption(segs, {}, 900.0, quantity="energy", readable=False, means=means)
    assert [p.value for p in parts] == pytest.approx([600.0, 300.0])
    assert {(p.code, p.method, p.details["basis"]) for p in parts} == {("14", "split_by_degree_days", "degree_days")}
    # without a series: November's 120 ‰ spread evenly over its days
    table = segment_consumption(segs, {}, 900.0, quantity="hca", readable=False)
    assert [p.value for p in table] == pytest.approx([450.0, 450.0]) and table[0].details["basis"] == "per_mille"
    missing = segment_consumption(segs, {}, None, quantity="energy", readable=False)
    assert [(p.value, p.code, p.method) for p in missing] == [(None, None, "missing")] * 2
