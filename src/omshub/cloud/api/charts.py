"""Chart data for the console (`/api/v1/charts/...`): consumption per day or month, a meter's
registers and temperatures over time, a gateway's contacts and battery, the telegrams by state per
day (services/charts.py). Dates are local days of the tenant's time zone (`from`, `to` included;
without them the last 30 days or 12 months)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from omshub.cloud.api.common import DbSession, Id
from omshub.cloud.api.deps import require_role
from omshub.cloud.services import charts
from omshub.cloud.services.accounts import Principal
from omshub.times import utcnow

router = APIRouter(prefix="/api/v1/charts", tags=["charts"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Period = Annotated[str, Query(pattern="^(day|month)$", description="bars per local day or month")]
From = Annotated[date | None, Query(alias="from", description="first local day")]
To = Annotated[date | None, Query(alias="to", description="last local day (included)")]


@router.get("/meters/{meter_pk}/consumption", summary="A meter's consumption per day or month")
def meter_consumption(
    meter_pk: Id, principal: Viewer, session: DbSession, period: Period = "day", first: From = None, last: To = None
) -> dict:
    return charts.meter_consumption(session, principal.tenant_id, meter_pk, period, first, last, utcnow())


@router.get("/metering-points/{point_id}/consumption", summary="A metering point's consumption per day or month")
def point_consumption(
    point_id: Id, principal: Viewer, session: DbSession, period: Period = "day", first: From = None, last: To = None
) -> dict:
    return charts.point_consumption(session, principal.tenant_id, point_id, period, first, last, utcnow())


@router.get("/meters/{meter_pk}/series", summary="A meter's registers and temperatures over time")
def meter_series(meter_pk: Id, principal: Viewer, session: DbSession, first: From = None, last: To = None) -> dict:
    return charts.meter_series(session, principal.tenant_id, meter_pk, first, last, utcnow())


@router.get("/gateways/{gateway_id}/history", summary="A gateway's contacts and battery over time")
def gateway_history(gateway_id: Id, principal: Viewer, session: DbSession, first: From = None, last: To = None) -> dict:
    return charts.gateway_history(session, principal.tenant_id, gateway_id, first, last, utcnow())


@router.get("/telegrams", summary="The telegrams received per day, by decode state")
def telegrams(principal: Viewer, session: DbSession, first: From = None, last: To = None) -> dict:
    return charts.telegrams_by_state(session, principal.tenant_id, first, last, utcnow())
