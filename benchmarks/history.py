"""History benchmark: `python -m benchmarks.history [--meters N] [--days D] [--small] [--database D]`.

Builds D days of history for N mode-5 heat meters (a 12-record telegram each per day; the codec's
encoder makes them) through the real code paths, in-process: every day each gateway's batch goes
through the ingest service (`ingest.uplink.handle_uplink`: parsing, authentication, the stored
uplink and telegram rows, exactly what an HTTP upload runs after reading the body) and then the
decode pipeline (`DecodePipeline.run_until_idle`) until every telegram is decoded. Receive times
are the simulated days (accelerated time); the uplinks' own receive times are the wall clock.

Then it prints, per database:
* bytes per reading for the whole database (readings + telegrams + uplinks + their indexes; for
  SQLite the file after a checkpoint, for PostgreSQL the three tables' total relation sizes), and
  the same without the raw uplink bodies that retention empties after 90 days (store/retention.py);
* the ingest+decode rate (telegrams/s) of the first and the last days and their ratio;
* p50/p99 through the API (in-process ASGI client) of: latest reading of every meter (a full pass,
  pages of 1000), one meter's year of readings, consumption of a metering point over the period,
  export of the last month for all meters as CSV and JSON (with rows/s).

PostgreSQL: `OMSHUB_TEST_POSTGRES` (default postgresql://postgres@127.0.0.1:5432/postgres); a
database of its own is created and dropped. `--small` is 500 meters x 60 days (a few minutes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import cbor2
import orjson

MASTER_KEY = bytes.fromhex("6b" * 32)
METER_KEY = bytes(range(16))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PER_GATEWAY = 500
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _records(i: int, day: int) -> list[dict]:
    """A heat meter's 12 records: current registers and values, its clock, error flags, the
    due-date values (storage 1) with their date, operating time."""
    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    clock = T0 + timedelta(days=day, hours=2, minutes=i % 60)
    due = f"{clock.year - 1}-12-31"
    return [
        {**base, "quantity": "energy", "unit": "kWh", "value": float(10_000 + i * 7 + day * 11)},
        {**base, "quantity": "volume", "unit": "m3", "value": round(100.0 + i * 0.25 + day * 0.3, 2)},
        {**base, "quantity": "power", "unit": "W", "value": float(1000 + i % 500)},
        {**base, "quantity": "volume_flow", "unit": "m3/h", "value": 0.5},
        {**base, "quantity": "flow_temperature", "unit": "C", "value": 65.0},
        {**base, "quantity": "return_temperature", "unit": "C", "value": 41.0},
        {**base, "quantity": "datetime", "unit": "", "value": clock.strftime("%Y-%m-%dT%H:%M")},
        {**base, "quantity": "error_flags", "unit": "", "value": 0},
        {**base, "storage": 1, "quantity": "energy", "unit": "kWh", "value": float(9_000 + i * 7)},
        {**base, "storage": 1, "quantity": "volume", "unit": "m3", "value": 90.0 + i * 0.25},
        {**base, "storage": 1, "quantity": "date", "unit": "", "value": due},
        {**base, "quantity": "operating_time", "unit": "d", "value": 400 + day},
    ]


def _meter_id(g: int, i: int) -> str:
    return f"{g:04d}{i:04d}"


def _bodies(gateways: list[tuple[str, str]], meters: int, day: int) -> list[tuple[bytes, str]]:
    """(CBOR uplink body, credential) per gateway for one simulated day."""
    from omshub.codec import encode_telegram

    out = []
    t0 = int((T0 + timedelta(days=day, hours=2)).timestamp())
    for g, (serial, cred) in enumerate(gateways):
        n = min(PER_GATEWAY, meters - g * PER_GATEWAY)
        frames = [
            encode_telegram(
                {"manufacturer": "KAM", "id": _meter_id(g, i), "version": 0x1B, "device_type_code": 4},
                _records(g * PER_GATEWAY + i, day),
                mode=5,
                key=METER_KEY,
                access_number=(i + day) % 256,
            )
            for i in range(n)
        ]
        env = {
            "v": 1,
            "gw": serial,
            "seq": 1 + day,
            "cfg": 0,
            "status": {"battery_pct": 90, "spool": 0},
            "t0": t0,
            "batch": {
                "data": b"".join(frames),
                "len": [len(f) for f in frames],
                "dt": [i % 3600 for i in range(n)],
                "rssi": bytes([256 - 80] * n),
                "mode": 1,
            },
        }
        out.append((cbor2.dumps(env), cred))
    return out


def _provision(db, keystore, meters: int) -> tuple[int, list[tuple[str, str]], int]:
    """Tenant, gateways, meters, keys and one metering point (meter 0 installed). -> (tenant id,
    [(serial, credential)], metering point id)."""
    from omshub.cloud.services.accounts import create_tenant
    from omshub.cloud.services.gateways import register_gateway
    from omshub.cloud.store.keystore import KeyEntry
    from omshub.cloud.store.models import Installation, Meter, MeteringPoint

    with db.transaction() as s:
        tenant = create_tenant(s, "bench", "Benchmark", meter_timezone="UTC")
        tenant_id = tenant.id
        gateways = []
        for g in range((meters + PER_GATEWAY - 1) // PER_GATEWAY):
            gw, cred = register_gateway(s, tenant_id, f"HIST-{g:04d}")
            gateways.append((gw.serial, cred))
        ids = [_meter_id(i // PER_GATEWAY, i % PER_GATEWAY) for i in range(meters)]
        s.add_all(
            Meter(tenant_id=tenant_id, manufacturer="KAM", meter_id=m, device_type="heat", created_at=T0) for m in ids
        )
        s.flush()
        keystore.import_keys(
            s, tenant_id, [KeyEntry(m, "KAM", METER_KEY) for m in ids], actor="benchmark", source="benchmark"
        )
        first = s.query(Meter).filter_by(tenant_id=tenant_id, meter_id=ids[0]).one()
        point = MeteringPoint(tenant_id=tenant_id, ref="P-0", created_at=T0)
        s.add(point)
        s.flush()
        s.add(Installation(tenant_id=tenant_id, metering_point_id=point.id, meter_pk=first.id, installed_at=T0))
        point_id = point.id
    return tenant_id, gateways, point_id


def _feed(db, pipeline, gateways, meters: int, days: int, vacuum_days: int) -> list[float]:
    """The history, day by day. -> telegrams/s of each day (ingest + decode, encoding excluded).
    Every `vacuum_days` simulated days the maintenance's vacuum task runs (as `omshub serve`
    schedules it daily; PostgreSQL here runs without autovacuum), not counted in the rates."""
    from omshub.cloud.ingest.uplink import handle_uplink
    from omshub.cloud.services.maintenance import partitions_ahead, vacuum_analyze

    rates = []
    for day in range(days):
        # the partitions ahead, as the daily maintenance makes them (PostgreSQL; simulated time)
        partitions_ahead(db, T0 + timedelta(days=day))
        if vacuum_days and day and day % vacuum_days == 0:
            vacuum_analyze(db, T0 + timedelta(days=day))
        bodies = _bodies(gateways, meters, day)
        start = time.perf_counter()
        for body, cred in bodies:
            handle_uplink(db, body, content_type="application/cbor", transport="https", credential=cred)
        pipeline.run_until_idle()
        rates.append(meters / (time.perf_counter() - start))
        if day % 10 == 0 or day == days - 1:
            print(f"  day {day + 1}/{days}: {rates[-1]:,.0f} telegrams/s", flush=True)
    return rates


def _sizes(db, readings: int) -> tuple[dict[str, float], float]:
    """({table: bytes per reading with its indexes}, raw uplink body bytes per reading)."""
    tables = ("readings", "telegrams", "uplinks")
    with db.engine.connect() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = conn.exec_driver_sql(
                "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
                "WHERE m.tbl_name IN ('readings', 'telegrams', 'uplinks') GROUP BY m.tbl_name"
            ).all()
        else:
            # (a partitioned table's size is its partitions')
            rows = conn.exec_driver_sql(
                "SELECT c::text, coalesce((SELECT sum(pg_total_relation_size(p.relid)) FROM pg_partition_tree(c) p "
                "WHERE p.isleaf), pg_total_relation_size(c)) FROM "
                "unnest(ARRAY['readings', 'telegrams', 'uplinks']::regclass[]) c"
            ).all()
        bodies = conn.exec_driver_sql("SELECT coalesce(sum(length(body)), 0) FROM uplinks").scalar_one()
    sizes = dict.fromkeys(tables, 0.0)
    sizes.update({name: float(size) / readings for name, size in rows})
    return sizes, bodies / readings


def _timed(fn, n: int) -> tuple[float, float, float]:
    """(p50, p99 of the wall time, p50 of this process's CPU time). The CPU time (the API runs in
    a thread of this process; SQLite's work too, PostgreSQL's server not) varies far less than
    the wall time on a machine shared with other jobs."""
    times, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return statistics.median(times), p99, statistics.median(cpu)


def _reads(app, db, tenant_id: int, point_id: int, days: int, repeat: int) -> dict:
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from omshub.cloud.services.accounts import create_api_token
    from omshub.cloud.store.models import Meter, Reading

    with db.transaction() as s:
        token = create_api_token(s, tenant_id, "bench", "viewer")[1]
        first = s.scalar(select(func.min(Meter.id)).where(Meter.tenant_id == tenant_id))
    h = {"Authorization": f"Bearer {token}"}
    client = TestClient(app)
    end = T0 + timedelta(days=days)
    month_start = end - timedelta(days=30)

    def latest_pass():
        cursor, n = None, 0
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = orjson.loads(client.get("/api/v1/readings/latest", params=params, headers=h).content)
            n += len(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return n

    def meter_year():
        cursor = None
        while True:
            params = {"from": T0.isoformat(), "to": end.isoformat(), "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = orjson.loads(client.get(f"/api/v1/meters/{first}/readings", params=params, headers=h).content)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def consumption():
        r = client.get(
            f"/api/v1/metering-points/{point_id}/consumption",
            params={"from": T0.date().isoformat(), "to": end.date().isoformat()},
            headers=h,
        )
        assert r.status_code == 200, r.text

    def export(fmt):
        def run():
            params = {"from": month_start.isoformat(), "to": end.isoformat(), "format": fmt}
            with client.stream("GET", "/api/v1/export/readings", params=params, headers=h) as r:
                for _ in r.iter_bytes():
                    pass

        return run

    with db.session() as s:
        month_rows = s.scalar(
            select(func.count()).where(
                Reading.tenant_id == tenant_id, Reading.timestamp >= month_start, Reading.timestamp <= end
            )
        )
    out = {"latest_meters": latest_pass(), "month_rows": month_rows}
    out["latest"] = _timed(latest_pass, repeat)
    out["meter_year"] = _timed(meter_year, repeat)
    out["consumption"] = _timed(consumption, repeat)
    out["export_csv"] = _timed(export("csv"), max(2, repeat // 4))
    out["export_json"] = _timed(export("json"), max(2, repeat // 4))
    return out


def _index_sizes(db, readings: int) -> str:
    """Bytes per reading of each table's heap and each index (SQLite: dbstat; PostgreSQL: relation sizes)."""
    with db.engine.connect() as conn:
        if db.is_sqlite:
            rows = conn.exec_driver_sql(
                "SELECT d.name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
                "WHERE m.tbl_name IN ('readings', 'telegrams', 'uplinks') GROUP BY d.name ORDER BY 2 DESC"
            ).all()
        else:
            # partitions and their indexes counted under their partitioned table's and index's names
            rows = conn.exec_driver_sql(
                "SELECT coalesce(p.relname, c.relname), sum(pg_relation_size(c.oid) "
                "+ coalesce(pg_total_relation_size(c.reltoastrelid), 0)) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') "
                "AND (c.relname ~ '^(readings|telegrams|uplinks)' "
                "OR c.relname ~ '^(ix|uq)_(readings|telegrams|uplinks)') GROUP BY 1 ORDER BY 2 DESC"
            ).all()
    return ", ".join(f"{name} {float(size) / readings:,.1f}" for name, size in rows if size)


def run(url: str, meters: int, days: int, repeat: int, vacuum_days: int = 1) -> None:
    from sqlalchemy import func, select

    from omshub.cloud.app import create_app
    from omshub.cloud.settings import load_settings
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import KeyStore
    from omshub.cloud.store.models import Reading

    db = Database(url)
    db.migrate()
    keystore = KeyStore(MASTER_KEY)
    settings = load_settings(None, environ={}, database=url, master_key=MASTER_KEY.hex(), meter_timezone="UTC")
    app = create_app(settings, db=db, keystore=keystore, workers=False, migrate=False)
    pipeline = app.state.pipeline
    tenant_id, gateways, point_id = _provision(db, keystore, meters)
    print(f"{db.engine.dialect.name}: {meters:,} meters x {days} days", flush=True)
    rates = _feed(db, pipeline, gateways, meters, days, vacuum_days)
    with db.session() as s:
        readings = s.scalar(select(func.count()).select_from(Reading))
    sizes, bodies = _sizes(db, readings)
    whole = sum(sizes.values())
    k = max(1, min(5, days // 10))
    first, last = statistics.mean(rates[:k]), statistics.mean(rates[-k:])
    print(f"  readings: {readings:,}")
    parts = ", ".join(f"{name} {size:,.0f}" for name, size in sizes.items())
    print(f"  bytes per reading (readings + telegrams + uplinks, with indexes): {whole:,.0f} B ({parts})")
    print(
        f"    of which raw uplink bodies {bodies:,.0f} B (emptied by retention after 90 days): {whole - bodies:,.0f} B"
    )
    print(f"    per table and index: {_index_sizes(db, readings)}")
    if not db.is_sqlite:
        # the dead row versions the decode's telegram updates leave until (auto)vacuum reuses them
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM FULL readings, telegrams, uplinks")
        live, _bodies = _sizes(db, readings)
        parts = ", ".join(f"{name} {size:,.0f}" for name, size in live.items())
        print(f"    live rows only (after VACUUM FULL): {sum(live.values()):,.0f} B ({parts})")
    print(f"  ingest+decode: first {k} days {first:,.0f}/s, last {k} days {last:,.0f}/s, ratio {last / first:.2f}x")
    reads = _reads(app, db, tenant_id, point_id, days, repeat)
    ms = lambda t: f"p50 {t[0] * 1000:,.0f} ms, p99 {t[1] * 1000:,.0f} ms (CPU p50 {t[2] * 1000:,.0f} ms)"  # noqa: E731
    print(f"  latest of every meter ({reads['latest_meters']:,} meters, full pass): {ms(reads['latest'])}")
    print(f"  one meter's readings over the period: {ms(reads['meter_year'])}")
    print(f"  consumption of a metering point over the period: {ms(reads['consumption'])}")
    for fmt in ("csv", "json"):
        p50, cpu = reads[f"export_{fmt}"][0], reads[f"export_{fmt}"][2]
        rate = reads["month_rows"] / p50 if p50 else 0
        cpu_rate = reads["month_rows"] / cpu if cpu else 0
        print(
            f"  export of the last 30 days, all meters ({reads['month_rows']:,} rows, {fmt.upper()}): "
            f"{ms(reads[f'export_{fmt}'])} ({rate:,.0f} rows/s; {cpu_rate:,.0f} per CPU second)"
        )
    db.dispose()


def _pg_database(admin: str):
    import psycopg

    name = "omshub_bench_history_" + uuid.uuid4().hex[:8]
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"postgresql: skipped ({exc})")
        return None, None
    base = admin.rsplit("/", 1)[0].split("://", 1)[1]
    return name, f"postgresql+psycopg://{base}/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--small", action="store_true", help="500 meters x 60 days")
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each read (p50/p99)")
    parser.add_argument(
        "--vacuum-days", type=int, default=1, help="run the maintenance's vacuum every N simulated days (0: never)"
    )
    args = parser.parse_args(argv)
    meters, days = (500, 60) if args.small else (args.meters, args.days)
    if args.database in ("sqlite", "both"):
        tmp = tempfile.mkdtemp(prefix="omshub-history-")
        try:
            run(f"sqlite:///{tmp}/history.db", meters, days, args.repeat, args.vacuum_days)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.database in ("postgres", "both"):
        import psycopg

        admin = os.environ.get("OMSHUB_TEST_POSTGRES", DEFAULT_PG)
        name, url = _pg_database(admin)
        if url is not None:
            try:
                run(url, meters, days, args.repeat, args.vacuum_days)
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
