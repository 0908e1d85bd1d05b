"""The customer portal's e-mail login link (also the way back after a forgotten password), through
the API with a real SMTP server (aiosmtpd): the link is mailed to an active account only, works
once, expires after 30 minutes, is replaced by a new request; an unknown address, another tenant's
slug or a locked account get the very same answer and no mail; asking and guessing links are
throttled (429 + Retry-After); a login-link session sets a new password without the old one, any
other session needs the old one. Every step is audited."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from omshub.cloud.services.customer_portal import accept, invite
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models import AuditEntry
from omshub.cloud.store.models_customers import PortalAccount
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW
from tests.cloud.test_customer_channels import free_port, smtp_server  # noqa: F401 (a fixture, used by name)

X = {"X-Portal": "1"}
XD = {**X, "Accept-Language": "de"}
PASSWORD = "lange genug 123"
_net = itertools.count(1)


@pytest.fixture
def browser(app):
    """A client from an address of its own (documentation range, never contacted), so the
    throttle's address counter is not shared with other tests."""
    n = next(_net)
    with TestClient(app, client=(f"198.51.100.{n % 250 + 1}", 40000)) as c:
        yield c


def _tenant(db, hub, port):
    """A tenant with the customer scenario; Anna has a password, Dora only an invitation."""
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(
            s,
            t.id,
            {
                "smtp": {"host": "127.0.0.1", "port": port, "sender": "info@stadtwerke.example", "timeout_s": 3},
                "portal_url": "https://kunden.example/portal",
                "supplier_name": "Stadtwerke Musterstadt",
            },
            actor="t",
            now=NOW,
        )
        _, token = invite(s, t.id, sc.occupants["Anna"], actor="t", now=NOW)
        accept(s, token, PASSWORD, NOW)
        invite(s, t.id, sc.occupants["Dora"], actor="t", now=NOW)
    return t, sc


def _ask(client, slug, email, language="de"):
    return client.post(
        "/portal/api/login-link", json={"tenant": slug, "email": email}, headers={**X, "Accept-Language": language}
    )


def _link(mail, slug):
    found = re.search(r"https://kunden\.example/portal/#login=([\w-]+)&t=(\S+)", mail.get_content())
    assert found is not None, mail.get_content()
    assert found.group(2) == slug
    return found.group(1)


def _use(client, token, language="de"):
    return client.post("/portal/api/link-login", json={"token": token}, headers={**X, "Accept-Language": language})


def _audit(db, tenant_id, action):
    with db.session() as s:
        return [
            e.details
            for e in s.scalars(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == action))
        ]


def test_a_login_link_is_mailed_and_works_once(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, sc = _tenant(db, hub, port)
    client = browser
    with time_machine.travel(NOW, tick=False):
        r = _ask(client, t.slug, "  Anna@Example.DE ")  # as typed: case and blanks do not matter
        assert r.status_code == 202, r.text
        assert r.json()["valid_minutes"] == 30 and "Anmeldelink" in r.json()["german"]
        ((to, mail),) = inbox.messages
        assert to == ["anna@example.de"] and mail["Subject"] == "Ihr Anmeldelink für das Kundenportal"
        assert "30 Minuten gültig" in mail.get_content() and "Stadtwerke Musterstadt" in mail["From"]
        token = _link(mail, t.slug)
        with db.session() as s:  # only the hash is stored
            account = s.scalar(select(PortalAccount).where(PortalAccount.occupant_id == sc.occupants["Anna"]))
            assert account.link_hash and token not in account.link_hash and account.link_expires_at is not None

        r = _use(client, token)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Anna" and r.json()["link_session"] is True and r.json()["has_password"] is True
        assert "omshub_portal" in r.cookies or client.cookies.get("omshub_portal")
        me = client.get("/portal/api/me")
        assert me.status_code == 200 and me.json()["link_session"] is True
        # used once: the same link again is refused, in German and English
        again = _use(client, token)
        assert again.status_code == 404 and "Anmeldelink ist unbekannt, schon benutzt oder abgelaufen" in again.text
        assert "login link is unknown, used or expired" in _use(client, token, "en").text
        assert _use(client, "").status_code == 422

        # the forgotten password: a login-link session sets a new one without the old
        short = client.post("/portal/api/me/password", json={"new_password": "kurz"}, headers=XD)
        assert short.status_code == 422 and "mindestens 10 Zeichen" in short.text
        assert client.post("/portal/api/me/password", json={"new_password": "ganz neues Passwort"}).status_code == 403
        r = client.post("/portal/api/me/password", json={"new_password": "ganz neues Passwort"}, headers=X)
        assert r.status_code == 204, r.text
        client.post("/portal/api/logout", headers=X)
        assert client.post("/portal/api/me/password", json={"new_password": "x" * 12}, headers=X).status_code == 401
        old = client.post(
            "/portal/api/login", json={"tenant": t.slug, "email": "anna@example.de", "password": PASSWORD}, headers=X
        )
        assert old.status_code == 401
        new = client.post(
            "/portal/api/login",
            json={"tenant": t.slug, "email": "anna@example.de", "password": "ganz neues Passwort"},
            headers=X,
        )
        assert new.status_code == 200 and new.json()["link_session"] is False
        # a password session needs the current password (a wrong one is refused and counted)
        no_old = client.post("/portal/api/me/password", json={"new_password": "noch ein Passwort"}, headers=XD)
        assert no_old.status_code == 401 and "bisherige Passwort ist falsch" in no_old.text
        wrong = {"current_password": "falsch falsch", "new_password": "noch ein Passwort"}
        assert client.post("/portal/api/me/password", json=wrong, headers=X).status_code == 401
        right = {"current_password": "ganz neues Passwort", "new_password": "noch ein Passwort"}
        assert client.post("/portal/api/me/password", json=right, headers=X).status_code == 204
        assert client.get("/portal/api/me").status_code == 200  # this session stays

        # an invited occupant who never set a password logs in with a link too, then sets one
        assert _ask(client, t.slug, "dora@example.de").status_code == 202
        dora = _link(inbox.messages[-1][1], t.slug)
        r = _use(client, dora)
        assert r.status_code == 200 and r.json()["name"] == "Dora" and r.json()["has_password"] is False
        assert client.post("/portal/api/me/password", json={"new_password": PASSWORD}, headers=X).status_code == 204
        assert client.get("/portal/api/me").json()["has_password"] is True

    anna = sc.occupants["Anna"]
    asked = _audit(db, t.id, "portal.login_link")
    assert {"account_id": account.id, "sent": True} in asked
    assert {"account_id": account.id} in _audit(db, t.id, "portal.link_login")
    passwords = _audit(db, t.id, "portal.password")
    assert {"account_id": account.id, "via_link": True} in passwords
    assert {"account_id": account.id, "via_link": False} in passwords
    assert anna  # the occupant the account belongs to


def test_an_english_occupant_gets_an_english_mail(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, sc = _tenant(db, hub, port)
    with db.transaction() as s:
        invite(s, t.id, sc.occupants["Frida"], actor="t", now=NOW)  # language "en"
    with time_machine.travel(NOW, tick=False):
        assert _ask(browser, t.slug, "frida@example.de", "en").status_code == 202
    ((_, mail),) = inbox.messages
    assert mail["Subject"] == "Your login link for the customer portal"
    assert "valid 30 minutes" in mail.get_content()


def test_a_link_expires_after_30_minutes(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, _ = _tenant(db, hub, port)
    with time_machine.travel(NOW, tick=False):
        assert _ask(browser, t.slug, "anna@example.de").status_code == 202
    token = _link(inbox.messages[-1][1], t.slug)
    with time_machine.travel(NOW + timedelta(minutes=31), tick=False):
        r = _use(browser, token)
        assert r.status_code == 404 and "abgelaufen" in r.text
        assert browser.get("/portal/api/me").status_code == 401
    # within the 30 minutes the same link works (the refusal did not use it up)
    with time_machine.travel(NOW + timedelta(minutes=29), tick=False):
        assert _use(browser, token).status_code == 200


def test_a_new_request_replaces_the_previous_link(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, _ = _tenant(db, hub, port)
    with time_machine.travel(NOW, tick=False):
        assert _ask(browser, t.slug, "anna@example.de").status_code == 202
        first = _link(inbox.messages[-1][1], t.slug)
        assert _ask(browser, t.slug, "anna@example.de").status_code == 202
        second = _link(inbox.messages[-1][1], t.slug)
        assert first != second and len(inbox.messages) == 2
        assert _use(browser, first).status_code == 404
        assert _use(browser, second).status_code == 200


def test_unknown_address_other_tenant_and_locked_account_get_the_same_answer_and_no_mail(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, sc = _tenant(db, hub, port)
    other = hub.tenant()
    with time_machine.travel(NOW, tick=False):
        known = _ask(browser, t.slug, "anna@example.de")
        assert len(inbox.messages) == 1
        token = _link(inbox.messages[-1][1], t.slug)
        answers = [
            _ask(browser, t.slug, "niemand@example.de"),  # no such account
            _ask(browser, other.slug, "anna@example.de"),  # Anna's address at another tenant
            _ask(browser, "kein-mandant", "anna@example.de"),  # no such tenant
        ]
        with db.transaction() as s:
            account = s.scalar(select(PortalAccount).where(PortalAccount.occupant_id == sc.occupants["Anna"]))
            account.locked_at = NOW
        answers.append(_ask(browser, t.slug, "anna@example.de"))  # locked
        for r in answers:
            assert (r.status_code, r.json()) == (known.status_code, known.json())
        assert len(inbox.messages) == 1  # nothing more sent
        # a link sent before the lock does not open a locked account
        assert _use(browser, token).status_code == 404
    reasons = [d.get("reason") for d in _audit(db, t.id, "portal.login_link") if not d["sent"]]
    assert sorted(reasons) == ["locked", "no such account"]
    assert _audit(db, other.id, "portal.login_link") == [
        {"account_id": None, "sent": False, "reason": "no such account"}
    ]


def test_an_smtp_failure_is_audited_and_the_answer_stays_the_same(browser, db, hub):
    t, _ = _tenant(db, hub, free_port())  # nothing listens there
    with time_machine.travel(NOW, tick=False):
        r = _ask(browser, t.slug, "anna@example.de")
        assert r.status_code == 202 and r.json()["valid_minutes"] == 30
    (failed,) = _audit(db, t.id, "portal.login_link_failed")
    assert failed["error"]


def test_asking_for_links_is_throttled_the_same_for_known_and_unknown_addresses(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, _ = _tenant(db, hub, port)
    with time_machine.travel(NOW, tick=False):
        known = [_ask(browser, t.slug, "anna@example.de").status_code for _ in range(8)]
        unknown = [_ask(browser, t.slug, "niemand@example.de").status_code for _ in range(8)]
        assert known[:5] == [202] * 5 and known[5] == 429
        assert unknown == known  # the throttle tells nothing about which accounts exist
        closed = _ask(browser, t.slug, "anna@example.de")
        assert closed.status_code == 429 and int(closed.headers["Retry-After"]) >= 1
        assert "Zu viele fehlgeschlagene Anmeldungen" in closed.text
        assert "too many failed logins" in _ask(browser, t.slug, "anna@example.de", "en").text
        assert len(inbox.messages) == 5  # no mail flood: only the requests let through sent one
        # the password login has counters of its own: still open for Anna
        r = browser.post(
            "/portal/api/login", json={"tenant": t.slug, "email": "anna@example.de", "password": PASSWORD}, headers=X
        )
        assert r.status_code == 200
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert _ask(browser, t.slug, "anna@example.de").status_code == 202


def test_guessing_login_links_is_throttled_per_address(browser, db, hub, smtp_server):
    inbox, port = smtp_server
    t, _ = _tenant(db, hub, port)
    with time_machine.travel(NOW, tick=False):
        assert _ask(browser, t.slug, "anna@example.de").status_code == 202
        token = _link(inbox.messages[-1][1], t.slug)
        codes = []
        for i in range(60):
            r = _use(browser, f"guess-{i}")
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert codes[:49] == [404] * 49 and codes[-1] == 429  # the address's 50 per 15 minutes (1 was the ask)
        assert int(r.headers["Retry-After"]) > 1
        assert _use(browser, token).status_code == 429  # even the real link waits while closed
    with time_machine.travel(NOW + timedelta(minutes=16), tick=False):
        assert _use(browser, token).status_code == 200


def test_migration_0009_portallink_up_down_up(empty_database_url):
    """The migration adds the link columns and the session flag, its downgrade removes them again,
    and the database migrates to the head once more with its data."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    from omshub.cloud.store.database import MIGRATIONS, Database

    db = Database(empty_database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))

        def columns(conn, table):
            return {c["name"] for c in inspect(conn).get_columns(table)}

        with db.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0009_custinfo3")
            conn.commit()
            assert "link_hash" not in columns(conn, "portal_accounts")
            command.upgrade(cfg, "0009_portallink")
            conn.commit()
            assert {"link_hash", "link_expires_at"} <= columns(conn, "portal_accounts")
            assert "via_link" in columns(conn, "portal_sessions")
            assert any(
                i["name"] == "ix_portal_accounts_link_hash" for i in inspect(conn).get_indexes("portal_accounts")
            )
            conn.exec_driver_sql(
                "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 't', 'T', '2026-01-01 02:00:00')"
            )
            command.downgrade(cfg, "0009_custinfo3")
            conn.commit()
            assert not {"link_hash", "link_expires_at"} & columns(conn, "portal_accounts")
            assert "via_link" not in columns(conn, "portal_sessions")
            command.upgrade(cfg, "head")
            conn.commit()
            assert conn.execute(text("SELECT slug FROM tenants")).scalar() == "t"
    finally:
        db.engine.dispose()


def test_one_link_used_at_once_logs_in_only_once(db, hub, smtp_server):
    """Four requests with the same link at the same moment: exactly one gets a session (the link is
    used up with a compare-and-set), the others the refusal."""
    import threading

    from omshub.cloud.domain.errors import NotFound
    from omshub.cloud.services.customer_portal import attempt_link_login, request_login_link

    inbox, port = smtp_server
    t, _ = _tenant(db, hub, port)
    mail = request_login_link(db, t.slug, "anna@example.de", address="192.0.2.1", now=NOW)
    assert mail is not None
    token = mail.url.split("#login=")[1].split("&")[0]
    barrier, results = threading.Barrier(4), []

    def use(i):
        barrier.wait()
        try:
            attempt_link_login(db, token, address=f"192.0.2.{10 + i}", now=NOW)
            results.append("in")
        except NotFound:
            results.append("refused")

    threads = [threading.Thread(target=use, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(results) == ["in", "refused", "refused", "refused"]
