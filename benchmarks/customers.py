"""Customer information benchmark: `python -m benchmarks.customers [--units N] [--pdfs P] [--small]`.

Builds N units (100 per property, living areas 40–120 m², one heat meter each, one occupant each, every
50th moved in mid-month so its record needs the occupant's own boundary values) with the 13 closed
months the monthly information shows, written with bulk SQL straight into the billing tables (what
`omshub billing close` leaves: this measures the information, not the close). Then computes the
month's records (services/customer_records.py: benchmarks, 13 months per line, stored) and prints
records per second, the time of a second, idempotent run, PDF letters per second (reportlab, one A4
page each) and the process's peak memory.

Goal on the 2-core development machine: records for 100,000 units in ≤ 60 s; ≥ 100 PDFs/s.
`--small`: 2,000 units, 100 PDFs. SQLite in a temporary folder.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert, select

MONTH = "2026-11"
NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)
T0 = datetime(2020, 1, 1, tzinfo=UTC)
CHUNK = 20_000


def _labels() -> list[str]:
    from omshub.cloud.domain.customer_info import shift_month

    return [shift_month(MONTH, -k) for k in range(12, -1, -1)]


def _chunks(rows: list[dict]):
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def _build(db, units: int) -> int:
    from omshub.cloud.store.models import Installation, Meter, MeteringPoint, Tenant
    from omshub.cloud.store.models_billing import (
        BillingConsumption,
        BillingValue,
        Occupancy,
        Occupant,
        Property,
        Unit,
    )

    with db.transaction() as s:
        tenant = Tenant(slug=f"bench-{uuid.uuid4().hex[:6]}", name="bench", created_at=NOW)
        s.add(tenant)
        s.flush()
        tid = tenant.id
        n_props = max(1, units // 100)
        s.execute(
            insert(Property),
            [
                {
                    "tenant_id": tid,
                    "ref": f"P{p}",
                    "name": f"Haus {p}",
                    "street": f"Weg {p}",
                    "postcode": "10115",
                    "city": "Berlin",
                    "energy_carrier": "district_heat" if p % 3 else "gas",
                    "size_class": ("7-12", "13-30", "31+")[p % 3],
                    "created_at": NOW,
                }
                for p in range(n_props)
            ],
        )
        prop_ids = list(s.scalars(select(Property.id).where(Property.tenant_id == tid).order_by(Property.id)))
        for part in _chunks(
            [
                {
                    "tenant_id": tid,
                    "property_id": prop_ids[i // 100 % len(prop_ids)],
                    "ref": f"WE{i}",
                    "name": f"Wohnung {i}",
                    "area_m2": 40.0 + (i * 7) % 81,
                    "created_at": NOW,
                }
                for i in range(units)
            ]
        ):
            s.execute(insert(Unit), part)
        unit_ids = list(s.scalars(select(Unit.id).where(Unit.tenant_id == tid).order_by(Unit.id)))
        for part in _chunks(
            [{"tenant_id": tid, "ref": f"MP{i}", "created_at": NOW, "unit_id": u} for i, u in enumerate(unit_ids)]
        ):
            s.execute(insert(MeteringPoint), part)
        points = list(
            s.scalars(select(MeteringPoint.id).where(MeteringPoint.tenant_id == tid).order_by(MeteringPoint.id))
        )
        for part in _chunks(
            [
                {
                    "tenant_id": tid,
                    "manufacturer": "KAM",
                    "meter_id": f"{i:08d}",
                    "device_type": "heat",
                    "key_status": "present",
                    "created_at": NOW,
                }
                for i in range(units)
            ]
        ):
            s.execute(insert(Meter), part)
        meters = list(s.scalars(select(Meter.id).where(Meter.tenant_id == tid).order_by(Meter.id)))
        for part in _chunks(
            [
                {
                    "tenant_id": tid,
                    "metering_point_id": p,
                    "meter_pk": m,
                    "installed_at": T0,
                    "installed_from": "given",
                    "initial_values": {},
                }
                for p, m in zip(points, meters, strict=True)
            ]
        ):
            s.execute(insert(Installation), part)
        rows = []
        for i, p in enumerate(points):
            for k, label in enumerate(_labels()):
                value = None if (i + k) % 997 == 0 else 300.0 + (i * 13 + k * 29) % 500
                quality = "estimated" if (i + k) % 101 == 0 else "measured"
                rows.append(
                    {
                        "tenant_id": tid,
                        "metering_point_id": p,
                        "quantity": "energy",
                        "period": label,
                        "start_at": NOW,
                        "end_at": NOW,
                        "value": value,
                        "quality": "missing" if value is None else quality,
                        "runs": [],
                        "computed_at": NOW,
                    }
                )
            if len(rows) >= CHUNK:
                s.execute(insert(BillingConsumption), rows)
                rows = []
        if rows:
            s.execute(insert(BillingConsumption), rows)
        for part in _chunks(
            [
                {
                    "tenant_id": tid,
                    "customer_ref": f"K{i}",
                    "name": f"Kunde {i}",
                    "email": f"k{i}@example.de",
                    "postal_address": f"Kunde {i}\nWeg {i // 100}\n10115 Berlin",
                    "channel": ("email", "portal", "post")[i % 3],
                    "language": "de",
                    "created_at": NOW,
                }
                for i in range(units)
            ]
        ):
            s.execute(insert(Occupant), part)
        occupants = list(s.scalars(select(Occupant.id).where(Occupant.tenant_id == tid).order_by(Occupant.id)))
        stays, values = [], []
        for i, (u, o) in enumerate(zip(unit_ids, occupants, strict=True)):
            moved_in = date(2026, 11, 16) if i % 50 == 0 else date(2019, 1, 1)
            stays.append({"tenant_id": tid, "unit_id": u, "occupant_id": o, "moved_in": moved_in, "created_at": NOW})
            if i % 50 == 0:
                for at, v in (
                    (datetime(2026, 11, 15, 23, tzinfo=UTC), 1000.0),
                    (datetime(2026, 11, 30, 23, tzinfo=UTC), 1250.0),
                ):
                    values.append(
                        {
                            "tenant_id": tid,
                            "metering_point_id": points[i],
                            "quantity": "energy",
                            "boundary_at": at,
                            "boundary_day": at.date() + timedelta(days=1),
                            "reason": "move_in",
                            "value": v,
                            "origin": "measured",
                            "quality": "measured",
                            "details": {},
                            "computed_value": v,
                            "computed_origin": "measured",
                            "computed_details": {},
                            "state": "ok",
                            "computed_at": NOW,
                            "changed_at": NOW,
                            "export_stale": False,
                        }
                    )
        for part in _chunks(stays):
            s.execute(insert(Occupancy), part)
        for part in _chunks(values):
            s.execute(insert(BillingValue), part)
    return tid


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--pdfs", type=int, default=1000)
    ap.add_argument("--small", action="store_true", help="2,000 units, 100 PDFs")
    args = ap.parse_args(argv)
    if args.small:
        args.units, args.pdfs = 2_000, 100
    from omshub.cloud.services.customer_pdf import letter_pdf
    from omshub.cloud.services.customer_records import build_month
    from omshub.cloud.services.customer_settings import settings_of
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models_customers import CustomerRecord

    folder = tempfile.mkdtemp(prefix="omshub-bench-customers-")
    try:
        db = Database(f"sqlite:///{folder}/bench.db")
        db.migrate()
        t0 = time.perf_counter()
        tid = _build(db, args.units)
        built = time.perf_counter() - t0
        print(f"built {args.units:,} units with 13 closed months in {built:.1f} s")
        t0, c0 = time.perf_counter(), time.process_time()
        with db.transaction() as s:
            counts = build_month(s, tid, MONTH, actor="bench", now=NOW)
        first, cpu = time.perf_counter() - t0, time.process_time() - c0
        goal = "ok" if args.units < 100_000 or first <= 60 else "MISSED (goal ≤ 60 s for 100,000)"
        print(
            f"records: {counts['new']:,} new for {counts['units']:,} units in {first:.1f} s "
            f"({cpu:.1f} s CPU of this process) = {counts['new'] / first:,.0f} records/s  [{goal}]"
        )
        t0 = time.perf_counter()
        with db.transaction() as s:
            again = build_month(s, tid, MONTH, actor="bench", now=NOW)
        print(
            f"second run (idempotent): {again['unchanged']:,} unchanged, {again['changed']} changed "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        with db.session() as s:
            settings = settings_of(s, tid)
            settings["supplier_name"] = "Stadtwerke Benchmark"
            contents = [
                r.content
                for r in s.scalars(select(CustomerRecord).where(CustomerRecord.tenant_id == tid).limit(args.pdfs))
            ]
        t0, c0 = time.perf_counter(), time.process_time()
        size = 0
        for c in contents:
            size += len(letter_pdf(c, settings, "Kunde\nWeg 1\n10115 Berlin", "de"))
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        rate = len(contents) / took
        verdict = "ok" if rate >= 100 else "MISSED (goal ≥ 100/s)"
        print(
            f"PDFs: {len(contents):,} letters in {took:.2f} s ({cpu:.2f} s CPU) = {rate:,.0f} PDFs/s; "
            f"{took / len(contents) * 1000:.1f} ms and {size / len(contents) / 1024:.1f} KiB per page (reportlab)  "
            f"[{verdict}]"
        )
        print(f"peak memory: {_peak_mb():,.0f} MB")
        db.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
