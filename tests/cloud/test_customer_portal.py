"""The customer portal through its API: invitation by e-mail (received by aiosmtpd) with a one-time
link, password, login, the occupant's own months only (another's or one outside the stay: 404), the
PDF, the profile, every read logged, the change header, logout and a locked account."""

from __future__ import annotations

import re

import time_machine
from sqlalchemy import func, select

from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models_customers import PortalAccount, PortalRead
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW
from tests.cloud.test_customer_channels import smtp_server  # noqa: F401 (a fixture, used by name)

X = {"X-Portal": "1"}


def test_an_occupant_sees_only_their_own_months(client, hub, db, smtp_server):
    inbox, port = smtp_server
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(
            s,
            t.id,
            {"smtp": {"host": "127.0.0.1", "port": port}, "portal_url": "https://kunden.example/portal"},
            actor="t",
            now=NOW,
        )
        build_month(s, t.id, "2026-10", actor="test", now=NOW)
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
    h = hub.headers(t, "operator")
    with time_machine.travel(NOW, tick=False):
        r = client.post("/api/v1/customer-info/invitations", json={"occupant_id": sc.occupants["Dora"]}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["sent"] is True and r.json()["email"] == "dora@example.de"
        ((to, mail),) = inbox.messages
        assert to == ["dora@example.de"] and mail["Subject"] == "Einladung zum Kundenportal"
        link = re.search(r"https://kunden\.example/portal/#invite=(\S+)&t=(\S+)", mail.get_content())
        token, slug = link.group(1), link.group(2)
        assert slug == t.slug
        # another tenant's operator cannot invite A's occupant
        other = hub.headers(hub.tenant(), "operator")
        assert (
            client.post(
                "/api/v1/customer-info/invitations", json={"occupant_id": sc.occupants["Dora"]}, headers=other
            ).status_code
            == 404
        )

        assert (
            client.post("/portal/api/accept", json={"token": token, "password": "short"}, headers=X).status_code == 422
        )
        r = client.post("/portal/api/accept", json={"token": token, "password": "lange genug 123"}, headers=X)
        assert r.status_code == 200 and r.json()["name"] == "Dora"
        assert (
            client.post(
                "/portal/api/accept", json={"token": token, "password": "lange genug 123"}, headers=X
            ).status_code
            == 404
        )
        client.post("/portal/api/logout", headers=X)
        assert client.get("/portal/api/me").status_code == 401
        bad = client.post(
            "/portal/api/login",
            json={"tenant": slug, "email": "dora@example.de", "password": "falsch falsch"},
            headers=X,
        )
        assert bad.status_code == 401
        assert (
            client.post(
                "/portal/api/login", json={"tenant": slug, "email": "dora@example.de", "password": "lange genug 123"}
            ).status_code
            == 403
        )
        r = client.post(
            "/portal/api/login",
            json={"tenant": slug, "email": "DORA@example.de", "password": "lange genug 123"},
            headers=X,
        )
        assert r.status_code == 200

        months = client.get("/portal/api/months").json()
        assert months == [
            {
                "month": "2026-11",
                "days": ["2026-11-16", "2026-11-30"],
                "heat": {"value": 400.0, "status": "interpolated", "mark": ""},
            }
        ]
        nov = client.get("/portal/api/months/2026-11").json()
        assert nov["occupant"]["name"] == "Dora" and nov["lines"][0]["previous"]["status"] == "before_move_in"
        # October was Carl's: not found for Dora, and no other occupant's month either
        assert client.get("/portal/api/months/2026-10").status_code == 404
        assert client.get("/portal/api/months/2026-12").status_code == 422  # not over yet
        pdf = client.get("/portal/api/months/2026-11/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        # the operator API is not open to the portal session
        assert client.get("/api/v1/customer-info/records", params={"month": "2026-11"}).status_code == 401

        r = client.patch("/portal/api/me", json={"email": "kein mail"}, headers=X)
        assert r.status_code == 422
        r = client.patch("/portal/api/me", json={"language": "en", "channel": "portal"}, headers=X)
        assert r.json() == {
            "name": "Dora",
            "email": "dora@example.de",
            "language": "en",
            "channel": "portal",
            "has_password": True,
            "link_session": False,
        }
        assert client.patch("/portal/api/me", json={"language": "de"}).status_code == 403  # no X-Portal header

    with db.session() as s:
        account = s.scalar(select(PortalAccount).where(PortalAccount.occupant_id == sc.occupants["Dora"]))
        reads = s.scalars(
            select(PortalRead.what).where(PortalRead.account_id == account.id).order_by(PortalRead.id)
        ).all()
        assert reads == ["months", "month 2026-11", "pdf 2026-11"]
        assert s.scalar(select(func.count()).select_from(PortalRead).where(PortalRead.what.like("%2026-10%"))) == 0
    with db.transaction() as s:
        s.get(PortalAccount, account.id).locked_at = NOW
    with time_machine.travel(NOW, tick=False):
        assert client.get("/portal/api/me").status_code == 401
        r = client.post(
            "/portal/api/login",
            json={"tenant": slug, "email": "dora@example.de", "password": "lange genug 123"},
            headers=X,
        )
        assert r.status_code == 401


def test_accounts_are_locked_a_while_after_moving_out(s, hub):
    from datetime import timedelta

    from omshub.cloud.services.customer_portal import invite, lock_moved_out

    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    carl, _ = invite(s, t.id, sc.occupants["Carl"], actor="t", now=NOW)  # moved out 15 Nov 2026
    anna, _ = invite(s, t.id, sc.occupants["Anna"], actor="t", now=NOW)  # still there
    assert lock_moved_out(s, t.id, NOW, days=90) == 0
    later = NOW + timedelta(days=91)
    assert lock_moved_out(s, t.id, later, days=90) == 1
    assert carl.locked_at == later and anna.locked_at is None


def test_parallel_reads_of_one_occupant_all_answer(app, client, hub, db):
    """A page asks for several things at once, and each read is logged (a write): on SQLite the
    portal's sessions take the write lock at their start, so the requests queue and none is left
    with a stale snapshot or stuck until the browser gives up."""
    import asyncio

    import httpx

    from omshub.cloud.services import customer_portal as portal

    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
        _, token = portal.invite(s, t.id, sc.occupants["Dora"], actor="test", now=NOW)
    with time_machine.travel(NOW, tick=False):
        r = client.post("/portal/api/accept", json={"token": token, "password": "lange genug 123"}, headers=X)
        assert r.status_code == 200, r.text
        cookies = dict(client.cookies)
        paths = ["/portal/api/me", "/portal/api/months", "/portal/api/months/2026-11", "/portal/api/consents"] * 3

        async def all_at_once() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies) as c:
                return await asyncio.wait_for(asyncio.gather(*(c.get(p, headers=X) for p in paths)), timeout=30)

        answers = asyncio.run(all_at_once())
    assert [a.status_code for a in answers] == [200] * len(paths), [a.text for a in answers if a.status_code != 200]
    with db.session() as s:
        logged = s.scalar(select(func.count()).select_from(PortalRead).where(PortalRead.tenant_id == t.id))
    assert logged >= len(paths)
