"""Refusals in plain words of both languages: German for the messages of lower layers that carry
only English (time, key file, CSV and configuration checks), and validation errors that name the
field as a person knows it instead of its path (docs/console.md, "Languages").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from omshub.cloud.domain.language import number

# Field names of request bodies and queries as a person reads them: (German, English).
FIELDS: dict[str, tuple[str, str]] = {
    "username": ("Benutzername", "username"),
    "password": ("Passwort", "password"),
    "role": ("Rolle", "role"),
    "name": ("Name", "name"),
    "language": ("Sprache", "language"),
    "manufacturer": ("Hersteller", "manufacturer"),
    "meter_id": ("Zählernummer", "meter number"),
    "device_type": ("Gerätetyp", "device type"),
    "gateway_id": ("Gateway", "gateway"),
    "gateway_ids": ("Gateways", "gateways"),
    "serial": ("Seriennummer", "serial number"),
    "ref": ("Nummer der Messstelle", "metering point number"),
    "address": ("Adresse", "address"),
    "customer_ref": ("Kundennummer", "customer reference"),
    "at": ("Zeitpunkt", "time"),
    "from": ("von", "from"),
    "to": ("bis", "to"),
    "expires_at": ("gültig bis", "valid until"),
    "timezone": ("Zeitzone", "time zone"),
    "meter_timezone": ("Zeitzone der Zähler", "meters' time zone"),
    "collection": ("Erfassung", "collection"),
    "cron": ("Zeitplan", "schedule"),
    "interval_s": ("Abstand in Sekunden", "interval in seconds"),
    "initial_values": ("Anfangsstände", "initial readings"),
    "final_values": ("Endstände", "final readings"),
    "new_meter": ("neuer Zähler", "new meter"),
    "meter": ("Zähler", "meter"),
    "limit": ("Anzahl", "number of rows"),
    "duration_s": ("Dauer in Sekunden", "duration in seconds"),
    "link_modes": ("Funkmodi", "radio modes"),
    "max_telegrams": ("höchstens Telegramme", "most telegrams"),
    "max_batch": ("Telegramme je Sendung", "telegrams per upload"),
    "upload": ("Hochladen", "upload"),
    "spread_s": ("Streuung in Sekunden", "spread in seconds"),
    "filters": ("Filter", "filters"),
    "meters": ("Zähler", "meters"),
    "manufacturers": ("Hersteller", "manufacturers"),
    "device_types": ("Gerätetypen", "device types"),
    "ci": ("CI-Felder", "CI fields"),
    "id": ("Nummer", "number"),
    "version": ("Version", "version"),
    "cursor": ("Seite", "page"),
}

# pydantic's error types in plain words: (German, English); {limit} is the rule's figure.
VALIDATION: dict[str, tuple[str, str]] = {
    "missing": ("fehlt", "is missing"),
    "string_too_short": ("ist zu kurz (mindestens {limit} Zeichen)", "is too short (at least {limit} characters)"),
    "string_too_long": ("ist zu lang (höchstens {limit} Zeichen)", "is too long (at most {limit} characters)"),
    "string_pattern_mismatch": ("hat nicht die erwartete Form", "does not have the expected form"),
    "string_type": ("muss ein Text sein", "must be a text"),
    "int_parsing": ("muss eine ganze Zahl sein", "must be a whole number"),
    "int_type": ("muss eine ganze Zahl sein", "must be a whole number"),
    "int_from_float": ("muss eine ganze Zahl sein", "must be a whole number"),
    "float_parsing": ("muss eine Zahl sein", "must be a number"),
    "float_type": ("muss eine Zahl sein", "must be a number"),
    "finite_number": ("muss eine endliche Zahl sein", "must be a finite number"),
    "bool_parsing": ("muss ja oder nein sein", "must be yes or no"),
    "bool_type": ("muss ja oder nein sein", "must be yes or no"),
    "greater_than_equal": ("muss mindestens {limit} sein", "must be at least {limit}"),
    "greater_than": ("muss größer als {limit} sein", "must be more than {limit}"),
    "less_than_equal": ("darf höchstens {limit} sein", "must be at most {limit}"),
    "less_than": ("muss kleiner als {limit} sein", "must be less than {limit}"),
    "too_short": ("hat zu wenige Einträge", "has too few entries"),
    "too_long": ("hat zu viele Einträge", "has too many entries"),
    "literal_error": ("hat keinen der erlaubten Werte", "is none of the allowed values"),
    "enum": ("hat keinen der erlaubten Werte", "is none of the allowed values"),
    "extra_forbidden": ("ist hier nicht vorgesehen", "is not expected here"),
    "json_invalid": ("ist kein gültiges JSON", "is not valid JSON"),
    "list_type": ("muss eine Liste sein", "must be a list"),
    "dict_type": ("muss eine Gruppe von Feldern sein", "must be a group of fields"),
    "model_type": ("muss eine Gruppe von Feldern sein", "must be a group of fields"),
    "model_attributes_type": ("muss eine Gruppe von Feldern sein", "must be a group of fields"),
    "datetime_parsing": ("ist kein Datum mit Uhrzeit", "is not a date and time"),
    "datetime_from_date_parsing": ("ist kein Datum mit Uhrzeit", "is not a date and time"),
    "date_parsing": ("ist kein Datum", "is not a date"),
}

# The English messages of lower layers (raised as ValueError and passed on) -> German.
# Each pattern matches a whole message; the groups are put into the German text as they are.
PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p, re.S), de)
    for p, de in [
        (
            r"(?P<w>[\w.\[\]]+): '?(?P<v>.*?)'? is not a 3-letter manufacturer code \(e\.g\. KAM\)",
            "{w}: „{v}“ ist kein Herstellerkürzel aus drei Buchstaben (z. B. KAM).",
        ),
        (
            r"(?P<w>[\w.\[\]]+): '?(?P<v>.*?)'? is not an 8-digit meter id",
            "{w}: „{v}“ ist keine achtstellige Zählernummer.",
        ),
        (
            r"(?P<w>[\w.\[\]]+): a time zone name is needed.*",
            "{w}: Bitte geben Sie eine Zeitzone an (z. B. Europe/Berlin oder UTC).",
        ),
        (
            r"(?P<w>[\w.\[\]]+): (?:unknown time zone )?'(?P<v>.*?)'(?: is not an IANA time zone name)?.*IANA.*",
            "{w}: „{v}“ ist keine bekannte Zeitzone (z. B. Europe/Berlin oder UTC).",
        ),
        (
            r"(?P<w>[\w.\[\]]+): '(?P<v>.*?)'(?:\.\.\.)? is not an ISO 8601 date or time.*",
            "{w}: „{v}“ ist kein Datum und keine Uhrzeit (z. B. 31.01.2026 als 2026-01-31 oder 2026-01-31T08:00).",
        ),
        (r"(?P<w>[\w.\[\]]+): '(?P<v>.*?)' is outside 1970.*", "{w}: „{v}“ liegt außerhalb der Jahre 1970 bis 9999."),
        (
            r"(?P<w>[\w.\[\]]+): '(?P<v>.*?)' does not exist in (?P<z>\S+) .*",
            "{w}: {v} gibt es in der Zeitzone {z} nicht (die Uhr springt über diese Stunde); "
            "geben Sie die Zeit mit ihrem Versatz an.",
        ),
        (
            r"(?P<w>[\w.\[\]]+): '(?P<v>.*?)' happens twice in (?P<z>\S+) .*",
            "{w}: {v} gibt es in der Zeitzone {z} zweimal (die Uhr wird zurückgestellt); "
            "geben Sie den Versatz an, +02:00 für die erste oder +01:00 für die zweite.",
        ),
        (
            r"line (?P<l>\d+): column id must hold the meter id, 8 hex digits; it has (?P<d>.*)",
            "Zeile {l}: In der Spalte id muss die achtstellige Zählernummer stehen; dort steht etwas anderes.",
        ),
        (
            r"line (?P<l>\d+): column key must hold 32 hex digits \(AES-128\); it has (?P<n>\d+) characters?, "
            r"not only hex digits",
            "Zeile {l}: In der Spalte key muss der Schlüssel aus 32 Zeichen 0–9 und A–F stehen; dort stehen "
            "{n} Zeichen, darunter andere als 0–9 und A–F.",
        ),
        (
            r"line (?P<l>\d+): column key must hold 32 hex digits \(AES-128\); it has (?P<n>\d+) characters?, "
            r"all hex digits",
            "Zeile {l}: In der Spalte key muss der Schlüssel aus 32 Zeichen 0–9 und A–F stehen; dort stehen {n}.",
        ),
        (
            r"line (?P<l>\d+): column key must hold 32 hex digits \(AES-128\); it has nothing",
            "Zeile {l}: In der Spalte key fehlt der Schlüssel (32 Zeichen 0–9 und A–F).",
        ),
        (
            r"line (?P<l>\d+): column manufacturer must hold a 3-letter code.*",
            "Zeile {l}: In der Spalte manufacturer muss ein Herstellerkürzel aus drei Buchstaben stehen.",
        ),
        (
            r"line (?P<l>\d+): the same meter \(id and manufacturer\) is already given on line (?P<o>\d+)",
            "Zeile {l}: Derselbe Zähler steht schon in Zeile {o}.",
        ),
        (
            r"line (?P<l>\d+): more than (?P<n>[\d,.]+) (?:keys|meters) in one (?:file|import)",
            "Zeile {l}: Eine Datei darf höchstens {n} Zeilen haben.",
        ),
        (
            r"cron expression '(?P<v>.*?)' must have 6 fields.*",
            "Der Zeitplan „{v}“ muss 6 Felder haben (Sekunde, Minute, Stunde, Tag, Monat, Wochentag).",
        ),
        (r"cron expression '(?P<v>.*?)' is not valid", "„{v}“ ist kein gültiger Zeitplan."),
        (r"cron expression '(?P<v>.*?)' never fires", "Der Zeitplan „{v}“ trifft nie zu."),
        (r"unknown time zone '(?P<v>.*?)'", "„{v}“ ist keine bekannte Zeitzone (z. B. Europe/Berlin)."),
        (
            r"manufacturer '(?P<v>.*?)' must be a 3-letter upper-case code",
            "„{v}“ ist kein Herstellerkürzel aus drei Großbuchstaben.",
        ),
        (r"device type (?P<v>.*?) must be 0\.\.255", "Der Gerätetyp {v} muss zwischen 0 und 255 liegen."),
        (r"CI '(?P<v>.*?)' must be a hex byte", "„{v}“ ist kein CI-Feld (zwei Zeichen 0–9, A–F)."),
        (r"to must not be before from", "„bis“ darf nicht vor „von“ liegen."),
        (r"from and to are required", "Bitte geben Sie „von“ und „bis“ an."),
        (r"(?:from|to): a date or time is needed", "Bitte geben Sie ein Datum an."),
        (r"(?P<w>\w+): give 1 to 100 comma-separated names", "{w}: Bitte 1 bis 100 Namen, durch Kommas getrennt."),
        (
            r"gateway: no gateway with serial '(?P<v>.*?)'",
            "Gateway: Ein Gateway mit der Seriennummer „{v}“ gibt es nicht.",
        ),
        (r"meter (?P<m>\S+ \S+) already on line (?P<o>\d+)", "Der Zähler {m} steht schon in Zeile {o}."),
        (
            r"metering point '(?P<p>.*?)' already has another meter installed; use a swap",
            "An der Messstelle {p} ist schon ein anderer Zähler eingebaut; wechseln Sie ihn.",
        ),
        (
            r"meter (?P<m>\S+ \S+) is installed at metering point '(?P<p>.*?)'.*",
            "Der Zähler {m} ist an der Messstelle {p} eingebaut.",
        ),
        (r"key file exceeds (?P<n>\d+) MiB", "Die Schlüsseldatei ist größer als {n} MiB."),
        (
            r"line 1: unknown column '(?P<c>.*?)'; columns are (?P<all>.*)",
            "Zeile 1: Die Spalte „{c}“ ist unbekannt; möglich sind: {all}. Ist die Datei eine CSV-Datei?",
        ),
        (r"line 1: the header has no '(?P<c>.*?)' column", "Zeile 1: Die Spalte „{c}“ fehlt in der Kopfzeile."),
        (r"line 1: a column appears twice in the header", "Zeile 1: Eine Spalte steht zweimal in der Kopfzeile."),
        (
            r"line (?P<l>\d+): a NUL character.*",
            "Zeile {l}: Die Datei enthält Binärdaten (ein NUL-Zeichen); ist sie eine CSV-Datei?",
        ),
        (
            r"line (?P<l>\d+): (?P<n>\d+) values but the header has (?P<m>\d+) columns",
            "Zeile {l}: {n} Werte, aber die Kopfzeile hat {m} Spalten.",
        ),
        (r"text must not contain NUL characters.*", "Der Text darf keine NUL-Zeichen enthalten."),
        (r"(?P<v>[^\s']+) is outside 1970.*", "{v} liegt außerhalb der Jahre 1970 bis 9999."),
        (
            r"key file is not UTF-8.*|the CSV is not UTF-8.*",
            "Die Datei ist keine CSV-Datei in UTF-8 (z. B. eine Excel-Datei); speichern Sie sie als „CSV UTF-8“.",
        ),
        (
            r"(?P<w>[\w.\[\]]+): (?P<v>.*?) is not an ISO 8601 time.*",
            "{w}: {v} ist kein Zeitpunkt (z. B. 2026-01-31T08:00:00Z).",
        ),
        (r"(?P<w>[\w.\[\]]+): (?P<v>.*?) needs a zone.*", "{w}: Zu {v} fehlt die Zeitzone (z. B. Z oder +01:00)."),
    ]
]


def german_of(message: str) -> str | None:
    """The German of a lower layer's English message, if it is one PHRASES knows (also behind a
    `line N: ` of a file's check)."""
    line = re.fullmatch(r"line (\d+): (.*)", message, re.S)
    if line and not any(p.fullmatch(message) for p, _ in PHRASES):
        inner = german_of(line.group(2))
        return f"Zeile {line.group(1)}: {inner}" if inner else None
    for pattern, german in PHRASES:
        m = pattern.fullmatch(message)
        if m:
            groups = {k: v or "" for k, v in m.groupdict().items()}
            if groups.get("w"):  # the field as a person knows it: "models[0].timezone" -> "models 1, Zeitzone"
                groups["w"] = field_label(_path(groups["w"]), "de")
            return german.format(**groups)
    return None


def _path(where: str) -> list[object]:
    """ "models[0].timezone" -> ["models", 0, "timezone"]."""
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", where) if p]


def field_label(loc: Iterable[object], language: str) -> str:
    """`("body", "collection", 0, "cron")` -> "Erfassung 1, Zeitplan" / "collection 1, schedule"."""
    words: list[str] = []
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        if isinstance(part, int):
            words[-1:] = [f"{words[-1]} {part + 1}" if words else f"Nr. {part + 1}"]
            continue
        de, en = FIELDS.get(str(part), (str(part).replace("_", " "),) * 2)
        words.append(de if language == "de" else en)
    return ", ".join(words)


def validation_problem(err: dict, language: str) -> str:
    """One pydantic error in plain words, without the field name."""
    kind = str(err.get("type", ""))
    if kind == "value_error":  # our own checks: their message, in German where PHRASES knows it
        text = str(err.get("msg", "")).removeprefix("Value error, ")
        return (german_of(text) or text) if language == "de" else text
    words = VALIDATION.get(kind)
    if words is None:
        return "ist ungültig" if language == "de" else "is not valid"
    ctx = err.get("ctx") or {}
    limit = next((ctx[k] for k in ("min_length", "max_length", "ge", "le", "gt", "lt") if k in ctx), "")
    shown = number(limit, language) if isinstance(limit, (int, float)) else str(limit)
    return (words[0] if language == "de" else words[1]).format(limit=shown)


def plain_problems(errors: list[dict], language: str) -> str:
    """pydantic's errors as one plain sentence per field, joined."""
    return "; ".join(f["message"] for f in validation_fields(errors, language))


def validation_fields(errors: list[dict], language: str) -> list[dict]:
    """Each problem with the field it concerns: `{"field": "meter_id", "label", "message"}`."""
    out = []
    for err in errors[:10]:
        loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        label = field_label(loc, language) or ("Anfrage" if language == "de" else "request")
        out.append(
            {
                "field": ".".join(str(p) for p in loc),
                "label": label,
                "message": f"{label}: {validation_problem(err, language)}",
            }
        )
    return out
