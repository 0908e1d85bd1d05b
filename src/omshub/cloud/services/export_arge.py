"""ARGE HeiWaKo / bved import (docs/exports.md §ARGE): L and M records create or update properties,
units and occupants through the master-data import (services/master_import.py: its checks, its
all-or-nothing rule and its audit); A records are checked and counted (master data has no place
for the reference keys yet).

How the records map:
* property ref = the object number, the first 9 digits of the Messdienst reference key (field 5);
  street, postcode, city from fields 7, 9, 10; the country from field 8 where it is a 2-letter code;
  the due date = the last day of the billing period (field 11);
* unit ref = the last 4 digits of an M record's reference key (the user within the object); a new
  unit takes its area from field 27 (heating base shares, 8,2) — reported as a warning, since the
  unit of field 27 is given by field 69, whose layout was not found; an existing unit keeps its area;
* occupant: customer ref = the landlord's reference key (field 6), name = tenant name lines 1-4,
  postal address from fields 12-15; the stay = the occupancy period (field 24); its end is left open
  when it is the end of the property's billing period (no move-out known).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.domain.exports import arge
from omshub.cloud.services import master_import
from omshub.cloud.services.master_import import Line
from omshub.cloud.store.models_billing import Property, Unit

MAX_BYTES = 20 << 20


def parse_file(data: bytes) -> list[arge.Record]:
    try:
        return arge.parse(data)
    except arge.ArgeError as exc:
        problems = [{"line": p.line, "field": p.field, "message": p.message, "german": p.german} for p in exc.problems]
        raise Invalid(str(exc), code="invalid_import", german=exc.german, details={"problems": problems}) from None


def _refused(line: int, field: str, message: str, german: str) -> Invalid:
    problems = [{"line": line, "field": field, "message": message, "german": german}]
    return Invalid(f"line {line}, field {field}: {message}", code="invalid_import",
                   german=f"Zeile {line}, Feld {field}: {german}", details={"problems": problems})  # fmt: skip


def import_records(session: Session, tenant_id: int, data: bytes, *, actor: str) -> dict:
    """Import an ARGE file (A, L, M records); all or nothing."""
    records = parse_file(data)
    props = [r for r in records if r.kind == "L"]
    periods = {r.fields[5][:9]: r.dates[11] for r in props}
    counts = {kind: sum(r.kind == kind for r in records) for kind in "ALM"}
    result: dict = {"records": counts, "warnings": []}
    if props:
        lines = [_property_line(r) for r in props]
        result["properties"] = master_import.import_properties(session, tenant_id, lines, actor)
    areas = {
        (ref, unit): area
        for ref, unit, area in session.execute(
            select(Property.ref, Unit.ref, Unit.area_m2)
            .join(Unit, Unit.property_id == Property.id)
            .where(Property.tenant_id == tenant_id)
        )
    }
    unit_lines, occupant_lines = [], []
    for r in (r for r in records if r.kind == "M"):
        unit_line = _unit_line(r, periods, areas, result["warnings"])
        if unit_line is not None:
            unit_lines.append(unit_line)
        occupant_lines.append(_occupant_line(r, periods))
    if unit_lines:
        result["units"] = master_import.import_units(session, tenant_id, unit_lines, actor)
    if occupant_lines:
        result["occupants"] = master_import.import_occupants(session, tenant_id, occupant_lines, actor)
    return result


def _property_line(r: arge.Record) -> Line:
    end = r.dates[11][1]
    values = {"ref": r.fields[5][:9], "name": r.fields[12] or r.fields[7], "street": r.fields[7],
              "postcode": r.fields[9], "city": r.fields[10], "due_date": f"{end.day}.{end.month}."}  # fmt: skip
    if len(r.fields[8]) == 2 and r.fields[8].isalpha():
        values["country"] = r.fields[8].upper()
    return Line(r.line, values)


def _unit_line(r: arge.Record, periods: dict, areas: dict, warnings: list) -> Line | None:
    """A new unit (None: it exists, and keeps its area)."""
    obj, unit = r.fields[5][:9], r.fields[5][9:]
    if obj not in periods:
        raise _refused(r.line, "5 Messdienst reference key (pos 19-31)", f"no L record of object {obj} in the file",
                       f"kein L-Satz des Objekts {obj} in der Datei")  # fmt: skip
    if (obj, unit) in areas:
        return None
    shares = int(r.fields[27] or "0") / 100
    if shares <= 0:
        raise _refused(
            r.line, "27 heating base shares (pos 513-522)",
            f"unit {unit} of object {obj} is new and its area is unknown (field 27 is 0)",
            f"Nutzeinheit {unit} des Objekts {obj} ist neu und ihre Fläche unbekannt (Feld 27 ist 0)",
        )  # fmt: skip
    warnings.append({"line": r.line, "field": "27 heating base shares",
                     "message": f"unit {unit}: area {shares} taken from the heating base shares",
                     "german": f"Nutzeinheit {unit}: Fläche {shares} aus den Heizungs-Grundanteilen"})  # fmt: skip
    areas[(obj, unit)] = shares
    return Line(r.line, {"property": obj, "ref": unit, "area_m2": str(shares)})


def _occupant_line(r: arge.Record, periods: dict) -> Line:
    obj, unit = r.fields[5][:9], r.fields[5][9:]
    moved_in, moved_out = r.dates[24]
    name = " ".join(r.fields[n] for n in (8, 9, 10, 11) if r.fields[n])
    if not name:
        raise _refused(r.line, "8 tenant name 1 (pos 53-87)", "an occupant needs a name",
                       "ein Nutzer braucht einen Namen")  # fmt: skip
    address = ", ".join(x for x in (r.fields[12], f"{r.fields[14]} {r.fields[15]}".strip(), r.fields[13]) if x)
    return Line(r.line, {
        "customer_ref": r.fields[6], "name": name, "postal_address": address, "property": obj, "unit": unit,
        "moved_in": moved_in.isoformat(),
        "moved_out": "" if moved_out == periods[obj][1] else moved_out.isoformat(),
    })  # fmt: skip
