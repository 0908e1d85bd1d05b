"""Weather stations and their daily mean temperatures: import, assignment to properties, degree days
(docs/billing.md §Weather). The parsing and the arithmetic are the domain's (domain/billing/weather.py).
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.weather import DegreeDays, TemperatureFileError, degree_days, parse_daily_means
from omshub.cloud.domain.errors import Conflict, Invalid
from omshub.cloud.services.properties import get_property, tenant_row
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_billing import WeatherDay, WeatherStation
from omshub.times import utcnow

_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def get_station(session: Session, tenant_id: int, station_id: int) -> WeatherStation:
    return tenant_row(session, WeatherStation, tenant_id, station_id, "weather station", "Wetterstation")


def create_station(session: Session, tenant_id: int, code: str, name: str, *, actor: str) -> WeatherStation:
    if not _CODE_RE.match(code):
        raise Invalid(
            "code: 1 to 32 letters, digits, '.', '_' or '-' (e.g. the weather service's station number)",
            german="Kennung: 1 bis 32 Buchstaben, Ziffern, '.', '_' oder '-' (z. B. die Stationsnummer des DWD)",
        )
    exists = session.scalar(
        select(WeatherStation.id).where(WeatherStation.tenant_id == tenant_id, WeatherStation.code == code)
    )
    if exists is not None:
        raise Conflict(f"a weather station {code!r} exists", german=f"Die Wetterstation {code!r} gibt es schon")
    st = WeatherStation(tenant_id=tenant_id, code=code, name=name, created_at=utcnow())
    session.add(st)
    session.flush()
    audit(session, tenant_id, actor, "weather.station.create", {"station": st.id, "code": code})
    return st


def import_days(session: Session, tenant_id: int, station_id: int, data: bytes, *, actor: str) -> dict:
    """Daily means from a file (domain/billing/weather.parse_daily_means); a day already stored is
    replaced by the file's value (a corrected series), and the audit keeps how many were replaced."""
    st = get_station(session, tenant_id, station_id)
    try:
        means = parse_daily_means(data)
    except TemperatureFileError as e:
        raise Invalid(
            f"line {e.line}: {e.reason}",
            code="invalid_temperature_file",
            german=f"Zeile {e.line}: {e.reason}",
            details={"line": e.line},
        ) from None
    if not means:
        raise Invalid("the file holds no daily mean", german="Die Datei enthält keinen Tagesmittelwert")
    days = sorted(means)
    stored = set(
        session.scalars(
            select(WeatherDay.day).where(WeatherDay.station_id == st.id, WeatherDay.day.between(days[0], days[-1]))
        )
    )
    replaced = [d for d in days if d in stored]
    if replaced:
        session.execute(delete(WeatherDay).where(WeatherDay.station_id == st.id, WeatherDay.day.in_(replaced)))
    session.add_all(WeatherDay(station_id=st.id, day=d, mean_c=means[d]) for d in days)
    session.flush()
    details = {
        "station": st.id,
        "days": len(days),
        "replaced": len(replaced),
        "first": str(days[0]),
        "last": str(days[-1]),
    }
    audit(session, tenant_id, actor, "weather.import", details)
    return {"days": len(days), "replaced": len(replaced), "first": days[0].isoformat(), "last": days[-1].isoformat()}


def station_means(session: Session, station_id: int, first: date, last: date) -> dict[date, float]:
    rows = session.execute(
        select(WeatherDay.day, WeatherDay.mean_c).where(
            WeatherDay.station_id == station_id, WeatherDay.day.between(first, last)
        )
    )
    return {row.day: row.mean_c for row in rows}


def station_degree_days(session: Session, tenant_id: int, station_id: int, first: date, last: date) -> DegreeDays:
    if last < first:
        raise Invalid("to must not be before from", german="„bis“ darf nicht vor „von“ liegen")
    if (last - first).days > 366 * 20:
        raise Invalid("at most 20 years at once", german="höchstens 20 Jahre auf einmal")
    st = get_station(session, tenant_id, station_id)
    return degree_days(station_means(session, st.id, first, last), first, last)


def assign_station(session: Session, tenant_id: int, property_id: int, station_id: int | None, *, actor: str):
    p = get_property(session, tenant_id, property_id)
    if station_id is not None:
        get_station(session, tenant_id, station_id)
    before = p.weather_station_id
    p.weather_station_id = station_id
    audit(
        session,
        tenant_id,
        actor,
        "property.weather_station",
        {"property": p.id, "station": station_id, "before": before},
    )
    return p
