"""Decode rate of meters with active alarms vs without: `python -m benchmarks.alarms [--gateways N] [--meters M]`.

For SQLite and PostgreSQL (skipped with a message when unreachable), in one process: tenant,
gateways, meters and keys straight into a fresh database (benchmarks/ingest.py's setup), a first
day of mode-5 heat-meter uplinks ingested through the ingest code (`handle_uplink`) and decoded
(every meter then has a latest reading). Then three more days, each ingested and then decoded by
one DecodePipeline until idle, timed (telegrams decoded per second):

* `no alarm` — the steady state: no meter has an active alarm (the baseline);
* `silent` — every meter has an active `meter_silent` alarm of its own (written by the benchmark:
  the periodic evaluation far in the future groups them, one alarm per gateway, which is checked);
  the batch clears them as the meters are heard again;
* `error` — every telegram reports an error (status byte): each meter's `meter_error` alarm is
  raised the first day and refreshed by every later reading (measured on the day after it rose).

Prints the rates and the ratio of each to the baseline (issue 11 item 4b's goal: about 1), by wall
time and by this process's CPU time (telegrams per CPU second: less disturbed by other load on the
machine; the database server's own work is not in it).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from benchmarks.ingest import MASTER_KEY, Target, pg_reachable, setup_database


def _records(i: int, day: int) -> list[dict]:
    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    return [
        {**base, "quantity": "energy", "unit": "kWh", "value": float(10_000 + i * 7 + day * 11)},
        {**base, "quantity": "volume", "unit": "m3", "value": round(100.0 + i * 0.25 + day * 0.3, 2)},
        {**base, "quantity": "power", "unit": "W", "value": float(1000 + i)},
        {**base, "quantity": "flow_temperature", "unit": "C", "value": 65.0},
        {**base, "quantity": "return_temperature", "unit": "C", "value": 41.0},
    ]


def _bodies(gateways: int, meters: int, key: bytes, day: int, error: bool) -> list[tuple[str, bytes]]:
    import cbor2

    from omshub.codec import encode_telegram

    out = []
    for g in range(gateways):
        frames = []
        for i in range(meters):
            meter = {"manufacturer": "KAM", "id": f"{g:04d}{i:04d}", "version": 0x1B, "device_type_code": 4}
            kw = {"status": 0x08} if error else {}  # permanent error
            frames.append(
                encode_telegram(meter, _records(i, day), mode=5, key=key, access_number=(g + i + day) % 256, **kw)
            )
        env = {
            "v": 1,
            "gw": f"BENCH-{g:05d}",
            "seq": 1 + day,
            "cfg": 0,
            "status": {"battery_pct": 90, "spool": 0},
            "t0": int(time.time()) - 3600 * (10 - day),  # recent: heard again now ends the silence
            "batch": {
                "data": b"".join(frames),
                "len": [len(f) for f in frames],
                "dt": list(range(len(frames))),
                "rssi": bytes([256 - 80] * len(frames)),
                "mode": 1,
            },
        }
        out.append((f"BENCH-{g:05d}", cbor2.dumps(env)))
    return out


def _day(db, pipeline, bodies, credentials) -> tuple[int, float]:
    from omshub.cloud.ingest.uplink import handle_uplink

    for serial, body in bodies:
        handle_uplink(db, body, content_type="application/cbor", transport="http", credential=credentials[serial])
    start, cpu = time.perf_counter(), time.process_time()
    n = pipeline.run_until_idle()
    return n, time.perf_counter() - start, time.process_time() - cpu


def _active(db, kind: str) -> int:
    from sqlalchemy import func, select

    from omshub.cloud.store.models import Alarm

    with db.session() as s:
        return s.scalar(select(func.count()).where(Alarm.active.is_(True), Alarm.kind == kind)) or 0


def _silent_alarm(meter_pk: int, tenant_id: int, now: datetime) -> dict:
    return {
        "tenant_id": tenant_id,
        "kind": "meter_silent",
        "subject_type": "meter",
        "subject_id": meter_pk,
        "message": "meter not heard for more than 3 days",
        "details": {"last_heard_at": None, "days": 3},
        "active": True,
        "raised_at": now,
    }


def bench(kind: str, args, key: bytes) -> dict[str, tuple[float, float]]:
    from sqlalchemy import insert, select

    from omshub.cloud.decode.batch import DecodePipeline
    from omshub.cloud.services import alarms
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import KeyStore
    from omshub.cloud.store.models import Alarm, Meter

    target = Target(kind, args.postgres)
    try:
        url = target.url("alarms")
        credentials = setup_database(url, args.gateways, args.meters, key)
        db = Database(url)
        pipeline = DecodePipeline(db, KeyStore(bytes.fromhex(MASTER_KEY)))
        total = args.gateways * args.meters
        _day(db, pipeline, _bodies(args.gateways, args.meters, key, 0, False), credentials)
        rates = {}
        n, t, c = _day(db, pipeline, _bodies(args.gateways, args.meters, key, 1, False), credentials)
        rates["no alarm"] = (n / t, n / c)
        with db.transaction() as s:  # far in the future every meter is silent: each gateway's one alarm
            alarms.evaluate(s, datetime.now(UTC) + timedelta(days=30))
        grouped = _active(db, "gateway_missed_contact") + _active(db, "gateway_meters_silent")
        if grouped != args.gateways or _active(db, "meter_silent"):
            raise RuntimeError(
                f"expected one alarm per gateway, got {grouped} and {_active(db, 'meter_silent')} per meter"
            )
        with db.transaction() as s:  # the case measured: every meter with an alarm of its own
            now = datetime.now(UTC)
            rows = s.execute(select(Meter.id, Meter.tenant_id)).all()
            s.execute(insert(Alarm), [_silent_alarm(i, t, now) for i, t in rows])
        silent = _active(db, "meter_silent")
        n, t, c = _day(db, pipeline, _bodies(args.gateways, args.meters, key, 2, False), credentials)
        rates["silent"] = (n / t, n / c)
        if silent != total or _active(db, "meter_silent") != 0:
            raise RuntimeError(
                f"expected {total} silent alarms raised and all cleared, {_active(db, 'meter_silent')} left"
            )
        _day(db, pipeline, _bodies(args.gateways, args.meters, key, 3, True), credentials)
        n, t, c = _day(db, pipeline, _bodies(args.gateways, args.meters, key, 4, True), credentials)
        rates["error"] = (n / t, n / c)
        if _active(db, "meter_error") != total:
            raise RuntimeError(f"expected {total} meter_error alarms, {_active(db, 'meter_error')} active")
        db.dispose()
        return rates
    finally:
        target.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alarms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument("--meters", type=int, default=250, help="meters per gateway")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("OMSHUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args(argv)
    if not (1 <= args.gateways <= 10_000 and 1 <= args.meters <= 5000):
        parser.error("--gateways 1-10000, --meters 1-5000")
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    print(f"{args.gateways} gateways x {args.meters} meters, decode rate per day of telegrams")
    print(f"{'database':<10} {'case':<10} {'decoded/s':>10} {'vs no alarm':>12} {'per CPU s':>10} {'vs no alarm':>12}")
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        if kind == "postgres":
            problem = pg_reachable(args.postgres)
            if problem:
                print(f"postgres: skipped, server not reachable at {args.postgres}: {problem}")
                continue
        elif kind != "sqlite":
            parser.error(f"unknown database {kind!r}")
        rates = bench(kind, args, key)
        base, base_cpu = rates["no alarm"]
        for case, (rate, cpu) in rates.items():
            print(
                f"{kind:<10} {case:<10} {rate:>10.0f} {rate / base:>11.2f}x {cpu:>10.0f} {cpu / base_cpu:>11.2f}x",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
