"""The two languages of the console and of the API's messages (German, English): which one a
caller gets, and German number and date formats for server-made texts (Babel).

Which language: the user's own choice (`users.language`), else the request's Accept-Language,
else German for a tenant in a German-speaking zone and English otherwise (docs/console.md).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

LANGUAGES = ("de", "en")
DEFAULT_ZONE = "Europe/Berlin"
# zones whose tenants get German unless a user or a browser asks otherwise
GERMAN_ZONES = ("Europe/Berlin", "Europe/Busingen", "Europe/Vienna", "Europe/Zurich", "Europe/Vaduz")

# the roles as a German user reads them (the API's codes stay viewer/operator/admin)
ROLE_DE = {"viewer": "Betrachter", "operator": "Bearbeiter", "admin": "Administrator"}


def check_language(value: str | None) -> str | None:
    """`value` if it is one of LANGUAGES (or None), else ValueError naming both."""
    if value is not None and value not in LANGUAGES:
        raise ValueError(value)
    return value


def from_accept_language(header: str | None) -> str | None:
    """The first of LANGUAGES an Accept-Language header prefers (by q-value), or None."""
    best: tuple[float, str] | None = None
    for index, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        if lang not in LANGUAGES:
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        key = (q - index * 1e-6, lang)  # equal q: the earlier tag wins
        if q > 0 and (best is None or key[0] > best[0]):
            best = key
    return best[1] if best else None


def tenant_default(zone: str | None) -> str:
    return "de" if (zone or DEFAULT_ZONE) in GERMAN_ZONES else "en"


def pick_language(preference: str | None, accept_language: str | None, zone: str | None) -> str:
    return preference or from_accept_language(accept_language) or tenant_default(zone)


def german_time(value: datetime, zone: str = DEFAULT_ZONE) -> str:
    """`value` as a German reader expects it, in `zone`: 07.12.2026, 14:05."""
    return format_datetime(value.astimezone(ZoneInfo(zone)), "dd.MM.yyyy, HH:mm", locale="de_DE")


def number(value: float | int, language: str) -> str:
    """`value` with the language's separators: 1.234,5 (de) or 1,234.5 (en)."""
    return format_decimal(value, locale="de_DE" if language == "de" else "en_GB")
