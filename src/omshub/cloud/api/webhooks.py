"""Webhook endpoints (`/api/v1/webhooks`, docs/exports.md §Webhooks): create (the secret is shown
once), list, delete, send a test event, the deliveries (dead letters: `state=dead`) and replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from omshub.cloud.api.common import DbSession, Id
from omshub.cloud.api.deps import require_role
from omshub.cloud.services import webhooks
from omshub.cloud.services.accounts import Principal
from omshub.times import utcnow

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


class EndpointIn(BaseModel):
    url: str = Field(min_length=1, max_length=1000)
    events: list[str] = Field(default_factory=list, max_length=20, description="[] = every event")
    retry_for_s: int = Field(86400, ge=60, le=30 * 86400, description="how long a delivery is retried")


class ReplayIn(BaseModel):
    delivery_ids: list[Id] | None = Field(
        None, max_length=1000, description="None: every dead delivery of the endpoint"
    )


@router.post("/webhooks", status_code=201, summary="Create a webhook endpoint (its secret is shown only now)")
def create(request: Request, body: EndpointIn, principal: Admin, session: DbSession) -> dict:
    ep, secret = webhooks.create_endpoint(
        session, request.app.state.keystore, principal.tenant_id, body.url, body.events, body.retry_for_s,
        actor=principal.name, now=utcnow(),
    )  # fmt: skip
    return {**webhooks.endpoint_json(ep), "secret": secret}


@router.get("/webhooks", summary="The tenant's webhook endpoints")
def list_endpoints(principal: Viewer, session: DbSession) -> dict:
    return {"items": [webhooks.endpoint_json(e) for e in webhooks.list_endpoints(session, principal.tenant_id)]}


@router.delete("/webhooks/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint")
def delete(endpoint_id: Id, principal: Admin, session: DbSession) -> Response:
    webhooks.delete_endpoint(session, principal.tenant_id, endpoint_id, actor=principal.name)
    return Response(status_code=204)


@router.post("/webhooks/{endpoint_id}/test", status_code=202, summary="Send a test event to the endpoint")
def test(endpoint_id: Id, principal: Operator, session: DbSession) -> dict:
    ep = webhooks.get_endpoint(session, principal.tenant_id, endpoint_id)
    now = utcnow()
    event = webhooks.emit(session, principal.tenant_id, "webhook.test", f"webhook.test:{ep.id}:{now.isoformat()}",
                          {"endpoint_id": ep.id, "by": principal.name}, now=now, only_endpoint=ep.id)  # fmt: skip
    return {"event_id": f"evt_{event.id}" if event else None}


@router.get("/webhooks/deliveries", summary="Webhook deliveries (state=dead: the dead letters)")
def deliveries(
    principal: Viewer,
    session: DbSession,
    state: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
    endpoint: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    return {"items": webhooks.deliveries(session, principal.tenant_id, state, endpoint, limit)}


@router.post("/webhooks/{endpoint_id}/replay", summary="Send dead deliveries of the endpoint again")
def replay(endpoint_id: Id, body: ReplayIn, principal: Operator, session: DbSession) -> dict:
    webhooks.get_endpoint(session, principal.tenant_id, endpoint_id)
    n = webhooks.replay(
        session, principal.tenant_id, body.delivery_ids, endpoint_id, actor=principal.name, now=utcnow()
    )
    return {"replayed": n}
