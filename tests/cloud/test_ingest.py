"""Uplink ingest (docs/formats.md §2): both encodings and forms, idempotency, bounds, bad telegrams."""

from __future__ import annotations

import time
from datetime import UTC

import cbor2
import orjson
import pytest
from sqlalchemy import func, select

from omshub.cloud.ingest.uplink import handle_uplink
from omshub.cloud.store.models import Gateway, Telegram, Uplink
from omshub.cloud.store.uplink_bodies import full_body
from omshub.protocol.envelope import MAX_BODY, UplinkRejected

from ..clock import EPOCH
from .conftest import batch_envelope, encode

T0 = int(EPOCH.timestamp())


def _count(db, model, **where) -> int:
    with db.session() as s:
        stmt = select(func.count()).select_from(model)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return s.scalar(stmt)


def test_cbor_batch_is_stored_and_acknowledged(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    frames = [encode("10000001"), encode("10000002", energy=2.0)]
    before = int(time.time())
    answer = hub.send(gw, 7, frames, status={"battery_pct": 81, "rssi": -90, "firmware": "1.2.3", "spool": 4})
    assert answer["ack"] == 7 and answer["stored"] == 2 and answer["duplicates"] == 0
    assert answer["rejected"] == [] and answer["config"] is None and answer["time"] >= before
    rows = hub.telegrams(gw)
    assert [(r.state, r.manufacturer, r.meter_id) for r in rows] == [
        ("new", "KAM", "10000001"),
        ("new", "KAM", "10000002"),
    ]
    with db.session() as s:
        g = s.get(Gateway, gw.id)
        assert g.status["battery_pct"] == 81 and g.status["firmware"] == "1.2.3" and g.last_seq == 7
        assert g.last_contact_at is not None
        stored = s.scalars(select(Telegram.raw).where(Telegram.gateway_id == gw.id).order_by(Telegram.id)).all()
        assert stored == frames
        up = s.scalar(select(Uplink).where(Uplink.gateway_id == gw.id))
        assert cbor2.loads(full_body(s, up))["seq"] == 7 and up.response["ack"] == 7
        # the frames are stored once: in the telegram rows, cut out of the stored body
        assert up.frames_cut_at is not None and b"".join(frames) not in up.body
        assert cbor2.loads(full_body(s, up))["batch"]["data"] == b"".join(frames)


def test_body_with_a_frame_stored_before_is_kept_whole(hub, db):
    """A frame that is no telegram row of this uplink (the same frame, the same second, stored
    before) leaves the body whole: the telegram rows could not give its bytes back."""
    t = hub.tenant()
    gw = hub.gateway(t)
    frame = encode("10000011")
    body = cbor2.dumps(batch_envelope(gw.serial, 1, [frame, frame], t0=T0, dts=[5, 5]))
    answer = handle_uplink(db, body, content_type="application/cbor", transport="https", credential=gw.credential)
    assert answer["stored"] == 1 and answer["duplicates"] == 1
    with db.session() as s:
        up = s.scalar(select(Uplink).where(Uplink.gateway_id == gw.id))
        assert up.frames_cut_at is None and bytes(up.body) == body == full_body(s, up)


def test_gateway_status_shown_in_api(hub, client):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.send(
        gw,
        1,
        [encode("10000003")],
        status={"battery_pct": 55, "rssi": -101, "firmware": "2.0", "spool": 12, "next_contact": 2_000_000_000},
        cfg=0,
    )
    body = client.get(f"/api/v1/gateways/{gw.id}", headers=hub.headers(t, "viewer")).json()
    assert body["battery_pct"] == 55 and body["rssi"] == -101 and body["firmware"] == "2.0" and body["spool"] == 12
    assert body["applied_config_version"] == 0 and body["last_seq"] == 1
    assert body["next_contact_at"] == "2033-05-18T03:33:20Z"
    assert body["last_contact_at"].endswith("Z")


def test_json_telegrams_form(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    f1, f2 = encode("10000011"), encode("10000012")
    env = {
        "v": 1,
        "gw": gw.serial,
        "seq": 1,
        "cfg": 0,
        "telegrams": [
            {"rx": "2026-01-02T03:04:05+01:00", "mode": "C1", "rssi": -80, "hex": f1.hex().upper()},
            {"rx": 1767000000, "mode": 1, "hex": f2.hex()},
        ],
    }
    r = hub.post_uplink(gw, env, as_json=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert answer["stored"] == 2 and answer["ack"] == 1
    with hub.db.session() as s:
        rows = s.execute(
            select(Telegram.received_at, Telegram.link_mode, Telegram.rssi)
            .where(Telegram.gateway_id == gw.id)
            .order_by(Telegram.id)
        ).all()
    assert rows[0].received_at.isoformat() == "2026-01-02T02:04:05+00:00" and rows[0].link_mode == "C1"
    assert rows[0].rssi == -80 and rows[1].link_mode == "T1" and rows[1].rssi is None


def test_json_batch_form_with_hex_data(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    frames = [encode("10000021"), encode("10000022")]
    env = {
        "v": 1,
        "gw": gw.serial,
        "seq": 3,
        "cfg": 0,
        "t0": 1767000000,
        "batch": {
            "data": b"".join(frames).hex(),
            "len": [len(f) for f in frames],
            "dt": [0, 5],
            "rssi": [-60, -61],
            "mode": [1, 2],
        },
    }
    answer = hub.post_uplink(gw, env, as_json=True).json()
    assert answer["stored"] == 2
    assert [r.meter_id for r in hub.telegrams(gw)] == ["10000021", "10000022"]


def test_cbor_telegrams_form_with_raw_bytes(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    env = {
        "v": 1,
        "gw": gw.serial,
        "seq": 1,
        "cfg": 0,
        "cred": gw.credential,
        "telegrams": [{"rx": 1767000000, "mode": "T1", "raw": encode("10000031")}],
    }
    result = handle_uplink(hub.db, cbor2.dumps(env), content_type="application/cbor", transport="mqtt", credential=None)
    assert result["stored"] == 1


def test_repeated_seq_changes_nothing(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    frames = [encode("10000041"), encode("10000042")]
    first = hub.send(gw, 5, frames, t0=T0)
    # the retry carries a fresh status (as the agent's do): still the same uplink
    again = hub.send(gw, 5, frames, t0=T0, status={"battery_pct": 12, "time": T0 + 60})
    assert again["ack"] == 5 and again["stored"] == first["stored"] == 2
    assert _count(db, Telegram, gateway_id=gw.id) == 2
    assert _count(db, Uplink, gateway_id=gw.id) == 1
    # other telegrams under the same seq are not a repeat (tests/cloud/test_seq_reuse.py)


def test_same_telegram_and_receive_time_is_a_duplicate(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    frame = encode("10000051")
    hub.send(gw, 1, [frame], t0=1767000000, dts=[10])
    answer = hub.send(gw, 2, [frame, frame, encode("10000052")], t0=1767000000, dts=[10, 10, 10])
    assert answer["stored"] == 1 and answer["duplicates"] == 2
    # same bytes at another time is a new reception
    answer = hub.send(gw, 3, [frame], t0=1767000000, dts=[20])
    assert answer["stored"] == 1
    assert _count(db, Telegram, gateway_id=gw.id) == 3


def test_a_large_batch_stores_each_reception_once(hub, db):
    """Enough telegrams for the bulk path (PostgreSQL: staged through COPY): stored in order,
    repeats within the batch and of an earlier uplink counted as duplicates."""
    from omshub.cloud.store.database import BulkSql

    t = hub.tenant()
    gw = hub.gateway(t)
    frames = [encode(f"1100{i:04d}", energy=float(i)) for i in range(BulkSql.PG_STAGED_ROWS + 20)]
    n = len(frames)
    answer = hub.send(gw, 1, frames + frames[:3], t0=1767000000, dts=list(range(n)) + [0, 1, 2])
    assert (answer["stored"], answer["duplicates"]) == (n, 3)
    with db.session() as s:
        assert s.scalars(select(Telegram.raw).where(Telegram.gateway_id == gw.id).order_by(Telegram.id)).all() == frames
    answer = hub.send(gw, 2, frames, t0=1767000000, dts=list(range(n)))
    assert (answer["stored"], answer["duplicates"]) == (0, n)
    assert _count(db, Telegram, gateway_id=gw.id) == n


def test_bad_telegrams_in_a_batch_are_rejected_others_stored(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    good = encode("10000061")
    garbage = bytes(range(20))  # well-formed entry, not a telegram: stored, decodes invalid
    too_short = b"\x01\x02\x03"  # not a frame at all: rejected
    env = batch_envelope(gw.serial, 1, [good, too_short, garbage])
    answer = cbor2.loads(hub.post_uplink(gw, env).content)
    assert answer["stored"] == 2
    assert answer["rejected"] == [{"index": 1, "message": "frame of 3 bytes (a frame has 10-512)"}]
    env = {
        "v": 1,
        "gw": gw.serial,
        "seq": 2,
        "cfg": 0,
        "telegrams": [
            {"rx": 1767000000, "mode": "T1", "hex": good.hex()},
            {"rx": "yesterday", "mode": "T1", "hex": good.hex()},
            {"rx": 1767000000, "mode": "Q9", "hex": good.hex()},
            {"rx": 1767000000, "mode": "T1", "hex": "zz"},
            "not a map",
        ],
    }
    answer = hub.post_uplink(gw, env, as_json=True).json()
    assert answer["stored"] == 1
    messages = {r["index"]: r["message"] for r in answer["rejected"]}
    assert set(messages) == {1, 2, 3, 4}
    assert "rx" in messages[1] and "mode" in messages[2] and "hex" in messages[3]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda e: e.update(v=2), "v must be 1"),
        (lambda e: e.update(seq=-1), "seq"),
        (lambda e: e.update(seq="7"), "seq"),
        (lambda e: e.pop("cfg"), "cfg"),
        (lambda e: e["batch"].update(dt=[0, 1]), "batch.dt has 2 entries"),
        (lambda e: e["batch"].update(len=[1, 2], dt=[0, 0]), "batch.len sums to"),
        (lambda e: e["batch"].update(rssi=b"\x00\x00\x00"), "batch.rssi"),
        (lambda e: e["batch"].update(mode=9), "batch.mode"),
        (lambda e: e.update(status={"battery_pct": 300}), "status.battery_pct"),
        (lambda e: e.update(status={"firmware": 5}), "status.firmware"),
        (lambda e: e.update(cfg_error={"version": "x"}), "cfg_error.version"),
        (lambda e: e.update(t0="now"), "t0"),
        (lambda e: e.update(telegrams=[{"rx": 1, "mode": 1, "hex": "00" * 12}]), "either batch or telegrams"),
    ],
)
def test_malformed_envelope_is_422_naming_the_field(hub, mutate, field):
    t = hub.tenant()
    gw = hub.gateway(t)
    env = batch_envelope(gw.serial, 1, [encode("10000071")])
    mutate(env)
    r = hub.post_uplink(gw, env)
    assert r.status_code == 422, r.content
    error = cbor2.loads(r.content)["error"]
    assert error["code"] == "invalid_uplink" and field in error["message"]
    assert hub.telegrams(gw) == []


def test_too_many_telegrams_is_422(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    frame = encode("10000081")
    env = batch_envelope(gw.serial, 1, [frame] * 5001)
    r = hub.post_uplink(gw, env)
    assert (
        r.status_code == 422 and "5001 telegrams exceed the limit of 5000" in cbor2.loads(r.content)["error"]["message"]
    )


def test_body_over_one_mib_is_413(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    r = hub.client.post(
        "/api/v1/uplink",
        content=b"\xa0" + b"\x00" * MAX_BODY,
        headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {gw.credential}"},
    )
    assert r.status_code == 413 and b"exceeds" in r.content


def test_not_cbor_not_json(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    headers = {"Authorization": f"Bearer {gw.credential}"}
    r = hub.client.post("/api/v1/uplink", content=b"\xff\xff", headers={**headers, "Content-Type": "application/cbor"})
    assert r.status_code == 400 and b"not valid CBOR" in r.content
    r = hub.client.post("/api/v1/uplink", content=b"{nope", headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = hub.client.post("/api/v1/uplink", content=b"[]", headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 422 and "must be a map" in r.json()["error"]["message"]
    r = hub.client.post("/api/v1/uplink", content=b"x", headers={**headers, "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_authentication(hub):
    t = hub.tenant()
    gw, other = hub.gateway(t), hub.gateway(t)
    env = batch_envelope(gw.serial, 1, [encode("10000091")])
    assert hub.post_uplink(gw, env, credential="omg_wrong").status_code == 401
    # another gateway's credential does not authenticate this serial
    r = hub.post_uplink(gw, env, credential=other.credential)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = hub.client.post("/api/v1/uplink", content=cbor2.dumps(env), headers={"Content-Type": "application/cbor"})
    assert r.status_code == 401
    assert hub.telegrams(gw) == []
    # over HTTP the credential goes in the header, checked before the body is read: cred inside
    # the envelope is for CoAP and MQTT (handle_uplink takes it there)
    r = hub.client.post(
        "/api/v1/uplink",
        content=cbor2.dumps({**env, "cred": gw.credential}),
        headers={"Content-Type": "application/cbor"},
    )
    assert r.status_code == 401 and "Authorization: Bearer" in cbor2.loads(r.content)["error"]["message"]
    assert (
        handle_uplink(
            hub.db,
            cbor2.dumps({**env, "cred": gw.credential}),
            content_type="application/cbor",
            transport="coap",
            credential=None,
        )["stored"]
        == 1
    )


def test_status_only_uplink(hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    r = hub.post_uplink(gw, {"v": 1, "gw": gw.serial, "seq": 9, "cfg": 0, "status": {"battery_pct": 12}})
    assert r.status_code == 200 and cbor2.loads(r.content)["stored"] == 0


def test_handle_uplink_rejections_are_typed(db):
    with pytest.raises(UplinkRejected) as info:
        handle_uplink(
            db,
            orjson.dumps({"v": 1, "gw": "X", "seq": 1, "cfg": 0}),
            content_type="application/json",
            transport="coap",
            credential=None,
        )
    assert info.value.status == 401


def test_gateway_contact_recorded_alike_with_and_without_operations(hub, db):
    """Most uplinks change no operation and are recorded in two statements; one that does goes
    through operations.on_uplink. Both keep the status merged, the highest seq, the applied
    version and a next contact in the future (a reported one in the past is not taken)."""
    from datetime import datetime

    from omshub.cloud.services import operations as ops
    from omshub.cloud.store.models import Operation

    from .domain_fixtures import FakePrincipal

    t = hub.tenant()
    quiet, busy = hub.gateway(t), hub.gateway(t)
    cfg = {"timezone": "UTC", "upload": {"cron": "0 30 3 * * *"}, "spread_s": 0}
    with db.transaction() as s:
        [op] = ops.set_desired_config(s, FakePrincipal(t.id), [busy.id], cfg)
    for gw in (quiet, busy):
        first = hub.send(gw, 5, [encode("10000001")], status={"battery_pct": 80, "firmware": "1.0"})
        again = hub.send(
            gw,
            3,
            [encode("10000002")],
            status={"battery_pct": 79, "next_contact": 1_000_000_000},
            cfg=1 if gw is busy else 0,
        )
        assert (first["config"] or {}).get("version") == (1 if gw is busy else None) and again["config"] is None
    now = datetime.now(UTC)
    with db.session() as s:
        for gw, applied in ((quiet, 0), (busy, 1)):
            g = s.get(Gateway, gw.id)
            assert g.status == {
                "battery_pct": 79,
                "firmware": "1.0",
                "next_contact": 1_000_000_000,
                "transport": "https",
            }
            assert g.last_seq == 5 and g.applied_config_version == applied
            assert g.last_contact_at is not None and g.next_contact_at > now
        assert s.get(Operation, op.id).state == "SUCCESSFUL"
        # the quiet gateway's next contact comes from the factory default schedule, the other's from 03:30
        assert s.get(Gateway, busy.id).next_contact_at.time().replace(second=0) == datetime(2026, 1, 1, 3, 30).time()
