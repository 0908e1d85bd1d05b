"""The uplink envelope (docs/formats.md §2) and response parsing."""

import cbor2
import orjson
import pytest

from omshub.gateway.frames import ReceivedFrame
from omshub.protocol.envelope import ProtocolError, build_envelope, decode_envelope, parse_response
from tests.gateway.helpers import frame

T = [
    ReceivedFrame(frame("00000001"), 1_700_000_000.7, -71, "T1"),
    ReceivedFrame(frame("00000002", compact=True), 1_700_000_030.2, None, "C1"),
    ReceivedFrame(frame("00000003"), 1_700_000_100.0, -120, "T1"),
]


def test_cbor_batch_is_column_wise_and_minimal():
    body = build_envelope(
        serial="GW-1",
        seq=7,
        cfg=3,
        telegrams=T,
        status={"spool": 3},
        cfg_error={"version": 4, "message": "bad"},
        cred="c",
    )
    env = cbor2.loads(body)
    assert env["v"] == 1 and env["gw"] == "GW-1" and env["seq"] == 7 and env["cfg"] == 3
    assert env["t0"] == 1_700_000_000 and env["cred"] == "c"
    b = env["batch"]
    assert b["data"] == b"".join(t.raw for t in T) and b["len"] == [len(t.raw) for t in T]
    assert b["dt"] == [0, 30, 100]
    assert b["rssi"] == bytes([(-71) & 0xFF, 0x80, (-120) & 0xFF])
    assert b["mode"] == bytes([1, 2, 1])
    many = [ReceivedFrame(frame(f"{i:08d}"), 1_700_000_000 + 3.6 * i, -80, "T1") for i in range(250)]
    batch = cbor2.loads(build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=many))["batch"]
    framing = len(cbor2.dumps(batch)) - sum(len(t.raw) for t in many)
    assert framing / 250 < 6  # per telegram: length, time offset, RSSI byte (+ fixed keys)
    back = decode_envelope(body)
    assert [(t["raw"], t["rx"], t["rssi"], t["mode"]) for t in back["telegrams"]] == [
        (t.raw, int(t.rx_time), t.rssi, t.link_mode) for t in T
    ]


def test_single_mode_is_one_code_and_empty_is_status_only():
    env = cbor2.loads(build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=[T[0], T[2]]))
    assert env["batch"]["mode"] == 1
    env = cbor2.loads(build_envelope(serial="GW-1", seq=2, cfg=0, status={"battery_pct": 99}))
    assert "batch" not in env and "t0" not in env and env["status"] == {"battery_pct": 99}


def test_json_form():
    env = orjson.loads(build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=T, encoding="json"))
    assert env["telegrams"][0] == {"rx": 1_700_000_000, "mode": "T1", "hex": T[0].raw.hex().upper(), "rssi": -71}
    assert "rssi" not in env["telegrams"][1]


def test_envelope_limits():
    with pytest.raises(ValueError, match="serial"):
        build_envelope(serial="bad serial", seq=1, cfg=0)
    with pytest.raises(ValueError, match="10..512"):
        build_envelope(serial="GW", seq=1, cfg=0, telegrams=[ReceivedFrame(b"\x01\x02", 0, None, "T1")])
    with pytest.raises(ValueError, match="at most 5000"):
        build_envelope(serial="GW", seq=1, cfg=0, telegrams=[T[0]] * 5001)


def test_parse_response():
    r = parse_response(cbor2.dumps({"ack": 5, "stored": 2, "duplicates": 1, "rejected": [], "config": None, "time": 1}))
    assert r["ack"] == 5 and r["config"] is None
    assert parse_response(orjson.dumps({"ack": 1, "config": {"version": 2}}), "application/json")["config"] == {
        "version": 2
    }
    for bad, why in [
        (b"\xff\x00garbage", "not valid"),
        (cbor2.dumps([1]), "map"),
        (cbor2.dumps({"ack": -1}), "ack"),
        (cbor2.dumps({"ack": True}), "ack"),
        (cbor2.dumps({"ack": 1, "config": 5}), "config"),
        (cbor2.dumps({"ack": 1, "time": "x"}), "time"),
    ]:
        with pytest.raises(ProtocolError, match=why):
            parse_response(bad)
