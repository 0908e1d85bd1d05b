"""The demo's billing master data, through the API like a heat supplier's ERP export: one property per
simulated building (its gateway's site), one unit per metering point with a living area, and a weather
station whose daily means are the simulator's own climate (sim/weather.py), so degree days fit the
meters' consumption (docs/billing.md)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

DEMO_STATION = "demo-klima"


def _area(ref: str) -> float:
    """A flat's living area from its reference: 45 to 110 m², the same every run."""
    return 45.0 + sum(ref.encode()) % 66


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def daily_means_csv(fleet, first: date, last: date) -> str:
    """The fleet climate's daily means as a `date,mean_c` file (the simulator's temperatures are UTC
    days; a local day differs by an hour or two, which a daily mean hardly notices)."""
    lines = ["date,mean_c"]
    day = first
    while day <= last:
        unix_day = (day - date(1970, 1, 1)).days
        lines.append(f"{day.isoformat()},{fleet.weather.daily_mean(unix_day):.1f}")
        day += timedelta(days=1)
    return "\n".join(lines) + "\n"


def provision_master_data(headend, fleet, start: float, end: float) -> dict:
    """Properties, units with their metering points, and the weather station with the simulated
    period's daily means (a month before it too: the first closed month). -> counts."""
    sites = sorted({m.site for m in fleet.meters})
    properties = _csv(
        ["ref", "name", "energy_carrier", "size_class", "due_date", "timezone"],
        [[site, site, "district_heat", "7-12", "31.12.", str(fleet.tz)] for site in sites],
    )
    headend.call(
        "POST",
        "/api/v1/master-data/import/properties",
        content=properties.encode(),
        headers={"Content-Type": "text/csv"},
    )
    units = _csv(
        ["property", "ref", "area_m2", "metering_points"],
        [[m.site, f"{m.kind}-{m.id}", f"{_area(m.id):.1f}", f"{m.site}/{m.kind}/{m.id}"] for m in fleet.meters],
    )
    headend.call(
        "POST", "/api/v1/master-data/import/units", content=units.encode(), headers={"Content-Type": "text/csv"}
    )
    station = headend.call("POST", "/api/v1/weather-stations", json={"code": DEMO_STATION, "name": "Demo climate"})
    first = (datetime.fromtimestamp(start, UTC).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    last = datetime.fromtimestamp(end, UTC).date()
    headend.call(
        "POST",
        f"/api/v1/weather-stations/{station['id']}/days",
        content=daily_means_csv(fleet, first, last).encode(),
        headers={"Content-Type": "text/csv"},
    )
    listed = headend.call("GET", "/api/v1/properties", params={"limit": 1000})["items"]
    for p in listed:
        headend.call("PUT", f"/api/v1/properties/{p['id']}/weather-station", json={"weather_station_id": station["id"]})
    return {"properties": len(sites), "units": len(fleet.meters), "station": station["id"]}
