"""Readings, latest, consumption, export, telegrams, alarms and operations through the API
(telegrams go in as gateway uplinks and through the decode pipeline)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import cbor2
import orjson
import pytest
from sqlalchemy import Text, cast, select, update

from omshub.cloud.store.models import Meter

from .conftest import KEY, encode

API = "/api/v1"
T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
DAY = 86_400


def _setup(hub, meter_ids=("80000001",), device_type="heat"):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.keys(t, dict.fromkeys(meter_ids, KEY))
    pks = [hub.meter(t, mid, device_type=device_type) for mid in meter_ids]
    return t, gw, pks


def test_meter_readings_filter_by_time_and_quantity(hub, client, pipeline):
    t, gw, [pk] = _setup(hub)
    h = hub.headers(t, "viewer")
    recs = lambda e: [  # noqa: E731
        {
            "quantity": "energy",
            "unit": "kWh",
            "value": e,
            "storage": 0,
            "tariff": 0,
            "subunit": 0,
            "function": "instantaneous",
        },
        {
            "quantity": "volume",
            "unit": "m3",
            "value": e / 10,
            "storage": 0,
            "tariff": 0,
            "subunit": 0,
            "function": "instantaneous",
        },
    ]
    frames = [encode("80000001", recs(100.0 + 10 * d), access_number=d) for d in range(4)]
    hub.send(gw, 1, frames, t0=T0, dts=[d * DAY for d in range(4)])
    pipeline.run_once()
    body = client.get(f"{API}/meters/{pk}/readings", headers=h).json()
    assert [r["records"][0]["value"] for r in body["items"]] == [100.0, 110.0, 120.0, 130.0]
    assert body["items"][0]["timestamp"] == "2026-03-01T00:00:00Z"
    body = client.get(
        f"{API}/meters/{pk}/readings",
        params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00+00:00", "quantity": "volume"},
        headers=h,
    ).json()
    assert [[(r["quantity"], r["value"]) for r in x["records"]] for x in body["items"]] == [
        [("volume", 11.0)],
        [("volume", 12.0)],
    ]
    body = client.get(f"{API}/meters/{pk}/readings", params={"quantity": "power"}, headers=h).json()
    assert body["items"] == []
    assert client.get(f"{API}/meters/{pk}/readings", params={"from": "yesterday"}, headers=h).status_code == 422
    assert (
        client.get(f"{API}/meters/{pk}/readings", params={"from": "2026-03-02T00:00:00"}, headers=h).status_code == 422
    )  # no zone
    r = client.get(
        f"{API}/meters/{pk}/readings", params={"from": "2026-03-03T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_time"
    # latest of every meter
    latest = client.get(f"{API}/readings/latest", params={"fields": "nothing"}, headers=h).json()["items"]
    [item] = latest
    assert item["meter"]["id"] == pk and item["reading"]["records"][0]["value"] == 130.0
    assert item["reading"]["fields"] == {}
    # the latest route shows the meter's kept dict of its latest reading; the readings route decodes
    # the raw telegram again; and without the kept dict (a meter of before 0007) the latest route too
    (newest,) = [
        x
        for x in client.get(f"{API}/meters/{pk}/readings", headers=h).json()["items"]
        if x["id"] == item["reading"]["id"]
    ]
    full = client.get(f"{API}/readings/latest", headers=h).json()["items"][0]["reading"]
    assert full == newest and full["records"] and full["status"] is not None
    # the kept view is put into the answer as stored; a meter of before it keeps the reading's
    # whole decoded dict (other keys first), which is parsed: the same answer
    with hub.db.session() as s:
        kept = s.scalar(select(cast(Meter.last_data, Text)).where(Meter.id == pk))
    assert kept.startswith('{"status":') and list(orjson.loads(kept)) == ["status", "records", "fields"]
    whole = {"meter": {"id": "x"}, "security": {"mode": 5}, **orjson.loads(kept), "manufacturer_data": None}
    with hub.db.transaction() as s:
        s.execute(update(Meter).where(Meter.id == pk).values(last_data=whole))
    assert client.get(f"{API}/readings/latest", headers=h).json()["items"][0]["reading"] == newest
    with hub.db.transaction() as s:
        s.execute(update(Meter).where(Meter.id == pk).values(last_data=None))
    assert client.get(f"{API}/readings/latest", headers=h).json()["items"][0]["reading"] == newest


def test_consumption_across_swap_via_api(hub, client, pipeline):
    t, gw, [old, new] = _setup(hub, ("81000001", "81000002"))
    h = hub.headers(t, "operator")
    pid = client.post(f"{API}/metering-points", json={"ref": "P-81"}, headers=h).json()["id"]
    assert (
        client.post(
            f"{API}/metering-points/{pid}/install",
            json={"meter": old, "at": "2026-03-01T00:00:00Z", "initial_values": {"energy": 1000}},
            headers=h,
        ).status_code
        == 201
    )
    hub.send(
        gw,
        1,
        [encode("81000001", energy=1010.0), encode("81000001", energy=1040.0, access_number=1)],
        t0=T0 + DAY,
        dts=[0, 2 * DAY],
    )
    assert (
        client.post(
            f"{API}/metering-points/{pid}/swap",
            json={
                "at": "2026-03-05T00:00:00Z",
                "old_final_values": {"energy": 1050},
                "new_meter": new,
                "new_initial_values": {"energy": 0},
            },
            headers=h,
        ).status_code
        == 200
    )
    hub.send(
        gw,
        2,
        [encode("81000002", energy=5.0), encode("81000002", energy=20.0, access_number=1)],
        t0=T0 + 6 * DAY,
        dts=[0, 2 * DAY],
    )
    pipeline.run_once()
    res = client.get(
        f"{API}/metering-points/{pid}/consumption",
        params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-09T00:00:00Z"},
        headers=h,
    ).json()
    assert res["quantity"] == "energy" and res["unit"] == "kWh" and res["complete"] is True
    assert res["value"] == 60.0  # (1050 - 1010) + (20 - 0): no jump at the swap
    assert [s["meter"]["id"] for s in res["segments"]] == [old, new]
    assert res["segments"][0]["end"]["source"] == "final" and res["segments"][1]["start"]["source"] == "initial"
    assert res["segments"][0]["start"]["timestamp"] == "2026-03-02T00:00:00Z"
    # the point's readings are those of each meter while installed there
    items = client.get(f"{API}/metering-points/{pid}/readings", headers=h).json()["items"]
    assert [(i["meter"]["id"], i["records"][0]["value"]) for i in items] == [
        (old, 1010.0),
        (old, 1040.0),
        (new, 5.0),
        (new, 20.0),
    ]
    r = client.get(f"{API}/metering-points/{pid}/consumption", params={"from": "2026-03-02T00:00:00Z"}, headers=h)
    assert r.status_code == 422
    # the latest of every meter shows each meter's current installation (the old one: none since the swap)
    latest = {
        i["meter"]["id"]: i["meter"]["metering_point"]
        for i in client.get(f"{API}/readings/latest", params={"limit": 1}, headers=h).json()["items"]
        + client.get(
            f"{API}/readings/latest",
            params={
                "limit": 1,
                "cursor": client.get(f"{API}/readings/latest", params={"limit": 1}, headers=h).json()["next_cursor"],
            },
            headers=h,
        ).json()["items"]
    }
    assert latest[old] is None and latest[new]["id"] == pid
    assert latest[new]["installed_at"] == "2026-03-05T00:00:00Z"


def test_export_csv_and_json(hub, client, pipeline, monkeypatch):
    from omshub.cloud.services import export

    monkeypatch.setattr(export, "EXPORT_BATCH", 3)  # several batches
    t, gw, pks = _setup(hub, ("82000001", "82000002"), device_type="heat")
    h = hub.headers(t, "viewer")
    frames, dts = [], []
    for d in range(4):
        for i, mid in enumerate(("82000001", "82000002")):
            frames.append(encode(mid, energy=10.0 * d + i, access_number=d))
            dts.append(d * DAY + i)
    hub.send(gw, 1, frames, t0=T0, dts=dts)
    pipeline.run_once()
    params = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T12:00:00Z"}
    r = client.get(f"{API}/export/readings", params=params, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 6 and {row["meter_id"] for row in rows} == {"82000001", "82000002"}
    assert rows[0]["energy_kwh"] == "0.0" and rows[0]["timestamp"] == "2026-03-01T00:00:00Z"
    assert rows[0]["volume_m3"] == "" and rows[0]["manufacturer"] == "KAM"
    js = client.get(f"{API}/export/readings", params={**params, "format": "json"}, headers=h)
    data = orjson.loads(js.content)
    assert len(data) == 6 and data[-1]["energy_kwh"] == 21.0 and "fields" not in data[0]
    with_fields = orjson.loads(
        client.get(f"{API}/export/readings", params={**params, "format": "json", "fields": "true"}, headers=h).content
    )
    assert [{k: v for k, v in x.items() if k != "fields"} for x in with_fields] == data
    assert all(isinstance(x["fields"], dict) for x in with_fields)
    one = orjson.loads(
        client.get(f"{API}/export/readings", params={**params, "format": "json", "meter": pks[0]}, headers=h).content
    )
    assert {x["meter_id"] for x in one} == {"82000001"}
    empty = client.get(
        f"{API}/export/readings",
        params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z", "format": "json"},
        headers=h,
    )
    assert orjson.loads(empty.content) == []
    assert client.get(f"{API}/export/readings", params={**params, "format": "xml"}, headers=h).status_code == 422


def test_telegrams_listing_and_states(hub, client, pipeline):
    t, gw, [pk] = _setup(hub, ("83000001",))
    h = hub.headers(t, "viewer")
    good = encode("83000001", energy=1.0)
    wrong = encode("83000001", energy=2.0, key=bytes(16), access_number=1)
    wrong_again = encode("83000001", energy=2.5, key=bytes(16), access_number=5)
    unknown = encode("83999999", energy=3.0)
    # two failures in a row after a good decode: the key is wrong (one alone is only `suspect`)
    hub.send(gw, 1, [good, wrong, wrong_again, unknown, b"\x00" * 12])
    pipeline.run_once()
    items = client.get(f"{API}/telegrams", headers=h).json()["items"]
    states = [i["state"] for i in items]
    assert (
        states[:4] == ["invalid", "unknown_meter", "wrong_key", "wrong_key"] and states[4] == "decoded"
    )  # newest first
    assert items[4]["hex"] == good.hex().upper() and items[4]["gateway"] == gw.serial
    assert "key" not in {k.lower() for k in items[0]}
    only = client.get(f"{API}/telegrams", params={"state": "wrong_key"}, headers=h).json()["items"]
    assert [i["meter_id"] for i in only] == ["83000001", "83000001"]
    assert client.get(f"{API}/telegrams", params={"state": "bogus"}, headers=h).status_code == 422
    by_meter = client.get(f"{API}/telegrams", params={"meter": pk}, headers=h).json()["items"]
    assert len(by_meter) == 3
    one = client.get(f"{API}/telegrams/{items[0]['id']}", headers=h).json()
    assert one["state"] == "invalid" and one["error"]
    # wrong key -> alarm; a later good telegram clears it
    alarms = client.get(f"{API}/alarms", params={"active": "true"}, headers=h).json()["items"]
    assert [(a["kind"], a["subject"]["type"], a["subject"]["id"]) for a in alarms] == [("wrong_key", "meter", pk)]
    hub.send(gw, 2, [encode("83000001", energy=4.0, access_number=2)])
    pipeline.run_once()
    assert client.get(f"{API}/alarms", params={"active": "true"}, headers=h).json()["items"] == []
    history = client.get(f"{API}/alarms", params={"active": "false"}, headers=h).json()["items"]
    assert history[0]["kind"] == "wrong_key" and history[0]["cleared_at"].endswith("Z")
    assert client.get(f"{API}/alarms/{history[0]['id']}", headers=h).json()["active"] is False


def test_alarms_from_meter_error_and_counter_backwards(hub, client, pipeline):
    t, gw, [pk] = _setup(hub, ("84000001",))
    h = hub.headers(t, "viewer")
    hub.send(
        gw,
        1,
        [encode("84000001", energy=500.0, status=0x08), encode("84000001", energy=400.0, access_number=1)],
        t0=T0,
        dts=[0, DAY],
    )
    pipeline.run_once()
    active = client.get(f"{API}/alarms", params={"active": "true"}, headers=h).json()["items"]
    kinds = {a["kind"]: a for a in active}
    assert set(kinds) == {"negative_consumption"}  # the error cleared with the second (clean) telegram
    assert kinds["negative_consumption"]["details"]["previous_value"] == 500.0
    everything = client.get(f"{API}/alarms", headers=h).json()["items"]
    assert {a["kind"] for a in everything} == {"negative_consumption", "meter_error"}
    hub.send(gw, 2, [encode("84000001", energy=501.0, access_number=2, status=0x10)], t0=T0 + 2 * DAY)
    pipeline.run_once()
    active = client.get(f"{API}/alarms", params={"active": "true"}, headers=h).json()["items"]
    assert [a["kind"] for a in active] == ["meter_error"] and "temporary error" in active[0]["message"]
    assert client.get(f"{API}/alarms", params={"kind": "nope"}, headers=h).status_code == 422


@pytest.mark.parametrize("registers_on_meter", [True, False])
def test_counter_backwards_across_batches(hub, client, db, pipeline, registers_on_meter):
    """A reading is compared with the meter's latest from an earlier batch: through the time and
    registers its meter row keeps, or (a row from before they were kept) by loading that reading."""
    from sqlalchemy import select, update

    from omshub.cloud.store.models import Meter

    t, gw, [pk] = _setup(hub, ("84000002",))
    h = hub.headers(t, "viewer")
    hub.send(gw, 1, [encode("84000002", energy=500.0)], t0=T0)
    pipeline.run_once()
    with db.transaction() as s:
        m = s.scalars(select(Meter).where(Meter.id == pk)).one()
        assert m.last_registers == {"energy": 500.0} and m.last_reading_at is not None
        if not registers_on_meter:
            s.execute(update(Meter).where(Meter.id == pk).values(last_registers=None, last_reading_at=None))
    hub.send(gw, 2, [encode("84000002", energy=400.0, access_number=1)], t0=T0 + DAY)
    pipeline.run_once()
    [alarm] = client.get(f"{API}/alarms", params={"active": "true"}, headers=h).json()["items"]
    assert alarm["kind"] == "negative_consumption" and alarm["details"]["previous_value"] == 500.0
    with db.session() as s:
        assert s.get(Meter, pk).last_registers == {"energy": 400.0}


def _uplink(hub, gw, seq, cfg, cfg_error=None):
    env = {"v": 1, "gw": gw.serial, "seq": seq, "cfg": cfg, "status": {"battery_pct": 80}}
    if cfg_error:
        env["cfg_error"] = cfg_error
    r = hub.post_uplink(gw, env)
    assert r.status_code == 200, r.content
    return cbor2.loads(r.content)


def test_operations_through_uplinks(hub, client):
    t = hub.tenant()
    op_h, viewer = hub.headers(t, "operator"), hub.headers(t, "viewer")
    gws = [hub.gateway(t, serial=f"OPS-{t.slug}-{i}") for i in range(3)]
    cfg = {"timezone": "Europe/Berlin", "upload": {"cron": "0 30 3 * * *"}, "spread_s": 600}
    assert client.put(f"{API}/gateways/{gws[0].id}/config", json=cfg, headers=viewer).status_code == 403
    r = client.put(f"{API}/gateways/{gws[0].id}/config", json={"upload": {"cron": "never"}}, headers=op_h)
    assert r.status_code == 422 and "upload.cron" in r.json()["error"]["message"]
    r = client.put(f"{API}/gateways/{gws[0].id}/config", json=cfg, headers=op_h)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["state"] == "PENDING" and first["config_version"] == 1 and first["expected_contact_at"].endswith("Z")
    # a selection by filter: all three -> gateway 0's first operation is superseded (as the operator chose)
    r = client.post(
        f"{API}/gateways/config",
        json={
            "config": {**cfg, "spread_s": 60},
            "on_conflict": "supersede",
            "filter": {"serial_prefix": f"OPS-{t.slug}-"},
        },
        headers=op_h,
    )
    assert r.status_code == 201 and r.json()["count"] == 3
    ops = {o["gateway_id"]: o for o in r.json()["operations"]}
    assert ops[gws[0].id]["config_version"] == 2 and ops[gws[1].id]["config_version"] == 1
    assert client.get(f"{API}/operations/{first['id']}", headers=viewer).json()["state"] == "SUPERSEDED"
    assert client.post(f"{API}/gateways/config", json={"config": cfg, "filter": {}}, headers=op_h).status_code == 422
    assert (
        client.post(f"{API}/gateways/config", json={"config": cfg, "gateway_ids": [10**9]}, headers=op_h).status_code
        == 404
    )
    # gateway 0: delivered on the next uplink, successful when it reports version 2
    answer = _uplink(hub, gws[0], 1, 0)
    assert answer["config"]["version"] == 2 and answer["config"]["spread_s"] == 60
    assert client.get(f"{API}/operations/{ops[gws[0].id]['id']}", headers=viewer).json()["state"] == "DELIVERED"
    assert _uplink(hub, gws[0], 2, 2)["config"] is None
    done = client.get(f"{API}/operations/{ops[gws[0].id]['id']}", headers=viewer).json()
    assert done["state"] == "SUCCESSFUL" and done["finished_at"] and done["config"]["version"] == 2
    # gateway 1 refuses it
    _uplink(hub, gws[1], 1, 0)
    assert _uplink(hub, gws[1], 2, 0, {"version": 1, "message": "timezone not installed"})["config"] is None
    failed = client.get(f"{API}/operations/{ops[gws[1].id]['id']}", headers=viewer).json()
    assert failed["state"] == "FAILED" and failed["error"] == "timezone not installed"
    listed = client.get(f"{API}/operations", params={"state": "PENDING"}, headers=viewer).json()["items"]
    assert [o["gateway_id"] for o in listed] == [gws[2].id]
    by_gw = client.get(f"{API}/operations", params={"gateway_id": gws[0].id}, headers=viewer).json()["items"]
    assert [o["state"] for o in by_gw] == ["SUCCESSFUL", "SUPERSEDED"]


def test_export_reads_only_the_period_through_the_tenant_time_index(tmp_path):
    """The export's one statement walks (tenant_id, timestamp) over the period asked for, in the
    order it writes (SQLite's plan: no scan of the history, no sort)."""
    from omshub.cloud.services.export import _select
    from omshub.cloud.store.database import Database

    db = Database(f"sqlite:///{tmp_path}/plan.db")
    db.migrate()
    try:
        sql = _select("sqlite", False).replace("{m}", "?") + ' ORDER BY r."timestamp", r.id'
        with db.engine.connect() as conn:
            plan = " | ".join(
                str(step[3]) for step in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, (1, "a", "b")).all()
            )
        assert "ix_readings_tenant_time (tenant_id=? AND timestamp>? AND timestamp<?)" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    finally:
        db.dispose()


def test_latest_of_every_meter_costs_the_same_statements_for_3_or_12_meters(hub, client, pipeline):
    """One query per page for the readings (meters.last_reading_id, with the kept decoded dict: no
    telegram decoded again), not one per meter."""
    from sqlalchemy import event

    counts = []
    for n in (3, 12):
        ids = tuple(f"8{n:02d}{i:05d}" for i in range(n))
        t, gw, _pks = _setup(hub, ids)
        hub.send(gw, 1, [encode(mid, energy=float(i)) for i, mid in enumerate(ids)])
        pipeline.run_until_idle()
        h = hub.headers(t, "viewer")
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany, into=statements):
            into.append(statement)

        event.listen(hub.db.engine, "before_cursor_execute", count)
        try:
            items = client.get(f"{API}/readings/latest", headers=h).json()["items"]
        finally:
            event.remove(hub.db.engine, "before_cursor_execute", count)
        assert len(items) == n and all(item["reading"]["records"] for item in items)
        # (the token check may or may not write its last use: only reads of readings count)
        counts.append(sum("readings" in st or "telegrams" in st for st in statements))
    assert counts[0] == counts[1] == 1, counts


def test_times_made_text_by_the_database_are_iso(hub):
    """store.database.iso_sql (the latest readings page's and the export's times) writes what
    times.iso writes: UTC, "Z", microseconds only when there are some; NULL stays NULL."""
    from sqlalchemy import bindparam, text

    from omshub.cloud.store.database import iso_sql
    from omshub.cloud.store.models import UtcDateTime
    from omshub.times import iso

    times = [
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 59, 59, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 12, 30, 5, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        None,
    ]
    with hub.db.session() as s:
        dialect = s.get_bind().dialect.name
        t = "t" if dialect == "sqlite" else "CAST(t AS timestamptz)"
        stmt = text(f"SELECT {iso_sql(dialect, t)} FROM (SELECT :t AS t) x").bindparams(
            bindparam("t", type_=UtcDateTime())
        )
        assert [s.scalar(stmt, {"t": at}) for at in times] == [iso(at) for at in times]


def test_export_batches_fetched_ahead_stop_with_the_reader_and_pass_errors_on():
    """services.export._ahead: the batches in order; a reader that stops early (a client gone)
    stops the fetching thread and closes the fetch (its session); an error of the fetch is
    raised to the reader."""
    import threading

    from omshub.cloud.services.export import _ahead

    closed = []

    def batches():
        try:
            for i in range(1000):
                yield [(i,)]
        finally:
            closed.append(True)

    assert [b[0][0] for b in _ahead(lambda: (b for b in [[(1,)], [(2,)]]))] == [1, 2]
    reader = _ahead(batches)
    assert next(reader) == [(0,)] and next(reader) == [(1,)]
    reader.close()
    assert closed == [True]
    assert not [t for t in threading.enumerate() if t.name == "omshub-export"]

    def failing():
        yield [(1,)]
        raise RuntimeError("the database went away")

    reader = _ahead(failing)
    assert next(reader) == [(1,)]
    with pytest.raises(RuntimeError, match="went away"):
        next(reader)


def _export_rows_strategy():
    from hypothesis import strategies as st

    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
    number = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**63), 2**63 - 1)
    row = st.tuples(
        st.integers(1, 2**62),
        st.sampled_from(["KAM", "EFE", "None", 'A"B', ""]) | text,
        st.sampled_from(["00000001", "1,2", "x\r\ny"]) | text,
        st.sampled_from(["heat", "", "None", "NoneType"]) | text,
        st.just("2026-03-01T00:00:00Z"),
        st.just("2026-03-01T00:00:00.000001Z"),
        *([number] * 8),
        st.none() | st.integers(0, 255),
    )
    plain = st.tuples(
        st.integers(1, 2**62),
        st.just("KAM"),
        st.from_regex(r"[0-9A-F]{8}", fullmatch=True),
        st.sampled_from(["heat", "water", ""]),
        st.just("2026-03-01T00:00:00Z"),
        st.just("2026-03-01T00:00:00.123456Z"),
        *([number] * 8),
        st.none() | st.integers(0, 255),
    )
    return st.lists(row | plain, max_size=20) | st.lists(plain, max_size=50)


def test_export_csv_text_is_what_the_csv_module_writes():
    """services.export.csv_text (rows by one %-format each) writes the very bytes csv.writer does:
    None empty, values by str(), quotes where the meter's texts need them (then by the csv module)."""
    from hypothesis import given

    from omshub.cloud.services.export import csv_text

    @given(_export_rows_strategy())
    def check(batch):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(batch)
        assert csv_text(batch) == buf.getvalue()

    check()
    row = (1, "KAM", "00000001", "heat", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z")
    assert csv_text([(*row, 1.5, None, None, None, None, 65.0, None, 0, None)]) == (
        "1,KAM,00000001,heat,2026-03-01T00:00:00Z,2026-03-01T00:00:00Z,1.5,,,,,65.0,,0,\r\n"
    )
