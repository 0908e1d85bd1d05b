"""Gateways of a tenant: registration (a credential shown once, only its hash kept), lookup,
credential rotation and when each should be heard from next."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, not_found
from omshub.cloud.domain.tokens import hash_secret, new_secret
from omshub.cloud.services import operations
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Gateway
from omshub.protocol.topics import SERIAL_RE
from omshub.times import utcnow


def register_gateway(
    session: Session, tenant_id: int, serial: str, name: str = "", *, actor: str = "system"
) -> tuple[Gateway, str]:
    """A new gateway; returns (gateway, credential). Only the credential's SHA-256 is stored."""
    if not SERIAL_RE.match(serial or ""):
        raise Invalid(
            f"serial {serial!r} must be 1-64 of A-Z a-z 0-9 . _ -",
            code="invalid_serial",
            field="serial",
            german="Die Seriennummer darf nur Buchstaben ohne Umlaute, Ziffern und . _ - enthalten (1 bis 64 Zeichen).",
        )
    # Serials stay unique across tenants (an uplink names its gateway by serial), so a clash may be
    # in another tenant: the same answer either way, naming no tenant.
    if session.scalar(select(Gateway.id).where(Gateway.serial == serial)) is not None:
        raise Conflict(
            f"serial {serial!r} is not available: gateway serials are unique across the whole "
            "head-end (gateways authenticate by serial and credential); check the serial",
            code="serial_unavailable",
            field="serial",
            german=f"Die Seriennummer {serial} ist schon vergeben. Seriennummern gelten für alle Mandanten, "
            "weil sich Gateways mit ihr anmelden; prüfen Sie die Seriennummer.",
        )
    credential = "omg_" + new_secret()
    gateway = Gateway(
        tenant_id=tenant_id,
        serial=serial,
        name=name,
        credential_hash=hash_secret(credential),
        created_at=utcnow(),
        status={},
        applied_config_version=0,
        desired_config_version=0,
    )
    session.add(gateway)
    session.flush()
    audit(session, tenant_id, actor, "gateway.register", {"gateway_id": gateway.id, "serial": serial})
    return gateway, credential


def tenant_gateway(session: Session, tenant_id: int, gateway_id: int) -> Gateway:
    """The tenant's gateway `gateway_id`, else NotFound."""
    gateway = session.scalar(select(Gateway).where(Gateway.id == gateway_id, Gateway.tenant_id == tenant_id))
    if gateway is None:
        raise not_found(f"gateway {gateway_id}", f"Das Gateway {gateway_id}")
    return gateway


def expected_contact(session: Session, gateway: Gateway) -> datetime | None:
    """When the gateway should upload next: what it reported, else its running configuration's schedule."""
    if gateway.next_contact_at is not None:
        return gateway.next_contact_at
    return operations.expected_next_contact(gateway, operations.running_config(session, gateway), utcnow())


def rotate_credential(session: Session, tenant_id: int, gateway_id: int, *, actor: str) -> tuple[Gateway, str]:
    """A new credential for the gateway (the old one stops working at once): (gateway, credential)."""
    gateway = tenant_gateway(session, tenant_id, gateway_id)
    credential = "omg_" + new_secret()
    gateway.credential_hash = hash_secret(credential)
    audit(session, tenant_id, actor, "gateway.credential", {"gateway_id": gateway.id})
    return gateway, credential


def select_gateways(
    session: Session,
    tenant_id: int,
    *,
    every: bool = False,
    serial_prefix: str | None = None,
    name_contains: str | None = None,
    desired_config_version: int | None = None,
    limit: int = operations.MAX_GATEWAYS_PER_REQUEST,
) -> list[int]:
    """Ids of the tenant's gateways that match (all given conditions; `every` with none: all), at
    most `limit` + 1 so that a caller sees the selection is too large; Invalid if it selects nothing."""
    if not (every or serial_prefix or name_contains or desired_config_version is not None):
        raise Invalid(
            "filter selects nothing: set all=true or serial_prefix/name_contains/desired_config_version",
            german="Der Filter wählt nichts aus: Wählen Sie alle Gateways oder geben Sie einen Filter an.",
        )
    stmt = select(Gateway.id).where(Gateway.tenant_id == tenant_id)
    if serial_prefix:
        stmt = stmt.where(Gateway.serial.startswith(serial_prefix, autoescape=True))
    if name_contains:
        stmt = stmt.where(Gateway.name.contains(name_contains, autoescape=True))
    if desired_config_version is not None:
        stmt = stmt.where(Gateway.desired_config_version == desired_config_version)
    ids = list(session.scalars(stmt.order_by(Gateway.id).limit(limit + 1)))
    if not ids:
        raise Invalid("the filter matches no gateway", german="Auf den Filter passt kein Gateway.")
    return ids
