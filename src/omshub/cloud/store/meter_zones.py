"""The tenants' meter time-zone settings as ZoneRules (domain/meter_time.py), read in the caller's
transaction: the decode pipeline reads them per batch, so a change applies from the next batch on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.meter_time import ZoneRules
from omshub.cloud.store.models import MeterModelZone, Tenant


def load_rules(session: Session, tenant_ids, server_zone: str) -> dict[int, ZoneRules]:
    """{tenant id: ZoneRules} for these tenants (NULL tenant zone: the server setting)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return {}
    rules = {
        tid: ZoneRules(zone or server_zone)
        for tid, zone in session.execute(select(Tenant.id, Tenant.meter_timezone).where(Tenant.id.in_(ids)))
    }
    for m in session.scalars(
        select(MeterModelZone).where(MeterModelZone.tenant_id.in_(ids)).order_by(MeterModelZone.id)
    ):
        if m.tenant_id in rules:
            rules[m.tenant_id].models.append((m.manufacturer, m.version, m.device_type or None, m.timezone))
    return rules
