"""Remote configuration of gateways as operations (`/api/v1/gateways/.../config`, `/api/v1/operations`).

Setting a configuration (one gateway, or a selection by ids or filter) creates one operation
per gateway (operations.py); its state follows the gateway's uplinks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from .. import operations as ops
from ..auth import Principal, require_role
from ..models import Gateway, GatewayConfigVersion, Operation
from .common import MAX_INT64, ApiError, DbSession, Id, Limit, Text, iso, not_found, page, paginate

router = APIRouter(prefix="/api/v1", tags=["operations"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
STATE_PATTERN = "^(" + "|".join(ops.STATES) + ")$"


def operation_json(op: Operation, serial: str | None = None, config: dict | None = None) -> dict:
    out = {"id": op.id, "gateway_id": op.gateway_id, "gateway": serial, "kind": op.kind,
           "config_version": op.config_version, "state": op.state, "created_at": iso(op.created_at),
           "created_by": op.created_by, "delivered_at": iso(op.delivered_at), "finished_at": iso(op.finished_at),
           "error": op.error, "superseded_by": op.superseded_by,
           "expected_contact_at": iso(op.expected_contact_at)}
    if config is not None:
        out["config"] = config
    return out


def _serials(session, ids) -> dict[int, str]:
    ids = set(ids)
    if not ids:
        return {}
    return dict(session.execute(select(Gateway.id, Gateway.serial).where(Gateway.id.in_(ids))).all())


class GatewaySelection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = Field(False, description="every gateway of the tenant (possibly narrowed by the other fields)")
    serial_prefix: Text | None = Field(None, max_length=64)
    name_contains: Text | None = Field(None, max_length=200)
    desired_config_version: int | None = Field(None, ge=0, le=MAX_INT64,
                                               description="gateways whose desired version is this")


class BulkConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any]
    gateway_ids: list[Id] | None = Field(None, max_length=ops.MAX_GATEWAYS_PER_REQUEST)
    filter: GatewaySelection | None = None


@router.put("/gateways/{gateway_id}/config", status_code=201, tags=["operations"],
            summary="Set a gateway's desired configuration (creates an operation)")
def set_gateway_config(gateway_id: Id, principal: Operator, session: DbSession,
                       config: dict[str, Any] = Body(description="configuration (docs/formats.md §3); "
                                                                 "`version` is assigned by the head-end")) -> dict:
    [op] = ops.set_desired_config(session, principal, [gateway_id], config)
    return operation_json(op, _serials(session, [gateway_id]).get(gateway_id))


@router.post("/gateways/config", status_code=201, tags=["operations"],
             summary="Set the configuration of a selection of gateways (one operation each)")
def set_many_configs(body: BulkConfigIn, principal: Operator, session: DbSession) -> dict:
    if (body.gateway_ids is None) == (body.filter is None):
        raise ApiError(422, "invalid_request", "give either gateway_ids or filter")
    if body.gateway_ids is not None:
        ids = body.gateway_ids
    else:
        f = body.filter
        if not (f.all or f.serial_prefix or f.name_contains or f.desired_config_version is not None):
            raise ApiError(422, "invalid_request",
                           "filter selects nothing: set all=true or serial_prefix/name_contains/desired_config_version")
        stmt = select(Gateway.id).where(Gateway.tenant_id == principal.tenant_id)
        if f.serial_prefix:
            stmt = stmt.where(Gateway.serial.startswith(f.serial_prefix, autoescape=True))
        if f.name_contains:
            stmt = stmt.where(Gateway.name.contains(f.name_contains, autoescape=True))
        if f.desired_config_version is not None:
            stmt = stmt.where(Gateway.desired_config_version == f.desired_config_version)
        ids = list(session.scalars(stmt.order_by(Gateway.id).limit(ops.MAX_GATEWAYS_PER_REQUEST + 1)))
        if not ids:
            raise ApiError(422, "invalid_request", "the filter matches no gateway")
    created = ops.set_desired_config(session, principal, ids, body.config)
    serials = _serials(session, [op.gateway_id for op in created])
    return {"count": len(created), "operations": [operation_json(op, serials.get(op.gateway_id)) for op in created]}


@router.get("/operations", summary="List operations (newest first)")
def list_operations(principal: Viewer, session: DbSession, gateway_id: Id | None = None,
                    state: str | None = Query(None, pattern=STATE_PATTERN),
                    cursor: str | None = None, limit: Limit = 100) -> dict:
    stmt = select(Operation).where(Operation.tenant_id == principal.tenant_id)
    if gateway_id is not None:
        stmt = stmt.where(Operation.gateway_id == gateway_id)
    if state:
        stmt = stmt.where(Operation.state == state)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=Operation.id, descending=True)
    serials = _serials(session, [op.gateway_id for op in rows])
    return page([operation_json(op, serials.get(op.gateway_id)) for op in rows], nxt)


@router.get("/operations/{operation_id}", summary="One operation, with the configuration it sets")
def read_operation(operation_id: Id, principal: Viewer, session: DbSession) -> dict:
    op = session.scalar(select(Operation).where(Operation.id == operation_id,
                                                Operation.tenant_id == principal.tenant_id))
    if op is None:
        raise not_found(f"operation {operation_id}")
    cfg = session.scalar(select(GatewayConfigVersion.config).where(
        GatewayConfigVersion.gateway_id == op.gateway_id, GatewayConfigVersion.version == op.config_version))
    return operation_json(op, _serials(session, [op.gateway_id]).get(op.gateway_id), cfg)
