"""Gateways of the tenant: registration (credential shown once), reported status, desired config.
Changing the desired configuration is an operation (api/operations.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.services import operations as config_ops
from omshub.cloud.services.accounts import Principal, audit, current_principal, hash_secret, new_secret, require_role, utcnow
from omshub.protocol.topics import SERIAL_RE
from omshub.cloud.store.models import Gateway
from omshub.cloud.api.common import ApiError, DbSession, Id, Limit, Text, iso, not_found, page, paginate
from omshub.cloud.api.operations import operation_json

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])


class GatewayBody(BaseModel):
    serial: Text = Field(min_length=1, max_length=64)
    name: Text = Field("", max_length=200)


def register_gateway(session: Session, tenant_id: int, serial: str, name: str = "", *,
                     actor: str = "system") -> tuple[Gateway, str]:
    """A new gateway; returns (gateway, credential). Only the credential's SHA-256 is stored."""
    if not SERIAL_RE.match(serial or ""):
        raise ApiError(422, "invalid_serial", f"serial {serial!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    # Serials stay unique across tenants (an uplink names its gateway by serial), so a clash may be
    # in another tenant: the same answer either way, naming no tenant.
    if session.scalar(select(Gateway.id).where(Gateway.serial == serial)) is not None:
        raise ApiError(409, "serial_unavailable",
                       f"serial {serial!r} is not available: gateway serials are unique across the whole "
                       "head-end (gateways authenticate by serial and credential); check the serial")
    credential = "omg_" + new_secret()
    gateway = Gateway(tenant_id=tenant_id, serial=serial, name=name, credential_hash=hash_secret(credential),
                      created_at=utcnow(), status={}, applied_config_version=0, desired_config_version=0)
    session.add(gateway)
    session.flush()
    audit(session, tenant_id, actor, "gateway.register", {"gateway_id": gateway.id, "serial": serial})
    return gateway, credential


def _expected_contact(session: Session, gateway: Gateway) -> datetime | None:
    if gateway.next_contact_at is not None:
        return gateway.next_contact_at
    try:
        from omshub.cloud.services import operations
    except ImportError:
        return None
    config = operations.running_config(session, gateway) if hasattr(operations, "running_config") else None
    return operations.expected_next_contact(gateway, config, utcnow())


def gateway_json(session: Session, gateway: Gateway) -> dict:
    status = gateway.status or {}
    return {"id": gateway.id, "serial": gateway.serial, "name": gateway.name, "created_at": iso(gateway.created_at),
            "last_contact_at": iso(gateway.last_contact_at), "last_seq": gateway.last_seq,
            "battery_pct": status.get("battery_pct"), "battery_mv": status.get("battery_mv"),
            "rssi": status.get("rssi"), "firmware": status.get("firmware"), "spool": status.get("spool"),
            "spool_full": status.get("spool_full"), "status": status,
            "applied_config_version": gateway.applied_config_version,
            "desired_config_version": gateway.desired_config_version,
            "next_contact_at": iso(_expected_contact(session, gateway))}


def tenant_gateway(session: Session, principal: Principal, gateway_id: int) -> Gateway:
    gateway = session.scalar(select(Gateway).where(Gateway.id == gateway_id,
                                                   Gateway.tenant_id == principal.tenant_id))
    if gateway is None:
        raise not_found(f"gateway {gateway_id}")
    return gateway


@router.post("", status_code=201)
def post_gateway(body: GatewayBody, session: DbSession,
                 principal: Principal = Depends(require_role("operator"))) -> dict:
    """Register a gateway. The response holds its credential — the only time it is shown."""
    gateway, credential = register_gateway(session, principal.tenant_id, body.serial, body.name,
                                           actor=principal.name)
    return {**gateway_json(session, gateway), "credential": credential}


@router.get("")
def list_gateways(session: DbSession, principal: Principal = Depends(current_principal),
                  cursor: str | None = None, limit: Limit = 100) -> dict:
    stmt = select(Gateway).where(Gateway.tenant_id == principal.tenant_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Gateway.id)
    return page([gateway_json(session, g) for g in rows], nxt)


@router.get("/{gateway_id}")
def get_gateway(gateway_id: Id, session: DbSession, principal: Principal = Depends(current_principal)) -> dict:
    return gateway_json(session, tenant_gateway(session, principal, gateway_id))


@router.get("/{gateway_id}/config")
def get_gateway_config(gateway_id: Id, session: DbSession,
                       principal: Principal = Depends(current_principal)) -> dict:
    """The desired configuration (latest version, a change still waiting for the gateway included) in
    full with every default filled in; version 0 (`factory_default`) = nothing set yet. With the
    version the gateway runs and the operation still delivering a change (null when none)."""
    gateway = tenant_gateway(session, principal, gateway_id)
    config, row = config_ops.desired_config(session, gateway)
    pending = config_ops.open_operation(session, gateway)
    return {"gateway_id": gateway.id, "version": config["version"], "config": config,
            "factory_default": row is None,
            "created_at": iso(row.created_at) if row else None, "created_by": row.created_by if row else None,
            "applied_version": gateway.applied_config_version,
            "pending_operation": operation_json(pending, gateway.serial) if pending else None}


@router.post("/{gateway_id}/credential")
def rotate_credential(gateway_id: Id, session: DbSession,
                      principal: Principal = Depends(require_role("admin"))) -> dict:
    """A new credential for the gateway (the old one stops working at once); shown once."""
    gateway = tenant_gateway(session, principal, gateway_id)
    credential = "omg_" + new_secret()
    gateway.credential_hash = hash_secret(credential)
    audit(session, principal.tenant_id, principal.name, "gateway.credential", {"gateway_id": gateway.id})
    return {"id": gateway.id, "serial": gateway.serial, "credential": credential}
