"""The close reads only the readings that can matter for a regular metering point
(services/billing_readings.py): its values and findings are the same as from all its readings, for
regular meters and for every kind of irregular one (a fall of the register, a conflicting duplicate,
a reading dated after its reception, a gap at the boundary, a meter that sends every third day, a
stored value for a day inside the month, a move-in)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from omshub.cloud.domain.billing.boundary import BoundaryRules
from omshub.cloud.domain.billing.periods import month_period
from omshub.cloud.domain.billing.validation import ValidationRules
from omshub.cloud.services.billing_compute import boundary_times, compute_point
from omshub.cloud.services.billing_inputs import load_points
from omshub.cloud.services.billing_readings import load_readings_near
from omshub.cloud.store.models import Installation, Meter, MeteringPoint, Reading, Tenant
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue, Occupancy, Occupant, Property, Unit
from omshub.cloud.store.reading_values import typed_values

PERIOD = month_period(2026, 11)
FIRST, LAST = PERIOD.start - timedelta(days=9), PERIOD.end + timedelta(days=9)
NOW = datetime(2026, 12, 20, tzinfo=UTC)


def _blob(day: date, value: float, storage: int = 2) -> bytes:
    records = [
        {"quantity": "energy", "unit": "kWh", "value": value, "storage": storage},
        {"quantity": "date", "unit": "", "value": day.isoformat(), "storage": storage},
    ]
    return typed_values({"records": records})["stored"]


def _readings(kind: str) -> list[dict]:
    """A month of daily readings at 11:00 UTC around November 2026, 24 kWh a day, each with the
    month-end value of the month before; then the irregularity of `kind`."""
    out = []
    day = FIRST.date()
    while day <= LAST.date():
        at = datetime(day.year, day.month, day.day, 11, tzinfo=UTC)
        n = (day - FIRST.date()).days
        month_end = date(day.year, day.month, 1) - timedelta(days=1)
        blob = _blob(month_end, 1000.0 + 24.0 * (month_end - FIRST.date()).days + 13.0)
        out.append(
            {"timestamp": at, "received_at": at + timedelta(seconds=5), "energy": 1000.0 + 24.0 * n, "stored": blob}
        )
        day += timedelta(days=1)
    mid = 20  # 2026-11-12
    if kind == "drop":
        for r in out[mid:]:
            r["energy"] -= 900.0
    elif kind == "duplicate":
        out.append(dict(out[mid], energy=out[mid]["energy"] + 3.0))
    elif kind == "future":
        out[mid]["received_at"] = out[mid]["timestamp"] - timedelta(hours=2)
    elif kind == "gap":
        out = [r for r in out if not (PERIOD.end - timedelta(days=3) < r["timestamp"] < PERIOD.end + timedelta(days=2))]
    elif kind == "sparse":
        out = out[::3]
    elif kind == "stored_inside":
        out[mid]["stored"] = _blob(date(2026, 11, 10), out[mid - 2]["energy"] + 13.0, storage=1)
    elif kind == "clock_ahead":
        for r in out:
            r["received_at"] = r["timestamp"] - timedelta(seconds=30)
    return out


KINDS = ["regular", "drop", "duplicate", "future", "gap", "sparse", "stored_inside", "clock_ahead", "move_in"]


@pytest.fixture
def points(s):
    tenant = Tenant(slug=f"readings-{id(s)}", name="t", created_at=NOW)
    s.add(tenant)
    s.flush()
    prop = Property(tenant_id=tenant.id, ref="P", created_at=NOW)
    s.add(prop)
    s.flush()
    occupant = Occupant(tenant_id=tenant.id, customer_ref="C1", name="A", created_at=NOW)
    s.add(occupant)
    s.flush()
    ids = {}
    for n, kind in enumerate(KINDS):
        unit = Unit(tenant_id=tenant.id, property_id=prop.id, ref=f"U{n}", area_m2=60.0, created_at=NOW)
        meter = Meter(tenant_id=tenant.id, manufacturer="KAM", meter_id=f"{n:08d}", device_type="heat", created_at=NOW)
        s.add_all([unit, meter])
        s.flush()
        mp = MeteringPoint(tenant_id=tenant.id, ref=f"MP{n}", unit_id=unit.id, created_at=NOW)
        s.add(mp)
        s.flush()
        s.add(
            Installation(
                tenant_id=tenant.id,
                metering_point_id=mp.id,
                meter_pk=meter.id,
                installed_at=datetime(2020, 1, 1, tzinfo=UTC),
                initial_values={},
            )
        )
        if kind == "move_in":
            s.add(
                Occupancy(
                    tenant_id=tenant.id,
                    unit_id=unit.id,
                    occupant_id=occupant.id,
                    moved_in=date(2026, 11, 16),
                    created_at=NOW,
                )
            )
        rows = _readings("regular" if kind == "move_in" else kind)
        s.execute(insert(Reading), [{"tenant_id": tenant.id, "meter_pk": meter.id, **r} for r in rows])
        ids[mp.id] = kind
    s.flush()
    return tenant.id, ids


def test_the_readings_that_matter_give_the_same_values_and_findings_as_all_readings(s, points):
    tenant_id, kinds = points
    full = load_points(s, tenant_id, list(kinds), FIRST, LAST)
    near = load_points(s, tenant_id, list(kinds), FIRST, LAST, with_readings=False)
    ways = load_readings_near(s, near, FIRST, LAST, lambda p: boundary_times(p, PERIOD))
    rules, brules = ValidationRules(), BoundaryRules()
    found = {}
    for pid, kind in kinds.items():
        a = compute_point(full[pid], PERIOD, rules=rules, boundary_rules=brules)
        b = compute_point(near[pid], PERIOD, rules=rules, boundary_rules=brules)
        assert a is not None and b is not None
        assert [(x.at, x.reason, x.value, x.code) for x in a.boundaries] == [
            (x.at, x.reason, x.value, x.code) for x in b.boundaries
        ], kind
        assert a.consumption == b.consumption, kind
        assert a.findings == b.findings, kind
        found[kind] = {f.rule for f in b.findings}
        # the regular points and those whose irregularity the scan finds read fewer readings
        fewer = sum(map(len, near[pid].samples.values())) < sum(map(len, full[pid].samples.values()))
        assert fewer == (kind in ("regular", "drop", "duplicate", "future", "clock_ahead")), kind
    assert ways == {"selected": 5, "all_readings": 4}
    # the irregularities are found at all (the comparison above is not between two empty lists)
    assert "meter_reset" in found["drop"] or "negative_consumption" in found["drop"]
    assert "conflicting_duplicate" in found["duplicate"]
    assert "future_timestamp" in found["future"]
    assert found["regular"] == set() and found["clock_ahead"] == set()


def test_the_close_estimates_where_allowed_and_a_later_reading_replaces_its_estimate(s):
    from omshub.cloud.services import billing_settings
    from omshub.cloud.services.billing_close import close_period

    tenant = Tenant(slug=f"auto-{id(s)}", name="t", created_at=NOW)
    s.add(tenant)
    s.flush()
    prop = Property(tenant_id=tenant.id, ref="P", created_at=NOW)
    s.add(prop)
    s.flush()
    meters = []
    for n in range(2):
        unit = Unit(tenant_id=tenant.id, property_id=prop.id, ref=f"U{n}", area_m2=60.0, created_at=NOW)
        meter = Meter(tenant_id=tenant.id, manufacturer="KAM", meter_id=f"9{n:07d}", device_type="heat", created_at=NOW)
        s.add_all([unit, meter])
        s.flush()
        mp = MeteringPoint(tenant_id=tenant.id, ref=f"MP{n}", unit_id=unit.id, created_at=NOW)
        s.add(mp)
        s.flush()
        s.add(
            Installation(
                tenant_id=tenant.id,
                metering_point_id=mp.id,
                meter_pk=meter.id,
                installed_at=datetime(2020, 1, 1, tzinfo=UTC),
                initial_values={},
            )
        )
        meters.append((meter.id, mp.id))
    rows = _readings("regular")
    dead = [r for r in rows if r["timestamp"] < datetime(2026, 11, 20, tzinfo=UTC)]  # the meter died
    s.execute(insert(Reading), [{"tenant_id": tenant.id, "meter_pk": meters[0][0], **r} for r in rows])
    s.execute(insert(Reading), [{"tenant_id": tenant.id, "meter_pk": meters[1][0], **r} for r in dead])
    billing_settings.change(s, tenant.id, {"auto_estimate": ["comparable_units"]}, actor="op", now=NOW)

    first = close_period(s, tenant.id, "2026-11", actor="op", now=NOW)
    assert first["estimated"] == 1
    end = s.query(BillingValue).filter_by(metering_point_id=meters[1][1], boundary_at=PERIOD.end).one()
    start = s.query(BillingValue).filter_by(metering_point_id=meters[1][1], boundary_at=PERIOD.start).one()
    # the other unit used 24 kWh a day, 720 kWh in November: 12 per m² x 60 m²
    assert end.origin == "estimated" and end.code == "15" and end.computed_origin == "missing"
    assert end.value == pytest.approx(start.value + 720.0)
    again = close_period(s, tenant.id, "2026-11", actor="op", now=NOW)
    assert (again["values_changed"], again["estimated"]) == (0, 0)  # idempotent, the estimate kept

    late = [r for r in rows if r["timestamp"] >= datetime(2026, 11, 20, tzinfo=UTC)]
    s.execute(insert(Reading), [{"tenant_id": tenant.id, "meter_pk": meters[1][0], **r} for r in late])
    third = close_period(s, tenant.id, "2026-11", actor="op", now=NOW)
    s.refresh(end)
    assert third["values_changed"] >= 1 and end.origin in ("meter_stored", "interpolated") and end.method is None
    consumption = s.query(BillingConsumption).filter_by(metering_point_id=meters[1][1], period="2026-11").one()
    assert consumption.quality != "estimated"


def test_the_close_stores_each_occupants_segment_and_the_api_serves_it(s):
    from omshub.cloud.services.billing_close import close_period
    from omshub.cloud.services.billing_segments import occupant_segments, unit_segments

    tenant = Tenant(slug=f"seg-{id(s)}", name="t", created_at=NOW)
    s.add(tenant)
    s.flush()
    prop = Property(tenant_id=tenant.id, ref="P", created_at=NOW)
    unit = Unit(tenant_id=tenant.id, property_id=0, ref="U", area_m2=60.0, created_at=NOW)
    s.add(prop)
    s.flush()
    unit.property_id = prop.id
    meter = Meter(tenant_id=tenant.id, manufacturer="KAM", meter_id="77777777", device_type="heat", created_at=NOW)
    a = Occupant(tenant_id=tenant.id, customer_ref="A", name="Anna", created_at=NOW)
    b = Occupant(tenant_id=tenant.id, customer_ref="B", name="Ben", created_at=NOW)
    s.add_all([unit, meter, a, b])
    s.flush()
    mp = MeteringPoint(tenant_id=tenant.id, ref="MP", unit_id=unit.id, created_at=NOW)
    s.add(mp)
    s.flush()
    s.add(
        Installation(
            tenant_id=tenant.id,
            metering_point_id=mp.id,
            meter_pk=meter.id,
            installed_at=datetime(2020, 1, 1, tzinfo=UTC),
            initial_values={},
        )
    )
    s.add(
        Occupancy(
            tenant_id=tenant.id,
            unit_id=unit.id,
            occupant_id=a.id,
            moved_in=date(2019, 5, 1),
            moved_out=date(2026, 11, 15),
            created_at=NOW,
        )
    )
    s.add(
        Occupancy(tenant_id=tenant.id, unit_id=unit.id, occupant_id=b.id, moved_in=date(2026, 11, 20), created_at=NOW)
    )
    s.execute(insert(Reading), [{"tenant_id": tenant.id, "meter_pk": meter.id, **r} for r in _readings("regular")])

    close_period(s, tenant.id, "2026-11", actor="op", now=NOW)
    items = unit_segments(s, tenant.id, unit.id, "2026-11")["items"]
    # 24 kWh a day, read at 11:00 UTC; the move days' values interpolated (13). The month-end values
    # the meter stored lie 1 kWh above the interpolation (00:00 UTC, not 23:00): Anna 15 days - 1,
    # vacant 16-19 November 4 days, Ben 11 days + 1
    assert [(x["first_day"], x["last_day"], x["occupant"] and x["occupant"]["name"]) for x in items] == [
        ("2026-11-01", "2026-11-15", "Anna"),
        ("2026-11-16", "2026-11-19", None),
        ("2026-11-20", "2026-11-30", "Ben"),
    ]
    assert [x["value"] for x in items] == pytest.approx([359.0, 96.0, 265.0])
    assert {(x["code"], x["method"]) for x in items} == {("13", "readings")}
    ben = occupant_segments(s, tenant.id, b.id, "2026-11")["items"]
    assert len(ben) == 1 and ben[0]["value"] == pytest.approx(265.0)
    again = close_period(s, tenant.id, "2026-11", actor="op", now=NOW)
    assert again["values_changed"] == 0
    assert unit_segments(s, tenant.id, unit.id, "2026-11")["items"] == items
