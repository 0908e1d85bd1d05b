"""Decode pipeline: states, readings, waiting telegrams re-decoded, compact frames, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from omshub.cloud.decode.pipeline import requeue_waiting
from omshub.cloud.store.models import CompactFormat, Meter, Reading

from .conftest import KEY, encode
from .domain_fixtures import decoded_data

ENERGY = {"quantity": "energy", "unit": "kWh", "storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
VOLUME = {"quantity": "volume", "unit": "m3", "storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}


def _records(energy: float, when: str | None = None) -> list[dict]:
    recs = [{**ENERGY, "value": energy}, {**VOLUME, "value": 12.5}]
    if when:
        recs.append(
            {
                "quantity": "datetime",
                "unit": "",
                "value": when,
                "storage": 0,
                "tariff": 0,
                "subunit": 0,
                "function": "instantaneous",
            }
        )
    return recs


def _readings(db, meter_pk: int) -> list:
    with db.session() as s:
        return list(s.scalars(select(Reading).where(Reading.meter_pk == meter_pk).order_by(Reading.id)))


def _states(hub, gw) -> list[str]:
    return [r.state for r in hub.telegrams(gw)]


def test_security_modes_and_frame_kinds_decode(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    ids = ["20000001", "20000002", "20000003", "20000004", "20000005", "20000006"]
    for mid in ids:
        hub.meter(t, mid)
    hub.keys(t, dict.fromkeys(ids, KEY))
    frames = [
        encode(ids[0], _records(1.0), mode=5),
        encode(ids[1], _records(2.0), mode=7),
        encode(ids[2], _records(3.0), mode=0, ell="8C"),
        encode(ids[3], _records(4.0), mode=0, ell="8D", key=KEY),
        encode(ids[4], _records(5.0), mode=0),
        encode(ids[5], _records(6.0), mode=5, frame_format="A"),
    ]
    hub.send(gw, 1, frames)
    assert pipeline.run_until_idle() >= len(frames)
    assert _states(hub, gw) == ["decoded"] * 6
    with db.session() as s:
        meters = {m.meter_id: m for m in s.scalars(select(Meter).where(Meter.tenant_id == t.id))}
    for i, mid in enumerate(ids):
        (reading,) = _readings(db, meters[mid].id)
        data = decoded_data(pipeline, reading)
        assert data["records"][0]["value"] == float(i + 1)
        assert data["meter"]["id"] == mid
        assert meters[mid].last_reading_id == reading.id and meters[mid].last_heard_at is not None
    assert meters[ids[0]].key_status == "present"


def test_timestamp_is_the_meters_own_datetime_else_receive_time(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    a = hub.meter(t, "20000011")
    b = hub.meter(t, "20000012")
    hub.keys(t, {"20000011": KEY, "20000012": KEY})
    hub.send(
        gw,
        1,
        [encode("20000011", _records(1.0, "2026-03-04T05:06")), encode("20000012", _records(2.0))],
        t0=1767225600,
        dts=[0, 30],
    )
    pipeline.run_until_idle()
    (ra,) = _readings(db, a)
    (rb,) = _readings(db, b)
    assert ra.timestamp == datetime(2026, 3, 4, 4, 6, tzinfo=UTC)  # a new tenant's meters: Berlin, CET
    assert rb.timestamp == datetime.fromtimestamp(1767225630, UTC) == rb.received_at


def test_no_key_then_key_import_decodes(hub, db, pipeline, client):
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000021")
    hub.send(gw, 1, [encode("20000021")])
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["no_key"]
    with db.session() as s:
        assert s.get(Meter, pk).key_status == "missing"
    r = client.post(
        "/api/v1/keys/import",
        content="id,key\n20000021," + KEY.hex() + "\n",
        headers={**hub.headers(t, "operator"), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["requeued"] == 1
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded"]
    assert len(_readings(db, pk)) == 1


@pytest.mark.parametrize("old_key", [None, bytes(16)], ids=["no_key", "wrong_key"])
def test_a_key_imported_while_its_telegram_is_decoded_is_not_missed(hub, db, pipeline, monkeypatch, old_key):
    """The import's re-queue runs while the telegram is still `new` (being decoded without the
    key): the batch must not then file it as waiting for a key it now has."""
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000025")
    if old_key is not None:
        hub.keys(t, {"20000025": old_key})
    hub.send(gw, 1, [encode("20000025")])
    decode_rows = type(pipeline)._decode_rows

    def decode_then_import(self, session, rows):
        out = decode_rows(self, session, rows)
        hub.keys(t, {"20000025": KEY})  # commits in its own transaction, between decoding and writing
        return out

    monkeypatch.setattr(type(pipeline), "_decode_rows", decode_then_import)
    pipeline.run_once()
    assert _states(hub, gw) == ["new"]
    monkeypatch.undo()
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded"] and len(_readings(db, pk)) == 1


def test_wrong_key_then_right_key(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000031")
    hub.keys(t, {"20000031": bytes(16)})
    hub.send(gw, 1, [encode("20000031")])
    pipeline.run_until_idle()
    (row,) = hub.telegrams(gw)
    assert row.state == "wrong_key" and row.error
    with db.session() as s:
        assert s.get(Meter, pk).key_status == "wrong"
    hub.keys(t, {"20000031": KEY})
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded"]
    with db.session() as s:
        assert s.get(Meter, pk).key_status == "present"


def test_unknown_meter_waits_until_registered(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.keys(t, {"20000041": KEY})
    hub.send(gw, 1, [encode("20000041"), encode("20000041", mode=0, access_number=9)])
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["unknown_meter", "unknown_meter"]
    pk = hub.meter(t, "20000041")  # registering requeues
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded", "decoded"]
    assert len(_readings(db, pk)) == 2
    assert all(r.meter_pk == pk for r in hub.telegrams(gw))


def test_meters_and_keys_are_tenant_scoped(hub, db, pipeline):
    a, b = hub.tenant(), hub.tenant()
    gw_b = hub.gateway(b)
    hub.meter(a, "20000051")
    hub.keys(a, {"20000051": KEY})
    hub.send(gw_b, 1, [encode("20000051")])
    pipeline.run_until_idle()
    assert _states(hub, gw_b) == ["unknown_meter"]  # tenant A's meter and key do not count for B
    hub.meter(b, "20000051")
    pipeline.run_until_idle()
    assert _states(hub, gw_b) == ["no_key"]


def test_invalid_frames_are_kept_with_the_reason(hub, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "20000061")
    good = encode("20000061", mode=0)
    hub.send(gw, 1, [good[:-3], good[:14], bytes(range(40))])  # records cut off; TPL cut off; not a frame
    pipeline.run_until_idle()
    rows = hub.telegrams(gw)
    assert [r.state for r in rows] == ["invalid", "invalid", "invalid"]
    assert rows[0].error.startswith("invalid_record:") and rows[1].error.startswith("too_short:")
    assert all(r.error for r in rows)


def test_long_tpl_files_the_telegram_under_the_meter_not_the_radio(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000071")
    hub.keys(t, {"20000071": KEY})
    radio = {"manufacturer": "ABC", "id": "99990071", "version": 1, "device_type_code": 0x37}
    hub.send(gw, 1, [encode("20000071", tpl="long", transmitter=radio)])
    pipeline.run_until_idle()
    (row,) = hub.telegrams(gw)
    assert (row.state, row.manufacturer, row.meter_id, row.meter_pk) == ("decoded", "KAM", "20000071", pk)


def test_compact_frames_use_the_learned_format(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000081")
    hub.keys(t, {"20000081": KEY})
    compact = encode("20000081", _records(7.0), compact=True, access_number=2)
    hub.send(gw, 1, [compact])
    pipeline.run_until_idle()
    (row,) = hub.telegrams(gw)
    assert row.state == "invalid" and row.error.startswith("unknown_format")
    # a full frame teaches the format (kept in the database) and the compact one is decoded again
    hub.send(gw, 2, [encode("20000081", _records(6.0), access_number=1)])
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded", "decoded"]
    values = sorted(decoded_data(pipeline, r)["records"][0]["value"] for r in _readings(db, pk))
    assert values == [6.0, 7.0]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CompactFormat).where(CompactFormat.tenant_id == t.id)) == 1
    # a fresh pipeline (e.g. after a restart) finds the format in the database
    from omshub.cloud.decode.pipeline import DecodePipeline

    fresh = DecodePipeline(db, pipeline.keystore)
    hub.send(gw, 3, [encode("20000081", _records(8.0), compact=True, access_number=3)])
    fresh.run_until_idle()
    assert _states(hub, gw)[-1] == "decoded"


def test_repeated_transmission_is_a_duplicate(hub, db, pipeline):
    t = hub.tenant()
    gw1, gw2 = hub.gateway(t), hub.gateway(t)
    pk = hub.meter(t, "20000091")
    hub.keys(t, {"20000091": KEY})
    frame = encode("20000091", access_number=5)
    hub.send(gw1, 1, [frame], t0=1767225600, dts=[0])
    hub.send(gw2, 1, [frame], t0=1767225600, dts=[3])  # heard by a second gateway
    hub.send(gw1, 2, [frame], t0=1767225600, dts=[60])  # a repeat in the same batch window
    pipeline.run_until_idle()
    assert _states(hub, gw1) == ["decoded", "duplicate"] and _states(hub, gw2) == ["duplicate"]
    # the same content a day later is a new reading (a meter that did not change)
    hub.send(gw1, 3, [frame], t0=1767225600 + 86400, dts=[0])
    pipeline.run_until_idle()
    assert _states(hub, gw1)[-1] == "decoded"
    assert len(_readings(db, pk)) == 2


def test_exactly_one_reading_per_telegram_and_requeue_only_waiting(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "20000101")
    hub.keys(t, {"20000101": KEY})
    hub.send(gw, 1, [encode("20000101", energy=float(i), access_number=i) for i in range(20)])
    pipeline.run_until_idle()
    with db.transaction() as s:
        assert requeue_waiting(s, t.id) == 0  # decoded telegrams never go back
    pipeline.run_until_idle()
    with db.session() as s:
        n = s.scalar(select(func.count()).select_from(Reading).where(Reading.tenant_id == t.id))
        ids = s.scalars(select(Reading.telegram_id).where(Reading.tenant_id == t.id)).all()
    assert n == 20 and len(set(ids)) == 20


def test_telegrams_in_state_new_survive_a_lost_batch(hub, db, pipeline, monkeypatch):
    """A batch whose transaction fails leaves its telegrams `new`; the next run decodes them."""
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000111")
    hub.keys(t, {"20000111": KEY})
    hub.send(gw, 1, [encode("20000111", access_number=i, energy=float(i)) for i in range(3)])

    import omshub.cloud.decode.pipeline as mod

    real_store = mod.DecodePipeline._store

    def crash(self, *args, **kw):
        real_store(self, *args, **kw)
        raise KeyboardInterrupt("simulated crash before commit")

    monkeypatch.setattr(mod.DecodePipeline, "_store", crash)
    try:
        pipeline.run_once()
    except KeyboardInterrupt:
        pass
    assert _states(hub, gw) == ["new"] * 3 and _readings(db, pk) == []
    monkeypatch.setattr(mod.DecodePipeline, "_store", real_store)
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded"] * 3 and len(_readings(db, pk)) == 3


def test_a_failing_batch_is_retried_one_by_one(hub, db, pipeline, monkeypatch):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "20000121")
    hub.keys(t, {"20000121": KEY})
    hub.send(gw, 1, [encode("20000121", access_number=i, energy=float(i)) for i in range(3)])
    import omshub.cloud.decode.batch as mod

    real_decode = mod.decode

    def flaky(raw, **kw):
        result = real_decode(raw, **kw)
        if result["access_number"] == 1:
            raise RuntimeError("codec bug")
        return result

    monkeypatch.setattr(mod, "decode", flaky)
    pipeline.run_until_idle()
    rows = hub.telegrams(gw)
    assert [r.state for r in rows] == ["decoded", "invalid", "decoded"]
    assert "codec bug" in rows[1].error


def test_concurrent_workers_decode_each_telegram_once(hub, db, pipeline):
    """Several pipelines at once (partitioned ones and an unpartitioned one competing with them)."""
    import threading

    from omshub.cloud.decode.pipeline import DecodePipeline

    t = hub.tenant()
    gw = hub.gateway(t)
    for i in range(5):
        hub.meter(t, f"2000013{i}")
    hub.keys(t, {f"2000013{i}": KEY for i in range(5)})
    for seq in range(1, 5):
        hub.send(
            gw,
            seq,
            [
                encode(f"2000013{i % 5}", energy=float(seq * 100 + i), access_number=(seq * 50 + i) % 256)
                for i in range(50)
            ],
        )
    workers = [DecodePipeline(db, pipeline.keystore, partition=(k, 2)) for k in range(2)]
    workers.append(DecodePipeline(db, pipeline.keystore))
    errors = []

    def run(w):
        try:
            w.run_until_idle(limit=17)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors
    assert _states(hub, gw) == ["decoded"] * 200
    with db.session() as s:
        telegram_ids = s.scalars(select(Reading.telegram_id).where(Reading.tenant_id == t.id)).all()
        meters = s.scalars(select(Meter).where(Meter.tenant_id == t.id)).all()
        for m in meters:  # each meter's latest reading is its newest one
            newest = s.scalar(
                select(Reading.id)
                .where(Reading.meter_pk == m.id)
                .order_by(Reading.timestamp.desc(), Reading.id.desc())
                .limit(1)
            )
            latest = s.get(Reading, m.last_reading_id)
            assert latest.timestamp == s.get(Reading, newest).timestamp
    assert len(telegram_ids) == len(set(telegram_ids)) == 200


def test_redecode_command_requeues_undecoded_telegrams(hub, db, pipeline, database_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from omshub.cli import app as cli_app

    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "20000141")
    hub.send(gw, 1, [encode("20000141"), bytes(range(30))])
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["no_key", "invalid"]
    runner = CliRunner()
    args = ["admin", "redecode", "--tenant", t.slug, "--database", database_url, "--data-dir", str(tmp_path), "--json"]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert '"requeued": 2' in result.output
    assert _states(hub, gw) == ["new", "new"]
    result = runner.invoke(cli_app, args[:-1] + ["--states", "decoded"])
    assert result.exit_code == 2 and "not decoded" in result.output


# --- key status: one corrupted frame is `suspect`, two in a row `wrong` (+ alarm) ---


def _corrupt(frame: bytes) -> bytes:
    """A mode-5 frame with a bit flipped in its first encrypted block (after the 10-byte link
    header and the short TPL header): without a CRC it fails the 2F2F check like a wrong key."""
    damaged = bytearray(frame)
    damaged[16] ^= 0x40
    return bytes(damaged)


def _key_state(db, pk: int) -> tuple[str, list[bool]]:
    from omshub.cloud.store.models import Alarm

    with db.session() as s:
        status = s.get(Meter, pk).key_status
        alarms = list(
            s.scalars(
                select(Alarm.active)
                .where(Alarm.subject_type == "meter", Alarm.subject_id == pk, Alarm.kind == "wrong_key")
                .order_by(Alarm.id)
            )
        )
    return status, alarms


def test_one_corrupted_frame_of_a_working_key_is_suspect_not_wrong(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    pk = hub.meter(t, "20000041")
    hub.keys(t, {"20000041": KEY})
    hub.send(gw, 1, [encode("20000041", energy=1.0, access_number=1)])
    pipeline.run_until_idle()
    assert _key_state(db, pk) == ("present", [])
    hub.send(gw, 2, [_corrupt(encode("20000041", energy=2.0, access_number=2))])
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded", "wrong_key"]
    assert _key_state(db, pk) == ("suspect", [])  # no alarm for a single bad frame
    # a good decode after it: present again, still no alarm
    hub.send(gw, 3, [encode("20000041", energy=3.0, access_number=3)])
    pipeline.run_until_idle()
    assert _key_state(db, pk) == ("present", [])
    # two failures in a row (no good decode between): wrong + alarm
    hub.send(gw, 4, [_corrupt(encode("20000041", energy=4.0, access_number=4))])
    pipeline.run_until_idle()
    assert _key_state(db, pk) == ("suspect", [])
    hub.send(gw, 5, [encode("20000041", energy=5.0, access_number=5, key=bytes(16))])
    pipeline.run_until_idle()
    assert _key_state(db, pk) == ("wrong", [True])
    # a good decode: present, the alarm cleared
    hub.send(gw, 6, [encode("20000041", energy=6.0, access_number=6)])
    pipeline.run_until_idle()
    assert _key_state(db, pk) == ("present", [False])
    assert _states(hub, gw) == ["decoded", "wrong_key", "decoded", "wrong_key", "wrong_key", "decoded"]


def test_suspect_and_wrong_within_one_batch(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    a, b = hub.meter(t, "20000051"), hub.meter(t, "20000052")
    hub.keys(t, {"20000051": KEY, "20000052": KEY})
    hub.send(
        gw,
        1,
        [
            encode("20000051", energy=1.0, access_number=1),
            _corrupt(encode("20000051", energy=2.0, access_number=2)),
            encode("20000052", energy=1.0, access_number=1),
            _corrupt(encode("20000052", energy=2.0, access_number=2)),
            _corrupt(encode("20000052", energy=3.0, access_number=3)),
        ],
    )
    pipeline.run_until_idle()
    assert _key_state(db, a) == ("suspect", [])
    assert _key_state(db, b) == ("wrong", [True])


def test_wrong_key_of_a_key_that_never_decoded_alarms_at_once(hub, db, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    new, replaced = hub.meter(t, "20000061"), hub.meter(t, "20000062")
    # imported key (key_status present) that never decrypted anything: wrong at once
    hub.keys(t, {"20000061": bytes(16), "20000062": KEY})
    assert _key_state(db, new) == ("present", [])
    hub.send(gw, 1, [encode("20000061", energy=1.0), encode("20000062", energy=1.0, access_number=1)])
    pipeline.run_until_idle()
    assert _key_state(db, new) == ("wrong", [True])
    assert _key_state(db, replaced) == ("present", [])
    # a replaced key has not proven itself, whatever the old one decoded: wrong at once
    hub.keys(t, {"20000062": bytes(16)})
    hub.send(gw, 2, [encode("20000062", energy=2.0, access_number=2)])
    pipeline.run_until_idle()
    assert _key_state(db, replaced) == ("wrong", [True])
    # a meter whose key is missing, then a wrong one imported: wrong at once as well
    missing = hub.meter(t, "20000063")
    hub.send(gw, 3, [encode("20000063", energy=1.0)])
    pipeline.run_until_idle()
    assert _key_state(db, missing) == ("missing", [])
    hub.keys(t, {"20000063": bytes(16)})
    pipeline.run_until_idle()
    assert _key_state(db, missing) == ("wrong", [True])


def test_worker_processes_fill_the_idle_cores(database_url):
    import os

    from omshub.cloud.decode.pipeline import IDLE_WORKER_NICENESS, PipelineProcesses

    cores = os.cpu_count() or 1
    procs = PipelineProcesses(database_url, bytes(32), workers=1)
    assert procs.workers == max(1, cores) and len(procs.processes) == procs.workers
    # worker 0 at normal priority; the others (idle cores) lower and paused while uplinks arrive
    niceness = [p._args[7] for p in procs.processes]
    assert niceness == [0] + [IDLE_WORKER_NICENESS] * (procs.workers - 1)
    # every worker is woken by the ingest clock; only the idle-core ones wait for a quiet moment
    assert all(p._args[8] is not None for p in procs.processes)
    assert [p._args[9] for p in procs.processes] == [False] + [True] * (procs.workers - 1)
    assert [p._args[4] for p in procs.processes] == [(k, procs.workers) for k in range(procs.workers)]
    assert PipelineProcesses(database_url, bytes(32), workers=3, fill_cores=False).workers == 3


def test_a_worker_whose_share_is_done_helps_with_the_others(hub, db, pipeline):
    from omshub.cloud.decode.pipeline import DecodePipeline

    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "20000071")
    hub.keys(t, {"20000071": KEY})
    hub.send(gw, 1, [encode("20000071", energy=float(i), access_number=i) for i in range(10)])
    # partition 0 of 2 takes its own half first, then the rest (newest first): nothing is left waiting
    assert DecodePipeline(db, pipeline.keystore, partition=(0, 2)).run_until_idle(limit=3) == 10
    assert _states(hub, gw) == ["decoded"] * 10


def test_registers_pick_what_register_value_picks():
    from omshub.cloud.services.consumption import CUMULATIVE_UNITS, register_value, registers

    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    data = {
        "records": [
            {**base, "quantity": "energy", "value": "n/a"},  # not a number: the next one counts
            {**base, "quantity": "energy", "storage": 1, "value": 1.0},
            {**base, "quantity": "energy", "value": 7},
            {**base, "quantity": "energy", "value": 8.0},  # only the first counts
            {**base, "quantity": "volume", "function": "maximum", "value": 3.0},
            {**base, "quantity": ["not", "hashable"], "value": 1.0},
            "not a record",
            {**base, "quantity": "hca", "tariff": 1, "value": 2.0},
        ]
    }
    expected = {q: register_value(data, q) for q in CUMULATIVE_UNITS}
    assert registers(data) == {q: v for q, v in expected.items() if v is not None} == {"energy": 7.0}
    assert registers(None) == {} and registers({"records": None}) == {}
    assert (
        register_value(data, "volume") is None
        and register_value({"records": [{**base, "quantity": "power", "value": 2}]}, "power") == 2.0
    )


def test_the_timestamp_is_the_first_current_datetime_that_parses():
    from datetime import datetime

    from omshub.cloud.decode import pipeline

    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    samples = [
        {"status": {"flags": ["power_low"]}, "records": []},
        {"records": [{**base, "quantity": "error_flags", "value": 4}]},
        {
            "records": [
                {**base, "quantity": "datetime", "value": "not a time"},
                {**base, "quantity": "datetime", "storage": 1, "value": "2026-01-01T00:00"},
                {**base, "quantity": "datetime", "value": "2026-02-03T04:05"},
                {**base, "quantity": "datetime", "value": "2026-03-01T00:00"},
            ]
        },
        {"records": [{**base, "quantity": "datetime", "tariff": 1, "value": "2026-02-03T04:05"}]},
    ]
    p = pipeline.DecodePipeline(SimpleNamespace(is_sqlite=True), None)
    rx = datetime(2026, 5, 1, tzinfo=UTC)
    for _ in range(2):  # the second time from the parsed-text cache
        stamps = [p._timestamp(data, rx) for data in samples]
        assert stamps == [rx, rx, datetime(2026, 2, 3, 4, 5, tzinfo=UTC), rx]
    assert p._meter_time(samples[2]) == (stamps[2], "2026-02-03 04:05:00.000000")
    assert p._meter_time(samples[0]) == (None, None)


def test_a_large_batch_writes_every_state_and_meter(hub, db, pipeline):
    """Batches large enough for the bulk paths (PostgreSQL: COPY and staged UPDATEs): every
    telegram gets its state and reading, every meter its latest reading, time and registers."""
    from omshub.cloud.store.database import BulkSql

    n = BulkSql.PG_STAGED_ROWS + 30
    t = hub.tenant()
    gw = hub.gateway(t)
    ids = [f"3100{i:04d}" for i in range(n)]
    pks = {mid: hub.meter(t, mid) for mid in ids[:-5]}  # the last five are not registered
    hub.keys(t, dict.fromkeys(ids, KEY))
    hub.send(gw, 1, [encode(mid, energy=1000.0 + i, access_number=i) for i, mid in enumerate(ids)])
    assert pipeline.run_once(limit=1000) == n
    assert _states(hub, gw) == ["decoded"] * (n - 5) + ["unknown_meter"] * 5
    with db.session() as s:
        meters = {m.meter_id: m for m in s.scalars(select(Meter).where(Meter.tenant_id == t.id))}
        readings = {r.meter_pk: r for r in s.scalars(select(Reading).where(Reading.tenant_id == t.id))}
    assert len(readings) == n - 5
    for i, mid in enumerate(ids[:-5]):
        m = meters[mid]
        assert m.last_reading_id == readings[pks[mid]].id and m.last_registers == {"energy": 1000.0 + i}
        assert m.key_status == "present" and m.last_heard_at is not None and m.last_reading_at is not None


@pytest.fixture(scope="module")
def sqlite_hub(tmp_path_factory, keystore):
    """A hub on its own SQLite database, whatever OMSHUB_TEST_DATABASE says: decoding ahead is
    how SQLite's idle-core workers use a core while uplinks hold the one write lock."""
    from fastapi.testclient import TestClient

    from omshub.cloud.app import create_app
    from omshub.cloud.settings import load_settings
    from omshub.cloud.store.database import Database

    from .conftest import MASTER_KEY_HEX, Hub

    path = tmp_path_factory.mktemp("ahead")
    database = Database(f"sqlite:///{path}/omshub.db")
    database.migrate()
    settings = load_settings(None, environ={}, database=database.url, data_dir=str(path), master_key=MASTER_KEY_HEX)
    app = create_app(settings, db=database, keystore=keystore, workers=False)
    with TestClient(app) as client:
        yield Hub(database, keystore, client), app.state.pipeline
    database.dispose()


def test_batches_decoded_ahead_are_written_later_exactly_once(sqlite_hub):
    hub, pipeline = sqlite_hub
    t = hub.tenant()
    gw = hub.gateway(t)
    ids = [f"3100{i:04d}" for i in range(10)]
    pks = [hub.meter(t, mid) for mid in ids]
    hub.keys(t, dict.fromkeys(ids[:7], KEY))  # three wait for their key
    hub.send(gw, 1, [encode(mid) for mid in ids])
    assert pipeline.decode_ahead(limit=11) is None  # only whole batches are decoded ahead
    first = pipeline.decode_ahead(limit=4)
    second = pipeline.decode_ahead(limit=4, exclude=[r.id for r in first.rows])
    assert len(first.rows) == len(second.rows) == 4 and not {r.id for r in first.rows} & {r.id for r in second.rows}
    assert _states(hub, gw) == ["new"] * 10  # nothing written yet
    pipeline.run_once(limit=2)  # meanwhile another worker writes two of them
    hub.keys(t, {ids[7]: KEY})  # ... and the key arrives of one decoded without it
    assert pipeline.write_ahead(first) == 4 and pipeline.write_ahead(second) == 4
    assert _states(hub, gw) == ["decoded"] * 7 + ["new"] * 3
    pipeline.run_until_idle()
    assert _states(hub, gw) == ["decoded"] * 8 + ["no_key"] * 2
    assert [len(_readings(hub.db, pk)) for pk in pks] == [1] * 8 + [0] * 2


def test_requeueing_a_meter_does_not_visit_its_decoded_history(sqlite_hub):
    """Re-queue statements (key import, meter registration, a compact format learned) find a
    meter's telegrams to decode again through the partial index of those, never through the
    meter's telegrams (a history that grows every day): SQLite's plan of the very statements run."""
    from sqlalchemy import event

    hub, pipeline = sqlite_hub
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "32000001")
    hub.keys(t, {"32000001": KEY})
    hub.send(gw, 1, [encode("32000001"), encode("32000002"), encode("32000003", mode=0, key=None)[:12]])
    pipeline.run_until_idle()
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE TELEGRAMS SET STATE = 'NEW'") or (
            statement.lstrip().upper().startswith("UPDATE TELEGRAMS SET STATE") and "new" in str(parameters)
        ):
            statements.append((statement, parameters))

    event.listen(hub.db.engine, "before_cursor_execute", capture)
    try:
        hub.meter(t, "32000002")  # registering re-queues its unknown_meter telegram
        hub.keys(t, {"32000001": bytes(16)})  # a key replaced: re-queues what waits for it
        with hub.db.transaction() as s:
            from omshub.cloud.decode.pipeline import requeue_states

            requeue_states(s, t.id)
    finally:
        event.remove(hub.db.engine, "before_cursor_execute", capture)
    assert len(statements) >= 3
    with hub.db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            assert any("ix_telegrams_redecodable" in str(step) for step in plan), (statement, plan)
    pipeline.run_until_idle()
    assert sorted(_states(hub, gw)) == ["decoded", "invalid", "no_key"]
