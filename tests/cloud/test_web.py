"""The operator web console (cloud/web/console.py + cloud/static/).

(a) Without a browser: the page and its assets are served with the right types, reference only
local files, carry no secrets; the two console endpoints (dashboard summary, recent readings).
(b) With a browser (Playwright driving Debian's Chromium) against a real `omshub serve`: log in,
dashboard, change a gateway's upload schedule through the form, follow its operation to
SUCCESSFUL, a bulk change, the API's validation message, and a viewer's read-only page; and
overlapping loads (API answers held back with page.route and released out of order) neither
duplicate list rows nor put an outdated gateway state back.
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import cbor2
import httpx
import pytest

from omshub.cloud.web import console as web
from tests.clock import EPOCH, unix

from .conftest import KEY, MASTER_KEY_HEX, LiveServer, batch_envelope, encode

STATIC = Path(web.__file__).parent / "static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def console_app(app):
    """The module's app: `create_app` mounts the console itself."""
    return app


@pytest.fixture(scope="module")
def console(console_app, client):
    assert client.get("/").status_code == 200, "create_app must serve the console at /"
    return client


# --- (a) static files ---


def _asset_names(text: str) -> set[str]:
    """Files the HTML/JS/CSS refers to: src/href attributes, ES module imports, CSS url()."""
    refs = set(re.findall(r'(?:src|href)="([^"#][^"]*)"', text))
    refs |= set(re.findall(r'^import\s[^;]*?from\s*"([^"]+)";', text, re.M))
    refs |= set(re.findall(r"url\(([^)]+)\)", text))
    return refs


def test_page_is_html_with_strict_security_headers(console):
    r = console.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in r.headers
    assert '<script type="module" src="/console/app.js">' in r.text


def test_every_referenced_asset_is_served_with_its_content_type(console):
    expected = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
    seen, todo = set(), ["/"]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        r = console.get(url)  # no Authorization header: the console's files are public
        assert r.status_code == 200, url
        if url != "/":
            assert r.headers["content-type"] == expected[Path(url).suffix], url
            assert r.headers["x-content-type-options"] == "nosniff"
        for ref in _asset_names(r.text):
            todo.append(ref if ref.startswith("/") else "/console/" + ref.removeprefix("./"))
    served = {u.removeprefix("/console/") for u in seen if u != "/"}
    # every file of the static directory is reachable from the page (no dead files, none missing)
    assert served | {"index.html"} == {p.name for p in STATIC.iterdir()}


def test_only_local_assets_and_no_inline_code():
    for path in STATIC.iterdir():
        text = re.sub(r'xmlns="[^"]*"', "", path.read_text())  # a namespace name, not something fetched
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), f"external reference in {path.name}"
        if path.suffix == ".html":
            for ref in _asset_names(text):
                assert ref.startswith("/console/"), ref
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline script"
            assert " style=" not in text and not re.search(r"\son[a-z]+=", text), "inline style or handler"
        if path.suffix == ".js":
            assert "innerHTML" not in text and "eval(" not in text, f"{path.name} writes HTML or evaluates code"


def test_no_secrets_in_the_console(console, hub):
    tenant = hub.tenant()
    token = hub.token(tenant, "admin")
    gw = hub.gateway(tenant)
    bodies = [console.get("/").text] + [
        console.get(f"/console/{p.name}").text for p in STATIC.iterdir() if p.name != "index.html"
    ]
    for body in bodies:
        for secret in (MASTER_KEY_HEX, token, gw.credential, KEY.hex(), KEY.hex().upper(), PASSWORD):
            assert secret not in body
    # the session token lives in an HttpOnly cookie the page never sees (tests/cloud/test_console_sessions.py);
    # the page reads only the CSRF cookie and keeps no token in storage
    api_js = (STATIC / "api.js").read_text()
    assert "omshub_csrf" in api_js and "omshub_session" not in api_js
    assert "sessionStorage" not in api_js and "localStorage" not in api_js


@pytest.mark.parametrize(
    "path",
    [
        "/console/web.py",
        "/console/..%2Fweb.py",
        "/console/%2e%2e%2fapp.py",
        "/console/nope.js",
        "/console/.hidden.js",
        "/console/APP.JS",
    ],
)
def test_unknown_or_unsafe_asset_names_are_404(console, path):
    r = console.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_etag_gives_304_and_console_dir_redirects(console):
    r = console.get("/console/app.js")
    again = console.get("/console/app.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    moved = console.get("/console/", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/"


# --- (a) console endpoints ---


def test_summary_counts_late_gateways_and_unregistered_meters(console, hub, db):
    from omshub.cloud.services.accounts import utcnow
    from omshub.cloud.store.models import Gateway

    tenant, other = hub.tenant(), hub.tenant()
    gw, late, _ = hub.gateway(tenant), hub.gateway(tenant), hub.gateway(other)
    hub.meter(tenant, "12345678")
    hub.send(gw, 1, [encode("99999999"), encode("99999998"), encode("99999998", energy=1.0)])
    with db.transaction() as s:
        s.get(Gateway, late.id).next_contact_at = utcnow() - timedelta(hours=2)
        s.get(Gateway, gw.id).next_contact_at = utcnow() + timedelta(hours=2)
    r = console.get("/api/v1/console/summary", headers=hub.headers(tenant, "viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gateways"] == 2 and body["meters"] == 1 and body["metering_points"] == 0
    assert body["telegrams"]["total"] == 3 and body["telegrams"]["by_state"] == {"new": 3}
    assert [g["serial"] for g in body["gateways_late"]] == [late.serial]
    assert body["alarms"] == {"active": 0, "by_kind": {}}
    hub.client.app.state.pipeline.run_once()
    body = console.get("/api/v1/console/summary", headers=hub.headers(tenant, "viewer")).json()
    assert body["telegrams"]["by_state"] == {"unknown_meter": 3}
    assert body["meters_unregistered"] == 2
    # the other tenant sees only its own
    body = console.get("/api/v1/console/summary", headers=hub.headers(other, "viewer")).json()
    assert body["gateways"] == 1 and body["telegrams"]["total"] == 0 and body["meters_unregistered"] == 0
    assert console.get("/api/v1/console/summary").status_code == 401


def test_recent_readings_newest_first_and_tenant_scoped(console, hub):
    tenant, other = hub.tenant(), hub.tenant()
    gw = hub.gateway(tenant)
    meter_pk = hub.meter(tenant, "31415926")
    hub.keys(tenant, {"31415926": KEY})
    t0 = unix(EPOCH) - 7200
    hub.send(gw, 1, [encode("31415926", energy=e) for e in (10.0, 20.0, 30.0)], t0=t0, dts=[0, 600, 1200])
    hub.client.app.state.pipeline.run_once()
    headers = hub.headers(tenant, "viewer")
    r = console.get(f"/api/v1/console/meters/{meter_pk}/recent-readings", params={"limit": 2}, headers=headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["fields"].get("total_energy_kwh") or i["records"][0]["value"] for i in items] == [30.0, 20.0]
    assert items[0]["timestamp"] > items[1]["timestamp"]
    assert (
        console.get(
            f"/api/v1/console/meters/{meter_pk}/recent-readings", headers=hub.headers(other, "admin")
        ).status_code
        == 404
    )
    bad = console.get(f"/api/v1/console/meters/{meter_pk}/recent-readings", params={"limit": 0}, headers=headers)
    assert bad.status_code == 422 and "limit" in bad.json()["error"]["message"]


# --- (b) browser tests ---


def _playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (pip install 'playwright>=1.40')")
    return sync_playwright


@pytest.fixture(scope="module")
def console_server(database_url, data_dir):
    """(base URL, sync_playwright) of one `omshub serve` for this module's browser tests (as the
    `live_server` fixture starts it, once per module: a start costs seconds)."""
    sync_playwright = _playwright()
    server = LiveServer(database_url, data_dir)
    server.start()
    try:
        yield server.base_url, sync_playwright
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(console_server):
    base_url, sync_playwright = console_server
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield base_url, chromium
        finally:
            chromium.close()


def _screenshot(page, name: str) -> None:
    """Set OMSHUB_WEB_SCREENSHOTS=/some/dir to keep pictures of the pages (for a human to look at)."""
    folder = os.environ.get("OMSHUB_WEB_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _login(browser_, base_url: str, username: str):
    from playwright.sync_api import expect

    page = browser_.new_page(viewport={"width": 1280, "height": 900}, timezone_id="UTC", locale="en-GB")
    # CI machines are small and busy (the decode pipeline shares the cores): wait longer than 5 s
    page.set_default_timeout(30_000)
    expect.set_options(timeout=20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page, errors


def _uplink(base_url: str, gw, seq: int, cfg: int) -> dict:
    env = batch_envelope(
        gw.serial,
        seq,
        [encode("27182818")],
        cfg=cfg,
        status={"battery_pct": 77, "spool": 0, "rssi": -88, "firmware": "2.0.1"},
    )
    r = httpx.post(
        base_url + "/api/v1/uplink",
        content=cbor2.dumps(env),
        timeout=30,
        headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {gw.credential}"},
    )
    assert r.status_code == 200, r.text
    return cbor2.loads(r.content)


def _until(page, condition, timeout_s: float = 20.0) -> None:
    """Let the page run (its requests, our route handlers) until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        page.wait_for_timeout(50)


def _api_path(path: str):
    return lambda url: urlparse(url).path == "/api/v1" + path


@pytest.mark.slow
def test_operator_changes_upload_schedule_and_follows_the_operation(browser, hub):
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    operator = hub.user(tenant, "operator", PASSWORD)
    gw, gw2 = hub.gateway(tenant), hub.gateway(tenant)
    page, errors = _login(chromium, base_url, operator)

    expect(page.locator("#who-role")).to_have_text("Operator")
    expect(page.locator("#who-tenant")).to_have_text("Test tenant")
    expect(page.get_by_role("link", name="2 Gateways", exact=True)).to_be_visible()  # the dashboard's count
    _screenshot(page, "dashboard")

    page.get_by_role("link", name="Gateways", exact=True).click()
    page.get_by_role("link", name=gw.serial).click()
    expect(page.get_by_role("heading", name=f"Gateway {gw.serial}")).to_be_visible()
    upload = page.get_by_label("Upload time (cron with seconds)")
    expect(upload).to_have_value("0 30 3 * * *")

    # an invalid schedule: the API refuses it and its message is shown next to the form
    upload.fill("61 * * * *")
    page.locator("#apply-config").click()
    expect(page.locator("#config-message")).to_contain_text("upload, schedule")
    expect(page.locator("#config-message")).to_contain_text("must have 6 fields")
    expect(page.locator("#config-status")).to_contain_text("factory configuration")

    upload.fill("0 15 4 * * *")
    page.locator("fieldset.window").get_by_label("S1").check()
    page.locator("#apply-config").click()
    expect(page.locator("#config-message")).to_contain_text("version 1")
    expect(page.locator("#config-status [data-state]")).to_have_attribute("data-state", "PENDING")
    _screenshot(page, "gateway-pending")

    # the sleeping gateway gets in touch: the change is delivered, then reported applied
    response = _uplink(base_url, gw, 1, cfg=0)
    assert response["config"]["version"] == 1
    assert response["config"]["upload"]["cron"] == "0 15 4 * * *"
    assert response["config"]["collection"][0]["link_modes"] == ["T1", "C1", "S1"]
    expect(page.locator("#config-status [data-state]")).to_have_attribute("data-state", "DELIVERED", timeout=15_000)
    _uplink(base_url, gw, 2, cfg=1)
    expect(page.locator("#config-status [data-state]")).to_have_attribute("data-state", "SUCCESSFUL", timeout=15_000)
    expect(page.locator("#config-status")).to_contain_text("applied by the gateway")
    _screenshot(page, "gateway")

    # the advanced JSON view shows the same configuration and edits go back into the form
    page.get_by_label("Edit as JSON (advanced)").check()
    json_box = page.get_by_label("Configuration as JSON")
    assert '"cron": "0 15 4 * * *"' in json_box.input_value()
    json_box.fill(json_box.input_value().replace('"spread_s": 1800', '"spread_s": 900'))
    page.get_by_label("Edit as JSON (advanced)").uncheck()
    expect(page.get_by_label("Spread (seconds)")).to_have_value("900")

    page.get_by_role("link", name="Operations", exact=True).click()
    expect(page.get_by_role("row", name=re.compile(gw.serial)).locator("[data-state]")).to_have_attribute(
        "data-state", "SUCCESSFUL"
    )
    page.get_by_role("link", name="Alarms", exact=True).click()
    expect(page.get_by_role("heading", name="Alarms")).to_be_visible()

    # one configuration for a selection of gateways
    page.get_by_role("link", name="Gateways", exact=True).click()
    page.get_by_label(f"Select {gw.serial}").check()
    page.get_by_label(f"Select {gw2.serial}").check()
    page.locator("#configure-selected").click()
    expect(page.get_by_role("heading", name="Configure 2 gateways")).to_be_visible()
    page.get_by_label("Spread (seconds)").fill("600")
    page.get_by_role("button", name="Apply to 2 gateways").click()
    result = page.locator("#bulk-result")
    expect(result.locator("[data-state]")).to_have_count(2)
    expect(result.locator("[data-state]").first).to_have_attribute("data-state", "PENDING")
    expect(result).to_contain_text(gw2.serial)
    assert errors == []


@pytest.mark.slow
def test_viewer_sees_the_gateway_read_only(browser, hub):
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    viewer = hub.user(tenant, "viewer", PASSWORD)
    gw = hub.gateway(tenant)
    page, errors = _login(chromium, base_url, viewer)
    expect(page.locator("#who-role")).to_have_text("Viewer")
    page.get_by_role("link", name="Gateways", exact=True).click()
    expect(page.get_by_role("link", name=gw.serial)).to_be_visible()
    assert page.locator("#configure-selected").count() == 0
    assert page.get_by_label(f"Select {gw.serial}").count() == 0
    assert page.get_by_role("heading", name="Register a gateway").count() == 0
    page.get_by_role("link", name=gw.serial).click()
    expect(page.get_by_label("Upload time (cron with seconds)")).to_be_disabled()
    expect(page.get_by_text("You have read-only access.")).to_be_visible()
    assert page.locator("#apply-config").count() == 0
    _screenshot(page, "gateway-viewer")
    page.get_by_label("Show as JSON (advanced)").check()
    expect(page.get_by_label("Configuration as JSON")).to_be_disabled()
    assert '"cron": "0 30 3 * * *"' in page.get_by_label("Configuration as JSON").input_value()
    assert page.get_by_role("button", name=re.compile("Apply")).count() == 0
    # logging out ends the session: the API is not reachable with its cookie any more
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "omshub_session")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "omshub_session"]
    r = httpx.get(base_url + "/api/v1/auth/me", headers={"Cookie": f"omshub_session={token}"})
    assert r.status_code == 401
    assert errors == []


@pytest.mark.slow
def test_operator_imports_meters_and_keys_registers_a_heard_meter_and_sees_consumption(browser, hub):
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    operator = hub.user(tenant, "operator", PASSWORD)
    gw = hub.gateway(tenant)
    now = EPOCH  # the simulated day the readings arrive, not the wall clock's
    installed = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page, errors = _login(chromium, base_url, operator)

    page.get_by_role("link", name="Meters", exact=True).click()
    meters_csv = (
        f"manufacturer,id,device_type,gateway,metering_point,address,installed_at\n"
        f"KAM,41000001,heat,{gw.serial},MP-{gw.serial},Hauptstr. 1,{installed}\n"
        f"KAM,41000002,heat,{gw.serial},,,\n"
    )
    page.get_by_label("Meter list (CSV)").set_input_files(
        files=[{"name": "meters.csv", "mimeType": "text/csv", "buffer": meters_csv.encode()}]
    )
    page.get_by_role("button", name="Import meters").click()
    expect(page.get_by_text("Lines read: 2; meters created: 2")).to_be_visible()

    bad = "manufacturer,id\nKAM,not-an-id\n"
    page.get_by_label("Meter list (CSV)").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}]
    )
    page.get_by_role("button", name="Import meters").click()
    expect(page.get_by_role("alert")).to_contain_text("line 2")

    keys_csv = f"id,key\n41000001,{KEY.hex()}\n"
    page.get_by_label("Meter keys (CSV)").set_input_files(
        files=[{"name": "keys.csv", "mimeType": "text/csv", "buffer": keys_csv.encode()}]
    )
    page.get_by_role("button", name="Import keys").click()
    expect(page.get_by_text("Keys imported: 1")).to_be_visible()

    # readings of the installed meter, and a meter that is heard but not registered
    t0 = unix(EPOCH) - 7200
    env = batch_envelope(
        gw.serial,
        1,
        [encode("41000001", energy=100.0), encode("41000001", energy=150.0), encode("42000042", device_type_code=7)],
        t0=t0,
        dts=[0, 3600, 3600],
    )
    r = httpx.post(
        base_url + "/api/v1/uplink",
        content=cbor2.dumps(env),
        timeout=30,
        headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {gw.credential}"},
    )
    assert r.status_code == 200, r.text

    page.get_by_role("link", name="Telegrams", exact=True).click()
    row = page.locator("section", has_text="Meters heard but not registered").get_by_role(
        "row", name=re.compile("KAM 42000042")
    )
    deadline = time.monotonic() + 20
    while row.count() == 0 and time.monotonic() < deadline:  # the decode worker runs in the server
        page.wait_for_timeout(500)
        page.reload()
    row.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Meter KAM 42000042 registered")).to_be_visible()

    page.get_by_role("link", name="Meters", exact=True).click()
    # the Telegrams page links this meter once per telegram (twice): look for it only once the
    # meter list has replaced that page, and it must be listed exactly once
    expect(page.get_by_role("heading", name="Meters", exact=True)).to_be_visible()
    expect(page.locator(".paged tbody tr")).to_have_count(3)
    meter_link = page.get_by_role("link", name="KAM 41000001")
    expect(meter_link).to_have_count(1)
    meter_link.click()
    expect(page.get_by_text("(the key itself is never shown)")).to_be_visible()
    assert KEY.hex() not in page.content().lower()
    expect(page.locator("section", has_text="Latest reading")).to_contain_text("150")

    page.get_by_role("link", name=f"MP-{gw.serial}").click()
    expect(page.get_by_role("heading", name=f"Metering point MP-{gw.serial}")).to_be_visible()
    page.get_by_label("From (start of day)").fill((now - timedelta(days=2)).strftime("%Y-%m-%d"))
    page.get_by_label("To (start of day)").fill((now + timedelta(days=1)).strftime("%Y-%m-%d"))
    page.get_by_role("button", name="Show consumption").click()
    expect(page.locator("#consumption-result")).to_contain_text("50 kWh")
    _screenshot(page, "metering-point")
    assert errors == []


@pytest.mark.slow
def test_overlapping_loads_of_the_meter_list_show_each_meter_once(browser, hub):
    """The meter list is left and opened again while its first load is still in flight; both
    answers are held back and released newest first: each meter is still listed once."""
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    operator = hub.user(tenant, "operator", PASSWORD)
    for meter_id in ("43000001", "43000002"):
        hub.meter(tenant, meter_id)
    page, errors = _login(chromium, base_url, operator)
    held = []
    page.route(_api_path("/meters"), lambda route: held.append(route))

    page.get_by_role("link", name="Meters", exact=True).click()
    _until(page, lambda: len(held) == 1)
    page.get_by_role("link", name="Dashboard", exact=True).click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("link", name="Meters", exact=True).click()
    _until(page, lambda: len(held) == 2)

    held[1].continue_()
    expect(page.get_by_role("link", name="KAM 43000001")).to_be_visible()
    with page.expect_event("requestfinished", lambda r: r == held[0].request):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")  # the page handles that answer
    for meter_id in ("43000001", "43000002"):
        expect(page.get_by_role("link", name=f"KAM {meter_id}")).to_have_count(1)
    expect(page.locator(".paged tbody tr")).to_have_count(2)
    assert errors == []


@pytest.mark.slow
def test_gateway_page_keeps_the_newest_state_when_refreshes_overlap(browser, hub):
    """While a change is open the gateway page polls. A poll whose answer is slow (held back here)
    and arrives after the refresh that follows a newer change must not show the older state."""
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    operator = hub.user(tenant, "operator", PASSWORD)
    gw = hub.gateway(tenant)
    page, errors = _login(chromium, base_url, operator)
    page.get_by_role("link", name="Gateways", exact=True).click()
    page.get_by_role("link", name=gw.serial).click()
    upload = page.get_by_label("Upload time (cron with seconds)")
    status = page.locator("#config-status")
    upload.fill("0 15 4 * * *")
    page.locator("#apply-config").click()
    expect(status).to_contain_text("Configuration version 1")

    held = []

    def hold_first(route):  # the next poll's answer as it is now (version 1), handed over later
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route(_api_path("/operations"), hold_first)
    _until(page, lambda: len(held) == 1)
    upload.fill("0 20 4 * * *")
    page.locator("#apply-config").click()
    expect(status).to_contain_text("Configuration version 2")

    route, response = held[0]
    with page.expect_event("requestfinished", lambda r: r == route.request):
        route.fulfill(response=response)
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")  # the page handles that answer
    assert "Configuration version 2" in status.inner_text()  # not retried: the next poll would mend it
    assert errors == []


def _api(base_url: str, method: str, path: str, headers: dict, **kw) -> httpx.Response:
    return httpx.request(method, base_url + "/api/v1" + path, headers=headers, timeout=30, **kw)


def _login_headers(base_url: str, username: str) -> dict:
    r = httpx.post(base_url + "/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


@pytest.mark.slow
def test_the_form_shows_the_real_configuration_and_sends_only_what_changed(browser, hub):
    """The form starts from the gateway's desired configuration; editing one field sends only that
    field, so the time zone stays — also one a colleague changed after the form was loaded."""
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    operator, colleague = hub.user(tenant, "operator", PASSWORD), hub.user(tenant, "operator", PASSWORD)
    api_headers = _login_headers(base_url, colleague)
    gw = hub.gateway(tenant)
    r = _api(
        base_url,
        "PUT",
        f"/gateways/{gw.id}/config",
        api_headers,
        json={
            "timezone": "Europe/Berlin",
            "spread_s": 600,
            "keep": "all",
            "filters": {"mode": "blacklist", "meters": [{"manufacturer": "KAM", "id": "12345678"}]},
        },
    )
    assert r.status_code == 201, r.text
    page, errors = _login(chromium, base_url, operator)
    sent: list = []
    page.on(
        "request",
        lambda req: (
            sent.append((req.method, req.headers.get("content-type"), req.post_data_json))
            if req.method in ("PUT", "PATCH")
            else None
        ),
    )

    page.get_by_role("link", name="Gateways", exact=True).click()
    page.get_by_role("link", name=gw.serial).click()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.get_by_label("Spread (seconds)")).to_have_value("600")
    expect(page.get_by_label("Mode")).to_have_value("blacklist")
    expect(page.get_by_label("Keep")).to_have_value("all")
    expect(page.locator(".meter-row input").nth(1)).to_have_value("12345678")

    # a colleague moves the gateway to another time zone while the form still shows Berlin
    r = _api(base_url, "PUT", f"/gateways/{gw.id}/config", api_headers, json={"timezone": "Europe/Vienna"})
    assert r.status_code == 201, r.text
    page.get_by_label("Upload time (cron with seconds)").fill("0 0 4 * * *")
    page.locator("#apply-config").click()
    expect(page.locator("#config-message")).to_contain_text("Saved as configuration version 3")
    cfg = _api(base_url, "GET", f"/gateways/{gw.id}/config", api_headers).json()["config"]
    assert (cfg["version"], cfg["timezone"], cfg["spread_s"], cfg["keep"]) == (3, "Europe/Vienna", 600, "all")
    assert cfg["upload"]["cron"] == "0 0 4 * * *" and cfg["filters"]["mode"] == "blacklist"
    assert sent == [("PATCH", "application/merge-patch+json", {"upload": {"cron": "0 0 4 * * *"}})]
    # the form now shows the result, the colleague's time zone included
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Vienna")
    expect(page.locator("#config-shown")).to_have_text("Showing the desired configuration, version 3.")

    page.get_by_label("Spread (seconds)").fill("900")
    page.locator("#apply-config").click()
    expect(page.locator("#config-message")).to_contain_text("Saved as configuration version 4")
    assert sent[-1] == ("PATCH", "application/merge-patch+json", {"spread_s": 900})
    # nothing edited: the head-end says so and makes no version
    page.locator("#apply-config").click()
    expect(page.locator("#config-message")).to_contain_text("Nothing to change")
    assert sent[-1] == ("PATCH", "application/merge-patch+json", {})
    cfg = _api(base_url, "GET", f"/gateways/{gw.id}/config", api_headers).json()["config"]
    assert (cfg["version"], cfg["timezone"], cfg["spread_s"], cfg["upload"]["cron"]) == (
        4,
        "Europe/Vienna",
        900,
        "0 0 4 * * *",
    )
    assert errors == []


@pytest.mark.slow
def test_bulk_change_shows_pending_changes_and_lets_the_operator_choose(browser, hub):
    from playwright.sync_api import expect

    base_url, chromium = browser
    tenant = hub.tenant()
    operator, colleague = hub.user(tenant, "operator", PASSWORD), hub.user(tenant, "operator", PASSWORD)
    api_headers = _login_headers(base_url, colleague)
    free, busy = hub.gateway(tenant), hub.gateway(tenant)
    assert (
        _api(
            base_url, "PUT", f"/gateways/{free.id}/config", api_headers, json={"timezone": "Europe/Vienna"}
        ).status_code
        == 201
    )
    _uplink(base_url, free, 1, cfg=0)
    _uplink(base_url, free, 2, cfg=1)  # free runs version 1: nothing pending
    pending = _api(
        base_url,
        "PUT",
        f"/gateways/{busy.id}/config",
        api_headers,
        json={"timezone": "Europe/Berlin", "upload": {"cron": "0 0 5 * * *"}},
    ).json()
    assert pending["state"] == "PENDING"
    page, errors = _login(chromium, base_url, operator)

    def configure(spread: str):
        page.get_by_role("link", name="Gateways", exact=True).click()
        page.get_by_label(f"Select {free.serial}").check()
        page.get_by_label(f"Select {busy.serial}").check()
        page.locator("#configure-selected").click()
        expect(page.get_by_role("heading", name="Configure 2 gateways")).to_be_visible()
        page.get_by_label("Spread (seconds)").fill(spread)
        page.get_by_role("button", name="Apply to 2 gateways").click()

    configure("600")
    conflicts = page.locator("#bulk-conflicts")
    row = conflicts.get_by_role("row", name=re.compile(busy.serial))
    expect(row).to_contain_text("version 1")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "PENDING")
    expect(row).to_contain_text("upload, schedule: 0 0 5 * * *")
    expect(row).to_contain_text("time zone: Europe/Berlin")
    expect(row).to_contain_text(colleague)
    expect(conflicts).to_contain_text("Nothing was changed")
    assert conflicts.get_by_role("row", name=re.compile(free.serial)).count() == 0
    _screenshot(page, "bulk-conflicts")
    assert _api(base_url, "GET", f"/gateways/{free.id}/config", api_headers).json()["version"] == 1

    page.get_by_role("button", name="Skip these gateways").click()
    result = page.locator("#bulk-result")
    expect(result.get_by_role("row", name=re.compile(busy.serial))).to_contain_text("skipped: keeps its pending change")
    expect(result.get_by_role("row", name=re.compile(free.serial))).to_contain_text("new configuration version 2")
    expect(conflicts).to_be_empty()
    free_cfg = _api(base_url, "GET", f"/gateways/{free.id}/config", api_headers).json()["config"]
    assert (free_cfg["version"], free_cfg["timezone"], free_cfg["spread_s"]) == (2, "Europe/Vienna", 600)
    got = _api(base_url, "GET", f"/gateways/{busy.id}/config", api_headers).json()
    assert got["version"] == 1 and got["pending_operation"]["id"] == pending["id"]

    configure("900")  # now both have a pending change (free: the one just made)
    expect(page.locator("#bulk-conflicts tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Replace their pending changes").click()
    expect(result.get_by_role("row", name=re.compile(busy.serial))).to_contain_text(
        "replaces the change that was not applied yet"  # no operation id: people do not read database ids
    )
    expect(result.locator("[data-state]")).to_have_count(2)
    _screenshot(page, "bulk-result")
    busy_cfg = _api(base_url, "GET", f"/gateways/{busy.id}/config", api_headers).json()["config"]
    assert (busy_cfg["version"], busy_cfg["timezone"], busy_cfg["upload"]["cron"], busy_cfg["spread_s"]) == (
        2,
        "Europe/Berlin",
        "0 0 5 * * *",
        900,
    )
    old = _api(base_url, "GET", f"/operations/{pending['id']}", api_headers).json()
    assert old["state"] == "SUPERSEDED"
    assert errors == []
