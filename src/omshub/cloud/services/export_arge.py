"""ARGE HeiWaKo / bved import and the E898 export (docs/exports.md §ARGE): L and M records create or update properties,
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

E898 (`e898_documents`): each monthly customer information record is a document of type VDA, keyed
by the same mapping backwards (object number, user number, landlord's key).
"""

from __future__ import annotations

import io
import re
import zipfile

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.domain.exports import arge
from omshub.cloud.services import master_import
from omshub.cloud.services.customer_delivery import recipient_lines
from omshub.cloud.services.customer_pdf import letter_pdf
from omshub.cloud.services.customer_settings import settings_of
from omshub.cloud.services.master_import import Line
from omshub.cloud.store.models_billing import Occupant, Property, Unit
from omshub.cloud.store.models_customers import CustomerRecord

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


# E898: the monthly customer information as documents of type VDA (docs/exports.md §ARGE export)
_DIGITS = {9: re.compile(r"^\d{1,9}$"), 4: re.compile(r"^\d{1,4}$")}


def e898_documents(session: Session, tenant_id: int, month: str) -> list[tuple[arge.Document, CustomerRecord]]:
    """One Document per customer information record of `month` (each is one PDF), in the order of
    property, unit and stay. The keys come from the master data as the ARGE import made it: object
    number = the property's ref (up to 9 digits), user number = the unit's ref (up to 4 digits), the
    landlord's key = the occupant's customer ref; user group 0; user sequence = the stay's place in
    the unit's month (0 the first); billing-company key 00 (Tabelle U was not found); page 1; the last
    day = the last day the record covers; the file name VDA_<object>_<user>[_<sequence>]_<month>.pdf."""
    found = session.execute(
        select(CustomerRecord, Property.ref, Unit.ref, Occupant.customer_ref)
        .join(Unit, Unit.id == CustomerRecord.unit_id)
        .join(Property, Property.id == CustomerRecord.property_id)
        .outerjoin(Occupant, Occupant.id == CustomerRecord.occupant_id)
        .where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.month == month)
        .order_by(Property.ref, Unit.ref, CustomerRecord.day_from, CustomerRecord.id)
    ).all()
    out: list[tuple[arge.Document, CustomerRecord]] = []
    seq: dict[int, int] = {}
    for record, property_ref, unit_ref, customer_ref in found:
        if not _DIGITS[9].match(property_ref):
            raise Invalid(
                f"property {property_ref!r}: its ref is not an ARGE object number (1 to 9 digits), which E898 needs",
                german=f"Liegenschaft {property_ref!r}: die Referenz ist keine ARGE-Objektnummer (1 bis 9 Ziffern), "
                "die E898 braucht",
                field="property",
            )
        if not _DIGITS[4].match(unit_ref):
            raise Invalid(
                f"unit {unit_ref!r} of property {property_ref!r}: its ref is not an ARGE user number (1 to 4 digits), "
                "which E898 needs",
                german=f"Nutzeinheit {unit_ref!r} der Liegenschaft {property_ref!r}: die Referenz ist keine "
                "ARGE-Nutzernummer (1 bis 4 Ziffern), die E898 braucht",
                field="unit",
            )
        landlord = customer_ref or ""
        if len(landlord) > 20:
            raise Invalid(
                f"occupant {landlord!r}: the customer ref is longer than the 20 characters of the landlord's key",
                german=f"Nutzer {landlord!r}: die Kundennummer ist länger als die 20 Zeichen des Ordnungsbegriffs",
                field="customer_ref",
            )
        place = seq[record.unit_id] = seq.get(record.unit_id, -1) + 1
        if place > 9:
            raise Invalid(
                f"unit {unit_ref!r}: more than 10 stays in {month} (the user sequence has one digit)",
                german=f"Nutzeinheit {unit_ref!r}: mehr als 10 Nutzer im {month} (die Nutzerfolge hat eine Ziffer)",
                field="unit",
            )
        obj, user = int(property_ref), int(unit_ref)
        name = f"VDA_{obj:09d}_{user:04d}{f'_{place}' if place else ''}_{month}.pdf"
        doc = arge.Document(obj, 0, user, place, landlord, name, record.day_to, "VDA", page=1)
        out.append((doc, record))
    return out


def e898_file(session: Session, tenant_id: int, month: str) -> bytes:
    """The E898 records of `month` (ISO-8859-1 text, CR LF after each record)."""
    return _latin1(e898_documents(session, tenant_id, month))


def _latin1(docs: list[tuple[arge.Document, CustomerRecord]]) -> bytes:
    text = "".join(arge.e898(i, doc) + "\r\n" for i, (doc, _) in enumerate(docs, 1))
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise Invalid(
            f"E898: {bad!r} cannot be written in ISO-8859-1, the character set of the ARGE exchange",
            german=f"E898: {bad!r} lässt sich nicht in ISO-8859-1 schreiben, dem Zeichensatz des ARGE-Austauschs",
        ) from None


def e898_bundle(session: Session, tenant_id: int, month: str) -> bytes:
    """A zip: `E898_<month>.txt` and every PDF under the name its record gives."""
    docs = e898_documents(session, tenant_id, month)
    text = _latin1(docs)
    settings = settings_of(session, tenant_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"E898_{month}.txt", text)
        for doc, record in docs:
            occupant = session.get(Occupant, record.occupant_id) if record.occupant_id else None
            lang = occupant.language if occupant is not None and occupant.language in ("de", "en") else "de"
            recipient = recipient_lines(occupant, record.content) if occupant else record.content["property"]["name"]
            z.writestr(doc.file_name, letter_pdf(record.content, settings, recipient, lang))
    return buf.getvalue()
