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
    expect(page.get_by_role("heading", name="Übersicht" if lang == "de" else "Dashboard")).to_be_visible()


def shot(page, lang: str, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{lang}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def settle(page) -> float:
    """Wait until the page's requests are done; the seconds it took."""
    start = time.monotonic()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(150)  # the last answers rendered
    return time.monotonic() - start


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
        ("dashboard", "#/"),
        ("gateways", "#/gateways"),
        ("gateway", f"#/gateways/{fleet['gateway']}"),
        ("meters", "#/meters"),
        ("meter", f"#/meters/{fleet['meter']}"),
        ("telegrams", "#/telegrams"),
        ("points", "#/points"),
        ("point", f"#/points/{fleet['point']}"),
        ("alarms", "#/alarms?show=all"),
        ("operations", "#/operations"),
    ]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_page_is_readable_in_both_languages(chromium, fleet, lang):
    base_url, browser = chromium
    page, problems = open_console(browser, base_url, lang)
    shot(page, lang, "login")
    login(page, fleet["admin"], lang)
    report, times = [], []
    for name, route in pages(fleet):
        page.goto(base_url + "/" + route)
        seconds = settle(page)
        times.append(f"{name} {seconds * 1000:.0f} ms")
        shot(page, lang, name)
        report += [f"{name}: {p}" for p in page_problems(page, lang)]
    print(f"\npage load times ({lang}): " + ", ".join(times))
    assert report + problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_main_pages_pass_the_accessibility_checks(chromium, fleet, lang):
    """Checks written by hand for what axe-core rates critical: every form control has a name,
    every image an alternative, every button and link a name, the page a language and a title,
    ids unique; headings start at h1."""
    base_url, browser = chromium
    page, _ = open_console(browser, base_url, lang)
    login(page, fleet["admin"], lang)
    report = []
    for name, route in pages(fleet):
        page.goto(base_url + "/" + route)
        settle(page)
        issues = page.evaluate(ACCESSIBILITY_CHECKS)
        report += [f"{name}: {i}" for i in issues]
    assert report == []


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
