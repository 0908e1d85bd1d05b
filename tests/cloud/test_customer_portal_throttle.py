"""The portal's password login and invitation link are behind the console's login throttle
(services/login_throttle.py): failed attempts slow down per account and address (429 with
Retry-After, even for the right password while closed), an unknown address is throttled like a known
one, a success resets the pair, and guessing invitation links is stopped per client address."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import time_machine
from fastapi.testclient import TestClient

from omshub.cloud.services.customer_portal import accept, invite
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW

X = {"X-Portal": "1"}
_net = itertools.count(1)


@pytest.fixture
def browser(app):
    """A client from an address of its own (documentation range, never contacted): the throttle's
    address counter is not shared with other tests."""
    n = next(_net)
    with TestClient(app, client=(f"203.0.113.{n % 250 + 1}", 40000)) as c:
        yield c


def _anna(db, hub):
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        _, token = invite(s, t.id, sc.occupants["Anna"], actor="t", now=NOW)
        accept(s, token, "lange genug 123", NOW)
    return t


def _login(client, slug, password, email="anna@example.de", accept_language="en"):
    return client.post(
        "/portal/api/login",
        json={"tenant": slug, "email": email, "password": password},
        headers={**X, "Accept-Language": accept_language},
    )


def test_failed_portal_logins_are_throttled(browser, db, hub):
    client = browser
    t = _anna(db, hub)
    with time_machine.travel(NOW, tick=False):
        codes = [_login(client, t.slug, f"falsch {i} falsch").status_code for i in range(8)]
        assert codes[:5] == [401] * 5 and 429 in codes[5:]  # the first five cost nothing, then waits
        closed = _login(client, t.slug, "lange genug 123")
        assert closed.status_code == 429 and int(closed.headers["Retry-After"]) >= 1
        assert "too many failed logins" in closed.text
        german = _login(client, t.slug, "lange genug 123", accept_language="de")
        assert german.status_code == 429 and "Zu viele fehlgeschlagene Anmeldungen" in german.text
        # an unknown address is throttled exactly like a known one (nothing tells which exist)
        unknown = [_login(client, t.slug, f"falsch {i}", email="niemand@example.de").status_code for i in range(8)]
        assert unknown[:5] == [401] * 5 and 429 in unknown[5:]
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert _login(client, t.slug, "lange genug 123").status_code == 200  # the wait is over
        assert client.get("/portal/api/me").status_code == 200
        # a success reset the pair: five free failures again
        client.post("/portal/api/logout", headers=X)
        assert [_login(client, t.slug, f"falsch {i}").status_code for i in range(5)] == [401] * 5


def test_guessing_invitation_links_is_throttled_per_address(browser, db, hub):
    client = browser
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        _, token = invite(s, t.id, sc.occupants["Dora"], actor="t", now=NOW)
    with time_machine.travel(NOW, tick=False):
        codes = []
        for i in range(60):
            r = client.post(
                "/portal/api/accept", json={"token": f"guess-{i}", "password": "lange genug 123"}, headers=X
            )
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert codes[:50] == [404] * 50 and codes[-1] == 429  # 50 failures per 15 minutes from one address
        assert int(r.headers["Retry-After"]) > 1
        # even the real link waits while this address is closed
        real = {"token": token, "password": "lange genug 123"}
        assert client.post("/portal/api/accept", json=real, headers=X).status_code == 429
        # a short password is refused before anything is counted
        short = client.post("/portal/api/accept", json={"token": "x", "password": "kurz"}, headers=X)
        assert short.status_code == 422
    with time_machine.travel(NOW + timedelta(minutes=16), tick=False):
        r = client.post("/portal/api/accept", json=real, headers=X)
        assert r.status_code == 200 and r.json()["name"] == "Dora"
