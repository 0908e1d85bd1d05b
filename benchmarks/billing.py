"""Billing close benchmark: `python -m benchmarks.billing [--points N] [--days D] [--small] [--database D]`.

Builds N metering points (a heat meter installed in each, every 100 points a property with units)
with D days of daily readings before the closed month, then closes that month (`omshub billing
close`'s service, services/billing_close.py) and prints, per database: the time to build, the time to
close, metering points per second, and the time of a second close of the same month (idempotent:
nothing to change). The close runs in a process of its own, so the peak memory printed is the
close's; its CPU time is printed next to the wall time (on a shared machine the wall time also
counts the waiting for a core), and on PostgreSQL on the same machine the CPU time of the database
server's process for the close's connection (read from /proc).

The readings are not sent through the ingest (a year for 100,000 meters would take hours there):
the database writes them itself (INSERT ... SELECT), straight into `readings` as decode writes them
but without the raw telegrams, and builds their indexes afterwards. This measures the close, not
the ingest (benchmarks.ingest and benchmarks.history measure that). Each reading carries the meter's
value of the last month end (storage 2), as a real meter does. Goal on the 2-core development machine: 100,000 points
with a year of readings closed in ≤ 2 minutes. `--small`: 2,000 points x 60 days.

PostgreSQL: `OMSHUB_TEST_POSTGRES` (default postgresql://postgres@127.0.0.1:5432/postgres); a database
of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import bindparam, insert, text

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
MONTH = (2026, 11)  # the month closed; the readings end a few days after it


def _stored(day: date, value: float) -> bytes:
    """A month-end value packed as store/reading_values.py keeps it: storage 2, its date and energy."""
    text = day.isoformat().encode()
    head = struct.Struct("<HBBB")
    return head.pack(2, 0, 0, 3) + bytes([len(text)]) + text + head.pack(2, 0, 0, 0) + struct.pack("<d", value)


def _build(db, points: int, days: int) -> tuple[int, float, int]:
    from omshub.cloud.store.models import Installation, Meter, MeteringPoint, Tenant
    from omshub.cloud.store.models_billing import Property, Unit

    now = datetime(2026, 12, 7, tzinfo=UTC)
    first_day = date(*MONTH, 1) - timedelta(days=days)
    last_day = date(*MONTH, 1) + timedelta(days=35)
    t0 = time.perf_counter()
    with db.transaction() as s:
        tenant = Tenant(slug=f"bench-{uuid.uuid4().hex[:6]}", name="bench", created_at=now)
        s.add(tenant)
        s.flush()
        tid = tenant.id
        s.execute(
            insert(Property),
            [
                {
                    "tenant_id": tid,
                    "ref": f"P{p}",
                    "name": "",
                    "street": "",
                    "postcode": "",
                    "city": "",
                    "country": "DE",
                    "heating_system": "",
                    "energy_carrier": "district_heat",
                    "size_class": "",
                    "due_month": 12,
                    "due_day": 31,
                    "timezone": "Europe/Berlin",
                    "created_at": now,
                }
                for p in range(points // 100 + 1)
            ],
        )
    with db.transaction() as s:
        prop_ids = [
            r[0]
            for r in s.execute(
                Property.__table__.select()
                .with_only_columns(Property.id)
                .where(Property.tenant_id == tid)
                .order_by(Property.id)
            )
        ]
        s.execute(
            insert(Unit),
            [
                {
                    "tenant_id": tid,
                    "property_id": prop_ids[i // 100],
                    "ref": f"U{i}",
                    "name": "",
                    "area_m2": 50.0 + i % 60,
                    "usage": "residential",
                    "created_at": now,
                }
                for i in range(points)
            ],
        )
        s.execute(
            insert(Meter),
            [
                {
                    "tenant_id": tid,
                    "manufacturer": "KAM",
                    "meter_id": f"{i:08d}",
                    "device_type": "heat",
                    "key_status": "present",
                    "created_at": now,
                }
                for i in range(points)
            ],
        )
        s.execute(
            insert(MeteringPoint),
            [
                {"tenant_id": tid, "ref": f"MP{i}", "address": "", "customer_ref": "", "created_at": now}
                for i in range(points)
            ],
        )
    with db.transaction() as s:
        meters = [
            r[0]
            for r in s.execute(
                Meter.__table__.select().with_only_columns(Meter.id).where(Meter.tenant_id == tid).order_by(Meter.id)
            )
        ]
        mps = [
            r[0]
            for r in s.execute(
                MeteringPoint.__table__.select()
                .with_only_columns(MeteringPoint.id)
                .where(MeteringPoint.tenant_id == tid)
                .order_by(MeteringPoint.id)
            )
        ]
        units = [
            r[0]
            for r in s.execute(
                Unit.__table__.select().with_only_columns(Unit.id).where(Unit.tenant_id == tid).order_by(Unit.id)
            )
        ]
        s.execute(
            insert(Installation),
            [
                {
                    "tenant_id": tid,
                    "metering_point_id": mp,
                    "meter_pk": m,
                    "installed_at": datetime(2020, 1, 1, tzinfo=UTC),
                    "installed_from": "given",
                    "initial_values": {},
                }
                for mp, m in zip(mps, meters, strict=True)
            ],
        )
    with db.transaction() as s:
        s.execute(
            MeteringPoint.__table__.update()
            .where(MeteringPoint.__table__.c.id == bindparam("b_id"))
            .values(unit_id=bindparam("b_unit")),
            [{"b_id": mp, "b_unit": u} for mp, u in zip(mps, units, strict=True)],
        )
    rows = _seed_readings(db, tid, meters, first_day, last_day)
    return tid, time.perf_counter() - t0, rows


def _seed_readings(db, tid: int, meters: list[int], first_day: date, last_day: date) -> int:
    """A reading per meter and day at 11:00 UTC, 24 kWh a day, each carrying the meter's value of the
    last month end (storage 2) as a real meter does; written by the database itself (INSERT ...
    SELECT from a table of days and one of month-end blobs), a few days at a time, with the
    readings' indexes built afterwards, as a bulk load does."""
    from sqlalchemy import inspect, text

    from omshub.cloud.store.database import time_to_db

    to_db = time_to_db(db.is_sqlite)
    days = []
    day = first_day
    while day <= last_day:
        days.append(((day - first_day).days, to_db(datetime(day.year, day.month, day.day, 11, tzinfo=UTC)), day))
        day += timedelta(days=1)
    months = sorted({(d.year, d.month) for _, _, d in days})
    blobs = []
    for year, month in months:
        month_end = date(year, month, 1) - timedelta(days=1)
        for base in range(97):
            value = 1000.0 + base + 24.0 * (month_end - first_day).days + 11.5  # between its readings
            blobs.append({"m": year * 100 + month, "b": base, "blob": _stored(month_end, value)})
    indexes = [i for i in inspect(db.engine).get_indexes("readings") if not i.get("unique")]
    with db.engine.begin() as conn:
        for i in indexes:
            conn.execute(text(f"DROP INDEX {i['name']}"))
        blob_type = "BLOB" if db.is_sqlite else "BYTEA"
        conn.execute(text(f"CREATE TABLE bench_blobs (m INTEGER, b INTEGER, blob {blob_type}, PRIMARY KEY (m, b))"))
        conn.execute(text("INSERT INTO bench_blobs (m, b, blob) VALUES (:m, :b, :blob)"), blobs)
        ts_type = "TEXT" if db.is_sqlite else "TIMESTAMPTZ"
        conn.execute(text(f"CREATE TABLE bench_days (d INTEGER PRIMARY KEY, ts {ts_type}, m INTEGER)"))
        conn.execute(
            text("INSERT INTO bench_days (d, ts, m) VALUES (:d, :ts, :m)"),
            [{"d": n, "ts": ts, "m": d.year * 100 + d.month} for n, ts, d in days],
        )
    m0 = meters[0]
    rows, t0 = 0, time.perf_counter()
    step = max(1, 2_000_000 // len(meters))
    for lo in range(0, len(days), step):
        with db.engine.begin() as conn:
            if not db.is_sqlite:  # no foreign-key triggers per row: the rows are right by construction
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            result = conn.execute(
                text(
                    "INSERT INTO readings (tenant_id, meter_pk, telegram_id, timestamp, received_at, energy, stored) "
                    "SELECT CAST(:tid AS INTEGER), m.id, NULL, d.ts, d.ts, "
                    "1000.0 + ((m.id - :m0) % 97) + 24.0 * d.d, bl.blob "
                    "FROM bench_days d CROSS JOIN meters m "
                    "JOIN bench_blobs bl ON bl.m = d.m AND bl.b = (m.id - :m0) % 97 "
                    "WHERE m.tenant_id = :tid AND d.d >= :lo AND d.d < :hi ORDER BY d.d, m.id"
                ),
                {"tid": tid, "m0": m0, "lo": lo, "hi": lo + step},
            )
            rows += result.rowcount
        print(f"    {rows:,} readings ({time.perf_counter() - t0:.0f} s)", end="\r", flush=True)
    print()
    with db.engine.begin() as conn:
        if db.is_sqlite:  # sort in memory (the default 2 MB cache spills 40 M rows to disk for an hour)
            conn.execute(text("PRAGMA cache_size = -2000000"))
        for i in indexes:
            conn.execute(text(f"CREATE INDEX {i['name']} ON readings ({', '.join(i['column_names'])})"))
        if db.is_sqlite:
            conn.execute(text("PRAGMA cache_size = -2000"))  # the close runs with the default
        conn.execute(text("DROP TABLE bench_days"))
        conn.execute(text("DROP TABLE bench_blobs"))
        conn.execute(text("ANALYZE"))
    return rows


def _close(db, tenant_id: int) -> tuple[float, float, dict]:
    from omshub.cloud.services.billing_close import close_period

    t0, cpu0 = time.perf_counter(), time.process_time()
    with db.transaction() as s:
        backend = None if db.is_sqlite else s.execute(text("SELECT pg_backend_pid()")).scalar()
        server0 = _server_cpu(backend)
        result = close_period(
            s, tenant_id, f"{MONTH[0]:04d}-{MONTH[1]:02d}", actor="bench", now=datetime(2026, 12, 7, tzinfo=UTC)
        )
        server = _server_cpu(backend)
    if server is not None and server0 is not None:
        result["server_cpu"] = server - server0
    return time.perf_counter() - t0, time.process_time() - cpu0, result


def _server_cpu(pid: int | None) -> float | None:
    """CPU seconds the PostgreSQL server process of this connection has used, where it runs on this
    machine (its /proc entry): the close's work in the database, which the client's CPU time misses."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_mib() -> float:
    """This process's peak resident memory. Linux's `VmHWM` counts this program only; `ru_maxrss`
    also keeps the peak of the process it was started from (the kernel carries it across exec),
    here the build with its 2 GB sort cache."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _server_text(result: dict) -> str:
    return f", of the database server {result['server_cpu']:.1f} s" if "server_cpu" in result else ""


def close_only(url: str, tenant_id: int) -> None:
    """The close in a process of its own (as `omshub billing close` runs): its peak memory is the
    close's, not the build's. Prints wall and CPU time (the CPU time of this process: on a shared
    machine the wall time also counts the waiting for a core)."""
    import omshub.cloud.services.billing_close  # noqa: F401
    from omshub.cloud.store.database import Database

    db = Database(url)
    try:
        seconds, cpu, result = _close(db, tenant_id)
        again, again_cpu, second = _close(db, tenant_id)
    finally:
        db.dispose()
    peak = _peak_mib()
    print(
        f"  close {MONTH[0]}-{MONTH[1]:02d}: {seconds:.1f} s ({result['points'] / seconds:,.0f} points/s; "
        f"CPU of the process {cpu:.1f} s{_server_text(result)}), {result['values_changed']:,} values, "
        f"{result['findings_open']:,} findings"
    )
    print(
        f"  second close (nothing to change): {again:.1f} s (CPU {again_cpu:.1f} s{_server_text(second)}), "
        f"{second['values_changed']} values changed"
    )
    print(f"  peak memory of the closing process: {peak:.0f} MiB", flush=True)


def run(url: str, points: int, days: int) -> None:
    from omshub.cloud.store.database import Database

    db = Database(url)
    db.migrate()
    try:
        tid, built, rows = _build(db, points, days)
        print(f"  built {points:,} points, {rows:,} readings in {built:.0f} s", flush=True)
    finally:
        db.dispose()
    subprocess.run([sys.executable, "-m", "benchmarks.billing", "--close-only", url, str(tid)], check=True)


def _pg_database(admin: str):
    import psycopg

    name = f"omshub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = admin.rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}", name


def _pg_drop(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365, help="days of readings before the closed month")
    parser.add_argument("--small", action="store_true", help="2,000 points x 60 days")
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--close-only", nargs=2, metavar=("URL", "TENANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.close_only:
        close_only(args.close_only[0], int(args.close_only[1]))
        return 0
    points, days = (2_000, 60) if args.small else (args.points, args.days)
    print(f"billing close: {points:,} metering points, {days} days of daily readings, month {MONTH[0]}-{MONTH[1]:02d}")
    if args.database in ("sqlite", "both"):
        tmp = tempfile.mkdtemp(prefix="omshub-bench-billing-")
        try:
            print("sqlite:", flush=True)
            run(f"sqlite:///{tmp}/bench.db", points, days)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.database in ("postgres", "both"):
        admin = os.environ.get("OMSHUB_TEST_POSTGRES", DEFAULT_PG)
        try:
            url, name = _pg_database(admin)
        except Exception as exc:
            print(f"postgres: skipped ({str(exc).splitlines()[0]})")
            return 0
        try:
            print("postgres:", flush=True)
            run(url, points, days)
        finally:
            _pg_drop(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
