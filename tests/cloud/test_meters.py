"""Meters and metering points API: CRUD, CSV import, install / swap / remove, roles."""

from __future__ import annotations

from sqlalchemy import select

from omshub.cloud.store.models import Installation, Telegram

from .conftest import encode

API = "/api/v1"


def test_meter_crud_and_roles(hub, client):
    t = hub.tenant()
    op, viewer = hub.headers(t, "operator"), hub.headers(t, "viewer")
    gw = hub.gateway(t)
    r = client.post(
        f"{API}/meters",
        json={"manufacturer": "kam", "meter_id": "1234abcd", "device_type": 7, "gateway_id": gw.id},
        headers=op,
    )
    assert r.status_code == 201, r.text
    m = r.json()
    assert (m["manufacturer"], m["meter_id"], m["device_type"]) == ("KAM", "1234ABCD", "water")
    assert m["gateway_id"] == gw.id and m["gateway"] == gw.serial and m["key_status"] == "missing"
    assert m["created_at"].endswith("Z")
    # viewers read, cannot write
    assert client.get(f"{API}/meters/{m['id']}", headers=viewer).json()["id"] == m["id"]
    r = client.post(f"{API}/meters", json={"manufacturer": "KAM", "meter_id": "00000001"}, headers=viewer)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # duplicates and bad input: clear errors
    r = client.post(f"{API}/meters", json={"manufacturer": "KAM", "meter_id": "1234ABCD"}, headers=op)
    assert r.status_code == 409 and "already registered" in r.json()["error"]["message"]
    for body, words in [
        ({"manufacturer": "KA", "meter_id": "00000001"}, "manufacturer"),
        ({"manufacturer": "KAM", "meter_id": "0000001"}, "meter"),
        ({"manufacturer": "KAM", "meter_id": "00000001", "device_type": "toaster"}, "device type"),
        ({"manufacturer": "KAM", "meter_id": "00000001", "colour": "red"}, "colour"),
    ]:
        r = client.post(f"{API}/meters", json=body, headers=op)
        assert r.status_code == 422 and words in r.json()["error"]["message"], r.text
    r = client.post(
        f"{API}/meters", json={"manufacturer": "KAM", "meter_id": "00000001", "gateway_id": 10**9}, headers=op
    )
    assert r.status_code == 404
    # patch and list filters
    r = client.patch(f"{API}/meters/{m['id']}", json={"device_type": "warm_water", "gateway_id": None}, headers=op)
    assert r.json()["device_type"] == "warm_water" and r.json()["gateway_id"] is None
    listed = client.get(f"{API}/meters", params={"device_type": "warm_water"}, headers=viewer).json()["items"]
    assert [x["id"] for x in listed] == [m["id"]]
    # delete (no readings) -> gone
    assert client.delete(f"{API}/meters/{m['id']}", headers=op).status_code == 204
    assert client.get(f"{API}/meters/{m['id']}", headers=viewer).status_code == 404


def test_pagination_of_meters(hub, client):
    t = hub.tenant()
    h = hub.headers(t)
    for i in range(5):
        hub.meter(t, f"5000000{i}")
    seen, cursor = [], None
    while True:
        body = client.get(
            f"{API}/meters", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=h
        ).json()
        seen += [x["meter_id"] for x in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [f"5000000{i}" for i in range(5)]
    assert client.get(f"{API}/meters", params={"cursor": "!!"}, headers=h).status_code == 422
    assert client.get(f"{API}/meters", params={"limit": 0}, headers=h).status_code == 422


def test_registering_a_meter_decodes_what_waited(hub, client, pipeline):
    t = hub.tenant()
    h = hub.headers(t, "operator")
    gw = hub.gateway(t)
    hub.keys(t, {"70000001": bytes(range(16))})
    hub.send(gw, 1, [encode("70000001", key=bytes(range(16)), energy=12.0)])
    pipeline.run_once()
    heard = client.get(f"{API}/telegrams/unregistered", headers=h).json()["items"]
    [item] = [x for x in heard if x["meter_id"] == "70000001"]
    assert item["manufacturer"] == "KAM" and item["count"] == 1 and item["device_type"] == "heat"
    assert item["gateways"] == [{"id": gw.id, "serial": gw.serial}]
    r = client.post(f"{API}/meters", json={"manufacturer": "KAM", "meter_id": "70000001"}, headers=h)
    assert r.status_code == 201 and r.json()["key_status"] == "present"
    pipeline.run_once()
    assert client.get(f"{API}/telegrams/unregistered", headers=h).json()["items"] == []
    readings = client.get(f"{API}/meters/{r.json()['id']}/readings", headers=h).json()["items"]
    assert [x["records"][0]["value"] for x in readings] == [12.0]


CSV = (
    b"manufacturer,id,device_type,gateway,metering_point,address,customer_ref\n"
    b"KAM,60000001,heat,{gw},P-60-1,Main St 1,C-1\n"
    b"KAM,60000002,7,,P-60-2,Main St 2,C-2\n"
    b"ELS,60000003,,,,,\n"
)


def test_csv_import_is_an_idempotent_upsert(hub, client, db, pipeline):
    t = hub.tenant()
    h = hub.headers(t, "operator")
    gw = hub.gateway(t)
    hub.send(gw, 1, [encode("60000001", mode=0)])
    pipeline.run_once()
    body = CSV.replace(b"{gw}", gw.serial.encode())
    r = client.post(f"{API}/meters/import", content=body, headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["created"], got["points_created"], got["installed"], got["lines"]) == (3, 2, 2, 3)
    assert got["requeued"] == 1  # the telegram heard before registration
    again = client.post(f"{API}/meters/import", content=body, headers={**h, "Content-Type": "text/csv"}).json()
    assert (again["created"], again["unchanged"], again["installed"], again["points_created"]) == (0, 3, 0, 0)
    meters = {m["meter_id"]: m for m in client.get(f"{API}/meters", headers=h).json()["items"]}
    assert meters["60000001"]["gateway"] == gw.serial and meters["60000001"]["metering_point"]["ref"] == "P-60-1"
    assert meters["60000002"]["device_type"] == "water" and meters["60000003"]["metering_point"] is None
    points = {p["ref"]: p for p in client.get(f"{API}/metering-points", headers=h).json()["items"]}
    assert points["P-60-2"]["address"] == "Main St 2" and points["P-60-2"]["customer_ref"] == "C-2"
    assert points["P-60-1"]["installation"]["meter"]["meter_id"] == "60000001"
    # an update of the device type
    r = client.post(
        f"{API}/meters/import",
        content=b"manufacturer,id,device_type\nELS,60000003,gas\n",
        headers={**h, "Content-Type": "text/csv"},
    )
    assert r.json()["updated"] == 1
    pipeline.run_once()
    with db.session() as s:
        states = s.scalars(select(Telegram.state).where(Telegram.gateway_id == gw.id)).all()
    assert states == ["decoded"]


def test_csv_import_errors_name_the_line_and_import_nothing(hub, client):
    t = hub.tenant()
    h = {**hub.headers(t, "operator"), "Content-Type": "text/csv"}
    cases = [
        (b"", "line 1"),
        (b"manufacturer,id,colour\nKAM,1,red\n", "unknown column 'colour'"),
        (b"id,device_type\n12345678,heat\n", "no 'manufacturer' column"),
        (b"manufacturer,id\nKAM,12345678\nKAM,1234\n", "line 3: id"),
        (b"manufacturer,id,device_type\nKAM,12345678,heat\nKAM,12345679,boiler\n", "line 3: device_type"),
        (b"manufacturer,id\nKAM,12345678\nKAM,12345678\n", "line 3: meter KAM 12345678 already on line 2"),
        (b"manufacturer,id,gateway\nKAM,12345678,NOPE\n", "line 2: gateway"),
        (b"manufacturer,id\nKAM,12345678,extra\n", "line 2: 3 values"),
        (b"manufacturer,id\n\xff\xfe\n", "UTF-8"),
    ]
    for body, words in cases:
        r = client.post(f"{API}/meters/import", content=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.json())
    assert client.get(f"{API}/meters", headers=h).json()["items"] == []
    # a meter installed elsewhere cannot be moved by an import
    ok = b"manufacturer,id,metering_point\nKAM,12345678,A\n"
    assert client.post(f"{API}/meters/import", content=ok, headers=h).status_code == 200
    r = client.post(f"{API}/meters/import", content=b"manufacturer,id,metering_point\nKAM,12345678,B\n", headers=h)
    assert r.status_code == 422 and "line 2" in r.json()["error"]["message"] and "swap" in r.json()["error"]["message"]
    too_big = b"x" * (client.app.state.settings.max_import_body + 1)
    r = client.post(f"{API}/meters/import", content=too_big, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_metering_point_install_swap_remove(hub, client, db):
    t = hub.tenant()
    h = hub.headers(t, "operator")
    old = hub.meter(t, "61000001")
    new = hub.meter(t, "61000002")
    r = client.post(
        f"{API}/metering-points", json={"ref": "P-61", "address": "Elm 3", "customer_ref": "K-9"}, headers=h
    )
    assert r.status_code == 201
    pid = r.json()["id"]
    assert client.post(f"{API}/metering-points", json={"ref": "P-61"}, headers=h).status_code == 409
    r = client.post(
        f"{API}/metering-points/{pid}/install",
        json={"meter": old, "at": "2026-01-01T00:00:00Z", "initial_values": {"energy": 100}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["installation"]["meter"]["id"] == old
    # occupied; meter can't be in two places
    r = client.post(f"{API}/metering-points/{pid}/install", json={"meter": new}, headers=h)
    assert r.status_code == 409
    other = client.post(f"{API}/metering-points", json={"ref": "P-61b"}, headers=h).json()["id"]
    r = client.post(f"{API}/metering-points/{other}/install", json={"meter": old}, headers=h)
    assert r.status_code == 409 and "installed at metering point 'P-61'" in r.json()["error"]["message"]
    # swap: before the installation is refused, bad quantities are refused
    bad = client.post(
        f"{API}/metering-points/{pid}/swap",
        json={"at": "2025-01-01T00:00:00Z", "old_final_values": {"energy": 1}, "new_meter": new},
        headers=h,
    )
    assert bad.status_code == 422
    bad = client.post(
        f"{API}/metering-points/{pid}/swap",
        json={"at": "2026-02-01T00:00:00Z", "old_final_values": {"joy": 1}, "new_meter": new},
        headers=h,
    )
    assert bad.status_code == 422 and "joy" in bad.json()["error"]["message"]
    r = client.post(
        f"{API}/metering-points/{pid}/swap",
        json={
            "at": "2026-02-01T00:00:00+01:00",
            "old_final_values": {"energy": 150.5},
            "new_meter": {"manufacturer": "KAM", "meter_id": "61000002"},
            "new_initial_values": {"energy": 0},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    point = r.json()
    assert [i["meter"]["id"] for i in point["installations"]] == [old, new]
    first, second = point["installations"]
    assert first["removed_at"] == second["installed_at"] == "2026-01-31T23:00:00Z"
    assert first["final_values"] == {"energy": 150.5} and second["initial_values"] == {"energy": 0}
    assert point["installation"]["meter"]["id"] == new
    # the old meter is free again; remove the new one
    r = client.post(
        f"{API}/metering-points/{pid}/remove",
        json={"at": "2026-03-01T00:00:00Z", "final_values": {"energy": 20}},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["installation"] is None
    assert (
        client.post(
            f"{API}/metering-points/{pid}/swap",
            json={"at": "2026-04-01T00:00:00Z", "old_final_values": {}, "new_meter": old},
            headers=h,
        ).status_code
        == 409
    )
    # points with history cannot be deleted, empty ones can
    assert client.delete(f"{API}/metering-points/{pid}", headers=h).status_code == 409
    assert client.delete(f"{API}/metering-points/{other}", headers=h).status_code == 204
    r = client.patch(f"{API}/metering-points/{pid}", json={"address": "Elm 4"}, headers=h)
    assert r.json()["address"] == "Elm 4" and r.json()["ref"] == "P-61"
    with db.session() as s:
        assert len(s.scalars(select(Installation).where(Installation.metering_point_id == pid)).all()) == 2


def test_csv_import_installed_at(hub, client):
    t = hub.tenant()
    h = {**hub.headers(t, "operator"), "Content-Type": "text/csv"}
    body = b"manufacturer,id,metering_point,installed_at\nKAM,62000001,P-62,2026-01-01T00:00:00+01:00\n"
    assert client.post(f"{API}/meters/import", content=body, headers=h).status_code == 200
    [p] = client.get(f"{API}/metering-points", headers=h).json()["items"]
    assert p["installation"]["installed_at"] == "2025-12-31T23:00:00Z"
    bad = client.post(
        f"{API}/meters/import", content=b"manufacturer,id,installed_at\nKAM,62000002,2026-01-01\n", headers=h
    )
    assert bad.status_code == 422 and "line 2: installed_at needs a metering_point" in bad.json()["error"]["message"]
    bad = client.post(
        f"{API}/meters/import",
        headers=h,
        content=b"manufacturer,id,metering_point,installed_at\nKAM,62000003,P-63,soon\n",
    )
    assert bad.status_code == 422 and "line 2: installed_at" in bad.json()["error"]["message"]
