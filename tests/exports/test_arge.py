"""ARGE HeiWaKo / bved records (domain/exports/arge.py, services/export_arge.py): golden round trip
of synthetic A, L and M records built from the documented layouts, the brief's A and E898 examples
byte for byte, errors naming line and field, a fuzz test (any bytes give records or a clear error),
and the import into properties, units and occupants."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from omshub.cloud.domain.exports import arge
from omshub.cloud.services import export_arge
from omshub.cloud.store.models_billing import Occupancy, Occupant, Property, Unit

GOLDEN = Path(__file__).parent / "golden"
BRIEF_A = "A03.100000012345370000012340001" + "HV-4711-WE03".ljust(20) + " " * 76 + "A"
BRIEF_E898 = (
    "E898000000100000012345000000040WE-0004              HKA_000012345_0004_2025.pdf"
    "                             000311225HKA"
)

L_VALUES = {1: "L", 2: "03.10", 3: "12345", 4: "37", 5: "0000123450000", 6: "4", 7: "Lindenstraße 4", 8: "DE",
            9: "10115", 10: "Berlin", 11: "010125311225", 12: "OBJ-12345", 13: "0", 14: "", 15: "1", 16: "EUR",
            17: "0", 18: "", 19: "0", 20: "0"}  # fmt: skip
M_VALUES = {1: "M", 2: "03.10", 3: "12345", 4: "37", 5: "0000123450004", 6: "HV-4711-WE04", 7: "1",
            8: "Erika Muster", 12: "Lindenstraße 4", 13: "DE", 14: "10115", 15: "Berlin", 24: "010125311225",
            25: "0", 26: "0", 27: "7250"}  # fmt: skip
M2_VALUES = {**M_VALUES, 5: "0000123450005", 6: "HV-4711-WE05", 8: "Max Beispiel", 24: "010125150625", 27: "6125"}


def test_golden_round_trip():
    data = (GOLDEN / "arge_a_l_m.txt").read_bytes()
    records = arge.parse(data)
    assert [r.kind for r in records] == ["A", "M", "M", "L"]
    rebuilt = "".join(arge.build(r.kind, {n: _raw(r, n) for n in r.fields}, r.rest) + "\r\n" for r in records)
    assert rebuilt.encode("iso-8859-1") == data
    a, m, m2, lrec = records
    assert a.fields[6] == "HV-4711-WE03" and lrec.dates[11] == (date(2025, 1, 1), date(2025, 12, 31))
    assert m.dates[24] == (date(2025, 1, 1), date(2025, 12, 31)) and m2.dates[24][1] == date(2025, 6, 15)
    assert lrec.fields[7] == "Lindenstraße 4"  # ISO-8859-1: one byte per character


def _raw(record: arge.Record, number: int) -> str:
    spec = next(s for s in arge.SPECS[record.kind] if s[0] == number)
    value = record.fields[number]
    return value if spec[4] == "AN" or not value else value.rjust(spec[3], "0")


def write_golden():  # how the golden file was made (kept for review)
    lines = [BRIEF_A, arge.build("M", M_VALUES), arge.build("M", M2_VALUES), arge.build("L", L_VALUES, " " * 20)]
    (GOLDEN / "arge_a_l_m.txt").write_bytes("".join(x + "\r\n" for x in lines).encode("iso-8859-1"))


def test_brief_examples_byte_for_byte():
    (a,) = arge.parse(BRIEF_A.encode())
    assert a.fields[3] == "0000012345" and a.fields[5] == "0000012340001"
    doc = arge.Document(12345, 0, 4, 0, "WE-0004", "HKA_000012345_0004_2025.pdf", date(2025, 12, 31), "HKA", page=0)
    assert arge.e898(1, doc) == BRIEF_E898
    assert (GOLDEN / "e898.txt").read_text().splitlines() == [
        arge.e898(
            n,
            arge.Document(
                12345, 0, u, 0, f"WE-{u:04d}", f"VDA_000012345_{u:04d}_2025-12.pdf", date(2025, 12, 31), "VDA", page=1
            ),
        )  # fmt: skip
        for n, u in ((1, 4), (2, 5))
    ]
    with pytest.raises(ValueError, match="path"):
        arge.e898(1, arge.Document(1, 0, 1, 0, "x", "dir/x.pdf", date(2025, 1, 1)))
    with pytest.raises(ValueError, match="longer"):
        arge.e898(1, arge.Document(1, 0, 1, 0, "x", "x" * 57 + ".pdf", date(2025, 1, 1)))


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        (BRIEF_A[:-1] + "X", "8 end marker (pos 128)", "expected 'A'"),
        (BRIEF_A[:-2], "record length", "126 characters, expected exactly 128"),
        ("A03.1000000X2345" + BRIEF_A[16:], "3 customer number (pos 7-16)", "expected digits"),
        ("A3.10 " + BRIEF_A[6:], "2 version (pos 2-6)", "version"),
        (BRIEF_A[:60] + "x" + BRIEF_A[61:], "7 blank (pos 52-127)", "expected blanks"),
        (arge.build("L", {**L_VALUES, 11: "010125311325"}), "11 billing period (pos 116-127)", "TTMMJJ"),
        (arge.build("L", {**L_VALUES, 11: "311225010125"}), "11 billing period (pos 116-127)", "ends before"),
        (arge.build("L", {**L_VALUES, 6: "7"}), "6 VAT presentation (pos 32)", "one of 3, 4, 5"),
        (arge.build("M", {**M_VALUES, 6: ""}), "6 landlord reference key (pos 32-51)", "mandatory"),
        (arge.build("M", M_VALUES)[:400], "record length", "at least 522"),
        ("Xfoo", "1 record type (pos 1)", "not a record type"),
    ],
)
def test_errors_name_line_and_field(line, field, words):
    data = (BRIEF_A + "\r\n" + line + "\r\n").encode("iso-8859-1")
    with pytest.raises(arge.ArgeError) as caught:
        arge.parse(data)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (2, field) and words in problem.message, problem
    assert str(caught.value).startswith(f"line 2, field {field}") and caught.value.german.startswith("Zeile 2")


@given(st.binary(max_size=700))
def test_fuzz_any_bytes(data):
    try:
        records = arge.parse(data)
    except arge.ArgeError as exc:
        assert exc.problems and all(p.line >= 1 and p.field and p.message and p.german for p in exc.problems)
    else:
        assert all(r.kind in "ALM" for r in records)


@given(st.integers(0, 127), st.sampled_from("0A Z9.-\x7f\xe4"))
def test_fuzz_one_character_changed(pos, char):
    line = BRIEF_A[:pos] + char + BRIEF_A[pos + 1 :]
    try:
        (record,) = arge.parse(line.encode("iso-8859-1"))
        assert record.kind == "A"
    except arge.ArgeError as exc:
        assert exc.problems[0].line == 1


def test_import_creates_properties_units_occupants(db, hub):
    t = hub.tenant()
    data = (GOLDEN / "arge_a_l_m.txt").read_bytes()
    with db.transaction() as s:
        out = export_arge.import_records(s, t.id, data, actor="erp")
    assert out["records"] == {"A": 1, "L": 1, "M": 2} and len(out["warnings"]) == 2
    with db.session() as s:
        prop = s.scalars(select(Property).where(Property.tenant_id == t.id)).one()
        assert (prop.ref, prop.city, prop.due_month, prop.due_day) == ("000012345", "Berlin", 12, 31)
        units = {u.ref: u.area_m2 for u in s.scalars(select(Unit).where(Unit.tenant_id == t.id))}
        assert units == {"0004": 72.5, "0005": 61.25}
        stays = {o.customer_ref: (c.moved_in, c.moved_out) for o, c in s.execute(
            select(Occupant, Occupancy).join(Occupancy, Occupancy.occupant_id == Occupant.id)
            .where(Occupant.tenant_id == t.id))}  # fmt: skip
        assert stays == {"HV-4711-WE04": (date(2025, 1, 1), None),
                         "HV-4711-WE05": (date(2025, 1, 1), date(2025, 6, 15))}  # fmt: skip
    # the same file again changes nothing and warns no more (the units exist)
    with db.transaction() as s:
        again = export_arge.import_records(s, t.id, data, actor="erp")
    assert again["warnings"] == [] and again["occupants"]["created"] == 0


def test_import_through_the_api_refuses_with_line_and_field(client, hub):
    h = hub.headers(hub.tenant())
    bad = (BRIEF_A + "\r\n" + arge.build("M", {**M_VALUES, 7: "9"}) + "\r\n").encode("iso-8859-1")
    r = client.post("/api/v1/arge/import", content=bad, headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 422
    problem = r.json()["error"]["problems"][0] if "problems" in r.json()["error"] else None
    assert "line 2, field 7 address format (pos 52)" in r.json()["error"]["message"], r.text
    assert problem is None or problem["line"] == 2
    good = (GOLDEN / "arge_a_l_m.txt").read_bytes()
    r = client.post("/api/v1/arge/import", content=good, headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json()["records"]["M"] == 2, r.text
