"""Remote configuration of gateways as operations (`/api/v1/gateways/.../config`, `/api/v1/operations`).

Changing a configuration (one gateway, or a selection by ids or filter) is a JSON merge patch on
each gateway's desired configuration; where it changes something it creates one operation per
gateway (operations.py), whose state follows the gateway's uplinks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from omshub.cloud.api.common import MAX_INT64, DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.errors import ApiError
from omshub.cloud.domain.errors import not_found
from omshub.cloud.services import operations as ops
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.gateways import select_gateways
from omshub.cloud.store.models import Gateway, GatewayConfigVersion, Operation

router = APIRouter(prefix="/api/v1", tags=["operations"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
STATE_PATTERN = "^(" + "|".join(ops.STATES) + ")$"


def operation_json(op: Operation, serial: str | None = None, config: dict | None = None) -> dict:
    out: dict[str, Any] = {
        "id": op.id,
        "gateway_id": op.gateway_id,
        "gateway": serial,
        "kind": op.kind,
        "config_version": op.config_version,
        "state": op.state,
        "created_at": iso(op.created_at),
        "created_by": op.created_by,
        "delivered_at": iso(op.delivered_at),
        "finished_at": iso(op.finished_at),
        "error": op.error,
        "superseded_by": op.superseded_by,
        "expected_contact_at": iso(op.expected_contact_at),
    }
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
    desired_config_version: int | None = Field(
        None, ge=0, le=MAX_INT64, description="gateways whose desired version is this"
    )


class BulkConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(
        description="a JSON merge patch (RFC 7386) applied to each gateway's own "
        "desired configuration: it names only what changes"
    )
    gateway_ids: list[Id] | None = Field(None, max_length=ops.MAX_GATEWAYS_PER_REQUEST)
    filter: GatewaySelection | None = None
    on_conflict: Literal["supersede", "skip"] | None = Field(
        None,
        description="what to do with a selected gateway's change that is not applied yet: "
        "`supersede` it (the new change includes its settings) or `skip` the gateway; "
        "without it such gateways make the request fail with 409 and the list of conflicts",
    )


def _single(session, principal: Principal, gateway_id: int, patch, response: Response) -> dict:
    # One gateway: the operator sees its desired configuration (pending change included) and the
    # change is merged onto it, so superseding the pending operation loses nothing.
    [res] = ops.change_config(session, principal, [gateway_id], patch, on_conflict="supersede")
    out = (
        operation_json(res.operation, res.gateway.serial, res.config)
        if res.operation
        else {
            "gateway_id": res.gateway.id,
            "gateway": res.gateway.serial,
            "config_version": res.version,
            "config": res.config,
        }
    )
    out["outcome"] = res.outcome
    out["superseded_operations"] = [o.id for o in res.superseded]
    if res.outcome == ops.UNCHANGED:
        response.status_code = 200
        out["message"] = (
            f"the change changes nothing: configuration version {res.version} stays desired, no new operation"
        )
    return out


SINGLE_DOC = (
    "A JSON merge patch (RFC 7386) applied to the gateway's desired configuration (a change still "
    "waiting for the gateway included): objects merge, `null` returns a setting to its default, "
    "arrays and values replace. The merged configuration is validated whole (docs/formats.md §3). "
    "201 with the new operation and the resulting configuration; 200 with `outcome: unchanged` "
    "when nothing changes. An unfinished older operation is superseded (listed in "
    "`superseded_operations`)."
)
PATCH_TYPES = ("application/merge-patch+json", "application/json")
# a change that leaves everything as it is: 200 instead of 201 (documented for clients and the API fuzz)
UNCHANGED: dict[int | str, dict[str, Any]] = {
    200: {"description": "nothing changed: `outcome` is `unchanged`, no operation was created"}
}


@router.put(
    "/gateways/{gateway_id}/config",
    status_code=201,
    tags=["operations"],
    responses=UNCHANGED,
    summary="Change a gateway's desired configuration (merge patch; creates an operation)",
    description=SINGLE_DOC,
)
def set_gateway_config(
    gateway_id: Id,
    principal: Operator,
    session: DbSession,
    response: Response,
    config: dict[str, Any] = Body(
        description="the settings to change (docs/formats.md §3); `version` is assigned by the head-end"
    ),
) -> dict:
    return _single(session, principal, gateway_id, config, response)


def _merge_patch_operator(request: Request, principal: Operator) -> Principal:
    """An operator sending a merge patch (checked after authentication)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype and ctype not in PATCH_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"PATCH takes a JSON merge patch (Content-Type application/merge-patch+json), not {ctype[:100]}",
            "Die Änderung muss als JSON-Merge-Patch gesendet werden.",
        )
    return principal


@router.patch(
    "/gateways/{gateway_id}/config",
    status_code=201,
    tags=["operations"],
    responses=UNCHANGED,
    summary="Change a gateway's desired configuration (application/merge-patch+json)",
    description=SINGLE_DOC,
)
def patch_gateway_config(
    gateway_id: Id,
    principal: Annotated[Principal, Depends(_merge_patch_operator)],
    session: DbSession,
    response: Response,
    config: dict[str, Any] = Body(media_type="application/merge-patch+json", description="the settings to change"),
) -> dict:
    return _single(session, principal, gateway_id, config, response)


@router.post(
    "/gateways/config",
    status_code=201,
    tags=["operations"],
    responses=UNCHANGED,
    summary="Change the configuration of a selection of gateways (a merge patch for each)",
    description="Each gateway gets `config` merged onto its own desired configuration. A selected "
    "gateway with a change not applied yet is a conflict: without `on_conflict` nothing "
    "changes and the answer is 409 with `error.conflicts`. `results` says per gateway "
    "what happened: created, superseded (the old operation), skipped or unchanged.",
)
def set_many_configs(body: BulkConfigIn, principal: Operator, session: DbSession, response: Response) -> dict:
    f = body.filter
    if (body.gateway_ids is None) == (f is None):
        raise ApiError(
            422,
            "invalid_request",
            "give either gateway_ids or filter",
            "Wählen Sie Gateways aus oder geben Sie einen Filter an, nicht beides.",
        )
    if body.gateway_ids is not None:
        ids = body.gateway_ids
    elif f is not None:
        ids = select_gateways(
            session,
            principal.tenant_id,
            every=f.all,
            serial_prefix=f.serial_prefix,
            name_contains=f.name_contains,
            desired_config_version=f.desired_config_version,
        )
    results = ops.change_config(session, principal, ids, body.config, on_conflict=body.on_conflict)
    # (a new operation each: CREATED and SUPERSEDED_PENDING results always carry theirs)
    made = [(r, r.operation) for r in results if r.outcome in (ops.CREATED, ops.SUPERSEDED_PENDING) and r.operation]
    if not made:
        response.status_code = 200
    return {
        "count": len(made),
        "operations": [operation_json(op, r.gateway.serial) for r, op in made],
        "results": [
            {
                "gateway_id": r.gateway.id,
                "gateway": r.gateway.serial,
                "outcome": r.outcome,
                "config_version": r.version,
                "operation_id": r.operation.id if r.operation else None,
                "superseded_operations": [o.id for o in r.superseded],
            }
            for r in results
        ],
    }


@router.get("/operations", summary="List operations (newest first)")
def list_operations(
    principal: Viewer,
    session: DbSession,
    gateway_id: Id | None = None,
    state: str | None = Query(None, pattern=STATE_PATTERN),
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
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
    op = session.scalar(
        select(Operation).where(Operation.id == operation_id, Operation.tenant_id == principal.tenant_id)
    )
    if op is None:
        raise not_found(f"operation {operation_id}", f"Der Auftrag {operation_id}")
    cfg = session.scalar(
        select(GatewayConfigVersion.config).where(
            GatewayConfigVersion.gateway_id == op.gateway_id, GatewayConfigVersion.version == op.config_version
        )
    )
    return operation_json(op, _serials(session, [op.gateway_id]).get(op.gateway_id), cfg)
