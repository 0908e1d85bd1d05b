"""Export job schedules: croniter's fields, our clock-change rule, errors naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omshub.cloud.domain.exports.cron import CronError, parse


def _utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_next_run_is_the_local_wall_time_in_the_zone():
    s = parse("0 6 2 * *", "Europe/Berlin")
    assert s.next_after(_utc(2026, 11, 15)) == _utc(2026, 12, 2, 5)  # 06:00 CET
    assert s.next_after(_utc(2026, 6, 15)) == _utc(2026, 7, 2, 4)  # 06:00 CEST
    assert s.next_after(_utc(2026, 7, 2, 4)) == _utc(2026, 8, 2, 4)  # strictly after


def test_a_skipped_wall_time_runs_after_the_spring_switch_and_a_doubled_one_once():
    s = parse("30 2 * * *", "Europe/Berlin")
    # 2027-03-28: 02:30 does not exist; it runs at 03:30 CEST (01:30 UTC)
    assert s.next_after(_utc(2027, 3, 27, 12)) == _utc(2027, 3, 28, 1, 30)
    assert s.next_after(_utc(2027, 3, 28, 1, 30)) == _utc(2027, 3, 29, 0, 30)
    # 2027-10-31: 02:30 happens twice; it runs the first time (CEST, 00:30 UTC) and not again
    assert s.next_after(_utc(2027, 10, 30, 12)) == _utc(2027, 10, 31, 0, 30)
    assert s.next_after(_utc(2027, 10, 31, 0, 30)) == _utc(2027, 11, 1, 1, 30)


def test_day_of_month_or_day_of_week_and_sunday_as_7():
    s = parse("0 0 1 * 7", "UTC")  # the 1st, or any Sunday
    assert s.next_after(_utc(2026, 12, 2)) == _utc(2026, 12, 6)  # a Sunday
    assert s.next_after(_utc(2026, 12, 27)) == _utc(2027, 1, 1)


@pytest.mark.parametrize(
    ("text", "zone", "starts"),
    [
        ("0 25 * * *", "UTC", "hour '25'"),
        ("x 1 * * *", "UTC", "minute 'x'"),
        ("0 1 * 13 *", "UTC", "month '13'"),
        ("0 1 * *", "UTC", "cron '0 1 * *': expected 5 fields"),
        ("0 1 * * *", "Mars/Olympus", "time zone 'Mars/Olympus'"),
        ("0 0 31 2 *", "UTC", "the schedule never runs"),
    ],
)
def test_bad_schedules_name_the_field_in_both_languages(text, zone, starts):
    with pytest.raises(CronError) as caught:
        parse(text, zone)
    assert str(caught.value).startswith(starts) and caught.value.german
