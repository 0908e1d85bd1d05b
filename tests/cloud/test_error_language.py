"""Refusals in the caller's language (issue 15, item 1): every refusal the head-end raises has a
German text, the API answers in German or English by the user's choice or Accept-Language, and
validation errors name the field in plain words; the codes stay the same in both languages."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from omshub.cloud.domain.language import from_accept_language, german_time, number, pick_language
from omshub.cloud.domain.wording import german_of, validation_fields

SRC = Path(__file__).resolve().parents[2] / "src" / "omshub" / "cloud"
DOMAIN_ERRORS = {"Invalid", "NotFound", "Conflict", "Unauthorized", "Forbidden", "ConfigChangeError"}


def _raises_without_german() -> list[str]:
    """`raise X(...)` of a domain error or ApiError with no German text, unless it passes on a lower
    layer's message (`str(exc)`), which cloud/domain/wording.py translates."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "readings.py":  # not changed this round: its few texts are in wording.PHRASES
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            call = node.exc if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) else None
            name = getattr(call.func, "id", None) if call else None
            if call is None or name not in DOMAIN_ERRORS | {"ApiError", "not_found"}:
                continue
            german = any(k.arg == "german" for k in call.keywords)
            german |= name == "ApiError" and len(call.args) == 4
            german |= name == "not_found" and len(call.args) == 2
            passes_on = any(isinstance(a, ast.Call) and getattr(a.func, "id", "") == "str" for a in call.args)
            if not german and not passes_on:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_every_refusal_raised_has_a_german_text():
    assert _raises_without_german() == []


def test_lower_layer_messages_have_german():
    for english in [
        "line 3: column key must hold 32 hex digits (AES-128); it has 32 characters, not only hex digits",
        "line 1: unknown column 'PK\\x03\\x04'; columns are manufacturer, meter_id",
        "line 2: a NUL character (\\x00); the database cannot store it",
        "at: '2026-13-01' is not an ISO 8601 date or time (e.g. 2026-01-31 (00:00 in Europe/Berlin))",
        "timezone: unknown time zone 'Mars/Base' (IANA names such as Europe/Berlin or UTC)",
        "meter_id: '12' is not an 8-digit meter id",
        "cron expression '* *' must have 6 fields (s m h dom mon dow)",
        "to must not be before from",
        "0001-01-01T00:00:00+00:00 is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z (UTC)",
        "from and to are required",
        "from: a date or time is needed",
        "names: give 1 to 100 comma-separated names",
    ]:
        german = german_of(english)
        assert german and " is " not in german and " must " not in german, english
    assert german_of("at: '2026-13-01' is not an ISO 8601 date or time (e.g. 2026-01-31)").startswith(
        "Zeitpunkt: „2026-13-01“ ist kein Datum"
    )
    assert german_of("line 4: meter_id: '12' is not an 8-digit meter id") == (
        "Zeile 4: Zählernummer: „12“ ist keine achtstellige Zählernummer."
    )
    key = german_of("line 3: column key must hold 32 hex digits (AES-128); it has 32 characters, not only hex digits")
    assert key == (
        "Zeile 3: In der Spalte key muss der Schlüssel aus 32 Zeichen 0–9 und A–F stehen; dort stehen "
        "32 Zeichen, darunter andere als 0–9 und A–F."
    )


def test_validation_errors_name_the_field_in_plain_words():
    errors = [
        {
            "type": "value_error",
            "loc": ("body", "collection", 0, "cron"),
            "msg": "Value error, cron expression '* *' must have 6 fields (s m h dom mon dow)",
        },
        {"type": "less_than_equal", "loc": ("body", "spread_s"), "msg": "...", "ctx": {"le": 86400}},
        {"type": "missing", "loc": ("body", "meter_id"), "msg": "Field required"},
    ]
    de = validation_fields(errors, "de")
    assert [f["field"] for f in de] == ["collection.0.cron", "spread_s", "meter_id"]
    assert de[0]["message"].startswith("Erfassung 1, Zeitplan: Der Zeitplan „* *“ muss 6 Felder haben")
    assert de[1]["message"] == "Streuung in Sekunden: darf höchstens 86.400 sein"
    assert de[2]["message"] == "Zählernummer: fehlt"
    en = validation_fields(errors, "en")
    assert (
        en[1]["message"] == "spread in seconds: must be at most 86,400"
        and en[2]["message"] == "meter number: is missing"
    )
    assert not any("Value error" in f["message"] for f in de + en)


def test_language_choice():
    assert from_accept_language("en-GB,en;q=0.9,de;q=0.8") == "en"
    assert from_accept_language("fr-FR, de;q=0.5, en;q=0.4") == "de"
    assert from_accept_language("fr, it") is None and from_accept_language(None) is None
    assert from_accept_language("de;q=0, en;q=0.1") == "en"
    assert pick_language("en", "de", "Europe/Berlin") == "en"
    assert pick_language(None, None, "Europe/Vienna") == "de" and pick_language(None, None, "Europe/London") == "en"
    assert number(-2147310.5, "de") == "-2.147.310,5" and number(-2147310.5, "en") == "-2,147,310.5"
    assert german_time(datetime(2026, 12, 7, 13, 5, tzinfo=UTC)) == "07.12.2026, 14:05"


@given(st.text(max_size=300))
def test_any_accept_language_header_gives_a_language_or_none(header):
    assert from_accept_language(header) in (None, "de", "en")


def test_the_api_answers_in_the_callers_language(hub, client):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    r = client.get("/api/v1/meters/999999999", headers={**admin, "Accept-Language": "de-DE,de;q=0.9"})
    assert r.status_code == 404 and r.json()["error"] == {
        "code": "not_found",
        "message": "Zähler 999999999 wurde nicht gefunden",
    }
    r = client.get("/api/v1/meters/999999999", headers=admin)  # no header: English, as before
    assert r.json()["error"]["message"] == "meter 999999999 not found"
    r = client.post("/api/v1/meters", json={"manufacturer": "KAM"}, headers={**admin, "Accept-Language": "de"})
    error = r.json()["error"]
    assert r.status_code == 422 and error["code"] == "invalid_request"
    assert {"field": "meter_id", "label": "Zählernummer", "message": "Zählernummer: fehlt"} in error["fields"]
    r = client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "x" * 12}, headers={"Accept-Language": "de"}
    )
    assert r.json()["error"]["message"] == "Benutzername oder Passwort ist falsch."


def test_a_user_chooses_their_language(hub, client):
    t = hub.tenant()
    name = hub.user(t, "viewer")
    token = client.post("/api/v1/auth/login", json={"username": name, "password": "correct horse"}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/v1/auth/me", headers=auth).json()
    assert me["language"] is None and me["tenant_language"] == "de"
    assert client.patch("/api/v1/auth/me", json={"language": "de"}, headers=auth).json()["language"] == "de"
    r = client.post("/api/v1/gateways", json={"serial": "X"}, headers={**auth, "Accept-Language": "en"})
    assert r.status_code == 403 and r.json()["error"]["message"].startswith(
        "Dafür brauchen Sie mindestens die Rolle Bearbeiter"
    )
    r = client.patch("/api/v1/auth/me", json={"language": "fr"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_language"
    assert r.json()["error"]["message"] == "Die Sprache muss Deutsch (de) oder Englisch (en) sein."
    r = client.patch("/api/v1/auth/me", json={"language": None}, headers=auth)
    assert r.json()["language"] is None
