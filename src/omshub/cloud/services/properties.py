"""Billing master data: properties, units, occupants and their occupancies (docs/billing.md §Master
data). Tenant-scoped; every change is audited. The field rules here are shared by the API and the CSV
import (master_import.py), so both refuse the same things in the same words, in English and German.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.periods import Occupancy as Stay
from omshub.cloud.domain.billing.periods import occupancy_problems
from omshub.cloud.domain.errors import Conflict, Invalid, NotFound
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import Occupancy, Occupant, Property, Unit
from omshub.times import utcnow

ENERGY_CARRIERS = ("district_heat", "local_heat", "gas", "oil", "heat_pump", "wood", "electricity", "other")
SIZE_CLASSES = ("", "1-2", "3-6", "7-12", "13-30", "31+")  # units in the building
USAGES = ("residential", "commercial")
CHANNELS = ("portal", "email", "post")
LANGUAGES = ("de", "en")
MAX_AREA_M2 = 100_000.0
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_POSTCODE_RE = re.compile(r"^[0-9A-Za-z -]{0,10}$")

PROPERTY_TEXT = {"ref": 100, "name": 200, "street": 200, "city": 100, "heating_system": 32}
OCCUPANT_TEXT = {"customer_ref": 100, "name": 200, "phone": 50, "postal_address": 500}


def problem(field: str, message: str, german: str) -> dict:
    """One thing wrong with the input: which field, what and why, in English and German."""
    return {"field": field, "message": message, "german": german}


def refuse(problems: list[dict], code: str = "invalid_master_data") -> Invalid:
    """The refusal listing every problem (the first few in the message)."""
    first = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    first_de = "; ".join(f"{p['field']}: {p['german']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    more_de = f" (und {len(problems) - 5} weitere)" if len(problems) > 5 else ""
    return Invalid(first + more, code=code, german=first_de + more_de, details={"problems": problems})


def _text_problems(values: dict, limits: dict[str, int], required: Iterable[str]) -> list[dict]:
    out = []
    for name, limit in limits.items():
        value = values.get(name)
        if value is None:
            if name in required:
                out.append(problem(name, "is required", "fehlt"))
            continue
        if not isinstance(value, str) or "\x00" in value:
            out.append(problem(name, "must be text", "muss Text sein"))
        elif len(value) > limit:
            out.append(problem(name, f"at most {limit} characters", f"höchstens {limit} Zeichen"))
        elif name in required and not value.strip():
            out.append(problem(name, "must not be empty", "darf nicht leer sein"))
    return out


def _choice(values: dict, name: str, choices: tuple[str, ...]) -> list[dict]:
    value = values.get(name)
    if value is None or value in choices:
        return []
    shown = ", ".join(c or "(empty)" for c in choices)
    return [problem(name, f"{value!r} is not one of {shown}", f"{value!r} ist keiner der Werte {shown}")]


def property_problems(values: dict, *, new: bool) -> list[dict]:
    """What is wrong with a property's fields (`new`: ref is required)."""
    out = _text_problems(values, PROPERTY_TEXT, ("ref",) if new else ())
    out += _choice(values, "energy_carrier", ENERGY_CARRIERS) + _choice(values, "size_class", SIZE_CLASSES)
    postcode = values.get("postcode")
    if postcode is not None and not (isinstance(postcode, str) and _POSTCODE_RE.match(postcode)):
        out.append(problem("postcode", "at most 10 letters or digits", "höchstens 10 Buchstaben oder Ziffern"))
    country = values.get("country")
    if country is not None and not (isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country)):
        out.append(problem("country", "two capital letters (ISO 3166, e.g. DE)", "zwei Großbuchstaben (z. B. DE)"))
    out += _due_date_problems(values)
    zone = values.get("timezone")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            out.append(problem("timezone", f"{zone!r} is no time zone", f"{zone!r} ist keine Zeitzone"))
    return out


def _due_date_problems(values: dict) -> list[dict]:
    month, day = values.get("due_month"), values.get("due_day")
    if month is None and day is None:
        return []
    try:
        date(2024, int(month if month is not None else 12), int(day if day is not None else 31))
    except (ValueError, TypeError):
        return [problem("due_date", f"{day}.{month}. is no day of the year", f"{day}.{month}. ist kein Kalendertag")]
    return []


def unit_problems(values: dict, *, new: bool) -> list[dict]:
    out = _text_problems(values, {"ref": 100, "name": 200}, ("ref",) if new else ())
    area = values.get("area_m2")
    if area is None and new:
        out.append(problem("area_m2", "is required", "fehlt"))
    elif area is not None and (
        not isinstance(area, (int, float)) or not math.isfinite(area) or not 0 < area <= MAX_AREA_M2
    ):
        out.append(
            problem(
                "area_m2",
                f"living area must be more than 0 and at most {MAX_AREA_M2:,.0f} m², got {area}",
                f"Wohnfläche muss größer als 0 und höchstens 100.000 m² sein, nicht {area}",
            )
        )
    return out + _choice(values, "usage", USAGES)


def occupant_problems(values: dict, *, new: bool) -> list[dict]:
    out = _text_problems(values, OCCUPANT_TEXT, ("customer_ref", "name") if new else ())
    email = values.get("email")
    if email and not (isinstance(email, str) and len(email) <= 254 and _EMAIL_RE.match(email)):
        out.append(problem("email", f"{email!r} is no e-mail address", f"{email!r} ist keine E-Mail-Adresse"))
    out += _choice(values, "channel", CHANNELS) + _choice(values, "language", LANGUAGES)
    if values.get("channel") == "email" and not (email or "").strip():
        out.append(problem("email", "channel e-mail needs an address", "Versand per E-Mail braucht eine Adresse"))
    return out


# --- look-ups (always within the tenant) ---


def tenant_row(session: Session, model, tenant_id: int, row_id: int, english: str, german: str):
    """The tenant's row of `model` with this id, else NotFound naming it (`english`/`german`: what it
    is, e.g. "property" / "Liegenschaft"); another tenant's row is not found either."""
    row = session.scalar(select(model).where(model.id == row_id, model.tenant_id == tenant_id))
    if row is None:
        raise NotFound(f"{english} {row_id} not found", german=f"{german} {row_id} nicht gefunden")
    return row


def get_property(session: Session, tenant_id: int, property_id: int) -> Property:
    return tenant_row(session, Property, tenant_id, property_id, "property", "Liegenschaft")


def get_unit(session: Session, tenant_id: int, unit_id: int) -> Unit:
    return tenant_row(session, Unit, tenant_id, unit_id, "unit", "Nutzeinheit")


def get_occupant(session: Session, tenant_id: int, occupant_id: int) -> Occupant:
    return tenant_row(session, Occupant, tenant_id, occupant_id, "occupant", "Nutzer")


def get_occupancy(session: Session, tenant_id: int, occupancy_id: int) -> Occupancy:
    return tenant_row(session, Occupancy, tenant_id, occupancy_id, "occupancy", "Nutzungszeitraum")


# --- changes ---


def _apply(obj, values: dict, names: Iterable[str]) -> dict:
    before = {}
    for name in names:
        if name in values and values[name] is not None and getattr(obj, name) != values[name]:
            before[name] = getattr(obj, name)
            setattr(obj, name, values[name])
    return before


_PROPERTY_FIELDS = (*PROPERTY_TEXT, "postcode", "country", "energy_carrier", "size_class", "due_month", "due_day")
_PROPERTY_FIELDS += ("timezone",)


def save_property(session: Session, tenant_id: int, values: dict, *, actor: str, property_id: int | None = None):
    """Create (no `property_id`) or change a property; Invalid listing every problem, Conflict on a
    reference that another property has."""
    problems = property_problems(values, new=property_id is None)
    if problems:
        raise refuse(problems)
    ref = values.get("ref")
    if ref is not None:
        other = session.scalar(select(Property.id).where(Property.tenant_id == tenant_id, Property.ref == ref))
        if other is not None and other != property_id:
            raise Conflict(
                f"a property with ref {ref!r} exists", german=f"Eine Liegenschaft mit Nummer {ref!r} gibt es schon"
            )
    if property_id is None:
        p = Property(tenant_id=tenant_id, created_at=utcnow())
        _apply(p, {k: v for k, v in _property_defaults().items() if values.get(k) is None}, _PROPERTY_FIELDS)
        session.add(p)
    else:
        p = get_property(session, tenant_id, property_id)
    before = _apply(p, values, _PROPERTY_FIELDS)
    session.flush()
    action = "property.create" if property_id is None else "property.change"
    audit(session, tenant_id, actor, action, {"property": p.id, "ref": p.ref, "before": before})
    return p


def _property_defaults() -> dict:
    return {
        "name": "",
        "street": "",
        "postcode": "",
        "city": "",
        "country": "DE",
        "heating_system": "",
        "energy_carrier": "district_heat",
        "size_class": "",
        "due_month": 12,
        "due_day": 31,
        "timezone": "Europe/Berlin",
    }


def save_unit(
    session: Session, tenant_id: int, values: dict, *, actor: str, property_id: int | None = None, unit_id=None
) -> Unit:
    """Create a unit in `property_id` or change unit `unit_id`."""
    problems = unit_problems(values, new=unit_id is None)
    if problems:
        raise refuse(problems)
    u = None if unit_id is None else get_unit(session, tenant_id, unit_id)
    in_property = get_property(session, tenant_id, property_id or 0).id if u is None else u.property_id
    ref = values.get("ref")
    if ref is not None:
        other = session.scalar(select(Unit.id).where(Unit.property_id == in_property, Unit.ref == ref))
        if other is not None and other != unit_id:
            raise Conflict(
                f"the property has a unit {ref!r}", german=f"Die Liegenschaft hat schon eine Nutzeinheit {ref!r}"
            )
    if u is None:
        u = Unit(tenant_id=tenant_id, property_id=in_property, name="", usage="residential", created_at=utcnow())
        session.add(u)
    before = _apply(u, values, ("ref", "name", "area_m2", "usage"))
    session.flush()
    action = "unit.create" if unit_id is None else "unit.change"
    audit(session, tenant_id, actor, action, {"unit": u.id, "ref": u.ref, "before": before})
    return u


def assign_point(session: Session, tenant_id: int, unit_id: int | None, point_id: int, *, actor: str) -> MeteringPoint:
    """Put a metering point in a unit (None: take it out)."""
    mp = session.scalar(select(MeteringPoint).where(MeteringPoint.id == point_id, MeteringPoint.tenant_id == tenant_id))
    if mp is None:
        raise NotFound(f"metering point {point_id} not found", german=f"Messstelle {point_id} nicht gefunden")
    if unit_id is not None:
        get_unit(session, tenant_id, unit_id)
    before = mp.unit_id
    mp.unit_id = unit_id
    audit(session, tenant_id, actor, "unit.assign_point", {"point": point_id, "unit": unit_id, "before": before})
    return mp


def save_occupant(session: Session, tenant_id: int, values: dict, *, actor: str, occupant_id=None) -> Occupant:
    problems = occupant_problems(values, new=occupant_id is None)
    if problems:
        raise refuse(problems)
    ref = values.get("customer_ref")
    if ref is not None:
        other = session.scalar(select(Occupant.id).where(Occupant.tenant_id == tenant_id, Occupant.customer_ref == ref))
        if other is not None and other != occupant_id:
            raise Conflict(
                f"an occupant with customer reference {ref!r} exists",
                german=f"Einen Nutzer mit Kundennummer {ref!r} gibt es schon",
            )
    if occupant_id is None:
        o = Occupant(tenant_id=tenant_id, email="", phone="", postal_address="", channel="portal", language="de")
        o.created_at = utcnow()
        session.add(o)
    else:
        o = get_occupant(session, tenant_id, occupant_id)
    before = _apply(o, values, (*OCCUPANT_TEXT, "email", "channel", "language"))
    session.flush()
    action = "occupant.create" if occupant_id is None else "occupant.change"
    # contact details are personal data: the audit keeps which fields changed, not their values
    audit(session, tenant_id, actor, action, {"occupant": o.id, "changed": sorted(before)})
    return o


def stays_of(session: Session, unit_id: int, *, without: int | None = None) -> list[Stay]:
    rows = session.execute(
        select(Occupancy.id, Occupancy.occupant_id, Occupancy.moved_in, Occupancy.moved_out).where(
            Occupancy.unit_id == unit_id
        )
    )
    return [Stay(f"occupancy {r.id}", r.moved_in, r.moved_out) for r in rows if r.id != without]


def occupancy_conflicts(stays: list[Stay]) -> list[dict]:
    """The overlaps and backwards dates among a unit's stays, as problems."""
    return [problem("moved_in", en, de) for en, de in occupancy_problems(stays)]


def save_occupancy(
    session: Session,
    tenant_id: int,
    *,
    unit_id: int,
    occupant_id: int,
    moved_in: date,
    moved_out: date | None,
    actor: str,
    occupancy_id: int | None = None,
) -> Occupancy:
    """Add (or change) an occupant's stay in a unit; refused if it overlaps another stay there."""
    unit = get_unit(session, tenant_id, unit_id)
    get_occupant(session, tenant_id, occupant_id)
    stays = stays_of(session, unit.id, without=occupancy_id) + [Stay("the new occupancy", moved_in, moved_out)]
    problems = occupancy_conflicts(stays)
    if problems:
        raise refuse(problems, code="occupancy_overlap")
    if occupancy_id is None:
        o = Occupancy(tenant_id=tenant_id, unit_id=unit.id, occupant_id=occupant_id, created_at=utcnow())
        session.add(o)
        before: dict = {}
    else:
        o = get_occupancy(session, tenant_id, occupancy_id)
        before = {"moved_in": o.moved_in.isoformat(), "moved_out": o.moved_out and o.moved_out.isoformat()}
    o.moved_in, o.moved_out = moved_in, moved_out
    session.flush()
    details = {"occupancy": o.id, "unit": unit.id, "occupant": occupant_id, "before": before}
    audit(session, tenant_id, actor, "occupancy.save", details)
    return o
