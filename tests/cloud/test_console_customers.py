"""The customer information page of the console in Chromium, in German and in English: a month's
progress counts and completeness per property with the reasons, a failed notice sent again, an
occupant invited (the e-mail received by a real SMTP server), the settings refused next to the
field and then saved, the annual blocks' state. Screenshots under the run's output directory
(test_console_browser.OUT): `<lang>-customers-*.png`."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from omshub.cloud.services.customer_delivery import plan_deliveries, send_due
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW

from .conftest import LiveServer, free_port
from .test_console_browser import (
    ACCESSIBILITY_CHECKS,
    AXE,
    LOCALES,
    OUT,
    login,
    open_console,
    page_problems,
    settle,
    shot,
)
from .test_customer_channels import Inbox
from .test_web import CHROMIUM, CHROMIUM_ARGS, PASSWORD, _playwright

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WORDS = {
    "de": {
        "title": "Verbrauchsinformation",
        "records": "Datensätze mit vollständigen Werten",
        "failed": "fehlgeschlagen",
        "waiting": "wartet",
        "reason": "E-Mail fehlgeschlagen",
        "again": "Erneut senden",
        "again_ok": "wird in wenigen Sekunden erneut gesendet",
        "invite": "Einladen",
        "invited": "Einladung an anna@example.de gesendet",
        "state": "eingeladen",
        "port_error": "Ein Port von 1 bis 65535.",
        "save": "Einstellungen speichern",
        "saved": "Einstellungen gespeichert.",
        "blocks_missing": "Es fehlen:",
        "port": "Port",
    },
    "en": {
        "title": "Customer information",
        "records": "records with complete values",
        "failed": "failed",
        "waiting": "waiting",
        "reason": "e-mail failed",
        "again": "Send again",
        "again_ok": "is sent again within a few seconds",
        "invite": "Invite",
        "invited": "Invitation sent to anna@example.de",
        "state": "invited",
        "port_error": "A port from 1 to 65535.",
        "save": "Save settings",
        "saved": "Settings saved.",
        "blocks_missing": "Missing:",
        "port": "Port",
    },
}


@pytest.fixture(scope="module")
def chromium(database_url, data_dir):
    """`omshub serve` without the background sender (the notices' states stay as the test set
    them), Debian's Chromium and an SMTP server on loopback (aiosmtpd) for the invitations."""
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    sync_playwright = _playwright()
    inbox, port = Inbox(), free_port()
    smtp = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    live = LiveServer(database_url, data_dir, {"OMSHUB_DELIVERY_INTERVAL_S": "0"})
    live.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield live.base_url, browser, inbox, port
            finally:
                browser.close()
    finally:
        live.stop()
        smtp.stop()


def _month(db, hub, smtp_port: int):
    """A tenant whose November is computed: six e-mail notices waiting (the server was down), Bert's
    failed (an invalid address), Gina's letter not printed yet."""
    t = hub.tenant()
    admin = hub.user(t, "admin", PASSWORD)
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        down = {"host": "127.0.0.1", "port": free_port(), "sender": "info@sw.example", "timeout_s": 2}
        update_settings(s, t.id, {"supplier_name": "Stadtwerke Musterstadt", "smtp": down}, actor="t", now=NOW)
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
        plan_deliveries(s, t.id, "2026-11", NOW)
        bert = s.scalar(
            select(CustomerDelivery).join(CustomerRecord).where(CustomerRecord.occupant_id == sc.occupants["Bert"])
        )
        bert.address = "bert at example"
        # in a thread of its own: Playwright's event loop runs in this one
        worker = threading.Thread(target=send_due, args=(s, t.id, NOW))
        worker.start()
        worker.join()
        # the server is up now, for the invitation
        update_settings(s, t.id, {"smtp": {"port": smtp_port}}, actor="t", now=NOW)
    return t, admin


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_customer_information_page(chromium, db, hub, lang):
    from playwright.sync_api import expect

    w = WORDS[lang]
    base_url, browser, inbox, smtp_port = chromium
    tenant, admin = _month(db, hub, smtp_port)
    page, problems = open_console(browser, base_url, lang)
    login(page, admin, lang)
    page.get_by_role("link", name=w["title"]).click()
    page.locator("input[name=month]").fill("2026-11")
    page.locator("input[name=month]").press("Enter")
    expect(page.locator(".stats")).to_contain_text(w["records"])
    main = page.locator("main")
    expect(main).to_contain_text("Lindenhof")
    bert = page.locator("main details tbody tr").filter(has_text="Bert")
    expect(bert).to_contain_text(w["failed"])
    expect(bert).to_contain_text(w["reason"])
    anna = page.locator("main details tbody tr").filter(has_text="Anna").first
    expect(anna).to_contain_text(w["waiting"])
    report = [f"run: {p}" for p in page_problems(page, lang)]
    shot(page, lang, "customers-run")
    page.locator("main section").first.screenshot(path=str(OUT / f"{lang}-customers-month.png"))  # for the docs
    bert.get_by_role("button", name=w["again"]).click()
    expect(main).to_contain_text(w["again_ok"])
    expect(page.locator("main details tbody tr").filter(has_text="Bert")).to_contain_text(w["waiting"])
    # the month's field refuses a wrong month next to it
    page.locator("input[name=month]").fill("11/2026")
    page.locator("input[name=month]").press("Enter")
    expect(page.locator("input[name=month] + .field-error, input[name=month] ~ .field-error")).to_be_visible()
    # invitations
    row = page.locator("main .paged tbody tr").filter(has_text="anna@example.de")
    row.get_by_role("button", name=w["invite"]).click()
    expect(main).to_contain_text(w["invited"])
    expect(page.locator("main .paged tbody tr").filter(has_text="anna@example.de")).to_contain_text(w["state"])
    assert any(r == ["anna@example.de"] for r, _ in inbox.messages)
    shot(page, lang, "customers-invitations")
    # the settings: a wrong port is refused next to the field, then saved
    port = page.locator("input[name='smtp.port']")
    port.fill("70000")
    page.get_by_role("button", name=w["save"]).click()
    expect(page.locator("input[name='smtp.port'] + .field-error")).to_have_text(w["port_error"])
    shot(page, lang, "customers-settings-error")
    port.fill(str(smtp_port))
    page.locator("input[name=supplier_contact]").fill("030 1234")
    page.locator("textarea[name='annual_blocks.energy_mix']").fill("Erdgas 60 %, Biomasse 40 %")
    page.get_by_role("button", name=w["save"]).click()
    expect(main).to_contain_text(w["saved"])
    expect(main).to_contain_text(w["blocks_missing"])
    report += [f"settings: {p}" for p in page_problems(page, lang)]
    shot(page, lang, "customers-settings")
    assert report + problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_customer_information_page_passes_the_accessibility_checks(chromium, db, hub, lang):
    base_url, browser, _, smtp_port = chromium
    _, admin = _month(db, hub, smtp_port)
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(base_url + "/")
    login(page, admin, lang)
    try:
        page.goto(base_url + "/#/customers?month=2026-11")
        settle(page)
        report = list(page.evaluate(ACCESSIBILITY_CHECKS))
        page.evaluate(AXE.read_text())
        report += page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter((v) => ['critical', 'serious'].includes(v.impact))"
            ".map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}×: ${v.nodes[0].target})`)"
        )
    finally:
        context.close()
    assert report == []
