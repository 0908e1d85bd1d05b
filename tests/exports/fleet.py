"""A fixed billing data set for the export tests, made straight in the database (as the billing
close stores it), at fixed dates (December 2025, Europe/Berlin) so golden files never move:

* MP-A (unit WE-01, occupant K-1001): heat meter KAM 67627441, the due-date value of 31.12. stored by
  the meter (code 11), received 2026-01-03 02:15 UTC; the period start measured (12);
* MP-B (unit WE-02, occupant K-1002 moved in 2025-12-16): meter KAM 11110001 removed 2025-12-15 10:00
  (final 500.5 kWh), meter KAM 11110002 installed then (initial 0); end value interpolated (13);
* MP-C (unit WE-03, no occupant; the point's customer ref): a water meter, end value edited (01).
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint, Telegram, Tenant, Uplink
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue, Occupancy, Occupant, Property, Unit

PERIOD = "2025-12"
START = datetime(2025, 11, 30, 23, 0, tzinfo=UTC)  # 2025-12-01 00:00 CET
END = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)  # 2026-01-01 00:00 CET
SWAP = datetime(2025, 12, 15, 10, 0, tzinfo=UTC)
CLOSED = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
_seq = itertools.count(1)


def _telegram(s: Session, t: Tenant, gw: Gateway, at: datetime) -> int:
    n = next(_seq)
    up = Uplink(tenant_id=t.id, gateway_id=gw.id, seq=n, received_at=at, content_type="application/json",
                body=b"{}", telegram_count=1, response={})  # fmt: skip
    s.add(up)
    s.flush()
    raw = f"{t.slug}-{n}".encode()
    tg = Telegram(tenant_id=t.id, gateway_id=gw.id, uplink_id=up.id, received_at=at, raw=raw,
                  raw_hash=hashlib.sha256(raw).digest(), state="decoded")  # fmt: skip
    s.add(tg)
    s.flush()
    return tg.id


def _value(s, t, point, quantity, at, day, reason, value, origin, quality, code, details, state="ok") -> BillingValue:
    row = BillingValue(
        tenant_id=t.id, metering_point_id=point.id, quantity=quantity, boundary_at=at, boundary_day=day,
        reason=reason, value=value, origin=origin, quality=quality, code=code, method=None, details=details,
        computed_value=value, computed_origin=origin, computed_details=details, state=state,
        computed_at=CLOSED, changed_at=CLOSED, exported_at=None, export_stale=False,
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row


def build(s: Session, slug: str, tenant_id: int | None = None) -> Tenant:
    """The data set for a new tenant `slug`, or for the existing tenant `tenant_id` (committed by
    the caller)."""
    if tenant_id is not None:
        t = s.get(Tenant, tenant_id)
        assert t is not None
        slug = t.slug
    else:
        t = Tenant(slug=slug, name="Stadtwerke Beispiel", created_at=CLOSED)
        s.add(t)
        s.flush()
    gw = Gateway(tenant_id=t.id, serial=f"GW-{slug}", credential_hash=hashlib.sha256(slug.encode()).digest(),
                 created_at=CLOSED, status={}, applied_config_version=0, desired_config_version=0)  # fmt: skip
    s.add(gw)
    prop = Property(tenant_id=t.id, ref="LG-100", name="Lindenstraße 4", street="Lindenstraße 4", postcode="10115",
                    city="Berlin", created_at=CLOSED)  # fmt: skip
    s.add(prop)
    s.flush()
    units = {}
    for ref in ("WE-01", "WE-02", "WE-03"):
        units[ref] = Unit(tenant_id=t.id, property_id=prop.id, ref=ref, area_m2=72.5, created_at=CLOSED)
        s.add(units[ref])
    s.flush()
    for ref, name, unit, moved_in in (("K-1001", "Erika Muster", "WE-01", date(2020, 1, 1)),
                                      ("K-1002", "Max Beispiel", "WE-02", date(2025, 12, 16))):  # fmt: skip
        occ = Occupant(tenant_id=t.id, customer_ref=ref, name=name, created_at=CLOSED)
        s.add(occ)
        s.flush()
        s.add(
            Occupancy(tenant_id=t.id, unit_id=units[unit].id, occupant_id=occ.id, moved_in=moved_in, created_at=CLOSED)
        )
    points = {}
    for ref, unit in (("MP-A", "WE-01"), ("MP-B", "WE-02"), ("MP-C", "WE-03")):
        points[ref] = MeteringPoint(tenant_id=t.id, ref=ref, customer_ref=f"VK-{ref}", created_at=CLOSED,
                                    unit_id=units[unit].id)  # fmt: skip
        s.add(points[ref])
    s.flush()
    meters = {}
    for mid, kind in (("67627441", "heat"), ("11110001", "heat"), ("11110002", "heat"), ("55550003", "water")):
        meters[mid] = Meter(tenant_id=t.id, manufacturer="KAM", meter_id=mid, device_type=kind, created_at=CLOSED)
        s.add(meters[mid])
    s.flush()
    early = datetime(2020, 1, 1, tzinfo=UTC)
    for point, mid, at, removed, initial, final in (
        ("MP-A", "67627441", early, None, {}, None),
        ("MP-B", "11110001", early, SWAP, {}, {"energy": 500.5}),
        ("MP-B", "11110002", SWAP, None, {"energy": 0.0}, None),
        ("MP-C", "55550003", early, None, {}, None),
    ):
        s.add(Installation(tenant_id=t.id, metering_point_id=points[point].id, meter_pk=meters[mid].id,
                           installed_at=at, removed_at=removed, initial_values=initial, final_values=final))  # fmt: skip
    s.flush()
    a_start = _telegram(s, t, gw, datetime(2025, 11, 30, 23, 20, tzinfo=UTC))
    a_end = _telegram(s, t, gw, datetime(2026, 1, 3, 2, 15, tzinfo=UTC))
    pa, pb, pc = points["MP-A"], points["MP-B"], points["MP-C"]
    _value(s, t, pa, "energy", START, date(2025, 12, 1), "month", 11000.0, "measured", "measured", "12",
           {"telegram_id": a_start, "distance_s": 1200})  # fmt: skip
    _value(s, t, pa, "energy", END, date(2026, 1, 1), "due_date", 12345.0, "meter_stored", "measured", "11",
           {"storage": 1, "stored_day": "2025-12-31", "telegram_id": a_end})  # fmt: skip
    _value(s, t, pb, "energy", START, date(2025, 12, 1), "month", 480.25, "measured", "measured", "12",
           {"telegram_id": a_start, "distance_s": 60})  # fmt: skip
    _value(s, t, pb, "energy", datetime(2025, 12, 15, 23, 0, tzinfo=UTC), date(2025, 12, 16), "move_in", 12.5,
           "interpolated", "interpolated", "13", {"gap_s": 86400})  # fmt: skip
    _value(s, t, pb, "energy", END, date(2026, 1, 1), "due_date", 310.75, "interpolated", "interpolated", "13",
           {"gap_s": 86400})  # fmt: skip
    _value(s, t, pc, "volume", START, date(2025, 12, 1), "month", 80.125, "measured", "measured", "12",
           {"telegram_id": a_start, "distance_s": 5})  # fmt: skip
    _value(s, t, pc, "volume", END, date(2026, 1, 1), "due_date", 84.0, "edited", "estimated", "01",
           {"reason": "meter unreadable"}, state="ok")  # fmt: skip
    runs_b = [
        {"meter": "KAM 11110001", "start": 480.25, "start_origin": "measured", "end": 500.5, "end_origin": "measured",
         "consumption": 20.25},
        {"meter": "KAM 11110002", "start": 0.0, "start_origin": "measured", "end": 310.75,
         "end_origin": "interpolated", "consumption": 310.75},
    ]  # fmt: skip
    for point, quantity, value, quality, runs in (
        (pa, "energy", 1345.0, "measured", [{"meter": "KAM 67627441", "start": 11000.0, "start_origin": "measured",
                                             "end": 12345.0, "end_origin": "meter_stored", "consumption": 1345.0}]),
        (pb, "energy", 331.0, "interpolated", runs_b),
        (pc, "volume", 3.875, "estimated", [{"meter": "KAM 55550003", "start": 80.125, "start_origin": "measured",
                                             "end": 84.0, "end_origin": "edited", "consumption": 3.875}]),
    ):  # fmt: skip
        s.add(BillingConsumption(tenant_id=t.id, metering_point_id=point.id, quantity=quantity, period=PERIOD,
                                 start_at=START, end_at=END, value=value, quality=quality, runs=runs,
                                 computed_at=CLOSED))  # fmt: skip
    s.flush()
    return t
