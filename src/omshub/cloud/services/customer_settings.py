"""A tenant's settings of the customer information (docs/customer-information.md §Settings): the
supplier shown on letters, the SMTP server, how an e-mail carries the letter, the portal address,
the deadline day, the cohort definition, the declared conversion of allocator units. Only what
differs from the defaults is stored; every change is audited (never the SMTP password)."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.customer_info import COHORT_KEYS, DEFAULT_FLAT_BINS
from omshub.cloud.domain.errors import Invalid
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_customers import CustomerSettings

DEFAULTS: dict = {
    "supplier_name": "",
    "supplier_address": "",
    "supplier_contact": "",  # phone, e-mail, web for questions
    "delivery": "attachment",  # attachment: the PDF with the e-mail; link: the portal's address only
    "portal_url": "",
    "deadline_day": 28,  # information for M is due by this day of M+1
    "cohort_keys": list(COHORT_KEYS),
    "flat_size_bins": list(DEFAULT_FLAT_BINS),
    "min_cohort": 3,
    # portal accounts are locked this many days after the occupant's last move-out (time to see the last
    # month's information, due by the 28th of the month after) and removed (account, sessions, read log)
    # this many days after it (HeizkostenV §6b); services/customer_portal.py `portal_privacy`
    "lock_after_days": 60,
    "remove_after_days": 90,
    # a declared, versioned conversion of allocator units to kWh, e.g.
    # {"method": "annual_bill_ratio", "version": "2026-1", "kwh_per_unit": 7.5}; None: shown in units
    "hca_conversion": None,
    # the annual information's content blocks (HeizkostenV §6a(3), FFVAV §5(1) Nr. 2-5, §5(3)): block -> text
    "annual_blocks": {},
    # long-term mean degree days of a billing year, the reference of the weather correction; None: the
    # previous period's degree days are the reference
    "reference_degree_days": None,
    "smtp": {"host": "", "port": 25, "starttls": False, "username": "", "sender": "", "timeout_s": 10},
}
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def valid_email(text: str) -> bool:
    """A plain address (local@domain.tld), no display name, at most 254 characters."""
    return len(text) <= 254 and bool(_EMAIL.match(text.strip()))


def check_email(text: str, field: str = "email") -> str:
    value = text.strip()
    if not valid_email(value):
        raise Invalid(
            f"{field}: {value!r} is no e-mail address (expected name@example.de)",
            german=f"{field}: {value!r} ist keine E-Mail-Adresse (erwartet name@beispiel.de)",
            field=field,  # the form shows it next to the field
        )
    return value


def _row(session: Session, tenant_id: int) -> CustomerSettings | None:
    return session.scalar(select(CustomerSettings).where(CustomerSettings.tenant_id == tenant_id))


def settings_of(session: Session, tenant_id: int) -> dict:
    """The tenant's effective settings (defaults merged), with `logo_png` (base64) and
    `smtp.password` (for sending only; the API leaves it out)."""
    out = copy.deepcopy(DEFAULTS)
    row = _row(session, tenant_id)
    if row is not None:
        for key, value in (row.values or {}).items():
            if key == "smtp":
                out["smtp"].update(value)
            else:
                out[key] = value
        out["logo_png"] = row.logo_png
        out["smtp"]["password"] = row.smtp_password
    else:
        out["logo_png"] = ""
        out["smtp"]["password"] = ""
    return out


def _check(changes: dict) -> None:
    unknown = sorted(set(changes) - set(DEFAULTS) - {"logo_png", "smtp_password"})
    if unknown:
        raise Invalid(
            f"unknown settings: {', '.join(unknown)}", german=f"unbekannte Einstellungen: {', '.join(unknown)}"
        )
    if "delivery" in changes and changes["delivery"] not in ("attachment", "link"):
        raise Invalid("delivery: attachment or link", german="delivery: attachment oder link")
    if "deadline_day" in changes and not (
        isinstance(changes["deadline_day"], int) and 1 <= changes["deadline_day"] <= 28
    ):
        raise Invalid("deadline_day: a day 1 to 28", german="deadline_day: ein Tag von 1 bis 28")
    if "cohort_keys" in changes and not set(changes["cohort_keys"]) <= set(COHORT_KEYS):
        raise Invalid(f"cohort_keys: a subset of {', '.join(COHORT_KEYS)}", german="cohort_keys: Teilmenge")
    bins = changes.get("flat_size_bins")
    if bins is not None and (not bins or any(not isinstance(b, int | float) or b <= 0 for b in bins)):
        raise Invalid("flat_size_bins: positive areas in m²", german="flat_size_bins: positive Flächen in m²")
    conv = changes.get("hca_conversion")
    if conv is not None and not (
        isinstance(conv, dict)
        and conv.get("method")
        and conv.get("version")
        and isinstance(conv.get("kwh_per_unit"), int | float)
        and conv["kwh_per_unit"] > 0
    ):
        raise Invalid(
            "hca_conversion: {method, version, kwh_per_unit > 0} or null",
            german="hca_conversion: {method, version, kwh_per_unit > 0} oder null",
        )
    for name in ("lock_after_days", "remove_after_days"):
        if name in changes and not (isinstance(changes[name], int) and 0 <= changes[name] <= 3650):
            raise Invalid(f"{name}: 0 to 3650 days", german=f"{name}: 0 bis 3650 Tage")
    blocks = changes.get("annual_blocks")
    if blocks is not None and not (isinstance(blocks, dict) and all(isinstance(v, str) for v in blocks.values())):
        raise Invalid("annual_blocks: {block: text}", german="annual_blocks: {Baustein: Text}")
    sender = (changes.get("smtp") or {}).get("sender")
    if sender:
        check_email(sender, "smtp.sender")


def update_settings(session: Session, tenant_id: int, changes: dict, *, actor: str, now: datetime) -> dict:
    """Apply `changes` (a partial settings dict; `smtp` merged key by key; `logo_png` base64 PNG;
    `smtp_password`), audited with the names of what changed."""
    _check(changes)
    row = _row(session, tenant_id)
    if row is None:
        row = CustomerSettings(tenant_id=tenant_id, values={}, logo_png="", smtp_password="", changed_at=now)
        session.add(row)
    values = copy.deepcopy(row.values or {})
    for key, value in changes.items():
        if key == "logo_png":
            try:
                raw = base64.b64decode(value or "", validate=True)
            except (binascii.Error, ValueError):
                raise Invalid("logo_png: not base64", german="logo_png: kein Base64") from None
            if raw and not raw.startswith(b"\x89PNG\r\n\x1a\n"):
                raise Invalid("logo_png: not a PNG image", german="logo_png: kein PNG-Bild")
            row.logo_png = value or ""
        elif key == "smtp_password":
            row.smtp_password = str(value or "")
        elif key == "smtp":
            values["smtp"] = {**values.get("smtp", {}), **value}
        else:
            values[key] = value
    row.values, row.changed_at, row.changed_by = values, now, actor
    audit(session, tenant_id, actor, "customers.settings", {"changed": sorted(changes)})
    return settings_of(session, tenant_id)


def public_settings(settings: dict) -> dict:
    """The settings as the API shows them: the SMTP password only as whether one is set."""
    out = copy.deepcopy(settings)
    out["smtp"]["password_set"] = bool(out["smtp"].pop("password", ""))
    return out
