"""The bulk paths of the meter and key imports (issue 11 item 7): thousands of meters, metering
points, installations and keys written in bulk (COPY on PostgreSQL), across the look-up chunks,
with the same results, validation and audit as a small import."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from omshub.cloud.store.models import AuditEntry, Installation, Meter, MeteringPoint, MeterKey

API = "/api/v1"
N = 6_000  # more than one look-up chunk (5,000 ids)


def _meters_csv(prefix: str, n: int) -> bytes:
    lines = ["manufacturer,id,device_type,metering_point,address,customer_ref,meter_timezone"]
    lines += [f"KAM,{prefix}{i:05d},heat,{prefix}-MP-{i},Street {i},C{i},Europe/Berlin" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def _keys_csv(prefix: str, n: int, start: int = 0) -> bytes:
    lines = ["id,key,manufacturer"] + [f"{prefix}{i:05d},{i:032X},KAM" for i in range(start, n)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.slow  # about 10 s
def test_thousands_of_meters_points_installations_and_keys(hub, client, db):
    t = hub.tenant()
    h = {**hub.headers(t), "Content-Type": "text/csv"}
    # keys for the first half before the meters exist: those meters are created with their key
    r = client.post(f"{API}/keys/import", content=_keys_csv("811", N // 2), headers=h)
    assert r.status_code == 200 and r.json()["imported"] == N // 2
    r = client.post(f"{API}/meters/import", content=_meters_csv("811", N), headers=h)
    assert r.status_code == 200, r.text
    counts = r.json()
    assert counts["created"] == N and counts["points_created"] == N and counts["installed"] == N
    with db.session() as s:
        meters = {m.meter_id: m for m in s.scalars(select(Meter).where(Meter.tenant_id == t.id))}
        assert len(meters) == N
        assert {m.key_status for m in meters.values() if m.meter_id < f"811{N // 2:05d}"} == {"present"}
        assert {m.key_status for m in meters.values() if m.meter_id >= f"811{N // 2:05d}"} == {"missing"}
        assert {m.meter_timezone for m in meters.values()} == {"Europe/Berlin"}
        pairs = set(
            s.execute(
                select(Meter.meter_id, MeteringPoint.ref, MeteringPoint.address)
                .join(Installation, Installation.meter_pk == Meter.id)
                .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
                .where(Meter.tenant_id == t.id, Installation.removed_at.is_(None))
            ).all()
        )
        assert pairs == {(f"811{i:05d}", f"811-MP-{i}", f"Street {i}") for i in range(N)}
        zone_audit = s.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == t.id, AuditEntry.action == "meter.timezone")
        ).one()
        assert zone_audit.details["count"] == N
    # the rest of the keys: every meter's key present
    r = client.post(f"{API}/keys/import", content=_keys_csv("811", N), headers=h)
    assert r.status_code == 200 and r.json() == {"imported": N - N // 2, "replaced": N // 2, "requeued": 0}
    with db.session() as s:
        statuses = s.execute(
            select(Meter.key_status, func.count()).where(Meter.tenant_id == t.id).group_by(Meter.key_status)
        ).all()
        assert statuses == [("present", N)]
        assert s.scalar(select(func.count()).where(MeterKey.tenant_id == t.id)) == N
    # the same file again: nothing new, nothing installed twice
    again = client.post(f"{API}/meters/import", content=_meters_csv("811", N), headers=h).json()
    assert again["created"] == 0 and again["unchanged"] == N and again["installed"] == 0


def test_an_import_refused_on_its_last_line_keeps_nothing(hub, client, db):
    t = hub.tenant()
    h = {**hub.headers(t), "Content-Type": "text/csv"}
    assert client.post(f"{API}/meters/import", content=_meters_csv("812", 1), headers=h).status_code == 200
    # 2,000 new meters, the last one at a point already taken by another meter: all refused
    body = _meters_csv("813", 2_000) + b"KAM,81399999,heat,812-MP-0,,,\n"
    r = client.post(f"{API}/meters/import", content=body, headers=h)
    assert r.status_code == 422 and "812-MP-0" in r.json()["error"]["message"]
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Meter.tenant_id == t.id)) == 1
        assert s.scalar(select(func.count()).where(MeteringPoint.tenant_id == t.id)) == 1
