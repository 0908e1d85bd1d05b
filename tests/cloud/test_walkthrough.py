"""The scripted walk through the head-end (issue 3 "done means"): a real `omshub serve` process
driven over HTTP with httpx — tenant, users, gateway, meters, keys, uplinks with telegrams from the
codec's encoder (modes 5, 7, ELL, plain, compact, and bad ones), decoded readings, consumption,
alarms, and a configuration change going through its operation states."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import cbor2
import httpx
import pytest

from omshub.codec import encode_telegram

from .conftest import MASTER_KEY_HEX

pytestmark = [pytest.mark.timeout(180), pytest.mark.subprocess]  # starts other processes: not in the fast lane

KEY_HEAT = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
KEY_WATER = bytes.fromhex("1112131415161718191A1B1C1D1E1F20")
KEY_HCA = bytes.fromhex("2122232425262728292A2B2C2D2E2F30")
KEY_NEW = bytes.fromhex("3132333435363738393A3B3C3D3E3F40")
T0 = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
DAY = 86_400


def _rec(quantity: str, unit: str, value: float, dif_vif: str | None = None) -> dict:
    rec = {
        "quantity": quantity,
        "unit": unit,
        "value": value,
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
    }
    if dif_vif:
        rec["dif_vif"] = dif_vif
    return rec


def _meter(mid: str, dtype: int, manufacturer: str = "KAM") -> dict:
    return {"manufacturer": manufacturer, "id": mid, "version": 1, "device_type_code": dtype}


def heat(mid, energy, **kw):
    return encode_telegram(_meter(mid, 4), [_rec("energy", "kWh", energy)], **kw)


def water(mid, volume, **kw):
    # fixed coding so compact frames match the format learned from the full frame
    return encode_telegram(_meter(mid, 7), [_rec("volume", "m3", volume, "0413")], **kw)


def hca(mid, units, **kw):
    return encode_telegram(_meter(mid, 8), [_rec("hca", "HCA", units)], **kw)


def _admin(database_url, data_dir, *args) -> dict:
    env = {**os.environ, "OMSHUB_MASTER_KEY": MASTER_KEY_HEX}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "omshub",
            "admin",
            *args,
            "--database",
            database_url,
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Gateway:
    def __init__(self, http: httpx.Client, serial: str, credential: str) -> None:
        self.http, self.serial, self.credential, self.seq = http, serial, credential, 0

    def uplink(
        self,
        frames: list[bytes],
        *,
        t0: int = T0,
        dts: list[int] | None = None,
        cfg: int = 0,
        cfg_error: dict | None = None,
    ) -> dict:
        self.seq += 1
        env = {"v": 1, "gw": self.serial, "seq": self.seq, "cfg": cfg, "status": {"battery_pct": 77, "spool": 0}}
        if frames:
            env["t0"] = t0
            env["batch"] = {
                "data": b"".join(frames),
                "len": [len(f) for f in frames],
                "dt": dts if dts is not None else [0] * len(frames),
                "rssi": bytes([256 - 80] * len(frames)),
                "mode": 1,
            }
        if cfg_error:
            env["cfg_error"] = cfg_error
        r = self.http.post(
            "/api/v1/uplink",
            content=cbor2.dumps(env),
            headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {self.credential}"},
        )
        assert r.status_code == 200, r.content
        answer = cbor2.loads(r.content)
        assert answer["ack"] == self.seq
        return answer


def _wait_decoded(http, headers, expected_total: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = http.get("/api/v1/telegrams", params={"limit": 1000}, headers=headers).json()["items"]
        if len(items) >= expected_total and not any(i["state"] == "new" for i in items):
            return items
        if time.monotonic() > deadline:
            raise AssertionError(f"telegrams not decoded in {timeout}s: {[(i['id'], i['state']) for i in items]}")
        time.sleep(0.2)


def _wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_walkthrough(live_server, database_url, data_dir):
    server = live_server()
    http = httpx.Client(base_url=server.base_url, timeout=30)
    slug = "stadtwerke-" + uuid.uuid4().hex[:6]

    # --- bootstrap: tenant and users (CLI), login (API) ---
    tenant = _admin(database_url, data_dir, "create-tenant", slug, "--name", "Stadtwerke Nord")
    assert tenant["slug"] == slug
    _admin(
        database_url,
        data_dir,
        "create-user",
        f"admin@{slug}",
        "--tenant",
        slug,
        "--role",
        "admin",
        "--password",
        "admin-password-1",
    )
    login = http.post("/api/v1/auth/login", json={"username": f"admin@{slug}", "password": "admin-password-1"})
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['token']}"}
    assert http.get("/api/v1/auth/me", headers=admin).json()["tenant"]["slug"] == slug
    r = http.post(
        "/api/v1/users",
        json={"username": f"installer@{slug}", "password": "installer-pw-1", "role": "operator"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    op_token = http.post(
        "/api/v1/auth/login", json={"username": f"installer@{slug}", "password": "installer-pw-1"}
    ).json()["token"]
    op = {"Authorization": f"Bearer {op_token}"}
    billing = {
        "Authorization": "Bearer "
        + http.post("/api/v1/tokens", json={"name": "billing", "role": "viewer"}, headers=admin).json()["token"]
    }
    assert http.get("/api/v1/meters", headers={"Authorization": "Bearer nonsense"}).status_code == 401

    # --- a gateway, meters (CSV), keys (CSV) ---
    r = http.post("/api/v1/gateways", json={"serial": f"GW-{slug}", "name": "Main St boiler room"}, headers=op)
    assert r.status_code == 201, r.text
    gw = Gateway(http, r.json()["serial"], r.json()["credential"])
    gw_id = r.json()["id"]
    meters_csv = (
        f"manufacturer,id,device_type,gateway,metering_point,address,customer_ref,installed_at\n"
        f"KAM,21000001,heat,{gw.serial},MP-HEAT-1,Main St 1,CUST-1,2026-01-01T00:00:00Z\n"
        f"KAM,21000002,water,{gw.serial},MP-WATER-1,Main St 1,CUST-1,2026-01-01T00:00:00Z\n"
        f"KAM,21000003,heat_cost_allocator,{gw.serial},MP-HCA-1,Main St 1,CUST-1,2026-01-01T01:00:00+01:00\n"
        f"KAM,21000004,water,{gw.serial},MP-WATER-2,Main St 2,CUST-2,\n"
        f"KAM,21000005,heat,{gw.serial},,,,\n"
    )
    r = http.post("/api/v1/meters/import", content=meters_csv, headers={**op, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 5 and r.json()["installed"] == 4
    keys_csv = (
        f"id,key,manufacturer\n21000001,{KEY_HEAT.hex()},KAM\n21000002,{KEY_WATER.hex()},KAM\n"
        f"21000003,{KEY_HCA.hex()},KAM\n21000005,{bytes(16).hex()},KAM\n"
    )
    r = http.post("/api/v1/keys/import", content=keys_csv, headers={**op, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    meters = {m["meter_id"]: m for m in http.get("/api/v1/meters", headers=billing).json()["items"]}
    assert meters["21000001"]["key_status"] == "present" and meters["21000004"]["key_status"] == "missing"
    assert KEY_HEAT.hex() not in http.get("/api/v1/keys", headers=op).text.lower()

    # --- day 1 uplink: every kind of telegram, and bad ones ---
    frames = [
        heat("21000001", 1000.0, mode=5, key=KEY_HEAT),  # mode 5
        water("21000002", 50.0, mode=7, key=KEY_WATER),  # mode 7 (AFL, CMAC)
        hca("21000003", 10, mode=0, ell="8D", key=KEY_HCA, tpl="none"),  # ELL AES-CTR
        water("21000004", 7.0, mode=0),  # plain
        heat("21000005", 1.0, mode=5, key=KEY_NEW),  # wrong key stored for it
        heat("29999999", 3.0, mode=5, key=KEY_NEW),  # not registered
        heat("21000001", 1000.0, mode=5, key=KEY_HEAT, access_number=0),  # repeated transmission
        bytes.fromhex("0B44FFFFFFFFFFFFFFFF7A"),  # garbage
        b"\x05\x44\x01",  # too short: rejected
    ]
    answer = gw.uplink(frames, dts=[0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert answer["stored"] == 8 and [x["index"] for x in answer["rejected"]] == [8]
    telegrams = _wait_decoded(http, billing, 8)
    states = {}
    for t in telegrams:
        states.setdefault(t["state"], []).append(t["meter_id"])
    assert sorted(states.get("decoded", [])) == ["21000001", "21000002", "21000003", "21000004"], states
    assert states["wrong_key"] == ["21000005"] and states["unknown_meter"] == ["29999999"]
    assert states["duplicate"] == ["21000001"] and len(states["invalid"]) == 1
    assert all(t["hex"] and "key" not in t for t in telegrams)

    # --- day 1 later: compact frame of the water meter (format learned from its full frame) ---
    gw.uplink([water("21000002", 51.0, mode=7, key=KEY_WATER, compact=True, access_number=1)], t0=T0 + 3600)
    _wait_decoded(http, billing, 9)
    readings = http.get(f"/api/v1/meters/{meters['21000002']['id']}/readings", headers=billing).json()["items"]
    assert [r["records"][0]["value"] for r in readings] == [50.0, 51.0]
    assert readings[0]["timestamp"] == "2026-02-01T00:00:01Z"

    # --- installers find the unregistered meter and register it; what waited gets decoded ---
    heard = http.get("/api/v1/telegrams/unregistered", headers=op).json()["items"]
    assert [(h["meter_id"], h["device_type"], h["count"]) for h in heard] == [("29999999", "heat", 1)]
    assert heard[0]["gateways"][0]["serial"] == gw.serial
    http.post(
        "/api/v1/keys/import", content=f"id,key\n29999999,{KEY_NEW.hex()}\n", headers={**op, "Content-Type": "text/csv"}
    )
    new = http.post(
        "/api/v1/meters",
        json={"manufacturer": "KAM", "meter_id": "29999999", "device_type": "heat", "gateway_id": gw_id},
        headers=op,
    )
    assert new.status_code == 201, new.text
    _wait(
        lambda: http.get(f"/api/v1/meters/{new.json()['id']}/readings", headers=billing).json()["items"],
        "the waiting telegram of the newly registered meter to decode",
    )
    assert http.get("/api/v1/telegrams/unregistered", headers=op).json()["items"] == []

    # --- latest readings of every meter ---
    latest = {
        i["meter"]["meter_id"]: i["reading"]
        for i in http.get("/api/v1/readings/latest", headers=billing).json()["items"]
    }
    assert latest["21000001"]["records"][0]["value"] == 1000.0
    assert latest["21000003"]["records"][0]["quantity"] == "hca" and latest["21000005"] is None

    # --- wrong key -> alarm; the right key re-decodes and clears it ---
    def active(kind=None):
        params = {"active": "true", **({"kind": kind} if kind else {})}
        return http.get("/api/v1/alarms", params=params, headers=billing).json()["items"]

    assert [a["subject"]["id"] for a in active("wrong_key")] == [meters["21000005"]["id"]]
    http.post(
        "/api/v1/keys/import",
        content=f"id,key,manufacturer\n21000005,{KEY_NEW.hex()},KAM\n",
        headers={**op, "Content-Type": "text/csv"},
    )
    _wait(lambda: not active("wrong_key"), "the wrong-key alarm to clear")
    # the telegrams are from February: the periodic check (every 2 s here) finds the meters silent,
    # all of the gateway's, which calls in: one alarm of the gateway listing them (grouped per cause)
    silent = _wait(lambda: active("gateway_meters_silent"), "the gateway's alarm of its silent meters")
    assert [a["subject"]["id"] for a in silent] == [gw_id]
    assert meters["21000001"]["id"] in {m["id"] for m in silent[0]["details"]["silent_meters"]}

    # --- days 2..10: readings, a meter error, a swap, a counter going backwards ---
    gw.uplink(
        [
            heat("21000001", 1100.0, mode=5, key=KEY_HEAT, access_number=1),
            water("21000002", 55.0, mode=7, key=KEY_WATER, access_number=2),
            hca("21000003", 14, mode=0, ell="8D", key=KEY_HCA, tpl="none", access_number=1),
            water("21000004", 6.0, mode=0, access_number=1, status=0x08),
        ],  # backwards + permanent error
        t0=T0 + 4 * DAY,
    )
    _wait_decoded(http, billing, 13)
    quiet = ("meter_silent", "gateway_meters_silent")
    raised = _wait(lambda: [a for a in active() if a["kind"] not in quiet], "alarms of meter 21000004")
    assert sorted(a["kind"] for a in raised) == ["meter_error", "negative_consumption"], raised
    assert all(a["subject"]["id"] == meters["21000004"]["id"] for a in raised)
    assert "permanent error" in next(a["message"] for a in raised if a["kind"] == "meter_error")

    points = {p["ref"]: p for p in http.get("/api/v1/metering-points", headers=billing).json()["items"]}
    heat_point = points["MP-HEAT-1"]["id"]
    r = http.post(
        f"/api/v1/metering-points/{heat_point}/swap",
        headers=op,
        json={
            "at": "2026-02-07T00:00:00Z",
            "old_final_values": {"energy": 1150.0},
            "new_meter": new.json()["id"],
            "new_initial_values": {"energy": 3.0},
        },
    )
    assert r.status_code == 200, r.text
    gw.uplink([heat("29999999", 40.0, mode=5, key=KEY_NEW, access_number=1)], t0=T0 + 9 * DAY)
    _wait_decoded(http, billing, 14)
    cons = http.get(
        f"/api/v1/metering-points/{heat_point}/consumption",
        headers=billing,
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-02-11T00:00:00Z"},
    ).json()
    # old meter: 1150 (final) - 1000 (day 1); new meter: 40 - 3 (initial)
    assert cons["complete"] is True and cons["unit"] == "kWh" and cons["value"] == pytest.approx(187.0)
    assert [s["meter"]["meter_id"] for s in cons["segments"]] == ["21000001", "29999999"]
    water_point = points["MP-WATER-1"]["id"]
    cons = http.get(
        f"/api/v1/metering-points/{water_point}/consumption",
        headers=billing,
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-02-06T00:00:00Z"},
    ).json()
    assert cons["quantity"] == "volume" and cons["value"] == pytest.approx(5.0)
    hca_point = points["MP-HCA-1"]["id"]
    cons = http.get(
        f"/api/v1/metering-points/{hca_point}/consumption",
        headers=billing,
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-02-06T00:00:00Z"},
    ).json()
    assert cons["quantity"] == "hca" and cons["value"] == pytest.approx(4.0)

    # --- export for billing ---
    csv_text = http.get(
        "/api/v1/export/readings",
        headers=billing,
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-02-28T00:00:00Z"},
    ).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("reading_id,manufacturer,meter_id") and len(lines) == 1 + 12
    js = http.get(
        "/api/v1/export/readings",
        headers=billing,
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-02-28T00:00:00Z", "format": "json"},
    ).json()
    assert len(js) == 12 and {row["meter_id"] for row in js} >= {"21000001", "21000002", "21000003"}

    # --- remote configuration: PENDING -> DELIVERED -> SUCCESSFUL ---
    config = {
        "timezone": "Europe/Berlin",
        "upload": {"cron": "0 15 4 * * *", "max_batch": 2000},
        "spread_s": 900,
        "filters": {"mode": "whitelist", "meters": [{"manufacturer": "KAM", "id": "21000001"}]},
    }
    assert http.put(f"/api/v1/gateways/{gw_id}/config", json=config, headers=billing).status_code == 403
    r = http.put(f"/api/v1/gateways/{gw_id}/config", json=config, headers=op)
    assert r.status_code == 201, r.text
    operation = r.json()
    assert operation["state"] == "PENDING" and operation["created_by"] == f"installer@{slug}"
    assert operation["expected_contact_at"].endswith("Z")
    answer = gw.uplink([], cfg=0)
    assert answer["config"]["version"] == operation["config_version"] == 1
    assert answer["config"]["filters"]["meters"] == [{"manufacturer": "KAM", "id": "21000001"}]
    got = http.get(f"/api/v1/operations/{operation['id']}", headers=billing).json()
    assert got["state"] == "DELIVERED" and got["delivered_at"]
    assert gw.uplink([], cfg=1)["config"] is None
    got = http.get(f"/api/v1/operations/{operation['id']}", headers=billing).json()
    assert got["state"] == "SUCCESSFUL" and got["finished_at"]
    assert http.get(f"/api/v1/gateways/{gw_id}", headers=billing).json()["applied_config_version"] == 1

    # --- a configuration the gateway refuses -> FAILED with its reason; a superseded one ---
    first = http.put(f"/api/v1/gateways/{gw_id}/config", json={**config, "spread_s": 10}, headers=op).json()
    second = http.put(f"/api/v1/gateways/{gw_id}/config", json={**config, "spread_s": 20}, headers=op).json()
    assert http.get(f"/api/v1/operations/{first['id']}", headers=billing).json()["state"] == "SUPERSEDED"
    assert gw.uplink([], cfg=1)["config"]["version"] == 3
    assert gw.uplink([], cfg=1, cfg_error={"version": 3, "message": "spool too small for max_batch"})["config"] is None
    got = http.get(f"/api/v1/operations/{second['id']}", headers=billing).json()
    assert got["state"] == "FAILED" and got["error"] == "spool too small for max_batch"
    ops = http.get("/api/v1/operations", params={"gateway_id": gw_id}, headers=billing).json()["items"]
    assert [o["state"] for o in ops] == ["FAILED", "SUPERSEDED", "SUCCESSFUL"]
    http.close()
