"""ARGE HeiWaKo / bved "Standard-Datenaustausch" fixed-width records, version 03.10, as far as their
layouts were found (docs/exports.md §ARGE lists the sources and what was not found):

* read: A (reference keys, 128 characters), L (property: fields 1-20, positions 1-160) and M
  (occupant: fields 1-27, positions 1-522). The L and M records of 3.10 are longer than what is
  documented; characters after the last documented field are kept unread (their layout was not
  found). Every error names the line, the field (number and name) and the positions;
* write: E898 (a document per user: 120 characters).

Alphanumeric fields are left-justified and blank-padded, numeric ones right-justified with leading
zeros; a mandatory (M) field must not be blank, an optional (K) numeric field may be. Dates are
TTMMJJ; a two-digit year JJ is 2000+JJ below 70, else 1900+JJ. Text is read as ISO-8859-1 (one byte
per character, so positions are bytes), lines end with CR LF or LF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

# (number, name, first position (1-based), length, type "AN" | "N", mandatory)
Spec = tuple[int, str, int, int, str, bool]

A_FIELDS: tuple[Spec, ...] = (
    (1, "record type", 1, 1, "AN", True),
    (2, "version", 2, 5, "AN", True),
    (3, "customer number", 7, 10, "N", True),
    (4, "billing company key", 17, 2, "AN", False),
    (5, "Messdienst reference key", 19, 13, "N", True),
    (6, "landlord reference key", 32, 20, "AN", True),
    (7, "blank", 52, 76, "AN", False),
    (8, "end marker", 128, 1, "AN", True),
)
L_FIELDS: tuple[Spec, ...] = (
    (1, "record type", 1, 1, "AN", True),
    (2, "version", 2, 5, "AN", True),
    (3, "customer number", 7, 10, "N", True),
    (4, "billing company key", 17, 2, "AN", False),
    (5, "Messdienst reference key", 19, 13, "N", True),
    (6, "VAT presentation", 32, 1, "N", True),
    (7, "street", 33, 35, "AN", False),
    (8, "country", 68, 3, "AN", False),
    (9, "postcode", 71, 10, "AN", False),
    (10, "city", 81, 35, "AN", False),
    (11, "billing period", 116, 12, "N", True),
    (12, "object number", 128, 15, "AN", False),
    (13, "rent-loss surcharge", 143, 1, "N", True),
    (14, "rent-loss percentage", 144, 3, "N", False),
    (15, "show labour-cost share", 147, 1, "N", True),
    (16, "currency", 148, 3, "AN", True),
    (17, "WEG flag", 151, 1, "N", False),
    (18, "total area", 152, 7, "N", False),
    (19, "non-residential building", 159, 1, "N", False),
    (20, "CO2KostAufG §9 flag", 160, 1, "N", False),
)
M_FIELDS: tuple[Spec, ...] = (
    (1, "record type", 1, 1, "AN", True),
    (2, "version", 2, 5, "AN", True),
    (3, "customer number", 7, 10, "N", True),
    (4, "billing company key", 17, 2, "AN", False),
    (5, "Messdienst reference key", 19, 13, "N", True),
    (6, "landlord reference key", 32, 20, "AN", True),
    (7, "address format", 52, 1, "N", True),
    (8, "tenant name 1", 53, 35, "AN", False),
    (9, "tenant name 2", 88, 35, "AN", False),
    (10, "tenant name 3", 123, 35, "AN", False),
    (11, "tenant name 4", 158, 35, "AN", False),
    (12, "tenant street", 193, 35, "AN", False),
    (13, "tenant country", 228, 3, "AN", False),
    (14, "tenant postcode", 231, 10, "AN", False),
    (15, "tenant city", 241, 35, "AN", False),
    (16, "owner name 1", 276, 35, "AN", False),
    (17, "owner name 2", 311, 35, "AN", False),
    (18, "owner name 3", 346, 35, "AN", False),
    (19, "owner name 4", 381, 35, "AN", False),
    (20, "owner street", 416, 35, "AN", False),
    (21, "owner country", 451, 3, "AN", False),
    (22, "owner postcode", 454, 10, "AN", False),
    (23, "owner city", 464, 35, "AN", False),
    (24, "occupancy period", 499, 12, "N", True),
    (25, "VAT presentation", 511, 1, "N", True),
    (26, "rent-loss surcharge", 512, 1, "N", True),
    (27, "heating base shares", 513, 10, "N", False),
)
SPECS = {"A": A_FIELDS, "L": L_FIELDS, "M": M_FIELDS}
# the documented length: exactly for A; at least (the rest is not documented) for L and M
LENGTHS = {"A": (128, True), "L": (160, False), "M": (522, False)}
_ALLOWED = {  # fields with a closed set of values
    ("L", 6): "345",
    ("L", 13): "01",
    ("L", 15): "01",
    ("L", 17): "01",
    ("L", 19): "01",
    ("L", 20): "01",
    ("M", 7): "1234",
    ("M", 25): "0123",
    ("M", 26): "01",
}
_VERSION = re.compile(r"^\d\d\.\d\d$")
MAX_LINE = 4096


@dataclass
class Problem:
    line: int
    field: str  # "3 customer number (pos 7-16)"
    message: str
    german: str


class ArgeError(ValueError):
    """The file is refused: every problem with its line and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"line {first.line}, field {first.field}: {first.message}{more}")
        weitere = f" (und {len(problems) - 1} weitere)" if len(problems) > 1 else ""
        self.german = f"Zeile {first.line}, Feld {first.field}: {first.german}{weitere}"


@dataclass
class Record:
    kind: str  # A | L | M
    line: int
    fields: dict[int, str] = field(default_factory=dict)  # number -> text (stripped)
    dates: dict[int, tuple[date, date]] = field(default_factory=dict)  # the TTMMJJ+TTMMJJ periods
    rest: str = ""  # characters after the documented fields (not interpreted)


def two_digit_year(yy: int) -> int:
    return 2000 + yy if yy < 70 else 1900 + yy


def parse_day(text: str) -> date:
    """TTMMJJ → date, ValueError when it is no calendar day."""
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"{text!r} is not TTMMJJ")
    return date(two_digit_year(int(text[4:6])), int(text[2:4]), int(text[0:2]))


def _label(spec: Spec) -> str:
    number, name, pos, length, _, _ = spec
    end = pos + length - 1
    return f"{number} {name} (pos {pos}" + (f"-{end})" if length > 1 else ")")


def _check_field(kind: str, spec: Spec, raw: str, out: Record, problems: list[Problem], line: int) -> None:
    number, _name, _pos, _length, typ, mandatory = spec

    def bad(message: str, german: str) -> None:
        problems.append(Problem(line, _label(spec), message, german))

    value = raw.strip()
    if mandatory and not value:
        return bad("mandatory, but blank", "Pflichtfeld, aber leer")
    if typ == "N" and value and not raw.isdigit():
        return bad(f"{raw!r}: expected digits (right-justified, leading zeros)",
                   f"{raw!r}: erwartet Ziffern (rechtsbündig, führende Nullen)")  # fmt: skip
    allowed = _ALLOWED.get((kind, number))
    if allowed and value and value not in allowed:
        return bad(
            f"{value!r}: expected one of {', '.join(allowed)}", f"{value!r}: erwartet eines von {', '.join(allowed)}"
        )
    if number == 2 and not _VERSION.match(value):
        return bad(f"{value!r}: expected a version like 03.10", f"{value!r}: erwartet eine Version wie 03.10")
    if (kind, number) in (("A", 7),) and value:
        return bad("expected blanks", "erwartet Leerzeichen")
    if (kind, number) in (("L", 11), ("M", 24)):
        try:
            start, end = parse_day(raw[:6]), parse_day(raw[6:])
        except ValueError as exc:
            return bad(f"{raw!r}: not two days TTMMJJ ({exc})", f"{raw!r}: nicht zwei Tage TTMMJJ")
        if end < start:
            return bad(f"{raw!r}: the period ends before it starts", f"{raw!r}: der Zeitraum endet vor seinem Beginn")
        out.dates[number] = (start, end)
    out.fields[number] = value


def parse_line(text: str, line: int, problems: list[Problem]) -> Record | None:
    """One record, or None with its problems added."""
    kind = text[:1]
    if kind not in SPECS:
        problems.append(Problem(line, "1 record type (pos 1)", f"{kind!r}: not a record type read here (A, L, M)",
                                f"{kind!r}: keine hier gelesene Satzart (A, L, M)"))  # fmt: skip
        return None
    need, exact = LENGTHS[kind]
    if len(text) < need or (exact and len(text) != need):
        want = f"exactly {need}" if exact else f"at least {need}"
        want_de = f"genau {need}" if exact else f"mindestens {need}"
        problems.append(Problem(line, "record length", f"{len(text)} characters, expected {want}",
                                f"{len(text)} Zeichen, erwartet {want_de}"))  # fmt: skip
        return None
    record = Record(kind, line, rest=text[need:])
    before = len(problems)
    for spec in SPECS[kind]:
        _, _, pos, length, _, _ = spec
        _check_field(kind, spec, text[pos - 1 : pos - 1 + length], record, problems, line)
    if kind == "A" and text[127] != "A":
        problems.append(
            Problem(line, "8 end marker (pos 128)", f"{text[127]!r}: expected 'A'", f"{text[127]!r}: erwartet 'A'")
        )
    return record if len(problems) == before else None


def parse(data: bytes, encoding: str = "iso-8859-1") -> list[Record]:
    """The records of a file (A, L, M), or ArgeError with every problem."""
    problems: list[Problem] = []
    if not data.strip():
        raise ArgeError([Problem(1, "record type", "the file is empty", "die Datei ist leer")])
    text = data.decode(encoding)
    records = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            problems.append(Problem(number, "record length", f"{len(line)} characters: not a record",
                                    f"{len(line)} Zeichen: kein Datensatz"))  # fmt: skip
            continue
        bad = [c for c in line if ord(c) < 32]
        if bad:
            problems.append(Problem(number, "record", f"control character {bad[0]!r} in the line",
                                    f"Steuerzeichen {bad[0]!r} in der Zeile"))  # fmt: skip
            continue
        record = parse_line(line, number, problems)
        if record is not None:
            records.append(record)
    if problems:
        raise ArgeError(problems)
    return records


# --- writing ---


def an(text: str, length: int) -> str:
    """Alphanumeric: left-justified, blank-padded; too long is an error (never cut silently)."""
    if len(text) > length:
        raise ValueError(f"{text!r} is longer than {length} characters")
    return text.ljust(length)


def num(value: int, length: int) -> str:
    """Numeric: right-justified with leading zeros."""
    text = str(value)
    if value < 0 or len(text) > length:
        raise ValueError(f"{value} does not fit {length} digits")
    return text.rjust(length, "0")


DOC_TYPES = ("HKA", "BKA", "VDA")  # heating bill, service-charge bill, consumption analysis


@dataclass(frozen=True)
class Document:
    """A PDF of a user, for an E898 record."""

    object_no: int  # 9 digits
    user_group: int  # 4 digits
    user_no: int  # 4 digits
    user_seq: int  # 1 digit
    landlord_key: str  # 20 characters
    file_name: str  # without path, at most 56 characters
    last_day: date  # last day of the occupancy period
    doc_type: str = "VDA"
    page: int = 1
    billing_company: int = 0
    billing_seq: str = ""  # "" | "1" | "2"


def e898(seq: int, doc: Document) -> str:
    """The E898 record (120 characters) of `doc`, record sequence number `seq`."""
    if doc.doc_type not in DOC_TYPES:
        raise ValueError(f"document type {doc.doc_type!r}: one of {', '.join(DOC_TYPES)}")
    if "/" in doc.file_name or "\\" in doc.file_name:
        raise ValueError(f"file name {doc.file_name!r}: without a path")
    if doc.billing_seq not in ("", "1", "2"):
        raise ValueError(f"billing sequence {doc.billing_seq!r}: blank, 1 or 2")
    key = num(doc.object_no, 9) + num(doc.user_group, 4) + num(doc.user_no, 4) + num(doc.user_seq, 1)
    record = (
        "E898" + num(seq, 7) + num(doc.billing_company, 2) + key + an(doc.landlord_key, 20) + an(doc.billing_seq, 1)
        + an(doc.file_name, 56) + num(doc.page, 3) + doc.last_day.strftime("%d%m%y") + doc.doc_type
    )  # fmt: skip
    assert len(record) == 120
    return record


def build(kind: str, values: dict[int, str], rest: str = "") -> str:
    """A record of `kind` from its field values (by number; numeric fields as digit strings are
    zero-padded, text blank-padded), followed by `rest` (the undocumented tail of L and M)."""
    out = []
    for number, _name, _pos, length, typ, _m in SPECS[kind]:
        text = values.get(number, "")
        out.append(text.rjust(length, "0") if typ == "N" and text else an(text, length))
    return "".join(out) + rest
