"""The customer portal in Chromium (Playwright): an invited occupant sets a password from the link,
sees their month as numbers and a 13-month bar chart, switches to English, opens the profile; on a
phone-sized screen too. Every input has a label, no console errors. Screenshots under the run's
output directory (`OMSHUB_TEST_OUTPUT`, default `test-output/`): `portal/<name>.png`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omshub.cloud.services.customer_portal import invite
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import update_settings
from omshub.times import utcnow
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW

from .conftest import LiveServer
from .test_web import CHROMIUM, CHROMIUM_ARGS, _playwright

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("OMSHUB_TEST_OUTPUT") or ROOT / "test-output") / "portal"


def test_an_invited_occupant_sets_a_password_and_reads_the_month(database_url, data_dir, db, hub):
    sync_playwright = _playwright()
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(s, t.id, {"supplier_name": "Stadtwerke Musterstadt"}, actor="t", now=NOW)
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
        # the server checks the invitation's expiry on its own clock: invited "now" on that clock,
        # whatever day the test runs
        _, token = invite(s, t.id, sc.occupants["Frida"], actor="test", now=utcnow())
    live = LiveServer(database_url, data_dir)
    live.start()
    OUT.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 900}, locale="de-DE")
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{live.base_url}/portal/#invite={token}&t={t.slug}")
            invitation = page.locator("#view-invite")
            invitation.get_by_label("Passwort", exact=True).fill("ein gutes Passwort")
            invitation.get_by_label("Passwort wiederholen").fill("ein gutes Passwort")
            page.screenshot(path=str(OUT / "de-invite.png"))
            page.get_by_role("button", name="Passwort speichern").click()
            page.wait_for_selector("#month-detail table")
            text = page.inner_text("#month-detail")
            assert "800,0" in text and "2,50" in text and "Vormonat" in text and "731,8" in text
            assert page.locator(".chart svg rect").count() == 1  # only November is Frida's
            page.screenshot(path=str(OUT / "de-month.png"), full_page=True)
            page.get_by_role("button", name="English").click()
            text = page.inner_text("#month-detail")
            assert "800.0" in text and "Previous month" in text and "Download PDF" in text
            page.screenshot(path=str(OUT / "en-month.png"), full_page=True)
            page.get_by_role("button", name="Profile").click()
            page.wait_for_selector("#view-profile:not([hidden])")
            assert page.input_value("#profile-email") == "frida@example.de"
            page.screenshot(path=str(OUT / "en-profile.png"))
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=radio]), select')]
                      .filter(e => !document.querySelector(`label[for="${e.id}"]`)).map(e => e.id)"""
            )
            assert unlabelled == []
            # the same browser (the login's cookie) reloaded at a phone's width
            phone = page
            phone.set_viewport_size({"width": 375, "height": 740})
            phone.goto(f"{live.base_url}/portal/")
            phone.wait_for_selector("#month-detail table")
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page scrolls sideways on a phone ({width} px)"
            phone.screenshot(path=str(OUT / "phone-month.png"), full_page=True)
            browser.close()
    finally:
        live.stop()
    assert errors == []


def test_the_occupant_downloads_annual_information_and_gives_and_withdraws_consent(database_url, data_dir, db, hub):
    """Anna (since 2020): the annual information's finished periods as PDF links, and in the profile a
    consent to pass her data to a provider, then withdrawn. (The server runs on the real clock: the
    years checked are long over.)"""
    from tests.cloud.test_customer_annual_pdf import BLOCKS

    sync_playwright = _playwright()
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(
            s, t.id, {"supplier_name": "Stadtwerke Musterstadt", "annual_blocks": BLOCKS}, actor="t", now=NOW
        )
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
        _, token = invite(s, t.id, sc.occupants["Anna"], actor="test", now=utcnow())
    live = LiveServer(database_url, data_dir)
    live.start()
    OUT.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 900}, locale="de-DE", accept_downloads=True)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{live.base_url}/portal/#invite={token}&t={t.slug}")
            invitation = page.locator("#view-invite")
            invitation.get_by_label("Passwort", exact=True).fill("ein gutes Passwort")
            invitation.get_by_label("Passwort wiederholen").fill("ein gutes Passwort")
            page.get_by_role("button", name="Passwort speichern").click()
            page.wait_for_selector("#annual-list a")
            link = page.get_by_role("link", name="Jahresinformation 2021 (PDF)")
            with page.expect_download() as download:
                link.click()
            assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
            page.screenshot(path=str(OUT / "de-annual.png"), full_page=True)
            page.get_by_role("button", name="Profil").click()
            page.wait_for_selector("#consent-list li")
            assert "Keine Einwilligungen" in page.inner_text("#consent-list")
            page.get_by_label("Energiedienstleister", exact=True).fill("Energieberatung Nord")
            page.get_by_label("Von Monat").fill("2025-01")
            page.get_by_label("Bis Monat").fill("2026-11")
            page.get_by_role("button", name="Einwilligung erteilen").click()
            page.wait_for_selector("#consent-list button")
            assert "Energieberatung Nord" in page.inner_text("#consent-list")
            page.screenshot(path=str(OUT / "de-consent.png"), full_page=True)
            page.get_by_role("button", name="Widerrufen").click()
            page.locator("#consent-list li", has_text="widerrufen am").wait_for()
            page.get_by_role("button", name="English").click()
            page.locator("#consent-list li", has_text="withdrawn on").wait_for()
            page.screenshot(path=str(OUT / "en-consent.png"), full_page=True)
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=radio]), select')]
                      .filter(e => !document.querySelector(`label[for="${e.id}"]`)).map(e => e.id)"""
            )
            assert unlabelled == []
            browser.close()
    finally:
        live.stop()
    assert errors == []


def test_an_occupant_who_forgot_the_password_logs_in_with_an_e_mail_link(database_url, data_dir, db, hub):
    """Anna forgot her password: on the login page she asks for a login link, the link from the
    e-mail (received by aiosmtpd) opens the portal logged in, and in the profile she sets a new
    password without the old one; then she logs in with it. Keyboard only for the request; on a
    phone-sized screen. (The server runs on the real clock: the link is made "now".)"""
    import re
    import time

    from aiosmtpd.controller import Controller

    from omshub.cloud.services.customer_portal import accept

    from .test_customer_channels import Inbox, free_port

    sync_playwright = _playwright()
    inbox, smtp_port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    live = LiveServer(database_url, data_dir)
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(
            s,
            t.id,
            {
                "supplier_name": "Stadtwerke Musterstadt",
                "portal_url": f"{live.base_url}/portal",
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "info@stadtwerke.example", "timeout_s": 5},
            },
            actor="t",
            now=NOW,
        )
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
        _, token = invite(s, t.id, sc.occupants["Anna"], actor="test", now=utcnow())
        accept(s, token, "vergessenes Passwort", utcnow())
    live.start()
    OUT.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 375, "height": 740}, locale="de-DE")
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{live.base_url}/portal/#t={t.slug}")
            page.wait_for_selector("#view-login:not([hidden])")
            assert page.get_by_role("heading", name="Anmeldelink per E-Mail").is_visible()
            # keyboard only: type the address, tab past the password and the login button to the link button
            login = page.locator("#view-login")
            login.get_by_label("E-Mail-Adresse").fill("anna@example.de")
            login.get_by_label("E-Mail-Adresse").focus()
            for _ in range(3):
                page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.id") == "link-send"
            page.keyboard.press("Enter")
            page.locator("#message", has_text="Anmeldelink unterwegs").wait_for()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the login page scrolls sideways on a phone ({width} px)"
            page.screenshot(path=str(OUT / "phone-login-link.png"), full_page=True)
            deadline = time.monotonic() + 15
            while not inbox.messages and time.monotonic() < deadline:
                time.sleep(0.1)
            ((to, mail),) = inbox.messages
            assert to == ["anna@example.de"] and mail["Subject"] == "Ihr Anmeldelink für das Kundenportal"
            link = re.search(r"(http://\S+/portal/#login=[\w-]+&t=\S+)", mail.get_content()).group(1)

            # the link from the e-mail opens in a new tab of the same browser
            page.close()
            page = browser.new_page(viewport={"width": 1000, "height": 900}, locale="de-DE")
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(link)
            page.wait_for_selector("#month-detail table")
            assert "#login" not in page.url  # the used link leaves the address bar
            page.get_by_role("button", name="Profil").click()
            page.wait_for_selector("#view-profile:not([hidden])")
            assert page.locator("#password-current").is_hidden()  # a login-link session: no old password
            assert "Anmeldelink angemeldet" in page.inner_text("#password-hint")
            page.get_by_label("Neues Passwort", exact=True).fill("mein neues Passwort")
            page.locator("#password-form").get_by_label("Passwort wiederholen").fill("mein neues Passwort")
            page.get_by_role("button", name="Passwort speichern").click()
            page.locator("#message", has_text="Das neue Passwort ist gespeichert").wait_for()
            page.screenshot(path=str(OUT / "de-link-password.png"), full_page=True)
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=radio]), select')]
                      .filter(e => !document.querySelector(`label[for="${e.id}"]`)).map(e => e.id)"""
            )
            assert unlabelled == []
            page.get_by_role("button", name="English").click()
            assert "logged in with a login link" in page.inner_text("#password-hint")
            page.get_by_role("button", name="Back").click()
            page.get_by_role("button", name="Log out").click()
            page.wait_for_selector("#view-login:not([hidden])")
            assert page.get_by_role("heading", name="Login link by e-mail").is_visible()
            page.screenshot(path=str(OUT / "en-login.png"), full_page=True)
            login = page.locator("#view-login")
            login.get_by_label("E-mail address").fill("anna@example.de")
            login.get_by_label("Password", exact=True).fill("mein neues Passwort")
            login.get_by_role("button", name="Log in", exact=True).click()
            page.wait_for_selector("#month-detail table")
            # the used link does not log in again
            page.get_by_role("button", name="Log out").click()
            page.goto(link)  # the same page: only the hash changes
            page.locator("#message", has_text="login link is unknown, used or expired").wait_for()
            assert page.locator("#view-login").is_visible()
            browser.close()
    finally:
        live.stop()
        smtp.stop()
    # the answers the flow expects (not logged in yet: 401; the used link: 404) are logged by
    # Chromium as failed loads; nothing else may be
    expected = re.compile(r"Failed to load resource: the server responded with a status of (401|404)")
    assert [e for e in errors if not expected.match(e)] == []
    assert any("401" in e for e in errors) and any("404" in e for e in errors)
