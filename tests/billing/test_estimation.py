"""Estimation of a period without a measured value (services/billing_estimate.py), with numbers
computed by hand: the previous period scaled by degree days (heat), by the VDI 2067 shares without a
weather series, by days (water, never by the weather); comparable units of the same usage per m²;
the property's average per m² and the cohort's where the property has no measured unit; the review
queue's `estimate` action; the close's automatic estimation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omshub.cloud.domain.billing.periods import month_period
from omshub.cloud.services import billing_review
from omshub.cloud.services.billing_estimate import estimate_consumption, estimate_missing
from omshub.cloud.store.models import AuditEntry, MeteringPoint, Tenant
from omshub.cloud.store.models_billing import (
    BillingConsumption,
    BillingFinding,
    BillingValue,
    Property,
    Unit,
    WeatherDay,
    WeatherStation,
)

NOW = datetime(2026, 12, 10, tzinfo=UTC)


class World:
    def __init__(self, s, tenant_id: int | None = None) -> None:
        self.s = s
        if tenant_id is None:
            tenant = Tenant(slug=f"est-{id(self)}", name="t", created_at=NOW)
            s.add(tenant)
            s.flush()
            tenant_id = tenant.id
        self.t = tenant_id

    def prop(self, ref: str, carrier="district_heat", size="7-12", station=None) -> Property:
        p = Property(tenant_id=self.t, ref=ref, energy_carrier=carrier, size_class=size, created_at=NOW)
        p.weather_station_id = station
        self.s.add(p)
        self.s.flush()
        return p

    def point(self, prop: Property, ref: str, area: float, usage="residential") -> int:
        u = Unit(tenant_id=self.t, property_id=prop.id, ref=ref, area_m2=area, usage=usage, created_at=NOW)
        self.s.add(u)
        self.s.flush()
        mp = MeteringPoint(tenant_id=self.t, ref=f"MP-{ref}", unit_id=u.id, created_at=NOW)
        self.s.add(mp)
        self.s.flush()
        return mp.id

    def consumption(self, point: int, label: str, value, quantity="energy", start=5000.0) -> BillingConsumption:
        year, month = int(label[:4]), int(label[5:7])
        period = month_period(year, month)
        end = None if value is None else start + value
        c = BillingConsumption(
            tenant_id=self.t,
            metering_point_id=point,
            quantity=quantity,
            period=label,
            start_at=period.start,
            end_at=period.end,
            value=value,
            quality="missing" if value is None else "measured",
            runs=[
                {
                    "meter": "KAM 1",
                    "start": start,
                    "start_origin": "measured",
                    "end": end,
                    "end_origin": "missing" if value is None else "measured",
                    "consumption": value,
                }
            ],
            computed_at=NOW,
        )
        self.s.add(c)
        for at, v, origin in (
            (period.start, start, "measured"),
            (period.end, end, "missing" if end is None else "measured"),
        ):
            self.s.add(
                BillingValue(
                    tenant_id=self.t,
                    metering_point_id=point,
                    quantity=quantity,
                    boundary_at=at,
                    boundary_day=at.date(),
                    reason="month",
                    value=v,
                    origin=origin,
                    quality="missing" if v is None else "measured",
                    code=None,
                    details={},
                    computed_value=v,
                    computed_origin=origin,
                    computed_details={},
                    state="ok",
                    computed_at=NOW,
                    changed_at=NOW,
                )
            )
        self.s.flush()
        return c


def _station(s, w: World, means: dict[tuple[int, int], float]) -> int:
    st = WeatherStation(tenant_id=w.t, code=f"S{id(means)}", name="", created_at=NOW)
    s.add(st)
    s.flush()
    for (year, month), mean in means.items():
        p = month_period(year, month)
        day = p.first_day
        while day <= p.last_day:
            s.add(WeatherDay(station_id=st.id, day=day, mean_c=mean))
            day += timedelta(days=1)
    s.flush()
    return st.id


def build(s, tenant_id: int | None = None) -> World:
    w = World(s, tenant_id)
    # November 2025 at 5 °C: 30 days x (20 - 5) = 450 degree days; November 2026 at 8 °C: 30 x 12 = 360
    station = _station(s, w, {(2025, 11): 5.0, (2026, 11): 8.0})
    w.p1 = w.prop("P1", station=station)
    w.mp1 = w.point(w.p1, "U1", 60.0)  # the one to estimate
    w.mp2 = w.point(w.p1, "U2", 80.0)
    w.mp3 = w.point(w.p1, "U3", 40.0, usage="commercial")
    w.p2 = w.prop("P2")
    w.mp4 = w.point(w.p2, "U4", 80.0)
    w.p3 = w.prop("P3", carrier="gas")
    w.mp5 = w.point(w.p3, "U5", 500.0)
    w.p4 = w.prop("P4")  # no other unit: the cohort's average
    w.mp6 = w.point(w.p4, "U6", 100.0)
    w.c1 = w.consumption(w.mp1, "2026-11", None)
    w.consumption(w.mp1, "2025-11", 1200.0)
    w.consumption(w.mp2, "2026-11", 1600.0)  # 20 per m²
    w.consumption(w.mp3, "2026-11", 400.0)  # 10 per m² (commercial)
    w.consumption(w.mp4, "2026-11", 1200.0)  # 15 per m² (another building, same cohort)
    w.consumption(w.mp5, "2026-11", 99999.0)  # another energy carrier: not in the cohort
    w.c6 = w.consumption(w.mp6, "2026-11", None)
    return w


@pytest.fixture
def world(s):
    return build(s)


def test_previous_period_is_scaled_by_degree_days_for_heat(s, world):
    e = estimate_consumption(s, world.t, world.c1, "previous_period")
    # 1,200 kWh x 360 / 450 degree days
    assert e is not None and e.value == pytest.approx(960.0) and e.code == "07"
    assert e.inputs["basis"] == "degree_days" and e.inputs["current_scale"] == 360.0
    assert "360 now against 450 then" in e.explanation
    assert "Gradtagzahlen (360 jetzt gegenüber 450 damals)" in e.german and "1.200,0" in e.german


def test_without_a_weather_series_heat_is_scaled_by_the_vdi_2067_shares(s, world):
    world.p1.weather_station_id = None
    s.flush()
    e = estimate_consumption(s, world.t, world.c1, "previous_period")
    # November against November: 120 ‰ each, so the previous consumption as it was
    assert e is not None and e.value == pytest.approx(1200.0) and e.inputs["basis"] == "per_mille"
    assert "VDI 2067" in e.explanation and "VDI 2067" in e.german


def test_water_is_scaled_by_days_never_by_the_weather(s, world):
    c = world.consumption(world.mp1, "2025-02", None, quantity="volume", start=10.0)
    world.consumption(world.mp1, "2024-02", 29.0, quantity="volume", start=5.0)
    e = estimate_consumption(s, world.t, c, "previous_period")
    # 29 m³ in the 29 days of February 2024 -> 28 days of February 2025: 28 m³
    assert e is not None and e.value == pytest.approx(28.0) and e.inputs["basis"] == "days"
    assert "Tage (28 jetzt gegenüber 29 damals)" in e.german


def test_comparable_units_are_the_propertys_units_of_the_same_usage_per_m2(s, world):
    e = estimate_consumption(s, world.t, world.c1, "comparable_units")
    # only U2 (residential): 1,600 / 80 = 20 per m² x 60 m²
    assert e is not None and e.value == pytest.approx(1200.0) and e.code == "15"
    assert "20,00 je m² × 60,0 m²" in e.german


def test_the_property_average_and_the_cohort_average_per_m2(s, world):
    e = estimate_consumption(s, world.t, world.c1, "property_average")
    # U2 and U3: (1,600 + 400) / (80 + 40) m² x 60 m² = 1,000
    assert e is not None and e.value == pytest.approx(1000.0) and e.code == "08"
    assert "des Gebäudes" in e.german
    cohort = estimate_consumption(s, world.t, world.c6, "property_average")
    # P4 has no other unit: the district-heat buildings of 7-12 units: (1,600 + 400 + 1,200) / 200 m²
    # = 16 per m² x 100 m² (P3 heats with gas: not in the cohort)
    assert cohort is not None and cohort.value == pytest.approx(1600.0)
    assert "vergleichbarer Gebäude (Fernwärme, 7-12 Nutzeinheiten; 3 Nutzeinheiten)" in cohort.german
    assert "comparable buildings (district heat, 7-12 units; 3 units)" in cohort.explanation


def test_a_method_without_data_gives_none_and_the_api_conflict(s, world):
    assert estimate_consumption(s, world.t, world.c6, "previous_period") is None
    end = s.query(BillingValue).filter_by(metering_point_id=world.mp6, boundary_at=world.c6.end_at).one()
    from omshub.cloud.domain.errors import Conflict, Invalid

    with pytest.raises(Conflict):
        billing_review.estimate_value(s, world.t, end.id, "previous_period", "meter broken", actor="op", now=NOW)
    with pytest.raises(Invalid):
        billing_review.estimate_value(s, world.t, end.id, "guess", "meter broken", actor="op", now=NOW)


def test_the_review_queues_estimate_sets_the_end_value_and_decides_the_finding(s, world):
    f = BillingFinding(
        tenant_id=world.t,
        metering_point_id=world.mp1,
        quantity="energy",
        period="2026-11",
        rule="stale_reading",
        severity="warning",
        message="m",
        german="g",
        details={},
        state="open",
        created_at=NOW,
    )
    s.add(f)
    s.flush()
    billing_review.estimate_finding(s, world.t, f.id, "previous_period", "meter broken", actor="op", now=NOW)
    assert f.state == "estimated" and f.decided_by == "op"
    end = s.query(BillingValue).filter_by(metering_point_id=world.mp1, boundary_at=world.c1.end_at).one()
    # start 5,000 + 960 estimated
    assert end.value == pytest.approx(5960.0) and end.origin == "estimated" and end.code == "07"
    assert end.method == "previous_period" and end.computed_origin == "missing"
    assert "Gradtagzahlen" in end.details["german"] and end.details["reason"] == "meter broken"
    assert world.c1.value == pytest.approx(960.0) and world.c1.quality == "estimated"
    actions = {a.action for a in s.query(AuditEntry).filter_by(tenant_id=world.t)}
    assert {"billing.value.estimate", "billing.finding.estimated"} <= actions


def test_automatic_estimation_tries_the_methods_in_order(s, world):
    # previous_period has no data for U6, comparable_units neither (no other unit): property_average's cohort
    done = estimate_missing(s, world.t, "2026-11", ["previous_period", "comparable_units", "property_average"], now=NOW)
    assert done == 2
    assert world.c1.value == pytest.approx(960.0)  # the first method with data
    assert world.c6.value == pytest.approx(1600.0)
    end = s.query(BillingValue).filter_by(metering_point_id=world.mp6, boundary_at=world.c6.end_at).one()
    assert end.method == "property_average" and end.details["auto"] is True
    assert estimate_missing(s, world.t, "2026-11", ["previous_period"], now=NOW) == 0  # nothing left
