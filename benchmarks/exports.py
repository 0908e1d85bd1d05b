"""Export benchmark: `python -m benchmarks.exports [--points N] [--small] [--database URL]`.

Builds one tenant with N metering points (100 per property, each in a unit with an occupant and a
heat meter installed) and one closed month: two boundary values (start and end) and one consumption
row per point, written with bulk SQL as the billing close stores them. Then streams the month's
reading export v1 (CSV and JSON) and the SAP IS-U upload (CSV and JSON) through the export code
(services/exports_v1.py → export_runs.render) into a byte counter, and prints per format: rows/s
(v1: 3 rows per point; SAP: 2 per point) and MB/s, with wall and CPU seconds (on a shared, loaded
machine the rows per CPU second are the steadier figure). The baseline is the database fetch alone
(the sections' statements, rows discarded): the ratio shows what look-ups and formatting cost. For
v1 also the previous formatter (a dict per row, csv.writer / orjson.dumps per row) on the same
fetch, measured in the same run: "now xN" is the speed-up per CPU second (SAP likewise: the
upload rows as lists written by v1.table_csv / table_json_lines, as before the fragments). The SAP
upload fetches of the consumption only the rows with a meter swap (all it makes rows of), as the
API's pull does.

Memory: the peak of traced Python allocations (tracemalloc) while exporting, for N/4 points and for
N points — equal peaks mean memory is flat in the number of rows (streamed in batches).
Goal (issue: reading export): ≥ 100,000 rows/s on the 2-core development machine, memory flat.
`--small`: 20,000 points (the smaller run still spans several batches of 5,000 rows).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime

START = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
PERIOD = "2026-11"
CHUNK = 20_000


def _build(db, points: int) -> int:
    """Tenant, properties, units, occupants, meters, installations, values and consumption."""
    from omshub.cloud.store.database import time_to_db

    t = time_to_db(db.is_sqlite)
    now = t(datetime(2026, 12, 2, 6, 0, tzinfo=UTC))
    mark = "?" if db.is_sqlite else "%s"

    def many(sql: str, rows: list[tuple]) -> None:
        with db.transaction() as s:
            conn = s.connection()
            for i in range(0, len(rows), CHUNK):
                conn.exec_driver_sql(sql.replace("?", mark), rows[i : i + CHUNK])

    with db.transaction() as s:
        conn = s.connection()
        conn.exec_driver_sql(
            f"INSERT INTO tenants (slug, name, created_at, timezone) VALUES ({mark}, {mark}, {mark}, {mark})",
            ("bench", "bench", now, "Europe/Berlin"),
        )
        tenant = conn.exec_driver_sql("SELECT id FROM tenants WHERE slug = 'bench'").scalar_one()
    props = (points + 99) // 100
    many("INSERT INTO properties (id, tenant_id, ref, name, street, postcode, city, country, heating_system, "
         "energy_carrier, size_class, due_month, due_day, timezone, created_at) "
         "VALUES (?, ?, ?, '', '', '', '', 'DE', '', 'district_heat', '', 12, 31, 'Europe/Berlin', ?)",
         [(p + 1, tenant, f"P{p:05d}", now) for p in range(props)])  # fmt: skip
    many("INSERT INTO units (id, tenant_id, property_id, ref, name, area_m2, usage, created_at) "
         "VALUES (?, ?, ?, ?, '', 70.0, 'residential', ?)",
         [(i + 1, tenant, i // 100 + 1, f"WE{i:06d}", now) for i in range(points)])  # fmt: skip
    many("INSERT INTO occupants (id, tenant_id, customer_ref, name, email, phone, postal_address, channel, language, "
         "created_at) VALUES (?, ?, ?, 'Name', '', '', '', 'portal', 'de', ?)",
         [(i + 1, tenant, f"K{i:07d}", now) for i in range(points)])  # fmt: skip
    many("INSERT INTO occupancies (tenant_id, unit_id, occupant_id, moved_in, created_at) VALUES (?, ?, ?, ?, ?)",
         [(tenant, i + 1, i + 1, date(2020, 1, 1), now) for i in range(points)])  # fmt: skip
    many("INSERT INTO metering_points (id, tenant_id, ref, address, customer_ref, created_at, unit_id) "
         "VALUES (?, ?, ?, '', '', ?, ?)",
         [(i + 1, tenant, f"MP{i:07d}", now, i + 1) for i in range(points)])  # fmt: skip
    many("INSERT INTO meters (id, tenant_id, manufacturer, meter_id, device_type, key_status, created_at) "
         "VALUES (?, ?, 'KAM', ?, 'heat', 'present', ?)",
         [(i + 1, tenant, f"{i:08d}", now) for i in range(points)])  # fmt: skip
    installed = t(datetime(2020, 1, 1, tzinfo=UTC))
    many("INSERT INTO installations (tenant_id, metering_point_id, meter_pk, installed_at, installed_from, "
         "initial_values) VALUES (?, ?, ?, ?, 'given', '{}')",
         [(tenant, i + 1, i + 1, installed) for i in range(points)])  # fmt: skip
    value_sql = (
        "INSERT INTO billing_values (tenant_id, metering_point_id, quantity, boundary_at, boundary_day, reason, value, "
        "origin, quality, code, details, computed_value, computed_origin, computed_details, state, computed_at, "
        "changed_at, export_stale) VALUES (?, ?, 'energy', ?, ?, 'month', ?, 'meter_stored', 'measured', '12', "
        "'{\"storage\": 2}', ?, 'meter_stored', '{}', 'ok', ?, ?, false)"
    )
    for at, day, base in ((START, date(2026, 11, 1), 10_000.0), (END, date(2026, 12, 1), 10_500.0)):
        many(value_sql, [(tenant, i + 1, t(at), day, base + i, base + i, now, now) for i in range(points)])
    many("INSERT INTO billing_consumption (tenant_id, metering_point_id, quantity, period, start_at, end_at, value, "
         "quality, runs, computed_at) VALUES (?, ?, 'energy', ?, ?, ?, 500.0, 'measured', '[]', ?)",
         [(tenant, i + 1, PERIOD, t(START), t(END), now) for i in range(points)])  # fmt: skip
    return tenant


def _export(db, tenant: int, fmt: str) -> tuple[int, int, float, float]:
    """(rows, bytes, wall seconds, CPU seconds of this process)."""
    from omshub.cloud.services import export_runs, exports_v1

    tail: dict = {}
    size = 0
    started, cpu = time.perf_counter(), time.process_time()
    sap = fmt.startswith("sap")
    batches = exports_v1.rows(db, tenant, exports_v1.Scope(PERIOD), "bench-000001", extras=sap, swaps_only=sap)
    for piece in export_runs.render(db, tenant, fmt, batches, {"period": PERIOD}, tail):
        size += len(piece)
    return tail["row_count"], size, time.perf_counter() - started, time.process_time() - cpu


def _previous(db, tenant: int, fmt: str) -> tuple[int, float, float]:
    """The formatter before this one (kept here as the baseline of the ratio): each row made into a
    dict of the 29 columns, written with csv.writer / orjson.dumps per row. The rows come from the
    same fetch (exports_v1.rows), so the ratio is the formatting alone."""
    import csv
    import io

    import orjson

    from omshub.cloud.domain.exports.v1 import COLUMNS
    from omshub.cloud.services import exports_v1

    started, cpu = time.perf_counter(), time.process_time()
    n, buf = 0, io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for batch in exports_v1.rows(db, tenant, exports_v1.Scope(PERIOD), "bench-000001", extras=False):
        dicts = [dict(zip(COLUMNS, r, strict=False)) for r in batch]  # the 29 columns by name
        if fmt == "v1-csv":
            buf.seek(0)
            buf.truncate()
            writer.writerows([d[c] for c in COLUMNS] for d in dicts)
            buf.getvalue().encode()
        else:
            b",\n".join(orjson.dumps(d) for d in dicts)
        n += len(batch)
    return n, time.perf_counter() - started, time.process_time() - cpu


def _previous_sap(db, tenant: int, fmt: str) -> tuple[int, float, float]:
    """The SAP formatter before this one (the baseline of the SAP ratio): an upload row as a list
    (sap.reading_row + the bookkeeping) per boundary value, written by v1.table_csv /
    v1.table_json_lines; the same fetch (the bench has no swaps)."""
    from omshub.cloud.domain.exports import sap
    from omshub.cloud.domain.exports.v1 import (
        DELIVERY,
        EXPORT_ID,
        PREVIOUS_EXPORT_ID,
        RECORD,
        json_document,
        table_csv,
        table_json_lines,
    )
    from omshub.cloud.services import export_sap, exports_v1

    started, cpu = time.perf_counter(), time.process_time()
    with db.session() as session:
        mapping = export_sap.mapping_of(session, tenant)
    cache: dict = {}

    def upload(batches):
        for batch in batches:
            out = []
            for r in batch:
                made = sap.reading_row(r, mapping, cache) if r[RECORD] == "boundary_value" else None
                if made is not None:
                    out.append([*made, r[EXPORT_ID] or None, r[DELIVERY], r[PREVIOUS_EXPORT_ID]])
            yield out

    counted = [0]

    def upload_counted(batches):
        for out in upload(batches):
            counted[0] += len(out)
            yield out

    batches = upload_counted(exports_v1.rows(db, tenant, exports_v1.Scope(PERIOD), "bench-000001", swaps_only=True))
    columns = sap.COLUMNS + sap.EXTRA
    if fmt == "sap-csv":
        for piece in table_csv(batches, columns):
            piece.encode()
    else:
        for _ in json_document(table_json_lines(batches, columns), {"format": "sap-isu-bapieablu"}, {}):
            pass
    n = counted[0]
    return n, time.perf_counter() - started, time.process_time() - cpu


def _fetch_only(db, tenant: int) -> tuple[int, float, float]:
    """The baseline: the export's section statements (without the per-batch look-ups of points,
    meters and occupants), rows fetched and discarded."""
    from omshub.cloud.services import exports_v1

    started, cpu = time.perf_counter(), time.process_time()
    n = 0
    mark = "?" if db.is_sqlite else "%s"
    for section in ("v", "c"):
        params = (tenant, PERIOD) + ((tenant,) if section == "v" else ()) + (0,)
        with db.session() as s:
            if not db.is_sqlite:  # as exports_v1.rows plans its cursor
                s.connection().exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
            result = (
                s.connection()
                .execution_options(stream_results=True)
                .exec_driver_sql(exports_v1._sql(db, section, False).replace("?", mark), params)
            )
            while rows := result.fetchmany(5000):
                n += len(rows)
    return n, time.perf_counter() - started, time.process_time() - cpu


def _peak(db, tenant: int, fmt: str) -> float:
    tracemalloc.start()
    _export(db, tenant, fmt)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def run(url: str | None, points: int) -> None:
    from omshub.cloud.store.database import Database

    tmp = tempfile.mkdtemp(prefix="omshub-bench-exports-")
    try:
        dbs = {}
        # one database given (PostgreSQL): only the full size (it built N/4 and called it N before)
        for n in (points,) if url else (points // 4, points):
            db = Database(url or f"sqlite:///{tmp}/exports-{n}.db")
            db.migrate()
            started = time.perf_counter()
            dbs[n] = (db, _build(db, n))
            if not db.is_sqlite:  # statistics, as autovacuum keeps them in production
                with db.transaction() as s:
                    s.connection().exec_driver_sql("ANALYZE")
            print(f"built {n:,} metering points in {time.perf_counter() - started:.1f} s ({db.dialect})")
        db, tenant = dbs[points]
        rows, took, cpu = _fetch_only(db, tenant)
        base = rows / took
        print(f"baseline: fetch only          {rows:>9,} rows  {base:>10,.0f} rows/s  "
              f"(CPU {cpu:.2f} s: {rows / cpu:,.0f} rows per CPU second)")  # fmt: skip
        for fmt in ("v1-csv", "v1-json", "sap-csv", "sap-json"):
            n, size, took, cpu = _export(db, tenant, fmt)
            rate = n / took
            print(f"{fmt:<8} export              {n:>9,} rows  {rate:>10,.0f} rows/s  {size / took / 1e6:6.1f} MB/s  "
                  f"x{rate / base:.2f} of the fetch  (wall {took:.2f} s, CPU {cpu:.2f} s: "
                  f"{n / cpu:,.0f} rows per CPU second)")  # fmt: skip
            n_old, took_old, cpu_old = (_previous if fmt.startswith("v1") else _previous_sap)(db, tenant, fmt)
            print(f"{fmt:<8} previous formatter  {n_old:>9,} rows  {n_old / took_old:>10,.0f} rows/s  "
                  f"(wall {took_old:.2f} s, CPU {cpu_old:.2f} s: {n_old / cpu_old:,.0f} rows per CPU second); "
                  f"now x{cpu_old / cpu * n / n_old:.2f} per CPU second")  # fmt: skip
        for fmt in ("v1-csv", "sap-csv"):
            peaks = [f"{n:,} points: {_peak(d, t_id, fmt):.1f} MB" for n, (d, t_id) in sorted(dbs.items())]
            print(f"peak traced memory {fmt}: " + "; ".join(peaks))
        for d, _ in dbs.values():
            d.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--small", action="store_true", help="20,000 points")
    parser.add_argument("--database", default=os.environ.get("OMSHUB_BENCH_DATABASE"),
                        help="a PostgreSQL URL (default: SQLite files in a temporary directory)")  # fmt: skip
    args = parser.parse_args()
    run(args.database, 20_000 if args.small else args.points)


if __name__ == "__main__":
    main()
