"""Bulk import of meters with keys through the API: `python -m benchmarks.imports [--meters N] [--points]`.

For SQLite and PostgreSQL (skipped with a message when unreachable): a fresh database, the app
in-process (FastAPI's TestClient: the real routes, validation, audit; no network), then N meters in
CSV requests of at most 50,000 lines (`POST /api/v1/meters/import`, columns manufacturer, id,
device_type, gateway and, with `--points`, metering_point, address, customer_ref) and their N keys in
one request (`POST /api/v1/keys/import`). Prints the seconds of each part, meters per second, and
the whole against issue 11's goal (100,000 meters with keys in 30 s on PostgreSQL). A second
import of the same files (nothing new: every meter unchanged, every key replaced) is timed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid

MASTER_KEY = "6c" * 32
CHUNK = 50_000  # meters per request (services/meter_import.MAX_IMPORT_ROWS)


def _csvs(n: int, points: bool) -> tuple[list[bytes], bytes]:
    header = "manufacturer,id,device_type,gateway" + (",metering_point,address,customer_ref" if points else "")
    meters = []
    for start in range(0, n, CHUNK):
        lines = [header]
        for i in range(start, min(n, start + CHUNK)):
            line = f"KAM,{i:08d},heat,BENCH-{i % 100:03d}"
            if points:
                line += f",MP-{i:08d},Street {i % 997} No {i % 89},C-{i:08d}"
            lines.append(line)
        meters.append(("\n".join(lines) + "\n").encode())
    keys = ["id,key,manufacturer"] + [f"{i:08d},{(i * 2654435761) % (1 << 128):032X},KAM" for i in range(n)]
    return meters, ("\n".join(keys) + "\n").encode()


def _url(kind: str, tmp: str, pg_admin: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/imports-{uuid.uuid4().hex[:6]}.db", None
    import psycopg

    name = f"omshub_bench_imports_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin.rsplit("/", 1)[0].split("://", 1)[1]
    return f"postgresql+psycopg://{base}/{name}", name


def bench(kind: str, n: int, points: bool, pg_admin: str) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from omshub.cloud.app import create_app
    from omshub.cloud.services.accounts import create_api_token, create_tenant
    from omshub.cloud.services.gateways import register_gateway
    from omshub.cloud.settings import load_settings
    from omshub.cloud.store.database import Database

    tmp = tempfile.mkdtemp(prefix="omshub-bench-imports-")
    url, pg_name = _url(kind, tmp, pg_admin)
    try:
        db = Database(url)
        db.migrate()
        with db.transaction() as s:
            tenant = create_tenant(s, "bench", "Benchmark")
            for g in range(100):
                register_gateway(s, tenant.id, f"BENCH-{g:03d}")
            token = create_api_token(s, tenant.id, "bench", "admin")[1]
        settings = load_settings(None, environ={}, database=url, data_dir=tmp, master_key=MASTER_KEY)
        app = create_app(settings, db=db, workers=False)
        meter_files, key_file = _csvs(n, points)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
        out = {}
        with TestClient(app) as client:
            for round_ in ("first", "again"):
                start = time.perf_counter()
                for body in meter_files:
                    r = client.post("/api/v1/meters/import", content=body, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"meter import: {r.status_code} {r.text[:300]}")
                meters_s = time.perf_counter() - start
                start = time.perf_counter()
                r = client.post("/api/v1/keys/import", content=key_file, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"key import: {r.status_code} {r.text[:300]}")
                out[f"{round_} meters"] = meters_s
                out[f"{round_} keys"] = time.perf_counter() - start
        db.dispose()
        return out
    finally:
        if pg_name is not None:
            import psycopg

            with psycopg.connect(pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--points", action="store_true", help="each meter installed at a metering point of its own")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument(
        "--postgres", default=os.environ.get("OMSHUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args(argv)
    if not 1 <= args.meters <= 1_000_000:
        parser.error("--meters 1-1000000")
    print(f"{args.meters:,} meters{' at metering points' if args.points else ''} with keys, through the API")
    print(f"{'database':<10} {'round':<6} {'meters s':>9} {'keys s':>8} {'total s':>8} {'meters/s':>9}")
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        if kind == "postgres":
            try:
                import psycopg

                psycopg.connect(args.postgres, connect_timeout=3).close()
            except Exception as exc:
                print(f"postgres: skipped, server not reachable at {args.postgres}: {exc}")
                continue
        elif kind != "sqlite":
            parser.error(f"unknown database {kind!r}")
        t = bench(kind, args.meters, args.points, args.postgres)
        for round_ in ("first", "again"):
            m, k = t[f"{round_} meters"], t[f"{round_} keys"]
            print(f"{kind:<10} {round_:<6} {m:>9.1f} {k:>8.1f} {m + k:>8.1f} {args.meters / (m + k):>9.0f}", flush=True)
    print("goal (issue 11): 100,000 meters with keys in at most 30 s on PostgreSQL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
