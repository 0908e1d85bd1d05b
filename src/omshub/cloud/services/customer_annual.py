"""The annual information with the bill (HeizkostenV §6a(3), FFVAV §5(1); docs/customer-information.md
§Annual information): a unit's heat consumption of the billing period against the previous one, both
weather-corrected by degree days of the property's weather station (heat only; hot water shown as
measured, never corrected), and the tenant's content blocks. It is refused while a required block is
missing: information without them is incomplete (HeizkostenV §12(1))."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from omshub.cloud.domain import customer_info as ci
from omshub.cloud.domain.billing.consumption import worst_quality
from omshub.cloud.domain.billing.origins import Quality
from omshub.cloud.domain.billing.weather import degree_days
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.customer_inputs import attach_points, load_consumption, load_units, unit_figure
from omshub.cloud.services.customer_settings import settings_of
from omshub.cloud.services.properties import get_property, get_unit
from omshub.cloud.services.weather import station_means

REQUIRED_BLOCKS = {
    "energy_mix": ("energy mix (sources and generation, last year's average)", "Energieträgermix"),
    "emissions": ("annual greenhouse-gas emissions", "jährliche Treibhausgasemissionen"),
    "primary_energy_factor": ("primary energy factor of the network", "Primärenergiefaktor des Netzes"),
    "taxes_levies": ("taxes, levies and duties", "Steuern, Abgaben und Zölle"),
    "device_charges": ("charges for devices, reading and billing", "Entgelte für Geräte, Ablesung und Abrechnung"),
    "consumer_organisations": (
        "contact details of consumer organisations and energy agencies",
        "Kontaktdaten von Verbraucherorganisationen und Energieagenturen",
    ),
    "dispute_resolution": ("complaints and dispute resolution (VSBG)", "Beschwerden und Streitbeilegung (VSBG)"),
}


def check_blocks(settings: dict) -> dict:
    """The configured blocks; Invalid naming every required one that is missing or empty."""
    blocks = settings.get("annual_blocks") or {}
    missing = [name for name in REQUIRED_BLOCKS if not str(blocks.get(name) or "").strip()]
    if missing:
        raise Invalid(
            "annual information refused, content blocks missing: "
            + "; ".join(f"{m} ({REQUIRED_BLOCKS[m][0]})" for m in missing),
            german="Jahresinformation abgelehnt, es fehlen die Bausteine: "
            + "; ".join(f"{m} ({REQUIRED_BLOCKS[m][1]})" for m in missing),
        )
    return {name: blocks[name] for name in REQUIRED_BLOCKS}


def period_months(year: int, due_month: int) -> list[str]:
    """The 12 months of the billing period that ends with the due month of `year`."""
    return [ci.shift_month(ci.month_label(year, due_month), -k) for k in range(11, -1, -1)]


def _sum(points, labels: list[str], consumption: dict) -> dict:
    figs = [unit_figure(points, label, consumption) for label in labels]
    if any(f["value"] is None for f in figs):
        return {"value": None, "status": "missing" if any(f["status"] == "missing" for f in figs) else "not_collected"}
    quality = worst_quality([Quality(f["status"]) for f in figs])
    return {"value": round(sum(f["value"] for f in figs), 1), "status": quality.value}


def _degree_days(session: Session, station_id: int | None, labels: list[str]) -> float | None:
    if station_id is None:
        return None
    first, last = ci.month_days(labels[0])[0], ci.month_days(labels[-1])[1]
    means = station_means(session, station_id, first, last)
    dd = degree_days(means, first, last)
    return None if dd.days_missing else dd.value


def annual_information(
    session: Session, tenant_id: int, unit_id: int, year: int, *, visible_from: date | None = None
) -> dict:
    """The annual comparison of a unit for the billing period ending in `year`. `visible_from`: an
    occupant's move-in (portal) — a period that starts before it is not theirs and is shown as `–`
    (`before_move_in`), never another occupant's consumption (HeizkostenV §6b)."""
    unit = get_unit(session, tenant_id, unit_id)
    settings = settings_of(session, tenant_id)
    blocks = check_blocks(settings)
    prop = get_property(session, tenant_id, unit.property_id)
    facts = next(u for u in load_units(session, tenant_id, unit.id - 1, 1))
    attach_points(session, tenant_id, {facts.unit_id: facts})
    now_labels, then_labels = period_months(year, prop.due_month), period_months(year - 1, prop.due_month)
    ids = [pid for pts in facts.points.values() for pid, _ in pts]
    consumption = load_consumption(session, tenant_id, ids, now_labels + then_labels)
    dd_now = _degree_days(session, prop.weather_station_id, now_labels)
    dd_then = _degree_days(session, prop.weather_station_id, then_labels)
    reference = settings["reference_degree_days"] or dd_then
    lines = []
    for kind in ("heat", "hot_water"):
        if kind not in facts.points:
            continue
        current = _sum(facts.points[kind], now_labels, consumption)
        previous = _sum(facts.points[kind], then_labels, consumption)
        if visible_from is not None and ci.month_days(then_labels[0])[0] < visible_from:
            previous = {"value": None, "status": "before_move_in"}
        line: dict = {"kind": kind, "unit": ci.KIND_UNITS[kind], "current": current, "previous": previous}
        if kind == "heat":
            line["corrected"] = {
                "current": ci.weather_corrected(current["value"], dd_now, reference),
                "previous": ci.weather_corrected(previous["value"], dd_then, reference),
                "degree_days": {"current": dd_now, "previous": dd_then, "reference": reference},
                "method": "degree_days",
            }
        else:
            line["corrected"] = None  # hot water is never weather-corrected (HeizkostenV §6a(3))
        lines.append(line)
    return {
        "unit_id": unit.id,
        "unit": {"ref": unit.ref, "name": unit.name, "area_m2": unit.area_m2},
        "property": {
            "name": prop.name,
            "address": ", ".join(x for x in (prop.street, f"{prop.postcode} {prop.city}".strip()) if x),
        },
        "year": year,
        "period": [ci.month_days(now_labels[0])[0].isoformat(), ci.month_days(now_labels[-1])[1].isoformat()],
        "previous_period": [
            ci.month_days(then_labels[0])[0].isoformat(),
            ci.month_days(then_labels[-1])[1].isoformat(),
        ],
        "lines": lines,
        "blocks": blocks,
    }
