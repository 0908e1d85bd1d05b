"""Head-end ingest benchmark: `python -m benchmarks.ingest [--gateways N] [--meters M] [--clients C] [--days D]`.

For SQLite and PostgreSQL (skipped with a message when unreachable): runs `omshub serve` in a
subprocess, warms it up (one uplink decoded: its worker processes are running), then for each of
D days uploads one daily batch per simulated gateway (M mode-5 heat meters each, telegrams made by
the codec's encoder) over HTTP with C concurrent clients, waits until every telegram is decoded,
and prints telegrams/s ingested (all uplinks acknowledged = committed) and end to end (all decoded
into readings). Day 1 finds every meter new to the head-end (keys opened, formats learned, no
reading to compare with); from day 2 on it is the steady state (each reading checked for
duplicates and compared with the meter's last). Next to each day: the same database's raw
insert rate for the same telegram rows (SQLAlchemy Core executemany into a `telegrams` table,
one transaction per gateway batch like the ingest, the days one after the other), measured in the
same run, and the ratios."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import cbor2
import httpx

MASTER_KEY = "6b" * 32
WARMUP_GATEWAY = "BENCH-WARMUP"
T0 = 1767225600  # 2026-01-01T00:00:00Z


def _heat_records(i: int, day: int) -> list[dict]:
    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    return [
        {**base, "quantity": "energy", "unit": "kWh", "value": float(10_000 + i * 7 + day * 11)},
        {**base, "quantity": "volume", "unit": "m3", "value": round(100.0 + i * 0.25 + day * 0.3, 2)},
        {**base, "quantity": "power", "unit": "W", "value": float(1000 + i)},
        {**base, "quantity": "flow_temperature", "unit": "C", "value": 65.0},
        {**base, "quantity": "return_temperature", "unit": "C", "value": 41.0},
        {**base, "quantity": "datetime", "unit": "", "value": f"2026-01-0{1 + day % 9}T02:{i % 60:02d}"},
    ]


def build_uplinks(
    gateways: int, meters: int, key: bytes, day: int = 0
) -> tuple[list[tuple[str, bytes]], list[list[bytes]]]:
    """[(serial, cbor body)] and the frames of each, one daily batch per gateway (of `day`)."""
    from omshub.codec import encode_telegram

    bodies, all_frames = [], []
    for g in range(gateways):
        serial = f"BENCH-{g:05d}"
        frames = []
        for i in range(meters):
            meter = {"manufacturer": "KAM", "id": f"{g:04d}{i:04d}", "version": 0x1B, "device_type_code": 4}
            frames.append(
                encode_telegram(meter, _heat_records(i, day), mode=5, key=key, access_number=(g + i + day) % 256)
            )
        env = {
            "v": 1,
            "gw": serial,
            "seq": 1 + day,
            "cfg": 0,
            "status": {"battery_pct": 90, "spool": 0},
            "t0": T0 + 86400 * day + 7200,
            "batch": {
                "data": b"".join(frames),
                "len": [len(f) for f in frames],
                "dt": list(range(len(frames))),
                "rssi": bytes([256 - 80] * len(frames)),
                "mode": 1,
            },
        }
        bodies.append((serial, cbor2.dumps(env)))
        all_frames.append(frames)
    return bodies, all_frames


def setup_database(url: str, gateways: int, meters: int, key: bytes) -> dict[str, str]:
    """Tenant, gateways, meters and keys straight into the database; -> {serial: credential}."""
    from sqlalchemy import insert

    from omshub.cloud.services.accounts import create_tenant
    from omshub.cloud.services.gateways import register_gateway
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import KeyEntry, KeyStore
    from omshub.cloud.store.models import Meter

    db = Database(url)
    db.migrate()
    store = KeyStore(bytes.fromhex(MASTER_KEY))
    credentials = {}
    now = datetime.now(UTC)
    with db.transaction() as s:
        tenant = create_tenant(s, "bench", "Benchmark")
        for g in range(gateways):
            gw, cred = register_gateway(s, tenant.id, f"BENCH-{g:05d}")
            credentials[gw.serial] = cred
            s.execute(
                insert(Meter),
                [
                    {
                        "tenant_id": tenant.id,
                        "manufacturer": "KAM",
                        "meter_id": f"{g:04d}{i:04d}",
                        "device_type": "heat",
                        "gateway_id": gw.id,
                        "key_status": "present",
                        "created_at": now,
                    }
                    for i in range(meters)
                ],
            )
        gw, cred = register_gateway(s, tenant.id, WARMUP_GATEWAY)
        credentials[gw.serial] = cred
        entries = [KeyEntry(f"{g:04d}{i:04d}", "KAM", key) for g in range(gateways) for i in range(meters)]
        store.import_keys(s, tenant.id, entries, actor="bench", source="bench")
    if not db.is_sqlite:  # planner statistics for the bulk-loaded tables, as autovacuum keeps them on a running server
        with db.engine.connect() as conn:
            conn.exec_driver_sql("COMMIT")
            conn.exec_driver_sql("ANALYZE")
    db.dispose()
    return credentials


def raw_insert_rates(url: str, days: list[tuple[list[tuple[str, bytes]], list[list[bytes]]]]) -> list[float]:
    """Telegram rows/s of plain SQLAlchemy Core bulk INSERTs of the rows the head-end stores for
    an uplink (the uplink with its raw body, its telegrams), one transaction per gateway batch,
    one figure per day, the days inserted one after the other into the same database (as the
    live run's days are)."""
    from sqlalchemy import insert

    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models import Gateway, Telegram, Tenant, Uplink

    db = Database(url)
    db.migrate()
    now = datetime.now(UTC)
    with db.transaction() as s:
        tenant_id = s.execute(
            insert(Tenant).values(slug="raw", name="raw", created_at=now).returning(Tenant.id)
        ).scalar_one()
        gateway_id = s.execute(
            insert(Gateway)
            .values(
                tenant_id=tenant_id, serial="RAW", name="", credential_hash=os.urandom(32), created_at=now, status={}
            )
            .returning(Gateway.id)
        ).scalar_one()
    rates, seq = [], 0
    for day, (bodies, all_frames) in enumerate(days):
        batches = []
        at = now + timedelta(days=day)
        for n, frames in enumerate(all_frames):
            rows = [
                {
                    "tenant_id": tenant_id,
                    "gateway_id": gateway_id,
                    "received_at": at + timedelta(seconds=i),
                    "link_mode": "T1",
                    "rssi": -80,
                    "raw": f,
                    "raw_hash": hashlib.sha256(f).digest(),
                    "manufacturer": "KAM",
                    "meter_id": f"{n:04d}{i:04d}",
                    "state": "new",
                }
                for i, f in enumerate(frames)
            ]
            batches.append((bodies[n][1], rows))
        total = sum(len(rows) for _body, rows in batches)
        start = time.perf_counter()
        for body, rows in batches:
            seq += 1
            with db.transaction() as s:
                uplink_id = s.execute(
                    insert(Uplink)
                    .values(
                        tenant_id=tenant_id,
                        gateway_id=gateway_id,
                        seq=seq,
                        received_at=at,
                        content_type="application/cbor",
                        body=body,
                        response={},
                    )
                    .returning(Uplink.id)
                ).scalar_one()
                for row in rows:
                    row["uplink_id"] = uplink_id
                s.execute(insert(Telegram), rows)
        rates.append(total / (time.perf_counter() - start))
    db.dispose()
    return rates


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(url: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "OMSHUB_MASTER_KEY": MASTER_KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omshub",
            "serve",
            "--port",
            str(port),
            "--database",
            url,
            "--data-dir",
            data_dir,
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"omshub serve exited with {proc.returncode}")
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("omshub serve did not start within 60 s")


def upload(base: str, bodies: list[tuple[str, bytes]], credentials: dict[str, str], clients: int) -> int:
    """Post every body with `clients` concurrent connections; -> telegrams acknowledged as stored."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    stored = [0]
    errors: list[str] = []

    host, port = base.split("://", 1)[1].rsplit(":", 1)

    def work():
        # the standard library's HTTP/1.1 client on a kept-alive connection: the gateways are other
        # machines, so the client should take as little of this machine's CPU as it can
        client = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    serial, body = queue.pop()
                client.request(
                    "POST",
                    "/api/v1/uplink",
                    body=body,
                    headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {credentials[serial]}"},
                )
                r = client.getresponse()
                content = r.read()
                if r.status != 200:
                    errors.append(f"{serial}: HTTP {r.status} {content[:200]!r}")
                    return
                with lock:
                    stored[0] += cbor2.loads(content)["stored"]
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("uplink failed: " + "; ".join(errors[:3]))
    return stored[0]


def warm_up(base: str, url: str, credential: str, key: bytes, timeout: float = 120) -> None:
    """One uplink with one telegram (of a meter not registered), waited for until the decode
    workers have processed it: the measurement starts with the service running, not with its
    worker processes still starting up (seconds, which would be counted as decode time)."""
    from omshub.codec import encode_telegram

    frame = encode_telegram(
        {"manufacturer": "KAM", "id": "99999999", "version": 0x1B, "device_type_code": 4},
        _heat_records(0, 0),
        mode=5,
        key=key,
    )
    env = {
        "v": 1,
        "gw": WARMUP_GATEWAY,
        "seq": 1,
        "cfg": 0,
        "status": {},
        "t0": T0,
        "batch": {"data": frame, "len": [len(frame)], "dt": [0], "rssi": bytes([176]), "mode": 1},
    }
    upload(base, [(WARMUP_GATEWAY, cbor2.dumps(env))], {WARMUP_GATEWAY: credential}, 1)
    wait_decoded(url, 0, timeout)


def wait_decoded(url: str, total: int, timeout: float = 600) -> dict[str, int]:
    from sqlalchemy import func, select

    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models import Telegram

    db = Database(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with db.session() as s:
                # one index probe (not a count of the backlog): polled often, so the measured end
                # is within ~10 ms of the last decode commit without taking CPU from the decoders
                if s.scalar(select(Telegram.id).where(Telegram.state == "new").limit(1)) is None:
                    return dict(s.execute(select(Telegram.state, func.count()).group_by(Telegram.state)).all())
            time.sleep(0.01)
        raise RuntimeError("telegrams not decoded in time")
    finally:
        db.dispose()


class Target:
    """A fresh database (and one more for the raw insert rate) of one kind."""

    def __init__(self, kind: str, pg_admin: str) -> None:
        self.kind, self.pg_admin = kind, pg_admin
        self.tmp = tempfile.mkdtemp(prefix=f"omshub-bench-{kind}-")
        self.created: list[str] = []

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp}/{name}.db"
        import psycopg

        db_name = f"omshub_bench_{name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.pg_admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        self.created.append(db_name)
        base = self.pg_admin.rsplit("/", 1)[0].split("://", 1)[1]
        return f"postgresql+psycopg://{base}/{db_name}"

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.created:
            import psycopg

            with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                for name in self.created:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_reachable(url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc).strip().splitlines()[0]


def bench(kind: str, args, days: list, key: bytes) -> list[dict]:
    """One server, `len(days)` daily uploads one after the other; -> a result per day."""
    target = Target(kind, args.postgres)
    proc = None
    try:
        url = target.url("live")
        credentials = setup_database(url, args.gateways, args.meters, key)
        proc, base = run_server(url, target.tmp)
        warm_up(base, url, credentials[WARMUP_GATEWAY], key)
        per_day = args.gateways * args.meters
        results = []
        for day, (bodies, _frames) in enumerate(days):
            start = time.perf_counter()
            stored = upload(base, bodies, credentials, args.clients)
            ingested = time.perf_counter() - start
            states = wait_decoded(url, per_day)
            end_to_end = time.perf_counter() - start
            if stored != per_day or states.get("decoded") != per_day * (day + 1):
                raise RuntimeError(
                    f"day {day + 1}: expected {per_day} stored and {per_day * (day + 1)} decoded "
                    f"in all, got {stored} stored, states {states}"
                )
            results.append(
                {
                    "db": kind,
                    "day": day + 1,
                    "telegrams": per_day,
                    "ingest_rate": per_day / ingested,
                    "e2e_rate": per_day / end_to_end,
                }
            )
        for result, raw in zip(results, raw_insert_rates(target.url("raw"), days), strict=False):
            result["raw_rate"] = raw
        return results
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        target.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=60, help="simulated gateways, one daily batch each")
    parser.add_argument("--meters", type=int, default=250, help="meters per gateway (telegrams per batch)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--days",
        type=int,
        default=2,
        help="daily uploads one after the other (day 1: every meter new to the head-end; "
        "from day 2 on: steady state, each reading compared with the meter's last)",
    )
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("OMSHUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server (a database is created there and dropped)",
    )
    args = parser.parse_args(argv)
    if not (
        1 <= args.gateways <= 100_000 and 1 <= args.meters <= 5000 and 1 <= args.clients <= 64 and 1 <= args.days <= 30
    ):
        parser.error("--gateways 1-100000, --meters 1-5000 (telegrams per uplink), --clients 1-64, --days 1-30")
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    print(f"building {args.days} day(s) x {args.gateways} uplinks x {args.meters} mode-5 telegrams ...", flush=True)
    days = [build_uplinks(args.gateways, args.meters, key, day) for day in range(args.days)]
    results = []
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        if kind == "postgres":
            problem = pg_reachable(args.postgres)
            if problem:
                print(f"postgres: skipped, server not reachable at {args.postgres}: {problem}")
                continue
        elif kind != "sqlite":
            parser.error(f"unknown database {kind!r}")
        print(f"{kind}: running ...", flush=True)
        results.extend(bench(kind, args, days, key))
    print()
    print(
        f"{'database':<10} {'day':>3} {'telegrams':>9} {'ingest/s':>10} {'end-to-end/s':>13} {'raw insert/s':>13} "
        f"{'e2e/raw':>8} {'ingest/raw':>10}"
    )
    for r in results:
        print(
            f"{r['db']:<10} {r['day']:>3} {r['telegrams']:>9} {r['ingest_rate']:>10.0f} {r['e2e_rate']:>13.0f} "
            f"{r['raw_rate']:>13.0f} {r['e2e_rate'] / r['raw_rate']:>8.2f} {r['ingest_rate'] / r['raw_rate']:>10.2f}"
        )
    print(
        f"(uplinks of {args.meters} telegrams over HTTP with {args.clients} clients, "
        "to a started and warmed-up server; "
        "end-to-end = all acknowledged and decoded into readings; raw insert = Core executemany of the same rows, "
        "one transaction per batch; day 1: every meter new to the head-end, later days: steady state)"
    )
    from omshub.cloud.settings import load_settings

    workers = load_settings(None).pipeline_workers
    idle_core = max(0, (os.cpu_count() or 1) - workers) if workers else 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"(machine: {os.cpu_count()} CPUs, load average {load:.1f} at the end; decoding in "
        + (
            f"{workers} worker process(es) + {idle_core} on idle cores)"
            if workers
            else "a thread of the server process)"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
