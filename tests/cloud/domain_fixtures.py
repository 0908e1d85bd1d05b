"""Row factories for the DOMAIN unit tests: rows made straight in a session (no API), so the
domain logic (consumption, alarms, operations) is tested on its own on either database."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from omshub.cloud.store.models import Gateway, Installation, Meter, MeteringPoint, Reading, Telegram, Tenant, Uplink
from omshub.cloud.store.reading_values import typed_values

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_seq = itertools.count(1)


@dataclass(frozen=True)
class FakePrincipal:
    tenant_id: int
    user_id: int | None = None
    role: str = "admin"
    name: str = "tester"


def tenant(s: Session, slug: str = "a") -> Tenant:
    t = Tenant(slug=f"{slug}{next(_seq)}", name=slug, created_at=T0)
    s.add(t)
    s.flush()
    return t


def gateway(s: Session, t: Tenant, serial: str | None = None, **kw) -> Gateway:
    serial = serial or f"GW{next(_seq):05d}"
    g = Gateway(
        tenant_id=t.id,
        serial=serial,
        credential_hash=hashlib.sha256(serial.encode()).digest(),
        created_at=T0,
        status={},
        applied_config_version=0,
        desired_config_version=0,
        **kw,
    )
    s.add(g)
    s.flush()
    return g


def meter(s: Session, t: Tenant, meter_id: str | None = None, device_type: str = "heat", **kw) -> Meter:
    m = Meter(
        tenant_id=t.id,
        manufacturer="KAM",
        meter_id=meter_id or f"{next(_seq):08d}",
        device_type=device_type,
        created_at=kw.pop("created_at", T0),
        **kw,
    )
    s.add(m)
    s.flush()
    return m


def point(s: Session, t: Tenant, ref: str = "P-1") -> MeteringPoint:
    p = MeteringPoint(tenant_id=t.id, ref=ref, address="Street 1", customer_ref="C1", created_at=T0)
    s.add(p)
    s.flush()
    return p


def install(
    s: Session,
    p: MeteringPoint,
    m: Meter,
    at: datetime,
    *,
    removed: datetime | None = None,
    initial: dict | None = None,
    final: dict | None = None,
) -> Installation:
    i = Installation(
        tenant_id=p.tenant_id,
        metering_point_id=p.id,
        meter_pk=m.id,
        installed_at=at,
        removed_at=removed,
        initial_values=initial or {},
        final_values=final,
    )
    s.add(i)
    s.flush()
    return i


def reading(
    s: Session,
    m: Meter,
    at: datetime,
    records: list[dict] | None = None,
    *,
    status: int = 0,
    flags: list[str] | None = None,
    **values,
) -> Reading:
    """A stored reading of `m` at `at` with register values, e.g. reading(s, m, t, energy=12.0)."""
    gw = s.query(Gateway).filter_by(tenant_id=m.tenant_id).first() or gateway(s, s.get(Tenant, m.tenant_id))
    n = next(_seq)
    up = Uplink(
        tenant_id=m.tenant_id,
        gateway_id=gw.id,
        seq=n,
        received_at=at,
        content_type="application/json",
        body=b"{}",
        telegram_count=1,
        response={},
    )
    s.add(up)
    s.flush()
    raw = n.to_bytes(8, "big")
    tg = Telegram(
        tenant_id=m.tenant_id,
        gateway_id=gw.id,
        uplink_id=up.id,
        received_at=at,
        raw=raw,
        raw_hash=hashlib.sha256(raw).digest(),
        manufacturer=m.manufacturer,
        meter_id=m.meter_id,
        meter_pk=m.id,
        state="decoded",
    )
    s.add(tg)
    s.flush()
    units = {"energy": "kWh", "volume": "m3", "hca": "HCA"}
    recs = list(records or []) + [
        {
            "quantity": q,
            "unit": units.get(q, ""),
            "value": v,
            "storage": 0,
            "tariff": 0,
            "subunit": 0,
            "function": "instantaneous",
        }
        for q, v in values.items()
    ]
    data = {
        "meter": {"manufacturer": m.manufacturer, "id": m.meter_id, "device_type": m.device_type},
        "status": {"code": status, "flags": flags or []},
        "records": recs,
        "fields": {},
    }
    r = Reading(
        tenant_id=m.tenant_id, meter_pk=m.id, telegram_id=tg.id, timestamp=at, received_at=at, **typed_values(data)
    )
    s.add(r)
    s.flush()
    return r


def days(n: float) -> timedelta:
    return timedelta(days=n)


def decoded_data(pipeline, reading) -> dict:
    """A stored reading's whole decoded dict, decoded again from its raw telegram as the API does."""
    from omshub.cloud.decode.redecode import Redecoder

    with pipeline.db.session() as s:
        found = Redecoder(pipeline.keystore, pipeline.db.is_sqlite).telegrams(
            s, [reading.telegram_id], reading.tenant_id
        )
    return found[reading.telegram_id]
