"""CSV import of billing master data: properties, units (with their metering points) and occupants
(with their occupancies) — docs/billing.md §Import.

A file is imported whole or not at all: every line is checked first (fields, references to properties,
units and metering points, overlapping occupancies within the file and against the database), and a
refusal lists every problem with its line and field, in English and German. Lines whose reference
exists update that object (empty cells leave a field as it is). The file must be UTF-8 (a BOM is
fine); `;` or `,` separates the columns; numbers may use a decimal comma; dates are 2026-11-01 or
01.11.2026.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing.periods import Occupancy as Stay
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services import properties as props
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import Occupancy, Occupant, Property, Unit
from omshub.times import utcnow

MAX_ROWS = 50_000
COLUMNS = {
    "properties": (
        ("ref", True),
        ("name", False),
        ("street", False),
        ("postcode", False),
        ("city", False),
        ("country", False),
        ("heating_system", False),
        ("energy_carrier", False),
        ("size_class", False),
        ("due_date", False),
        ("timezone", False),
    ),
    "units": (
        ("property", True),
        ("ref", True),
        ("name", False),
        ("area_m2", True),
        ("usage", False),
        ("metering_points", False),
    ),
    "occupants": (
        ("customer_ref", True),
        ("name", True),
        ("email", False),
        ("phone", False),
        ("postal_address", False),
        ("channel", False),
        ("language", False),
        ("property", True),
        ("unit", True),
        ("moved_in", True),
        ("moved_out", False),
    ),
}
_DUE_RE = re.compile(r"^(?:(\d{1,2})\.(\d{1,2})\.?|(\d{1,2})-(\d{1,2}))$")


@dataclass
class Line:
    number: int
    values: dict


class ImportProblems:
    """Problems collected over the whole file, each with its line."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, line: int, field: str, message: str, german: str) -> None:
        self.items.append({"line": line, "field": field, "message": message, "german": german})

    def extend(self, line: int, problems: list[dict]) -> None:
        for p in problems:
            self.add(line, p["field"], p["message"], p["german"])

    def raise_if_any(self) -> None:
        if self.items:
            shown = "; ".join(f"line {p['line']}, {p['field']}: {p['message']}" for p in self.items[:5])
            gezeigt = "; ".join(f"Zeile {p['line']}, {p['field']}: {p['german']}" for p in self.items[:5])
            more = len(self.items) - 5
            raise Invalid(
                shown + (f" (and {more} more)" if more > 0 else ""),
                code="invalid_import",
                german=gezeigt + (f" (und {more} weitere)" if more > 0 else ""),
                details={"problems": self.items},
            )


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else a refusal naming the first line that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise Invalid(
            f"line {line}: the file is not UTF-8 text; save it as 'CSV UTF-8'",
            code="invalid_import",
            german=f"Zeile {line}: die Datei ist kein UTF-8-Text; bitte als „CSV UTF-8“ speichern",
            details={"problems": [{"line": line, "field": "", "message": "not UTF-8", "german": "kein UTF-8"}]},
        ) from None


def parse_lines(kind: str, data: bytes) -> list[Line]:
    """The file's lines as dicts of the known columns (header required)."""
    if kind not in COLUMNS:
        raise Invalid(
            f"kind must be one of {', '.join(COLUMNS)}", german=f"Art muss eine von {', '.join(COLUMNS)} sein"
        )
    text = decode_text(data)
    if "\x00" in text:
        raise Invalid("the file contains NUL characters: it is no CSV file", german="Die Datei ist keine CSV-Datei")
    rows_text = text.splitlines()
    if not rows_text:
        raise Invalid("the file is empty", code="invalid_import", german="Die Datei ist leer")
    if len(rows_text) > MAX_ROWS + 1:
        raise Invalid(f"at most {MAX_ROWS} lines", code="invalid_import", german=f"höchstens {MAX_ROWS} Zeilen")
    delimiter = ";" if rows_text[0].count(";") >= rows_text[0].count(",") else ","
    reader = csv.reader(rows_text, delimiter=delimiter, strict=True)
    problems = ImportProblems()
    try:
        header = [h.strip().lower() for h in next(reader)]
        _check_header(kind, header, problems)
        problems.raise_if_any()
        lines = []
        for number, row in enumerate(reader, start=2):
            if not "".join(row).strip():
                continue
            if len(row) != len(header):
                problems.add(number, "", f"{len(row)} cells, the header has {len(header)}", "falsche Spaltenzahl")
                continue
            lines.append(Line(number, {h: c.strip() for h, c in zip(header, row, strict=True)}))
    except csv.Error as e:
        problems.add(reader.line_num, "", f"not a valid CSV line ({e})", "keine gültige CSV-Zeile")
    problems.raise_if_any()
    return lines


def _check_header(kind: str, header: list[str], problems: ImportProblems) -> None:
    known = [c for c, _ in COLUMNS[kind]]
    for name in header:
        if name not in known:
            problems.add(1, name, f"unknown column; columns are {', '.join(known)}", "unbekannte Spalte")
    for name, required in COLUMNS[kind]:
        if required and name not in header:
            problems.add(1, name, "required column missing", "Pflichtspalte fehlt")
    if len(set(header)) != len(header):
        problems.add(1, "", "a column appears twice", "eine Spalte kommt doppelt vor")


def parse_date(text: str) -> date | None:
    """2026-11-01 or 01.11.2026; None for an empty cell; ValueError otherwise."""
    if not text:
        return None
    m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", text)
    if m:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    return date.fromisoformat(text)


def parse_number(text: str) -> float:
    """72.5 or 72,5 (a decimal comma; no thousands separators)."""
    return float(text.replace(",", "."))


def _cells(line: Line, names) -> dict:
    return {n: line.values[n] for n in names if line.values.get(n)}


def _property_values(line: Line, problems: ImportProblems) -> dict:
    values = _cells(line, [c for c, _ in COLUMNS["properties"] if c != "due_date"])
    due = line.values.get("due_date", "")
    if due:
        m = _DUE_RE.match(due)
        if m:
            day, month = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            values["due_day"], values["due_month"] = int(day), int(month)
        else:
            problems.add(line.number, "due_date", f"{due!r}: write 31.12. or 12-31", f"{due!r}: bitte 31.12. schreiben")
    problems.extend(line.number, props.property_problems(values, new=True))
    return values


def import_properties(session: Session, tenant_id: int, lines: list[Line], actor: str) -> dict:
    problems = ImportProblems()
    checked = [(line, _property_values(line, problems)) for line in lines]
    _no_repeats(problems, [(line.number, v.get("ref")) for line, v in checked], "ref")
    problems.raise_if_any()
    existing = dict(session.execute(select(Property.ref, Property.id).where(Property.tenant_id == tenant_id)).all())
    created = 0
    for _, values in checked:
        pid = existing.get(values["ref"])
        props.save_property(session, tenant_id, values, actor=actor, property_id=pid)
        created += pid is None
    return {"kind": "properties", "lines": len(checked), "created": created, "updated": len(checked) - created}


def _no_repeats(problems: ImportProblems, keyed: list[tuple[int, object]], field: str) -> None:
    seen: dict[object, int] = {}
    for number, key in keyed:
        if key is None:
            continue
        if key in seen:
            problems.add(number, field, f"repeats line {seen[key]}", f"wiederholt Zeile {seen[key]}")
        else:
            seen[key] = number


def _property_ids(session: Session, tenant_id: int) -> dict[str, int]:
    return dict(session.execute(select(Property.ref, Property.id).where(Property.tenant_id == tenant_id)).all())


def import_units(session: Session, tenant_id: int, lines: list[Line], actor: str) -> dict:
    problems = ImportProblems()
    properties = _property_ids(session, tenant_id)
    points = dict(
        session.execute(select(MeteringPoint.ref, MeteringPoint.id).where(MeteringPoint.tenant_id == tenant_id)).all()
    )
    checked = []
    for line in lines:
        values = _cells(line, ("ref", "name", "usage"))
        try:
            values["area_m2"] = parse_number(line.values["area_m2"])
        except ValueError:
            problems.add(line.number, "area_m2", f"{line.values['area_m2']!r} is no number", "keine Zahl")
        problems.extend(line.number, props.unit_problems(values, new=True))
        pid = properties.get(line.values["property"])
        if pid is None:
            problems.add(line.number, "property", f"no property {line.values['property']!r}", "Liegenschaft unbekannt")
        refs = [r for r in re.split(r"[ |]+", line.values.get("metering_points", "")) if r]
        for r in refs:
            if r not in points:
                problems.add(line.number, "metering_points", f"no metering point {r!r}", f"Messstelle {r!r} unbekannt")
        checked.append((line, pid, values, [points[r] for r in refs if r in points]))
    _no_repeats(problems, [(ln.number, (pid, v.get("ref"))) for ln, pid, v, _ in checked], "ref")
    problems.raise_if_any()
    created = 0
    for _, pid, values, point_ids in checked:
        uid = session.scalar(select(Unit.id).where(Unit.property_id == pid, Unit.ref == values["ref"]))
        unit = props.save_unit(session, tenant_id, values, actor=actor, property_id=pid, unit_id=uid)
        created += uid is None
        for point_id in point_ids:
            props.assign_point(session, tenant_id, unit.id, point_id, actor=actor)
    return {"kind": "units", "lines": len(checked), "created": created, "updated": len(checked) - created}


def _occupancy_dates(line: Line, problems: ImportProblems) -> tuple[date | None, date | None]:
    out: list[date | None] = []
    for name in ("moved_in", "moved_out"):
        try:
            out.append(parse_date(line.values.get(name, "")))
        except ValueError:
            problems.add(line.number, name, f"{line.values[name]!r} is no date", "kein Datum (TT.MM.JJJJ)")
            out.append(None)
    return out[0], out[1]


def _unit_ids(session: Session, tenant_id: int) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(Property.ref, Unit.ref, Unit.id)
        .join(Unit, Unit.property_id == Property.id)
        .where(Property.tenant_id == tenant_id)
    )
    return {(p, u): uid for p, u, uid in rows}


def import_occupants(session: Session, tenant_id: int, lines: list[Line], actor: str) -> dict:
    problems = ImportProblems()
    units = _unit_ids(session, tenant_id)
    checked = []
    for line in lines:
        values = _cells(line, ("customer_ref", "name", "email", "phone", "postal_address", "channel", "language"))
        problems.extend(line.number, props.occupant_problems(values, new=True))
        uid = units.get((line.values["property"], line.values["unit"]))
        if uid is None:
            where = f"{line.values['property']}/{line.values['unit']}"
            problems.add(line.number, "unit", f"no unit {where!r}", f"Nutzeinheit {where!r} unbekannt")
        moved_in, moved_out = _occupancy_dates(line, problems)
        checked.append((line, uid, values, moved_in, moved_out))
    _check_stays(session, checked, problems)
    problems.raise_if_any()
    return _apply_occupants(session, tenant_id, checked, actor)


def _check_stays(session: Session, checked: list, problems: ImportProblems) -> None:
    """Overlaps among the file's stays in each unit and against the stays already stored (a line for
    an existing stay — same occupant, unit and move-in — replaces it)."""
    by_unit: dict[int, list[tuple[int, str, Stay]]] = {}
    for line, uid, values, moved_in, moved_out in checked:
        if uid is not None and moved_in is not None:
            ref = values.get("customer_ref", "")
            by_unit.setdefault(uid, []).append((line.number, ref, Stay(f"line {line.number}", moved_in, moved_out)))
    for uid, stays in by_unit.items():
        replaced = {(ref, s.moved_in) for _, ref, s in stays}
        stored = [
            Stay(f"the stored occupancy of {o.customer_ref}", o.moved_in, o.moved_out)
            for o in session.execute(
                select(Occupant.customer_ref, Occupancy.moved_in, Occupancy.moved_out)
                .join(Occupant, Occupant.id == Occupancy.occupant_id)
                .where(Occupancy.unit_id == uid)
            )
            if (o.customer_ref, o.moved_in) not in replaced
        ]
        for p in props.occupancy_conflicts([s for _, _, s in stays] + stored):
            # the problem names its stays ("line 7"): report it at the later of the file's lines it names
            named = [n for n, _, s in stays if re.search(rf"\b{s.occupant}\b", p["message"])]
            problems.add(max(named) if named else stays[0][0], "moved_in", p["message"], p["german"])


def _apply_occupants(session: Session, tenant_id: int, checked: list, actor: str) -> dict:
    occupants = dict(
        session.execute(select(Occupant.customer_ref, Occupant.id).where(Occupant.tenant_id == tenant_id)).all()
    )
    created = stays = 0
    for _, uid, values, moved_in, moved_out in checked:
        oid = occupants.get(values["customer_ref"])
        occupant = props.save_occupant(session, tenant_id, values, actor=actor, occupant_id=oid)
        occupants[values["customer_ref"]] = occupant.id
        created += oid is None
        existing = session.scalar(
            select(Occupancy).where(
                Occupancy.unit_id == uid, Occupancy.occupant_id == occupant.id, Occupancy.moved_in == moved_in
            )
        )
        if existing is not None:
            existing.moved_out = moved_out
        else:
            session.add(
                Occupancy(
                    tenant_id=tenant_id,
                    unit_id=uid,
                    occupant_id=occupant.id,
                    moved_in=moved_in,
                    moved_out=moved_out,
                    created_at=utcnow(),
                )
            )
            stays += 1
    session.flush()
    audit(session, tenant_id, actor, "occupants.import", {"lines": len(checked), "new_occupancies": stays})
    return {"kind": "occupants", "lines": len(checked), "created": created, "updated": len(checked) - created}


def import_master_data(session: Session, tenant_id: int, kind: str, data: bytes, *, actor: str) -> dict:
    """Import one file of `kind` (properties | units | occupants); all or nothing."""
    lines = parse_lines(kind, data)
    importer = {"properties": import_properties, "units": import_units, "occupants": import_occupants}[kind]
    return importer(session, tenant_id, lines, actor)
