from __future__ import annotations

import orjson
from typer.testing import CliRunner

from omshub.cli import app
from omshub.codec import DecodeError, FormatCache, KeyRing, decode, peek_header
from omshub.gateway.sources import parse_hex_line, parse_rtlwmbus_line

runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()


def _run(*args):
    return runner.invoke(app, ["simulate", *args])


def test_init_keys_meters_and_run(tmp_path):
    fleet = tmp_path / "fleet.toml"
    r = _run("init-fleet", "--gateways", "2", "--meters", "30", "-o", str(fleet))
    assert r.exit_code == 0, r.output
    assert _run("init-fleet", "--gateways", "2", "--meters", "30", "-o", str(fleet)).exit_code == 2  # exists
    assert _run("keys", str(fleet), "-o", str(tmp_path / "keys.csv")).exit_code == 0
    assert _run("meters", str(fleet), "-o", str(tmp_path / "meters.csv")).exit_code == 0
    ring = KeyRing.from_csv((tmp_path / "keys.csv").read_text())
    assert (tmp_path / "meters.csv").read_text().count("\n") == 31

    r = _run(
        "run",
        str(fleet),
        "--start",
        "2026-01-01",
        "--hours",
        "0.1",
        "--gateway",
        "GW000001",
        "--no-progress",
        "-o",
        str(tmp_path / "gw1.hex"),
    )
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "gw1.hex").read_text().splitlines()
    assert lines
    decoded = own = 0
    formats = FormatCache()
    for line in lines:
        raw, rssi, mode = parse_hex_line(line)  # the gateway's hexfile source reads it
        assert mode in ("T1", "C1") and rssi is not None
        try:
            head = peek_header(raw)
        except DecodeError as exc:  # damaged on the air, found by its CRCs: the gateway drops it
            assert exc.code in ("crc_error", "length_mismatch"), exc
            continue
        if ring(head["manufacturer"], head["id"]) is None:
            continue  # a foreign meter (or a corrupted address)
        try:
            decode(raw, keys=ring, formats=formats)
            decoded += 1
        except DecodeError as exc:  # corrupted frames
            if exc.code == "unknown_format":  # a compact frame before the meter's next full frame
                continue
        own += 1
    assert own and decoded >= 0.8 * own

    r = _run(
        "run",
        str(fleet),
        "--start",
        "2026-01-01T00:00:00+01:00",
        "--hours",
        "0.05",
        "--format",
        "jsonl",
        "--no-progress",
    )
    assert r.exit_code == 0
    recs = [orjson.loads(x) for x in r.stdout.splitlines()]
    assert recs and {x["gw"] for x in recs} <= {"GW000001", "GW000002"}
    assert recs[0]["rx"].startswith("2025-12-31T23:0")

    r = _run(
        "run",
        str(fleet),
        "--start",
        "2026-01-01",
        "--hours",
        "0.05",
        "--format",
        "rtlwmbus",
        "--gateway",
        "GW000002",
        "--no-progress",
    )
    assert r.exit_code == 0
    for line in r.stdout.splitlines():
        assert parse_rtlwmbus_line(line) is not None


def test_cli_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[sites]]\nname = "x"\n[[sites.gateways]]\nserial = "G"\n[[sites.gateways.meters]]\n'
        'kind = "heat"\ncount = 1\ninterval_s = 999\n'
    )
    r = _run("keys", str(bad))
    assert r.exit_code == 2
    assert "sites[0].gateways[0].meters[0].interval_s" in (r.stderr if hasattr(r, "stderr") else r.output)
    r = _run("run", str(bad), "--start", "yesterday")
    assert r.exit_code == 2
    good = tmp_path / "good.toml"
    assert _run("init-fleet", "--gateways", "1", "--meters", "5", "-o", str(good)).exit_code == 0
    r = _run("run", str(good), "--start", "not-a-date")
    assert r.exit_code == 2 and "ISO date" in (r.stderr if hasattr(r, "stderr") else r.output)
    r = _run("run", str(good), "--start", "2026-01-01", "--gateway", "NOPE")
    assert r.exit_code == 2
    r = _run("init-fleet", "--gateways", "1", "--meters", "300", "-o", str(tmp_path / "x.toml"))
    assert r.exit_code == 2
