"""`omshub demo` end to end, as a user runs it: a small fleet for two simulated days; afterwards
the head-end (started again on the demo's data directory) serves decoded readings through its API."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from omshub.demo import HeadEnd, ServeProcess, free_port


def test_demo_runs_and_serves_readings(tmp_path):
    data_dir = tmp_path / "demo"
    port = free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "omshub",
            "demo",
            "--gateways",
            "2",
            "--meters",
            "20",
            "--days",
            "2",
            "--exit-when-done",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    token = re.search(r"API token \(admin\):\s+(omh_\S+)", out)
    password = re.search(r"password (\S+)", out)
    assert token and password, out
    assert f"http://127.0.0.1:{port}/docs" in out
    assert re.search(rf"console:\s+http://127.0.0.1:{port}/\n", out), out
    # without a terminal (here: a pipe) the steps and the progress come as plain lines, as they happen
    assert "starting the head-end on port" in out and "simulation finished, waiting for the decoder" in out, out
    # keys, credentials and the master key: only for the owner, never for git
    assert (data_dir / ".gitignore").read_text().splitlines()[-1] == "*"
    assert data_dir.stat().st_mode & 0o077 == 0
    assert "/api/v1/readings/latest" in out and "/consumption?from=" in out
    # the customer portal with the demo occupant's login, next to the console's
    assert re.search(rf"customer portal:\s+http://127.0.0.1:{port}/portal/#t=demo", out), out
    assert re.search(r"portal login:\s+e-mail mieterin@demo.example, password \S+ \(\d+ information records\)", out), (
        out
    )
    decoded = int(re.search(r"telegrams uploaded, ([\d,]+) decoded", out).group(1).replace(",", ""))
    assert decoded >= 2 * 20, out

    # a second run refuses to overwrite the first one
    again = subprocess.run(
        [sys.executable, "-m", "omshub", "demo", "--data-dir", str(data_dir), "--port", str(port), "--exit-when-done"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "--fresh" in again.stderr

    server = ServeProcess(data_dir=data_dir, port=free_port()).start()
    api = HeadEnd(server.base_url, token.group(1))
    try:
        latest = api.call("GET", "/api/v1/readings/latest", params={"limit": 100})["items"]
        assert len(latest) == 20
        with_reading = [item for item in latest if item["reading"]]
        assert len(with_reading) >= 18, latest  # a meter may be unlucky on the radio for two days
        gateways = api.call("GET", "/api/v1/gateways")["items"]
        assert {g["serial"] for g in gateways} == {"GW000001", "GW000002"}
        assert all(g["last_contact_at"] for g in gateways)
        # the consumption call the demo prints has a value (the meters were imported without
        # installation dates, after their readings' times: they count from their first reading)
        call = re.search(r"(/api/v1/metering-points/\d+/consumption)\?from=(\S+)&to=([^'\s]+)", out)
        assert call, out
        res = api.call("GET", call.group(1), params={"from": call.group(2), "to": call.group(3)})
        assert res["value"] is not None and res["value"] > 0, res
        assert res["complete"] is True and res["covered_share"] == 1.0, res
        login = api.client.post("/api/v1/auth/login", json={"username": "admin", "password": password.group(1)})
        assert login.status_code == 200, login.text
    finally:
        api.close()
        server.stop()


def test_gateway_config_filters(tmp_path):
    from omshub.demo import gateway_config
    from omshub.protocol.config import validate_config
    from omshub.sim.fleet import parse_fleet
    from omshub.sim.radio import link_table

    from .conftest import fleet_toml, serials_for

    fleet = parse_fleet(fleet_toml("UNIT"))
    serial = serials_for("UNIT")[0]
    own = {(m.manufacturer, m.id) for m in fleet.meters_of(serial)}
    heard = {(m.manufacturer, m.id) for m in link_table(fleet).heard_by[serial]}

    black = validate_config(gateway_config(fleet, serial))
    listed = {(m.manufacturer, m.id) for m in black.filters.meters}
    assert black.filters.mode == "blacklist" and listed == heard - own and listed  # neighbours heard, none of its own
    white = validate_config(gateway_config(fleet, serial, filter_mode="whitelist"))
    assert {(m.manufacturer, m.id) for m in white.filters.meters} == own
    assert set(white.collection[0].link_modes) == {"C1", "T1"}
    with pytest.raises(ValueError):
        gateway_config(fleet, serial, filter_mode="greylist")
