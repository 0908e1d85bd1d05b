"""The alarm tasks and the charts in a real browser, in German and in English: a gateway that is down
is one alarm listing its meters; alarms filtered by severity, kind and property; the history of
cleared ones; an acknowledgement with a note (refused without one, next to the field; audited);
the charts of a meter, a metering point, a gateway and the dashboard (SVG with a table of the same
figures, numbers in the page's language). Screenshots under the run's output directory
(test_console_browser.OUT), each page's load time printed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from omshub.cloud.services import alarms as alarm_rules
from omshub.cloud.store.models import Gateway, Meter, Uplink
from tests.clock import DAY, EPOCH, unix

from .conftest import KEY, LiveServer, encode
from .test_console_browser import (
    ACCESSIBILITY_CHECKS,
    AXE,
    LOCALES,
    login,
    open_console,
    page_problems,
    settle,
    shot,
)
from .test_web import CHROMIUM, CHROMIUM_ARGS, PASSWORD, _playwright

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WORDS = {
    "de": {
        "ack": "Bestätigen",
        "acked": "bestätigt",
        "ack_error": "Bitte schreiben Sie dazu",
        "grouped": "6 Zähler dieses Gateways",
        "table": "Als Tabelle zeigen",
        "daily": "10,5",
        "audit": "Alarm bestätigt",
        "month": "Monat",
        "critical": "kritisch",
    },
    "en": {
        "ack": "Acknowledge",
        "acked": "acknowledged",
        "ack_error": "the note is empty",
        "grouped": "6 meters of this gateway",
        "table": "Show as table",
        "daily": "10.5",
        "audit": "Alarm acknowledged",
        "month": "month",
        "critical": "critical",
    },
}


@pytest.fixture(scope="module")
def chromium(database_url, data_dir):
    """`omshub serve` whose periodic alarm check never runs during the tests (the fixture runs it
    at fixed times), and Debian's Chromium."""
    sync_playwright = _playwright()
    live = LiveServer(database_url, data_dir, {"OMSHUB_ALARM_INTERVAL_S": "86400"})
    live.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield live.base_url, browser
            finally:
                browser.close()
    finally:
        live.stop()


def _records(k: int) -> list[dict]:
    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    return [
        {**base, "quantity": "energy", "unit": "kWh", "value": 1000.0 + 10.5 * k},
        {**base, "quantity": "flow_temperature", "unit": "C", "value": 70.0 - k},
        {**base, "quantity": "return_temperature", "unit": "C", "value": 40.0 + k % 3},
    ]


@pytest.fixture(scope="module")
def fleet(module_hub, chromium):
    """Gateway A heard every day for ten days (a heat meter at a metering point of the property
    Lindenhof, reporting an error at the end); gateway B down with six silent meters; on A a meter
    silent on its own and one whose silence ended (history)."""
    base_url, _ = chromium
    hub = module_hub
    tenant = hub.tenant()
    admin = hub.user(tenant, "admin", PASSWORD)
    headers = hub.headers(tenant)
    gw_a, gw_b = hub.gateway(tenant, "GW-LIVE-0001"), hub.gateway(tenant, "GW-DOWN-0002")
    m1 = hub.meter(tenant, "41000001")
    hub.keys(tenant, {"41000001": KEY}, "KAM")
    for k in range(10):
        frame = encode("41000001", _records(k), access_number=k + 1, status=0x08 if k == 9 else 0)
        hub.send(gw_a, k + 1, [frame], t0=unix(EPOCH) + k * DAY, status={"battery_pct": 95 - k, "rssi": -70 - k})
    post = lambda path, body: httpx.post(base_url + "/api/v1" + path, json=body, headers=headers, timeout=30)  # noqa: E731
    prop = post("/properties", {"ref": "L-1", "name": "Lindenhof"}).json()
    unit = post(f"/properties/{prop['id']}/units", {"ref": "W1", "area_m2": 70.5}).json()
    point = post("/metering-points", {"ref": "MP-L-1", "address": "Lindenweg 3, 12345 Musterstadt"}).json()
    assert post(f"/units/{unit['id']}/metering-points", {"metering_point_id": point["id"]}).status_code < 300
    at = (EPOCH - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert post(f"/metering-points/{point['id']}/install", {"meter": m1, "at": at}).status_code < 300
    down = [hub.meter(tenant, f"4200000{i}") for i in range(1, 7)]
    silent, back = hub.meter(tenant, "43000008"), hub.meter(tenant, "43000009")
    heard = [hub.meter(tenant, f"430000{i}") for i in (10, 11)]  # most of A's meters are heard
    _wait_readings(base_url, headers, m1, 10)
    with hub.db.transaction() as s:
        s.execute(update(Meter).where(Meter.id.in_(down)).values(gateway_id=gw_b.id, last_heard_at=EPOCH))
        s.execute(update(Meter).where(Meter.id.in_((silent, back))).values(gateway_id=gw_a.id, last_heard_at=EPOCH))
        s.execute(
            update(Gateway)
            .where(Gateway.id == gw_b.id)
            .values(last_contact_at=EPOCH, next_contact_at=EPOCH + timedelta(hours=1))
        )
        s.execute(
            update(Gateway)
            .where(Gateway.id == gw_a.id)
            .values(last_contact_at=EPOCH + timedelta(days=9), next_contact_at=EPOCH + timedelta(days=30))
        )
        for k in range(10):  # received on their days (the test sent them all now)
            s.execute(
                update(Uplink)
                .where(Uplink.gateway_id == gw_a.id, Uplink.seq == k + 1)
                .values(received_at=EPOCH + timedelta(days=k))
            )
        s.execute(
            update(Meter)
            .where(Meter.id.in_([m1, *heard]))
            .values(gateway_id=gw_a.id, last_heard_at=EPOCH + timedelta(days=9))
        )
        alarm_rules.evaluate(s, EPOCH + timedelta(days=4))
        s.execute(update(Meter).where(Meter.id == back).values(last_heard_at=EPOCH + timedelta(days=5)))
        alarm_rules.evaluate(s, EPOCH + timedelta(days=6))
    return {
        "tenant": tenant,
        "admin": admin,
        "gw_a": gw_a.id,
        "gw_b": gw_b.serial,
        "m1": m1,
        "point": point["id"],
        "property": prop["id"],
    }


def _wait_readings(base_url, headers, meter, n):
    import time

    deadline = time.monotonic() + 60  # the server's pipeline decodes the telegrams
    while time.monotonic() < deadline:
        got = httpx.get(
            base_url + f"/api/v1/console/meters/{meter}/recent-readings", headers=headers, timeout=30
        ).json()
        if len(got["items"]) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"the server decoded {len(got['items'])} of {n} readings")


def _visit(page, base_url, route, name, lang, times, report):
    origin, since = page.evaluate("() => [performance.timeOrigin, performance.now()]")
    page.goto(base_url + "/" + route)
    page.wait_for_load_state("networkidle")
    if page.evaluate("() => performance.timeOrigin") != origin:
        since = 0.0  # the page was loaded anew: from its start
    times.append(f"{name} {settle(page, since) * 1000:.0f} ms")
    report += [f"{name}: {p}" for p in page_problems(page, lang)]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_alarms_grouped_filtered_and_acknowledged(chromium, fleet, lang):
    from playwright.sync_api import expect

    w = WORDS[lang]
    base_url, browser = chromium
    page, problems = open_console(browser, base_url, lang)
    login(page, fleet["admin"], lang)
    report, times = [], []
    _visit(page, base_url, "#/alarms", "alarms", lang, times, report)
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(3)  # B (its six meters in it), the meter silent on its own, the meter's error
    grouped = rows.filter(has_text=fleet["gw_b"])
    grouped.locator("summary").click()
    expect(grouped).to_contain_text(w["grouped"])
    expect(grouped.locator(".meter-list li")).to_have_count(6)
    shot(page, lang, "task-alarms-grouped")
    page.locator("select[name=severity]").select_option("critical")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(fleet["gw_b"])
    expect(rows.first).to_contain_text(w["critical"])
    page.goto(base_url + "/#/alarms?show=all")
    page.locator("select[name=property]").select_option(str(fleet["property"]))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("KAM 41000001")
    expect(rows.first).to_contain_text("Lindenweg 3")
    shot(page, lang, "task-alarms-property")
    _visit(page, base_url, "#/alarms?show=cleared", "alarms-history", lang, times, report)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("KAM 43000009")
    shot(page, lang, "task-alarms-history")

    # acknowledge: German the gateway's alarm, English the silent meter's
    kind = "gateway_missed_contact" if lang == "de" else "meter_silent"
    page.goto(base_url + f"/#/alarms?kind={kind}")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("button", name=w["ack"]).click()
    note = rows.first.locator("textarea[name=note]")
    note.fill("   ")
    rows.first.locator("form").get_by_role("button", name=w["ack"]).click()
    expect(rows.first.locator(".field-error")).to_contain_text(w["ack_error"])
    shot(page, lang, "task-alarm-ack-refused")
    note.fill("Techniker ist unterwegs" if lang == "de" else "Technician on the way")
    rows.first.locator("form").get_by_role("button", name=w["ack"]).click()
    expect(rows.first).to_contain_text(w["acked"])
    expect(rows.first).to_contain_text("Techniker ist unterwegs" if lang == "de" else "Technician on the way")
    shot(page, lang, "task-alarm-ack")
    page.reload()
    expect(rows.first).to_contain_text(w["acked"])  # kept by the server
    _visit(page, base_url, "#/audit", "audit", lang, times, report)
    expect(page.locator("main")).to_contain_text(w["audit"])
    print(f"\npage load times ({lang}): " + ", ".join(times))
    # the refused empty note: its answer, and the browser's own line about it
    expected = [p for p in problems if "HTTP 422" in p and "/acknowledge" in p or "status of 422" in p]
    assert len(expected) == 2, problems
    assert report + [p for p in problems if p not in expected] == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_charts_of_a_meter_a_point_a_gateway_and_the_fleet(chromium, fleet, lang):
    from playwright.sync_api import expect

    w = WORDS[lang]
    base_url, browser = chromium
    page, problems = open_console(browser, base_url, lang)
    login(page, fleet["admin"], lang)
    report, times = [], []
    charts = page.locator("figure.chart svg[role=img]")
    _visit(page, base_url, f"#/meters/{fleet['m1']}", "meter-charts", lang, times, report)
    expect(charts).to_have_count(3)  # consumption, energy over time, temperatures
    consumption = page.locator("figure.chart").first
    expect(consumption.locator("rect.bar")).to_have_count(9)  # ten days of readings: nine differences
    consumption.get_by_text(w["table"]).click()
    expect(consumption.locator("table")).to_contain_text(w["daily"])
    expect(page.locator("figure.chart").nth(2).locator("path.line")).to_have_count(2)  # flow and return
    shot(page, lang, "chart-meter")
    page.locator("select[name=chart-period]").first.select_option("month")
    expect(page.locator("figure.chart figcaption").first).to_contain_text(w["month"])
    _visit(page, base_url, f"#/points/{fleet['point']}", "point-charts", lang, times, report)
    expect(page.locator("figure.chart rect.bar")).to_have_count(9)
    page.locator("figure.chart").first.scroll_into_view_if_needed()
    shot(page, lang, "chart-point")
    _visit(page, base_url, f"#/gateways/{fleet['gw_a']}", "gateway-charts", lang, times, report)
    expect(charts).to_have_count(2)  # contacts, battery
    expect(page.locator("figure.chart").nth(1).locator("circle.dot")).to_have_count(10)
    shot(page, lang, "chart-gateway")
    _visit(page, base_url, "#/", "dashboard-chart", lang, times, report)
    expect(charts).to_have_count(1)
    shot(page, lang, "chart-dashboard")
    print(f"\npage load times ({lang}): " + ", ".join(times))
    assert report + problems == []


@pytest.mark.parametrize("lang", ["de", "en"])
def test_alarm_and_chart_pages_pass_the_accessibility_checks(chromium, fleet, lang):
    base_url, browser = chromium
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(base_url + "/")
    login(page, fleet["admin"], lang)
    report = []
    try:
        for route in ["#/alarms?show=all", f"#/meters/{fleet['m1']}", f"#/gateways/{fleet['gw_a']}", "#/"]:
            page.goto(base_url + "/" + route)
            settle(page)
            report += [f"{route}: {i}" for i in page.evaluate(ACCESSIBILITY_CHECKS)]
            if not page.evaluate("() => !!window.axe"):
                page.evaluate(AXE.read_text())
            found = page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                ".filter((v) => ['critical', 'serious'].includes(v.impact))"
                ".map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}×: ${v.nodes[0].target})`)"
            )
            report += [f"{route}: {v}" for v in found]
    finally:
        context.close()
    assert report == []
