"""A day of a big simulated fleet through the head-end: `python -m benchmarks.fleet [--meters N] [--gateways G]`.

Default: 100,000 meters behind 400 gateways (250 each). Runs `omshub serve` on SQLite in a
subprocess (or `--database postgresql://…`), creates a tenant, registers the gateways and imports
the meters and keys through the API, then:

1. generation — every transmission of the fleet during the gateways' daily listen window
   (`--window-s`, default 900 s) from the simulator's radio (`omshub.sim.radio.iter_transmissions`:
   reception, corruption, repeats, neighbours' meters), filtered and deduplicated per gateway as
   the agent does (its `TelegramFilter` with the gateway's own meters whitelisted, newest telegram
   per meter and kind), and built into each gateway's uplink with the agent's `build_envelope`.
   The 400 agent loops themselves are not run: their batches are made directly (a benchmark of the
   head-end, not of the agents' scheduling; `tests/e2e` runs real agents);
2. upload — each gateway's daily batch POSTed to `/api/v1/uplink` (`--clients` concurrent HTTP
   clients), timed until every uplink is acknowledged (stored and committed);
3. decode — until the head-end's decode pipeline has no telegram left in state `new`.

Prints the wall time of each phase, telegrams/s ingested and decoded, and the telegram states.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Telegram
from omshub.demo import HeadEnd, ServeProcess, bootstrap_tenant, free_port, telegram_states
from omshub.gateway.collector import telegram_kind
from omshub.gateway.filters import TelegramFilter
from omshub.protocol.config import Filters, MeterRef
from omshub.protocol.envelope import MAX_TELEGRAMS, build_envelope
from omshub.sim.fleet import parse_fleet
from omshub.sim.generate import generate_fleet_toml
from omshub.sim.radio import iter_transmissions, link_table

DAY = 86_400
MASTER_KEY = "6c" * 32
IMPORT_CHUNK = 40_000  # the meter import takes at most 50,000 lines per request


def _csv_chunks(text: str, rows: int) -> list[str]:
    header, *lines = text.splitlines()
    return ["\n".join([header, *lines[i : i + rows]]) + "\n" for i in range(0, len(lines), rows)]


def generate_batches(
    fleet, serials: list[str], start: float, window_s: float
) -> tuple[list[tuple[str, bytes, int]], dict]:
    """The uplinks (serial, CBOR body, telegrams) of ``serials`` for one listen window: what each
    agent would have spooled (own meters whitelisted, newest telegram per meter and kind)."""

    filters = {
        serial: TelegramFilter(
            Filters(
                mode="whitelist",
                meters=[MeterRef(manufacturer=m.manufacturer, id=m.id) for m in fleet.meters_of(serial)],
            )
        )
        for serial in serials
    }
    kept: dict[str, dict[str, object]] = {serial: {} for serial in serials}
    stats = {"received": 0, "filtered": 0}
    for serial, frame in iter_transmissions(fleet, start, start + window_s, gateways=serials):
        stats["received"] += 1
        header, reason = filters[serial].check(frame.raw)
        if reason is not None or header is None:
            stats["filtered"] += 1
            continue
        kept[serial][f"{header.meter_key}/{telegram_kind(header, frame.raw)}"] = frame  # newest wins
    uplinks = []
    for serial, by_kind in kept.items():
        frames = sorted(by_kind.values(), key=lambda f: f.rx_time)
        for i in range(0, len(frames), MAX_TELEGRAMS):
            part = frames[i : i + MAX_TELEGRAMS]
            uplinks.append(
                (
                    serial,
                    build_envelope(
                        serial=serial,
                        seq=1 + i // MAX_TELEGRAMS,
                        cfg=0,
                        telegrams=part,
                        status={"battery_pct": 97, "spool": len(frames)},
                    ),
                    len(part),
                )
            )
    return uplinks, stats


_FLEET = None  # set before forking the generator processes (inherited, not pickled)


def _generate_part(job: tuple[list[str], float, float]):
    serials, start, window_s = job
    return generate_batches(_FLEET, serials, start, window_s)


def generate_all(fleet, start: float, window_s: float, jobs: int):
    """generate_batches over all gateways, split across ``jobs`` forked processes."""
    global _FLEET
    serials = list(fleet.gateways)
    if jobs <= 1:
        return generate_batches(fleet, serials, start, window_s)
    _FLEET = fleet
    parts = [serials[i::jobs] for i in range(jobs)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        results = pool.map(_generate_part, [(p, start, window_s) for p in parts if p])
    uplinks, stats = [], {"received": 0, "filtered": 0}
    for part_uplinks, part_stats in results:
        uplinks.extend(part_uplinks)
        for k, v in part_stats.items():
            stats[k] += v
    return uplinks, stats


def _top_errors(database: str, n: int = 3) -> list[tuple[str, int]]:
    db = Database(database)
    try:
        with db.session() as s:
            return [
                (str(e)[:160], c)
                for e, c in s.execute(
                    select(Telegram.error, func.count())
                    .where(Telegram.state != "decoded")
                    .group_by(Telegram.error)
                    .order_by(func.count().desc())
                    .limit(n)
                )
            ]
    finally:
        db.dispose()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=100_000)
    ap.add_argument("--gateways", type=int, default=400)
    ap.add_argument("--window-s", type=float, default=900.0, help="listen window per gateway and day")
    ap.add_argument("--clients", type=int, default=4, help="concurrent uploading clients")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes generating the batches")
    ap.add_argument("--database", default=None, help="database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600.0, help="give up decoding after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (database, serve.log)")
    args = ap.parse_args(argv)
    if args.meters > args.gateways * 250:
        ap.error(f"{args.meters} meters need at least {math.ceil(args.meters / 250)} gateways")
    return args


def _provision(api: HeadEnd, fleet) -> dict[str, str]:
    """Register the fleet's gateways, import its meters and keys; -> credential by serial."""
    creds = {}
    for serial, info in fleet.gateways.items():
        creds[serial] = api.register_gateway(serial, info.site)[1]
    for chunk in _csv_chunks(fleet.meters_csv(), IMPORT_CHUNK):
        api.import_meters(chunk)
    api.import_keys(fleet.keys_csv())
    return creds


def _upload(base_url: str, bodies: list[tuple[str, bytes, int]], creds: dict[str, str], clients: int) -> list[str]:
    """POST every uplink with ``clients`` concurrent clients; -> the failures."""
    errors: list[str] = []
    queue = list(bodies)
    lock = threading.Lock()

    def uploader():
        with httpx.Client(base_url=base_url, timeout=300) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    serial, body, _ = queue.pop()
                r = client.post(
                    "/api/v1/uplink",
                    content=body,
                    headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {creds[serial]}"},
                )
                if r.status_code != 200:
                    errors.append(f"{serial}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=uploader) for _ in range(max(1, clients))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors


def _wait_decoded(database: str, tenant_id: int, timeout: float) -> dict | None:
    """The telegram states once none is new, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        states = telegram_states(database, tenant_id)
        if not states.get("new"):
            return states
        if time.monotonic() > deadline:
            print(f"decoding not finished after {timeout:.0f} s: {states}", file=sys.stderr)
            return None
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    work = Path(tempfile.mkdtemp(prefix="omshub-fleet-bench-"))
    database = args.database or f"sqlite:///{(work / 'omshub.db').as_posix()}"
    print(
        f"fleet benchmark: {args.meters:,} meters, {args.gateways:,} gateways, one {args.window_s:g} s listen "
        f"window each; head-end `omshub serve` on {database.split('@')[-1].split(':')[0]} in {work}"
    )
    print(
        "note: the gateways' daily batches are generated directly (simulator radio + the agent's filter, "
        "dedup and build_envelope), not by running the agent loops"
    )
    server = None
    try:
        t = time.perf_counter()
        fleet = parse_fleet(generate_fleet_toml(args.gateways, args.meters, seed=args.seed, name="bench"))
        t_fleet = time.perf_counter() - t

        tenant = bootstrap_tenant(database, "bench")
        server = ServeProcess(
            data_dir=work, port=free_port(), database=args.database, env={"OMSHUB_MASTER_KEY": MASTER_KEY}
        ).start()
        api = HeadEnd(server.base_url, tenant.token, timeout_s=600)
        t = time.perf_counter()
        creds = _provision(api, fleet)
        t_setup = time.perf_counter() - t

        start = (time.time() // DAY - 1) * DAY + 3600  # yesterday 01:00 UTC
        t = time.perf_counter()
        link_table(fleet)
        t_fleet += time.perf_counter() - t
        t = time.perf_counter()
        bodies, radio = generate_all(fleet, start, args.window_s, args.jobs)
        t_gen = time.perf_counter() - t
        total = sum(n for _, _, n in bodies)
        wire = sum(len(b) for _, b, _ in bodies)
        print(f"fleet expanded in {t_fleet:.1f} s; API setup (gateways, {args.meters:,} meters, keys) {t_setup:.1f} s")
        print(
            f"generation: {radio['received']:,} receptions -> {total:,} telegrams kept "
            f"({radio['filtered']:,} dropped by the filters) in {len(bodies)} uplinks, {wire / 1e6:.1f} MB, "
            f"{t_gen:.1f} s"
        )

        t_up0 = time.perf_counter()
        errors = _upload(server.base_url, bodies, creds, args.clients)
        t_up = time.perf_counter() - t_up0
        if errors:
            print(f"{len(errors)} uplinks failed, e.g. {errors[0]}", file=sys.stderr)
            return 1
        print(
            f"upload: {len(bodies)} uplinks, {total:,} telegrams acknowledged in {t_up:.1f} s "
            f"= {total / t_up:,.0f} telegrams/s ingested ({args.clients} clients)"
        )

        states = _wait_decoded(database, tenant.id, args.timeout)
        if states is None:
            return 1
        t_done = time.perf_counter() - t_up0
        print(
            f"decode: all {total:,} telegrams processed {t_done - t_up:.1f} s after the last upload; "
            f"{total / t_done:,.0f} telegrams/s from first upload to last decode"
        )
        print("states: " + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items())))
        if states.get("decoded", 0) < 0.9 * total:
            print(
                "WARNING: fewer than 90 % decoded — the decode figure does not measure real decoding; "
                "most frequent errors: " + "; ".join(f"{n} x {e}" for e, n in _top_errors(database)),
                file=sys.stderr,
            )
        wall = t_gen + t_done
        print(
            f"wall time (generation + upload + decode): {wall:.1f} s "
            f"[generation {t_gen:.1f} s, upload {t_up:.1f} s, decode tail {t_done - t_up:.1f} s]"
        )
        api.close()
        return 0
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
