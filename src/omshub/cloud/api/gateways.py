"""Gateways of the tenant: registration (credential shown once), reported status, desired config.
Changing the desired configuration is an operation (api/operations.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import current_principal, require_role
from omshub.cloud.api.operations import operation_json
from omshub.cloud.services import gateways as gateway_service
from omshub.cloud.services import operations as config_ops
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.gateways import expected_contact, register_gateway, tenant_gateway
from omshub.cloud.store.models import Gateway

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])


class GatewayBody(BaseModel):
    serial: Text = Field(min_length=1, max_length=64)
    name: Text = Field("", max_length=200)


def gateway_json(session: Session, gateway: Gateway) -> dict:
    status = gateway.status or {}
    return {
        "id": gateway.id,
        "serial": gateway.serial,
        "name": gateway.name,
        "created_at": iso(gateway.created_at),
        "last_contact_at": iso(gateway.last_contact_at),
        "last_seq": gateway.last_seq,
        "battery_pct": status.get("battery_pct"),
        "battery_mv": status.get("battery_mv"),
        "rssi": status.get("rssi"),
        "firmware": status.get("firmware"),
        "spool": status.get("spool"),
        "spool_full": status.get("spool_full"),
        "status": status,
        "applied_config_version": gateway.applied_config_version,
        "desired_config_version": gateway.desired_config_version,
        "next_contact_at": iso(expected_contact(session, gateway)),
    }


@router.post("", status_code=201)
def post_gateway(
    body: GatewayBody, session: DbSession, principal: Principal = Depends(require_role("operator"))
) -> dict:
    """Register a gateway. The response holds its credential — the only time it is shown."""
    gateway, credential = register_gateway(session, principal.tenant_id, body.serial, body.name, actor=principal.name)
    return {**gateway_json(session, gateway), "credential": credential}


@router.get("")
def list_gateways(
    session: DbSession, principal: Principal = Depends(current_principal), cursor: str | None = None, limit: Limit = 100
) -> dict:
    stmt = select(Gateway).where(Gateway.tenant_id == principal.tenant_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Gateway.id)
    return page([gateway_json(session, g) for g in rows], nxt)


@router.get("/{gateway_id}")
def get_gateway(gateway_id: Id, session: DbSession, principal: Principal = Depends(current_principal)) -> dict:
    return gateway_json(session, tenant_gateway(session, principal.tenant_id, gateway_id))


@router.get("/{gateway_id}/config")
def get_gateway_config(gateway_id: Id, session: DbSession, principal: Principal = Depends(current_principal)) -> dict:
    """The desired configuration (latest version, a change still waiting for the gateway included) in
    full with every default filled in; version 0 (`factory_default`) = nothing set yet. With the
    version the gateway runs and the operation still delivering a change (null when none)."""
    gateway = tenant_gateway(session, principal.tenant_id, gateway_id)
    config, row = config_ops.desired_config(session, gateway)
    pending = config_ops.open_operation(session, gateway)
    return {
        "gateway_id": gateway.id,
        "version": config["version"],
        "config": config,
        "factory_default": row is None,
        "created_at": iso(row.created_at) if row else None,
        "created_by": row.created_by if row else None,
        "applied_version": gateway.applied_config_version,
        "pending_operation": operation_json(pending, gateway.serial) if pending else None,
    }


@router.post("/{gateway_id}/credential")
def rotate_credential(
    gateway_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))
) -> dict:
    """A new credential for the gateway (the old one stops working at once); shown once."""
    gateway, credential = gateway_service.rotate_credential(
        session, principal.tenant_id, gateway_id, actor=principal.name
    )
    return {"id": gateway.id, "serial": gateway.serial, "credential": credential}
