"""Billing master data through the API: properties, units, occupants, stays, the all-or-nothing CSV
import, and weather stations (SQLite, and PostgreSQL with OMSHUB_TEST_DATABASE=postgres)."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from omshub.cloud.store.models import AuditEntry
from omshub.cloud.store.models_billing import Occupancy, Occupant, Property, Unit

API = "/api/v1"


def _csv(client, headers, kind: str, text: str | bytes):
    body = text.encode() if isinstance(text, str) else text
    return client.post(
        f"{API}/master-data/import/{kind}", content=body, headers={**headers, "Content-Type": "text/csv"}
    )


def _counts(db, tenant_id: int) -> tuple[int, ...]:
    with db.session() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(t).where(t.tenant_id == tenant_id))
            for t in (Property, Unit, Occupant, Occupancy)
        )


def test_a_property_with_a_unit_an_occupant_and_stays(client, hub, db):
    t = hub.tenant()
    h = hub.headers(t)
    prop = client.post(
        f"{API}/properties",
        json={
            "ref": "P-1",
            "street": "Hauptstr. 1",
            "postcode": "10115",
            "city": "Berlin",
            "due_month": 6,
            "due_day": 30,
        },
        headers=h,
    )
    assert prop.status_code == 201, prop.text
    assert prop.json()["due_date"] == {"month": 6, "day": 30} and prop.json()["energy_carrier"] == "district_heat"
    pid = prop.json()["id"]
    unit = client.post(f"{API}/properties/{pid}/units", json={"ref": "WE 01", "area_m2": 72.5}, headers=h).json()
    point = client.post(f"{API}/metering-points", json={"ref": "MP-1"}, headers=h).json()
    r = client.post(f"{API}/units/{unit['id']}/metering-points", json={"metering_point_id": point["id"]}, headers=h)
    assert r.json()["metering_point_ids"] == [point["id"]]
    anna = client.post(f"{API}/occupants", json={"customer_ref": "K-1", "name": "Anna"}, headers=h).json()
    ben = client.post(f"{API}/occupants", json={"customer_ref": "K-2", "name": "Ben"}, headers=h).json()
    stay = client.post(
        f"{API}/units/{unit['id']}/occupancies",
        json={"occupant_id": anna["id"], "moved_in": "2024-01-01", "moved_out": "2026-03-15"},
        headers=h,
    )
    assert stay.status_code == 201
    overlap = client.post(
        f"{API}/units/{unit['id']}/occupancies", json={"occupant_id": ben["id"], "moved_in": "2026-03-15"}, headers=h
    )
    assert overlap.status_code == 422 and overlap.json()["error"]["code"] == "occupancy_overlap"
    ok = client.post(
        f"{API}/units/{unit['id']}/occupancies", json={"occupant_id": ben["id"], "moved_in": "2026-03-16"}, headers=h
    )
    assert ok.status_code == 201
    listed = client.get(f"{API}/units/{unit['id']}/occupancies", headers=h).json()["items"]
    assert [(o["moved_in"], o["moved_out"]) for o in listed] == [("2024-01-01", "2026-03-15"), ("2026-03-16", None)]
    moved = client.patch(f"{API}/occupancies/{ok.json()['id']}", json={"moved_out": "2026-12-31"}, headers=h)
    assert moved.json()["moved_out"] == "2026-12-31"
    assert client.get(f"{API}/occupants/{anna['id']}", headers=h).json()["occupancies"][0]["unit_id"] == unit["id"]
    with db.session() as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == t.id)))
    assert {"property.create", "unit.create", "unit.assign_point", "occupant.create", "occupancy.save"} <= actions


def test_bad_fields_are_listed_each_with_its_field(client, hub):
    h = hub.headers(hub.tenant())
    r = client.post(f"{API}/properties", json={"ref": "P", "country": "de", "timezone": "Mars/Base"}, headers=h)
    assert r.status_code == 422
    fields = {p["field"] for p in r.json()["error"]["problems"]}
    assert fields == {"country", "timezone"}
    pid = client.post(f"{API}/properties", json={"ref": "P2", "due_month": 2, "due_day": 29}, headers=h).json()["id"]
    assert client.post(f"{API}/properties/{pid}/units", json={"ref": "U", "area_m2": 0}, headers=h).status_code == 422
    email = client.post(f"{API}/occupants", json={"customer_ref": "K", "name": "N", "channel": "email"}, headers=h)
    assert email.status_code == 422 and "E-Mail" in str(email.json())


UNITS = "property;ref;name;area_m2;usage;metering_points\nP-A;WE 1;EG links;72,5;residential;{points}\nP-A;WE 2;;55;;\n"


def _imported_world(client, h, tag: str) -> None:
    props = "ref;name;street;postcode;city;energy_carrier;size_class;due_date\nP-A;Haus A;Weg 1;10115;Berlin;gas;3-6;31.12.\n"
    r = _csv(client, h, "properties", props)
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    point = client.post(f"{API}/metering-points", json={"ref": f"MP-{tag}"}, headers=h).json()
    r = _csv(client, h, "units", UNITS.format(points=f"MP-{tag}"))
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    unit = client.get(f"{API}/properties?ref=P-A", headers=h).json()["items"][0]
    units = client.get(f"{API}/properties/{unit['id']}/units", headers=h).json()["items"]
    assert units[0]["metering_point_ids"] == [point["id"]] and units[0]["area_m2"] == 72.5


def test_the_csv_import_creates_then_updates(client, hub, db):
    t = hub.tenant()
    h = hub.headers(t)
    _imported_world(client, h, uuid.uuid4().hex[:6])
    occupants = (
        "customer_ref,name,email,channel,property,unit,moved_in,moved_out\n"
        "K-1,Anna Alt,anna@example.org,email,P-A,WE 1,01.01.2020,15.03.2026\n"
        "K-2,Ben Neu,,portal,P-A,WE 1,2026-03-16,\n"
        "K-3,Cem,,post,P-A,WE 2,2025-05-01,\n"
    )
    r = _csv(client, h, "occupants", occupants)
    assert r.status_code == 200 and r.json() == {"kind": "occupants", "lines": 3, "created": 3, "updated": 0}
    before = _counts(db, t.id)
    again = _csv(
        client,
        h,
        "occupants",
        occupants.replace("Ben Neu", "Ben Neumann").replace("2026-03-16,\n", "2026-03-16,31.12.2026\n"),
    )
    assert again.json()["updated"] == 3 and _counts(db, t.id) == before  # the same stays, changed
    ben = client.get(f"{API}/occupants?customer_ref=K-2", headers=h).json()["items"][0]
    assert ben["name"] == "Ben Neumann"
    assert client.get(f"{API}/occupants/{ben['id']}", headers=h).json()["occupancies"][0]["moved_out"] == "2026-12-31"


def test_a_bad_import_is_refused_whole_with_every_problem_by_line_and_field(client, hub, db):
    t = hub.tenant()
    h = hub.headers(t)
    _imported_world(client, h, uuid.uuid4().hex[:6])
    before = _counts(db, t.id)
    bad = (
        "customer_ref,name,property,unit,moved_in,moved_out\n"
        "K-1,Anna,P-A,WE 1,2020-01-01,2026-03-15\n"  # fine on its own
        "K-2,Ben,P-A,WE 1,2026-03-01,\n"  # overlaps line 2
        "K-3,Cem,P-A,WE 9,2026-01-01,\n"  # unknown unit
        "K-4,Dora,P-A,WE 2,2026-05-01,2026-04-01\n"  # out of order
        "K-5,,P-A,WE 2,2027-01-01,\n"  # no name
        "K-6,Emil,P-A,WE 2,31.02.2027,\n"  # no such day
    )
    r = _csv(client, h, "occupants", bad)
    assert r.status_code == 422
    problems = {(p["line"], p["field"]) for p in r.json()["error"]["problems"]}
    assert {(3, "moved_in"), (4, "unit"), (5, "moved_in"), (6, "name"), (7, "moved_in")} <= problems
    assert all(p["german"] for p in r.json()["error"]["problems"])
    assert _counts(db, t.id) == before  # nothing half-imported
    units = _csv(client, h, "units", "property;ref;area_m2;metering_points\nP-A;WE 3;0;\nP-X;WE 4;50;NOPE\n")
    found = {(p["line"], p["field"]) for p in units.json()["error"]["problems"]}
    assert found == {(2, "area_m2"), (3, "property"), (3, "metering_points")}
    latin1 = "customer_ref,name,property,unit,moved_in\nK-9,Jürgen,P-A,WE 2,2027-01-01\n".encode("latin-1")
    enc = _csv(client, h, "occupants", latin1)
    assert (
        enc.status_code == 422
        and "UTF-8" in enc.json()["error"]["message"]
        and "line 2" in enc.json()["error"]["message"]
    )
    header = _csv(client, h, "units", "property;ref;colour\n")
    assert {p["field"] for p in header.json()["error"]["problems"]} == {"colour", "area_m2"}
    assert _counts(db, t.id) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["properties", "units", "occupants"]), body=st.binary(max_size=300) | st.text(max_size=300))
def test_any_file_gets_a_result_or_a_listed_refusal(client, hub, kind, body):
    h = hub.headers(hub.tenant())
    r = _csv(client, h, kind, body)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        error = r.json()["error"]
        assert error["message"]


DWD = (
    "STATIONS_ID;MESS_DATUM;QN_3;  FX;  FM;QN_4; RSK;RSKF; SDK;SHK_TAG;  NM; VPM;  PM; TMK; UPM; TXK; TNK; TGK;eor\n"
    + "".join(
        f"        433;202601{d:02d};   10;  11.2;   4.1;    3;   0.0;   0;  5.2;   0;  6.1;  8.4; 1011.2;"
        f"   {t};  84.0;  10.1;   2.0;   0.1;eor\n"
        for d, t in [(1, "4.0"), (2, "16.0"), (3, "-999"), (4, "-2.5")]
    )
)


def test_weather_stations_import_days_and_give_degree_days(client, hub):
    h = hub.headers(hub.tenant())
    station = client.post(f"{API}/weather-stations", json={"code": "433", "name": "Berlin-Tempelhof"}, headers=h)
    sid = station.json()["id"]
    r = client.post(
        f"{API}/weather-stations/{sid}/days", content=DWD.encode(), headers={**h, "Content-Type": "text/csv"}
    )
    assert r.json() == {"days": 3, "replaced": 0, "first": "2026-01-01", "last": "2026-01-04"}
    dd = client.get(f"{API}/weather-stations/{sid}/degree-days?first=2026-01-01&last=2026-01-05", headers=h).json()
    assert dd == {
        "first": "2026-01-01",
        "last": "2026-01-05",
        "degree_days": 38.5,
        "days_with_data": 3,
        "days_missing": 2,
    }
    fix = client.post(
        f"{API}/weather-stations/{sid}/days",
        content=b"date,mean_c\n2026-01-02,10\n",
        headers={**h, "Content-Type": "text/csv"},
    )
    assert fix.json()["replaced"] == 1
    listed = client.get(f"{API}/weather-stations", headers=h).json()["items"][0]
    assert (listed["days"], listed["first_day"], listed["last_day"]) == (3, "2026-01-01", "2026-01-04")
    bad = client.post(
        f"{API}/weather-stations/{sid}/days",
        content=b"date,mean_c\n2026-01-02,hot\n",
        headers={**h, "Content-Type": "text/csv"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["line"] == 2
    pid = client.post(f"{API}/properties", json={"ref": "W"}, headers=h).json()["id"]
    put = client.put(f"{API}/properties/{pid}/weather-station", json={"weather_station_id": sid}, headers=h)
    assert put.json()["weather_station_id"] == sid
