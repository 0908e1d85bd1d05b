"""Closing a billing period through the API, end to end from telegrams: boundary values with their
origins and codes, consumption across a swap, a move-in boundary, validation findings, the review
queue round trip (flag → decide / edit → audited, raw readings unchanged) and idempotence. Dates come
from tests/clock.py (the month before EPOCH's month), never from the wall clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from omshub.cloud.store.models import AuditEntry, Reading
from tests.clock import EPOCH

from .conftest import KEY, encode

API = "/api/v1"


def _month_before(day: datetime) -> tuple[int, int]:
    first = day.replace(day=1)
    prev = first - timedelta(days=1)
    return prev.year, prev.month


YEAR, MONTH = _month_before(EPOCH)
PERIOD = f"{YEAR:04d}-{MONTH:02d}"
MONTH_START = date(YEAR, MONTH, 1)
NEXT_MONTH = (MONTH_START + timedelta(days=32)).replace(day=1)


def _rec(quantity, unit, value, storage=0):
    return {"quantity": quantity, "unit": unit, "value": value, "storage": storage, "tariff": 0, "subunit": 0}


def _daily(hub, gw, meter_id: str, days: list[date], energy, *, seq0: int, stored=None) -> None:
    """One telegram per day at 11:00 UTC; `energy(day)` the register; `stored(day)` optional
    (date text, value) of storage 1."""
    for n, day in enumerate(days):
        records = [_rec("energy", "kWh", energy(day))]
        if stored and stored(day):
            text, value = stored(day)
            records += [_rec("date", "", text, 1), _rec("energy", "kWh", value, 1)]
        t0 = int(datetime(day.year, day.month, day.day, 11, tzinfo=UTC).timestamp())
        hub.send(gw, seq0 + n, [encode(meter_id, records)], t0=t0, dts=[0])


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_close_a_month_values_origins_review_and_edit(client, hub, pipeline, db):
    t = hub.tenant()
    h = hub.headers(t)
    gw = hub.gateway(t)
    tag = gw.serial[-6:]
    digits = "".join(c for c in gw.serial if c.isdigit())[-6:].rjust(6, "0")
    m1, m2 = f"71{digits}", f"82{digits}"
    hub.keys(t, {m1: KEY, m2: KEY})
    pk1, pk2 = hub.meter(t, m1), hub.meter(t, m2)
    prop = client.post(f"{API}/properties", json={"ref": f"P-{tag}"}, headers=h).json()
    unit = client.post(f"{API}/properties/{prop['id']}/units", json={"ref": "WE1", "area_m2": 60}, headers=h).json()
    point = client.post(f"{API}/metering-points", json={"ref": f"MP-{tag}"}, headers=h).json()
    client.post(f"{API}/units/{unit['id']}/metering-points", json={"metering_point_id": point["id"]}, headers=h)
    start_install = (MONTH_START - timedelta(days=20)).isoformat()
    r = client.post(f"{API}/metering-points/{point['id']}/install", json={"meter": pk1, "at": start_install}, headers=h)
    assert r.status_code == 201, r.text
    # the first meter reads 1000 + 10/day, stores its month-end value on the 1st of the next month
    last_day = MONTH_START - timedelta(days=1)
    base = MONTH_START - timedelta(days=10)

    def energy1(day):
        return 1000.0 + 10 * (day - base).days

    def stored1(day):
        return (last_day.isoformat(), 999.0) if day >= MONTH_START else None  # a wrong stored value: below

    swap_day = MONTH_START + timedelta(days=14)
    _daily(hub, gw, m1, _days(base, swap_day - timedelta(days=1)), energy1, seq0=1, stored=stored1)
    swap_at = datetime(swap_day.year, swap_day.month, swap_day.day, 9, tzinfo=UTC).isoformat()
    swap = client.post(
        f"{API}/metering-points/{point['id']}/swap",
        json={
            "at": swap_at,
            "old_final_values": {"energy": energy1(swap_day) - 7},
            "new_meter": pk2,
            "new_initial_values": {"energy": 0},
        },
        headers=h,
    )
    assert swap.status_code == 200, swap.text
    _daily(
        hub, gw, m2, _days(swap_day, NEXT_MONTH + timedelta(days=3)), lambda d: 3.0 + 5 * (d - swap_day).days, seq0=100
    )
    occupant = client.post(f"{API}/occupants", json={"customer_ref": f"K-{tag}", "name": "Nora"}, headers=h).json()
    move_in = MONTH_START + timedelta(days=9)
    client.post(
        f"{API}/units/{unit['id']}/occupancies",
        json={"occupant_id": occupant["id"], "moved_in": move_in.isoformat()},
        headers=h,
    )
    while pipeline.run_once():
        pass
    with db.session() as s:
        raw_before = sorted(s.execute(select(Reading.id, Reading.energy).where(Reading.meter_pk.in_([pk1, pk2]))).all())

    closed = client.post(f"{API}/billing/close", json={"period": PERIOD}, headers=h)
    assert closed.status_code == 200, closed.text
    assert closed.json()["points"] >= 1
    values = client.get(f"{API}/metering-points/{point['id']}/billing-values", headers=h).json()["items"]
    by_day = {v["boundary_day"]: v for v in values}
    start = by_day[MONTH_START.isoformat()]
    # the stored value 999 of the last day does not fit the readings around it: the boundary is taken
    # from the readings instead, and the finding shows the meter's value for the review
    # readings at 11:00 UTC, 10 kWh a day: interpolated at local midnight (22:00 or 23:00 UTC)
    boundary = datetime.fromisoformat(start["boundary"].replace("Z", "+00:00"))
    hours = (boundary - datetime(last_day.year, last_day.month, last_day.day, 11, tzinfo=UTC)).total_seconds() / 3600
    assert start["origin"] == "interpolated" and start["code"] == "13"
    assert start["value"] == pytest.approx(energy1(last_day) + 10 * hours / 24)
    move = by_day[move_in.isoformat()]
    assert move["reason"] == "move_in" and move["origin"] == "interpolated" and move["code"] == "13"
    end = by_day[NEXT_MONTH.isoformat()]
    assert end["origin"] == "interpolated" and end["details"]["gap_s"] == 86400
    consumption = client.get(f"{API}/metering-points/{point['id']}/billing-consumption", headers=h).json()["items"]
    month = next(c for c in consumption if c["period"] == PERIOD)
    assert [r["meter"] for r in month["runs"]] == [f"KAM {m1}", f"KAM {m2}"]
    old_run, new_run = month["runs"]
    assert old_run["end"] == energy1(swap_day) - 7 and new_run["start"] == 0.0
    assert month["value"] == round(old_run["consumption"] + new_run["consumption"], 6)

    queue = client.get(f"{API}/review?period={PERIOD}", headers=h).json()["items"]
    rules = {f["rule"] for f in queue if f["metering_point_id"] == point["id"]}
    assert "due_date_value_above_total" not in rules
    assert "due_date_value_outside_readings" in rules, rules
    finding = next(f for f in queue if f["metering_point_id"] == point["id"])
    assert finding["german"] and finding["state"] == "open"

    # idempotent: nothing changes on a second run
    again = client.post(f"{API}/billing/close", json={"period": PERIOD}, headers=h).json()
    assert (again["values_changed"], again["findings_open"], again["findings_cleared"]) == (0, 0, 0)

    # edit the start value: audited, the computed value kept, raw readings unchanged
    edited = client.put(
        f"{API}/billing-values/{start['id']}", json={"value": 1090.0, "reason": "Stichtagswert falsch"}, headers=h
    ).json()
    assert edited["origin"] == "edited" and edited["value"] == 1090.0 and edited["code"] == "01"
    assert edited["computed"]["value"] == start["value"] and edited["details"]["before"]["value"] == start["value"]
    decided = client.post(f"{API}/review/{finding['id']}", json={"action": "accept", "note": "geprüft"}, headers=h)
    assert decided.json()["state"] == "accepted" and decided.json()["decided_by"]
    assert (
        client.post(f"{API}/review/{finding['id']}", json={"action": "accept", "note": "x"}, headers=h).status_code
        == 409
    )
    third = client.post(f"{API}/billing/close", json={"period": PERIOD}, headers=h).json()
    assert third["values_changed"] == 0  # the edit stays
    kept = client.get(f"{API}/metering-points/{point['id']}/billing-values", headers=h).json()["items"]
    assert next(v for v in kept if v["id"] == start["id"])["value"] == 1090.0
    # the period's consumption follows the edited start value; the unit and the property show it
    after = client.get(f"{API}/metering-points/{point['id']}/billing-consumption", headers=h).json()["items"]
    month_after = next(c for c in after if c["period"] == PERIOD)
    assert month_after["runs"][0]["start"] == 1090.0 and month_after["quality"] == "estimated"
    unit_view = client.get(f"{API}/units/{unit['id']}/billing-consumption?period={PERIOD}", headers=h).json()
    assert unit_view["quantities"]["energy"]["value"] == month_after["value"]
    prop_view = client.get(f"{API}/properties/{prop['id']}/billing-consumption?period={PERIOD}", headers=h).json()
    assert prop_view["estimated_share"] == 1.0 and prop_view["over_25_percent"] is True
    assert prop_view["units"][0]["estimated"] is True
    with db.session() as s:
        raw_after = sorted(s.execute(select(Reading.id, Reading.energy).where(Reading.meter_pk.in_([pk1, pk2]))).all())
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == t.id)))
    assert raw_after == raw_before
    assert {"billing.close", "billing.value.edit", "billing.finding.accepted"} <= set(actions)


def test_close_refuses_a_bad_period_and_other_tenants_values(client, hub):
    h = hub.headers(hub.tenant())
    r = client.post(f"{API}/billing/close", json={"period": "2026-13"}, headers=h)
    assert r.status_code == 422 and "YYYY-MM" in r.json()["error"]["message"]
    assert client.put(f"{API}/billing-values/999999", json={"value": 1, "reason": "x"}, headers=h).status_code == 404
    assert client.post(f"{API}/review/999999", json={"action": "accept", "note": "x"}, headers=h).status_code == 404


def test_the_cli_closes_a_period_and_says_what_it_did(client, hub, database_url, data_dir):
    import json

    from typer.testing import CliRunner

    from omshub.cli import app as cli

    t = hub.tenant()
    args = ["billing", "close", "--tenant", t.slug, "--database", database_url, "--data-dir", str(data_dir)]
    r = CliRunner().invoke(cli, [*args, "--period", PERIOD, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["period"] == PERIOD and json.loads(r.stdout)["points"] == 0
    table = CliRunner().invoke(cli, [*args, "--period", PERIOD])
    assert "metering points" in table.stdout
    bad = CliRunner().invoke(cli, [*args, "--period", "2026-13"], env={"OMSHUB_LANGUAGE": "", "LC_ALL": "C.UTF-8"})
    assert bad.exit_code == 1 and "YYYY-MM" in bad.output
    # a German locale (or OMSHUB_LANGUAGE=de) gets the head-end's refusal in German
    for env in (
        {"OMSHUB_LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "de_DE.UTF-8"},
        {"OMSHUB_LANGUAGE": "de"},
    ):
        german = CliRunner().invoke(cli, [*args, "--period", "2026-13"], env=env)
        assert german.exit_code == 1 and "JJJJ-MM" in german.output
        assert german.output != bad.output and "Zeitraum" in german.output, german.output


def test_a_late_telegram_reaches_an_exported_value_which_is_marked_for_re_export(client, hub, pipeline, db):
    from omshub.cloud.services.billing_close import reclose_recent
    from omshub.cloud.store.models_billing import BillingValue

    t = hub.tenant()
    h = hub.headers(t)
    gw = hub.gateway(t)
    digits = "".join(c for c in gw.serial if c.isdigit())[-6:].rjust(6, "0")
    meter = f"93{digits}"
    hub.keys(t, {meter: KEY})
    pk = hub.meter(t, meter)
    point = client.post(f"{API}/metering-points", json={"ref": f"LATE-{digits}"}, headers=h).json()
    install = (MONTH_START - timedelta(days=30)).isoformat()
    client.post(f"{API}/metering-points/{point['id']}/install", json={"meter": pk, "at": install}, headers=h)
    # readings every day but the two around the month's end (the gateway was offline)
    days = _days(MONTH_START - timedelta(days=5), NEXT_MONTH + timedelta(days=3))
    offline = {NEXT_MONTH - timedelta(days=1), NEXT_MONTH}
    _daily(hub, gw, meter, [d for d in days if d not in offline], lambda d: 50.0 * (d - days[0]).days, seq0=1)
    while pipeline.run_once():
        pass
    assert client.post(f"{API}/billing/close", json={"period": PERIOD}, headers=h).status_code == 200
    with db.transaction() as s:
        for b in s.scalars(select(BillingValue).where(BillingValue.metering_point_id == point["id"])):
            b.exported_at = b.computed_at  # as an export would
    # the late telegram: read 5 minutes before the month's end, uploaded days later
    end = datetime(NEXT_MONTH.year, NEXT_MONTH.month, NEXT_MONTH.day, tzinfo=UTC)
    boundary = next(
        v
        for v in client.get(f"{API}/metering-points/{point['id']}/billing-values", headers=h).json()["items"]
        if v["boundary_day"] == NEXT_MONTH.isoformat()
    )
    assert boundary["origin"] == "interpolated" and boundary["details"]["gap_s"] == 3 * 86400
    at = datetime.fromisoformat(boundary["boundary"].replace("Z", "+00:00")) - timedelta(minutes=5)
    hub.send(gw, 500, [encode(meter, [_rec("energy", "kWh", 12345.0)])], t0=int(at.timestamp()), dts=[0])
    while pipeline.run_once():
        pass
    result = reclose_recent(db, end + timedelta(days=5))
    assert PERIOD in result["reclosed"][str(t.id)]
    after = next(
        v
        for v in client.get(f"{API}/metering-points/{point['id']}/billing-values", headers=h).json()["items"]
        if v["id"] == boundary["id"]
    )
    assert (after["origin"], after["value"], after["export_stale"]) == ("measured", 12345.0, True)


def test_rules_are_the_tenants_own_audited_and_used_by_the_close(client, hub, db):
    t = hub.tenant()
    h = hub.headers(t)
    defaults = client.get(f"{API}/billing/rules", headers=h).json()
    assert defaults["stale_days"] == 7 and defaults["bands"][1] == {"from_value": 100, "above_pct": 60, "below_pct": 30}
    changed = client.patch(f"{API}/billing/rules", json={"stale_days": 3, "measured_within_s": 7200}, headers=h)
    assert changed.status_code == 200 and changed.json()["stale_days"] == 3
    assert client.patch(f"{API}/billing/rules", json={"stale_days": 0}, headers=h).status_code == 422
    assert client.patch(f"{API}/billing/rules", json={"colour": 1}, headers=h).status_code == 422
    other = hub.headers(hub.tenant())
    assert client.get(f"{API}/billing/rules", headers=other).json()["stale_days"] == 7
    from omshub.cloud.services.billing_settings import rules_of

    with db.session() as s:
        rules, boundary = rules_of(s, t.id)
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == t.id)))
    assert rules.stale_days == 3 and boundary.measured_within == timedelta(hours=2)
    assert "billing.rules.change" in actions
