"""`omshub serve` as a real process: first start, bootstrap CLI, an uplink decoded by the worker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import cbor2
import httpx
import pytest

from .conftest import KEY, MASTER_KEY_HEX, LiveServer, batch_envelope, encode, free_port

pytestmark = pytest.mark.subprocess  # every test here starts another process: not in the fast lane


def _cli(*args, database_url: str, data_dir, cwd=None) -> dict:
    env = {**os.environ, "OMSHUB_MASTER_KEY": MASTER_KEY_HEX}
    out = subprocess.run(
        [sys.executable, "-m", "omshub", *args, "--database", database_url, "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_first_start_without_options_uses_sqlite_in_omshub_data(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMSHUB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "omshub", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: _healthy(f"http://127.0.0.1:{port}"))
        assert (tmp_path / "omshub-data" / "omshub.db").exists()
        master = tmp_path / "omshub-data" / "master.key"
        assert stat.S_IMODE(master.stat().st_mode) == 0o600
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        assert "/api/v1/uplink" in httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["paths"]
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode is not None
    output = proc.stdout.read().decode()
    # a newcomer sees where to go, not the migration tool's start-up chatter
    assert "console at /, API docs at /docs" in output and "alembic" not in output, output


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_bootstrap_cli_then_uplink_is_decoded_by_the_running_server(live_server, database_url, data_dir, tmp_path):
    server: LiveServer = live_server()
    tenant = _cli("admin", "create-tenant", "walk", "--name", "Walk", database_url=database_url, data_dir=data_dir)
    assert tenant["slug"] == "walk"
    user = _cli(
        "admin",
        "create-user",
        "walker",
        "--tenant",
        "walk",
        "--role",
        "admin",
        database_url=database_url,
        data_dir=data_dir,
    )
    assert len(user["password"]) >= 16  # generated, shown once
    token = _cli(
        "admin",
        "create-token",
        "--tenant",
        "walk",
        "--name",
        "billing",
        "--role",
        "operator",
        database_url=database_url,
        data_dir=data_dir,
    )["token"]
    gateway = _cli("admin", "add-gateway", "GW-WALK", "--tenant", "walk", database_url=database_url, data_dir=data_dir)
    keyfile = tmp_path / "k.csv"
    keyfile.write_text(f"id,key\n40000001,{KEY.hex()}\n")
    _cli("keys", "import", str(keyfile), "--tenant", "walk", database_url=database_url, data_dir=data_dir)

    api = httpx.Client(base_url=server.base_url, timeout=30)
    login = api.post("/api/v1/auth/login", json={"username": "walker", "password": user["password"]})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {token}"}
    r = api.post(
        "/api/v1/meters", json={"manufacturer": "KAM", "meter_id": "40000001", "device_type": "heat"}, headers=headers
    )
    assert r.status_code == 201, r.text
    meter_pk = r.json()["id"]
    env = batch_envelope("GW-WALK", 1, [encode("40000001", energy=321.0)])
    r = api.post(
        "/api/v1/uplink",
        content=cbor2.dumps(env),
        headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {gateway['credential']}"},
    )
    assert r.status_code == 200 and cbor2.loads(r.content)["stored"] == 1

    def readings():
        got = api.get(f"/api/v1/meters/{meter_pk}/readings", headers=headers)
        return got.status_code == 200 and got.json()["items"]

    items = _wait(readings)
    assert [rec["value"] for rec in items[0]["records"] if rec["quantity"] == "energy"] == [321.0]
