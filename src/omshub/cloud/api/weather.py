"""Weather stations (`/api/v1/weather-stations`): daily mean temperatures imported from a file, degree
days, and which station a property's degree days come from. The rules: services/weather.py."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from omshub.cloud.api import billing_schemas as S
from omshub.cloud.api.common import DbSession, Id, Text, iso, page
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.guard import read_body
from omshub.cloud.api.properties import property_json
from omshub.cloud.services import weather
from omshub.cloud.services.accounts import Principal
from omshub.cloud.store.models_billing import WeatherDay, WeatherStation

router = APIRouter(prefix="/api/v1", tags=["weather"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]


class StationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Text = Field(min_length=1, max_length=32, description="e.g. the weather service's station number")
    name: Text = Field("", max_length=200)


class StationAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weather_station_id: Id | None = Field(description="None: no station (degree days from the per-mille table)")


def station_json(session, st: WeatherStation) -> dict:
    first, last, count = session.execute(
        select(func.min(WeatherDay.day), func.max(WeatherDay.day), func.count()).where(WeatherDay.station_id == st.id)
    ).one()
    return {
        "id": st.id,
        "code": st.code,
        "name": st.name,
        "days": count,
        "first_day": first.isoformat() if first else None,
        "last_day": last.isoformat() if last else None,
        "created_at": iso(st.created_at),
    }


@router.get("/weather-stations", summary="List weather stations", response_model=S.StationPage)
def list_stations(principal: Viewer, session: DbSession) -> dict:
    rows = session.scalars(
        select(WeatherStation).where(WeatherStation.tenant_id == principal.tenant_id).order_by(WeatherStation.id)
    )
    return page([station_json(session, st) for st in rows], None)


@router.post("/weather-stations", status_code=201, summary="Create a weather station", response_model=S.StationOut)
def create_station(body: StationIn, principal: Operator, session: DbSession) -> dict:
    st = weather.create_station(session, principal.tenant_id, body.code, body.name, actor=principal.name)
    return station_json(session, st)


async def _days_body(request: Request) -> bytes:
    return await read_body(request, request.app.state.settings.max_import_body, "the temperature file")


DaysBody = Annotated[bytes, Depends(_days_body)]


@router.post(
    "/weather-stations/{station_id}/days",
    summary="Import daily mean temperatures",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    response_model=S.DaysImportOut,
)
def import_days(station_id: Id, principal: Operator, body: DaysBody, session: DbSession) -> dict:
    """A `date,mean_c` file, or a daily climate file of the German weather service
    (`produkt_klima_tag_*.txt`: `MESS_DATUM`, `TMK`). Days already stored are replaced."""
    return weather.import_days(session, principal.tenant_id, station_id, body, actor=principal.name)


@router.get(
    "/weather-stations/{station_id}/degree-days", summary="Degree days of a period", response_model=S.DegreeDaysOut
)
def read_degree_days(station_id: Id, principal: Viewer, session: DbSession, first: date, last: date) -> dict:
    """Sum of (20 °C − daily mean) over the days from `first` to `last` whose mean is below 15 °C."""
    dd = weather.station_degree_days(session, principal.tenant_id, station_id, first, last)
    return {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "degree_days": dd.value,
        "days_with_data": dd.days_with_data,
        "days_missing": dd.days_missing,
    }


@router.put(
    "/properties/{property_id}/weather-station",
    summary="Set a property's weather station",
    response_model=S.PropertyOut,
)
def assign_station(property_id: Id, body: StationAssign, principal: Operator, session: DbSession) -> dict:
    p = weather.assign_station(session, principal.tenant_id, property_id, body.weather_station_id, actor=principal.name)
    return property_json(p)
