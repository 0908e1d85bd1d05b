"""The console in a real browser, in German and in English (issue 15): every page walked for
untranslated texts, raw JSON, `undefined`/`null`/`NaN`, ISO timestamps, console errors and failed
requests; accessibility checks on the main pages; each page's load time printed; a screenshot of
every page in both languages under the run's output directory (`OMSHUB_TEST_OUTPUT`, default
`test-output/` in the checkout: `console/<lang>-<page>.png`).
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.clock import EPOCH

from .conftest import KEY, LiveServer, encode
from .test_web import CHROMIUM, CHROMIUM_ARGS, PASSWORD, _playwright

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("OMSHUB_TEST_OUTPUT") or ROOT / "test-output") / "console"
LOCALES = {"de": "de-DE", "en": "en-GB"}
RAW = [
    (re.compile(r"\bundefined\b"), "undefined"),
    (re.compile(r"\bnull\b"), "null"),
    (re.compile(r"\bNaN\b"), "NaN"),
    (re.compile(r"[{\[]\s*\"\w+\"\s*:"), "raw JSON"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"), "an ISO timestamp"),
    (re.compile(r"\[object \w+\]"), "[object …]"),
]
# what only the English page may show (a German page showing it was not translated)
ENGLISH_ONLY = re.compile(r"\b(the|and|not|with|Meter|Gateways? not|Telegrams|Metering point|Last contact)\b")


@pytest.fixture(scope="module")
def server(database_url, data_dir):
    sync_playwright = _playwright()
    live = LiveServer(database_url, data_dir)
    live.start()
    try:
        yield live.base_url, sync_playwright
    finally:
        live.stop()


@pytest.fixture(scope="module")
def chromium(server):
    base_url, sync_playwright = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield base_url, browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def fleet(module_hub, chromium):
    """A tenant with an admin, a gateway that sent decoded telegrams, a meter at a metering point."""
    base_url, _ = chromium
    hub = module_hub
    tenant = hub.tenant()
    admin = hub.user(tenant, "admin", PASSWORD)
    gw = hub.gateway(tenant)
    meter = hub.meter(tenant, "31000001")
    hub.meter(tenant, "31000002", device_type="water")
    hub.keys(tenant, {"31000001": KEY}, "KAM")
    hub.send(gw, 1, [encode("31000001", energy=1234.5), encode("39999999")], status={"battery_pct": 81, "rssi": -71})
    headers = hub.headers(tenant, "admin")
    point = httpx.post(
        base_url + "/api/v1/metering-points",
        json={"ref": "MP-0001", "address": "Hauptstraße 1, 12345 Musterstadt", "customer_ref": "K-4711"},
        headers=headers,
        timeout=30,
    ).json()
    at = EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ")
    r = httpx.post(
        base_url + f"/api/v1/metering-points/{point['id']}/install",
        json={"meter": meter, "at": at},
        headers=headers,
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    deadline = time.monotonic() + 30  # the server's pipeline decodes the telegram
    while time.monotonic() < deadline:
        readings = httpx.get(
            base_url + f"/api/v1/console/meters/{meter}/recent-readings", headers=headers, timeout=30
        ).json()
        if readings["items"]:
            break
        time.sleep(0.2)
    # the month after the meter's last reading closed for billing: boundary values (missing: no
    # reading after them) and a finding (the reading is weeks old) for the billing pages
    nxt = (EPOCH.replace(day=1) + timedelta(days=32)).replace(day=1)
    closed = httpx.post(
        base_url + "/api/v1/billing/close", json={"period": f"{nxt:%Y-%m}"}, headers=headers, timeout=60
    )
    assert closed.status_code == 200, closed.text
    return {"tenant": tenant, "admin": admin, "gateway": gw.id, "meter": meter, "point": point["id"]}


def open_console(browser, base_url: str, lang: str):
    """A logged-out page in `lang`, recording console errors and failed requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale=LOCALES[lang], timezone_id="Europe/Berlin")
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(base_url + "/")
    return page, problems


def login(page, username: str, lang: str) -> None:
    from playwright.sync_api import expect

    page.get_by_label("Benutzername" if lang == "de" else "Username").fill(username)
    page.get_by_label("Passwort" if lang == "de" else "Password").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden" if lang == "de" else "Log in").click()
    expect(page.locator("#topbar")).to_be_visible()


def shot(page, lang: str, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{lang}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def settle(page, since: float = 0.0) -> float:
    """Wait until the page's requests are done; the seconds from `since` (the page's clock, ms)
    to the end of its last request."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(150)  # the last answers rendered
    return page.evaluate(
        "(since) => (Math.max(since, ...performance.getEntriesByType('resource')"
        ".filter((e) => e.startTime >= since).map((e) => e.responseEnd)) - since) / 1000",
        since,
    )


def page_problems(page, lang: str) -> list[str]:
    text = page.locator("body").inner_text()
    found = [
        f"{what}: …{text[max(0, m.start() - 40) : m.end() + 40]!r}…" for rx, what in RAW for m in [rx.search(text)] if m
    ]
    missing = page.evaluate("() => [...window.omshubMissing]")
    if lang == "de":
        found += [f"no German for {k!r}" for k in missing]
        english = ENGLISH_ONLY.search(text)
        if english:
            found.append(f"English on a German page: …{text[max(0, english.start() - 40) : english.end() + 40]!r}…")
    return found


# The console's pages: (name, hash route, what the page shows when it is ready)
def pages(fleet) -> list[tuple[str, str]]:
    return [
        ("gateways", "#/gateways"),
        ("gateway", f"#/gateways/{fleet['gateway']}"),
        ("meters", "#/meters"),
        ("meter", f"#/meters/{fleet['meter']}"),
        ("telegrams", "#/telegrams"),
        ("points", "#/points"),
        ("point", f"#/points/{fleet['point']}"),
        ("alarms", "#/alarms?show=all"),
        ("alarms-of-a-kind", "#/alarms?show=all&kind=meter_silent"),
        ("operations", "#/operations"),
        ("search", "#/search?q=3100"),
        ("export", "#/export"),
        ("admin", "#/admin"),
        ("audit", "#/audit"),
        ("review", "#/review"),
        ("billing exports", "#/deliveries"),
        ("customer information", "#/customers"),
        ("dashboard", "#/"),  # last: the login ends on it
    ]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_page_is_readable_in_both_languages(chromium, fleet, lang):
    base_url, browser = chromium
    page, problems = open_console(browser, base_url, lang)
    shot(page, lang, "login")
    login(page, fleet["admin"], lang)
    report, times = [], []
    for name, route in pages(fleet):
        since = page.evaluate("() => performance.now()")
        page.goto(base_url + "/" + route)
        seconds = settle(page, since)
        times.append(f"{name} {seconds * 1000:.0f} ms")
        shot(page, lang, name)
        report += [f"{name}: {p}" for p in page_problems(page, lang)]
    print(f"\npage load times ({lang}): " + ", ".join(times))
    assert report + problems == []


AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core from npm, see vendor/README.md


@pytest.mark.parametrize("lang", ["de", "en"])
def test_main_pages_pass_the_accessibility_checks(chromium, fleet, lang):
    """axe-core (run in the page; the test's context lets it past the console's CSP) finds no
    critical or serious issue, and the checks written by hand hold: every form control, button
    and link has a name, every image an alternative, the page a language and a title, ids are
    unique, there is an h1."""
    base_url, browser = chromium
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(base_url + "/")
    login(page, fleet["admin"], lang)
    report, checked = [], 0
    try:
        for name, route in pages(fleet):
            page.goto(base_url + "/" + route)
            settle(page)
            report += [f"{name}: {i}" for i in page.evaluate(ACCESSIBILITY_CHECKS)]
            if not page.evaluate("() => !!window.axe"):
                page.evaluate(AXE.read_text())
            found = page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                ".filter((v) => ['critical', 'serious'].includes(v.impact))"
                ".map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}×: ${v.nodes[0].target})`)"
            )
            report += [f"{name}: {v}" for v in found]
            checked += 1
        # axe really ran: it finds what it must on a page made bad on purpose
        page.evaluate(
            "() => document.querySelector('main').append(Object.assign(document.createElement('input'), {type: 'text'}))"
        )
        bad = page.evaluate("async () => (await axe.run(document)).violations.map((v) => v.id)")
        assert "label" in bad, bad
    finally:
        context.close()
    assert checked == len(pages(fleet)) and report == []


ACCESSIBILITY_CHECKS = """() => {
  const issues = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const name = (el) => {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(" ").map((id) => (document.getElementById(id) || {}).textContent || "").join(" ");
    if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(" ");
    return (el.textContent || el.value || el.getAttribute("title") || el.getAttribute("alt") || "").trim();
  };
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (visible(el) && !name(el).trim()) issues.push(`form control without a label: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (visible(el) && !name(el).trim()) issues.push(`button or link without a name: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("img, svg[role=img]")) {
    if (!el.getAttribute("alt") && !el.getAttribute("aria-label")) issues.push("image without alternative text");
  }
  if (!document.documentElement.lang) issues.push("the page has no language");
  if (!document.title.trim()) issues.push("the page has no title");
  const ids = [...document.querySelectorAll("[id]")].map((e) => e.id);
  for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i))) issues.push(`id used twice: ${id}`);
  if (!document.querySelector("main h1")) issues.push("no h1 heading");
  return issues;
}"""


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_login_survives_a_reload_and_a_new_tab(chromium, fleet, lang):
    from playwright.sync_api import expect

    base_url, browser = chromium
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(base_url + "/")
        login(page, fleet["admin"], lang)
        session = next(c for c in context.cookies() if c["name"] == "omshub_session")
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
        assert page.evaluate("() => document.cookie").count("omshub_session") == 0  # the page cannot read it
        page.reload()
        dashboard = "Übersicht" if lang == "de" else "Dashboard"
        expect(page.get_by_role("heading", name=dashboard)).to_be_visible()
        tab = context.new_page()
        tab.goto(base_url + "/#/meters")
        expect(tab.get_by_role("heading", name="Zähler" if lang == "de" else "Meters", exact=True)).to_be_visible()
        shot(tab, lang, "session-new-tab")
        tab.get_by_role("button", name="Abmelden" if lang == "de" else "Log out").click()
        page.reload()
        expect(page.get_by_role("button", name="Anmelden" if lang == "de" else "Log in")).to_be_visible()
    finally:
        context.close()


# --- the tasks of the job, each in both languages (issue 15, item 3) ---

WORDS = {
    "de": {
        "install": "Zähler einbauen",
        "swap": "Zähler wechseln",
        "remove": "Zähler ausbauen",
        "search": "Suche starten",
        "download": "Herunterladen",
        "create_user": "Benutzer anlegen",
        "create_token": "Token erstellen",
        "revoke": "Widerrufen",
        "shown_once": "nur dieses eine Mal",
        "configure": "Die 2 ausgewählten Gateways konfigurieren",
        "none_installed": "keiner eingebaut",
        "user_created": "Benutzer angelegt",
        "meter_ref_error": "Herstellerkürzel und die achtstellige Zählernummer",
    },
    "en": {
        "install": "Install meter",
        "swap": "Swap meter",
        "remove": "Remove this meter",
        "search": "Start the search",
        "download": "Download",
        "create_user": "Create user",
        "create_token": "Create token",
        "revoke": "Revoke",
        "shown_once": "shown only this once",
        "configure": "Configure the 2 selected gateways",
        "none_installed": "none installed",
        "user_created": "User created",
        "meter_ref_error": "manufacturer code and the 8-digit meter number",
    },
}


def _logged_in(chromium, fleet, lang):
    base_url, browser = chromium
    page, problems = open_console(browser, base_url, lang)
    login(page, fleet["admin"], lang)
    return base_url, page, problems


@pytest.mark.parametrize("lang", ["de", "en"])
def test_install_swap_and_remove_a_meter_at_a_metering_point(chromium, fleet, module_hub, lang):
    from playwright.sync_api import expect

    w = WORDS[lang]
    base_url, page, problems = _logged_in(chromium, fleet, lang)
    hub, tenant = module_hub, fleet["tenant"]
    first, second = ("32000001", "32000002") if lang == "de" else ("33000001", "33000002")
    hub.meter(tenant, first)
    hub.meter(tenant, second)
    point = httpx.post(
        base_url + "/api/v1/metering-points", json={"ref": f"MP-TASK-{lang}"}, headers=hub.headers(tenant), timeout=30
    ).json()
    page.goto(base_url + f"/#/points/{point['id']}")
    tasks = page.locator("#meter-tasks")
    tasks.locator("input[name=meter]").fill("KAM 123")  # no meter number: said next to the field
    tasks.get_by_role("button", name=w["install"]).click()
    expect(tasks.locator(".field-error")).to_contain_text(w["meter_ref_error"])
    tasks.locator("input[name=meter]").fill(f"KAM {first}")
    tasks.locator("input[name=at]").fill("2026-01-01T08:00")
    tasks.locator("input[name=initial_values]").fill("100")
    tasks.get_by_role("button", name=w["install"]).click()
    expect(page.locator("main")).to_contain_text(f"KAM {first}")
    shot(page, lang, "task-install")
    tasks.locator("input[name=new_meter]").fill(f"KAM {second}")
    tasks.locator("input[name=at]").fill("2026-02-01T08:00")
    tasks.locator("input[name=old_final_values]").fill("150,5" if lang == "de" else "150.5")
    tasks.locator("input[name=new_initial_values]").fill("0")
    # the effect on the consumption before the swap is made: 150.5 − 100 since the installation
    expect(page.locator("#swap-preview")).to_contain_text("50,5" if lang == "de" else "50.5")
    shot(page, lang, "task-swap-preview")
    tasks.get_by_role("button", name=w["swap"]).click()
    expect(tasks).to_contain_text(f"KAM {second}")
    shot(page, lang, "task-swap")
    tasks.locator("input[name=removed_at]").fill("2026-03-01T08:00")
    tasks.locator("input[name=final_values]").fill("20")
    tasks.get_by_role("button", name=w["remove"]).click()
    expect(page.locator("main")).to_contain_text(w["none_installed"])
    shot(page, lang, "task-remove")
    history = httpx.get(base_url + f"/api/v1/metering-points/{point['id']}", headers=hub.headers(tenant)).json()
    values = [(i["meter"]["meter_id"], i["initial_values"], i["final_values"]) for i in history["installations"]]
    assert values == [(first, {"energy": 100.0}, {"energy": 150.5}), (second, {"energy": 0.0}, {"energy": 20.0})]
    assert problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_search_finds_by_meter_prefix_address_customer_and_gateway(chromium, fleet, lang):
    from playwright.sync_api import expect

    base_url, page, problems = _logged_in(chromium, fleet, lang)
    page.goto(base_url + "/#/search")
    box = page.locator("input[name=q]")
    results = page.locator("#search-results")
    for text, expected in [("3100000", "KAM 31000001"), ("hauptstraße", "MP-0001"), ("K-47", "MP-0001")]:
        box.fill(text)
        page.get_by_role("button", name=WORDS[lang]["search"], exact=True).click()
        expect(results).to_contain_text(expected)
    serial = page.evaluate("() => fetch('/api/v1/gateways').then((r) => r.json()).then((j) => j.items[0].serial)")
    box.fill(serial[3:])
    page.get_by_role("button", name=WORDS[lang]["search"], exact=True).click()
    expect(results).to_contain_text(serial)
    box.fill("3100")
    page.get_by_role("button", name=WORDS[lang]["search"], exact=True).click()
    expect(results).to_contain_text("MP-0001")
    shot(page, lang, "task-search")
    assert problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_export_downloads_the_readings_of_a_period(chromium, fleet, lang):
    base_url, page, problems = _logged_in(chromium, fleet, lang)
    page.goto(base_url + "/#/export")
    page.locator("input[name=from]").fill("2026-01-01")
    page.locator("input[name=to]").fill("2026-12-31")
    page.locator("input[name=meter]").fill("KAM 31000001")
    shot(page, lang, "task-export")
    with page.expect_download() as info:
        page.get_by_role("button", name=WORDS[lang]["download"]).click()
    download = info.value
    text = Path(download.path()).read_text()
    assert download.suggested_filename.startswith("readings-") and download.suggested_filename.endswith(".csv")
    assert "31000001" in text and "1234.5" in text
    assert problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_users_roles_and_tokens_shown_once_then_revoked_and_audited(chromium, fleet, lang):
    from playwright.sync_api import expect

    w = WORDS[lang]
    base_url, page, problems = _logged_in(chromium, fleet, lang)
    page.goto(base_url + "/#/admin")
    username = f"kollegin-{lang}"
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill("short")  # refused: said next to the field
    page.get_by_role("button", name=w["create_user"]).click()
    expect(page.locator(".field-error").first).to_be_visible()
    page.locator("input[name=password]").fill("a long enough password")
    page.locator("form").filter(has=page.locator("input[name=username]")).locator("select[name=role]").select_option(
        "operator"
    )
    page.get_by_role("button", name=w["create_user"]).click()
    expect(page.locator("main")).to_contain_text(username)
    page.locator("input[name=name]").fill(f"Abrechnung {lang}")
    page.get_by_role("button", name=w["create_token"]).click()
    secret = page.locator("#new-token code.secret")
    expect(page.locator("#new-token")).to_contain_text(w["shown_once"])
    token = secret.inner_text()
    assert httpx.get(base_url + "/api/v1/meters", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    shot(page, lang, "task-tokens")
    page.get_by_role("button", name=re.compile(f"Abrechnung {lang}")).click()  # its Revoke button
    expect(page.locator("main")).to_contain_text(w["revoke"].lower()[:5])
    assert httpx.get(base_url + "/api/v1/meters", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    page.goto(base_url + "/#/audit")
    expect(page.locator("main")).to_contain_text(w["user_created"])
    shot(page, lang, "task-audit")
    assert token not in page.locator("body").inner_text()
    assert [p for p in problems if "422" not in p] == []  # only the refused short password


@pytest.mark.parametrize("lang", ["de", "en"])
def test_gateway_list_filter_and_select_all_lead_to_a_bulk_change(chromium, fleet, module_hub, lang):
    from playwright.sync_api import expect

    base_url, page, problems = _logged_in(chromium, fleet, lang)
    for n in (1, 2):
        module_hub.gateway(fleet["tenant"], f"BULK-{lang}-{n}")
    page.goto(base_url + "/#/gateways")
    page.locator("input[name=filter]").fill(f"bulk-{lang}")
    page.wait_for_load_state("networkidle")
    shown = page.locator("tbody tr:not([hidden])")
    expect(shown).to_have_count(2)
    page.locator("#select-all").check()
    shot(page, lang, "task-select-all")
    page.get_by_role("button", name=WORDS[lang]["configure"]).click()
    expect(page.locator("main h1")).to_contain_text("2")
    shot(page, lang, "task-bulk")
    assert problems == []


def test_the_language_is_switched_per_user_and_kept(chromium, fleet, module_hub):
    """A user switches to German in an English browser; another browser (nothing stored) then shows
    German for them too, and English again once they switch back."""
    from playwright.sync_api import expect

    base_url, browser = chromium
    user = module_hub.user(fleet["tenant"], "viewer", PASSWORD)
    page, problems = open_console(browser, base_url, "en")
    login(page, user, "en")
    page.locator("#lang-box select").select_option("de")
    expect(page.get_by_role("link", name="Übersicht")).to_be_visible()
    expect(page.get_by_role("heading", name="Übersicht")).to_be_visible()
    shot(page, "de", "language-switched")
    other, more_problems = open_console(browser, base_url, "en")  # a new browser profile, English
    login(other, user, "en")  # the login page is English: the browser's language
    expect(other.get_by_role("link", name="Übersicht")).to_be_visible()  # after login: the user's choice
    other.locator("#lang-box select").select_option("en")
    expect(other.get_by_role("link", name="Dashboard")).to_be_visible()
    assert problems + more_problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_review_queue_decides_a_finding_and_a_value_is_set_by_hand(chromium, module_hub, lang):
    """A finding of the billing close accepted with a note; a boundary value set with a reason on the
    metering point's page, the computed one kept (the API shows both)."""
    from playwright.sync_api import expect

    base_url, browser = chromium
    hub = module_hub
    tenant = hub.tenant()
    admin = hub.user(tenant, "admin", PASSWORD)
    gw = hub.gateway(tenant)
    meter_id = "3200000" + ("1" if lang == "de" else "2")
    meter = hub.meter(tenant, meter_id)
    hub.keys(tenant, {meter_id: KEY}, "KAM")
    headers = hub.headers(tenant, "admin")
    point = httpx.post(
        base_url + "/api/v1/metering-points", json={"ref": f"MP-R-{lang}"}, headers=headers, timeout=30
    ).json()
    installed = (EPOCH - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    httpx.post(
        base_url + f"/api/v1/metering-points/{point['id']}/install",
        json={"meter": meter, "at": installed},
        headers=headers,
        timeout=30,
    )
    hub.send(gw, 1, [encode(meter_id, energy=100.0)])
    nxt = (EPOCH.replace(day=1) + timedelta(days=32)).replace(day=1)
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and not httpx.get(
            base_url + f"/api/v1/console/meters/{meter}/recent-readings", headers=headers, timeout=30
        ).json()["items"]
    ):
        time.sleep(0.2)
    assert (
        httpx.post(
            base_url + "/api/v1/billing/close", json={"period": f"{nxt:%Y-%m}"}, headers=headers, timeout=60
        ).status_code
        == 200
    )
    page, problems = open_console(browser, base_url, lang)
    login(page, admin, lang)
    page.goto(base_url + "/#/review")
    row = page.locator("tr", has_text=f"MP-R-{lang}").first
    expect(row).to_be_visible()
    row.get_by_label("Notiz zur Entscheidung" if lang == "de" else "Note for the decision").fill("Zähler geprüft")
    row.get_by_role("button", name="Annehmen" if lang == "de" else "Accept").click()
    expect(page.get_by_text("Angenommen." if lang == "de" else "Accepted.")).to_be_visible()
    shot(page, lang, "review-decided")
    page.goto(base_url + f"/#/points/{point['id']}")
    value_row = page.locator("tr", has_text="–").first
    expect(value_row).to_be_visible()
    value_row.get_by_label("Neuer Wert" if lang == "de" else "New value").fill("1234,5" if lang == "de" else "1234.5")
    value_row.get_by_label("Grund der Änderung" if lang == "de" else "Reason for the change").fill("Ablesung vor Ort")
    value_row.get_by_role("button", name="Wert setzen" if lang == "de" else "Set value").click()
    expect(page.get_by_text("von Hand gesetzt" if lang == "de" else "set by hand").first).to_be_visible()
    shot(page, lang, "billing-value-set")
    values = httpx.get(
        base_url + f"/api/v1/metering-points/{point['id']}/billing-values", headers=headers, timeout=30
    ).json()["items"]
    edited = [v for v in values if v["origin"] == "edited"]
    assert edited and edited[0]["value"] == 1234.5 and edited[0]["computed"]["origin"] == "missing"
    findings = httpx.get(base_url + "/api/v1/review?state=accepted", headers=headers, timeout=30).json()["items"]
    assert findings and findings[0]["note"] == "Zähler geprüft"
    assert page_problems(page, lang) == [] and problems == []
