"""The demo's customer information, through the API like a supplier would do it: one demo occupant
moves into the first unit with a heat meter, the closed months' information records are computed,
and the occupant is invited to the customer portal and sets a password there, so the demo can print
the portal's address and login next to the console's (docs/customer-information.md)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import httpx

DEMO_EMAIL = "mieterin@demo.example"


def provision_customer(headend, base_url: str, tenant_slug: str, start: float, months: list[str]) -> dict:
    """-> {"portal_url", "email", "password", "records"}; the occupant lives in the first heat unit
    from the first simulated day."""
    props = headend.call("GET", "/api/v1/properties", params={"limit": 1})["items"]
    units = headend.call("GET", f"/api/v1/properties/{props[0]['id']}/units", params={"limit": 1000})["items"]
    unit = next((u for u in units if u["ref"].startswith("heat")), units[0])
    occupant = headend.call(
        "POST",
        "/api/v1/occupants",
        json={
            "customer_ref": "DEMO-1",
            "name": "Dana Demo",
            "email": DEMO_EMAIL,
            "postal_address": f"Dana Demo\n{props[0]['name']}",
            "channel": "portal",
            "language": "de",
        },
    )
    moved_in = datetime.fromtimestamp(start, UTC).date().replace(day=1).isoformat()
    headend.call(
        "POST", f"/api/v1/units/{unit['id']}/occupancies", json={"occupant_id": occupant["id"], "moved_in": moved_in}
    )
    records = 0
    for month in months:
        result = headend.call("POST", "/api/v1/customer-info/records", json={"month": month}, expect=(200, 422))
        records += result.get("new", 0) if isinstance(result, dict) else 0
    invite = headend.call(
        "POST", "/api/v1/customer-info/invitations", json={"occupant_id": occupant["id"], "send": False}
    )
    token = invite["invite_url"].split("#invite=", 1)[1].split("&", 1)[0]
    password = secrets.token_urlsafe(10)
    r = httpx.post(
        f"{base_url}/portal/api/accept", json={"token": token, "password": password}, headers={"X-Portal": "1"}
    )
    r.raise_for_status()
    return {
        "portal_url": f"{base_url}/portal/#t={tenant_slug}",
        "email": DEMO_EMAIL,
        "password": password,
        "records": records,
    }
