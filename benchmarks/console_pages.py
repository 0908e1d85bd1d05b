"""How long each console page takes in a real browser: `python -m benchmarks.console_pages --url URL
--username U --password P [--lang de|en] [--runs 3]`.

Against a running head-end (e.g. the demo fleet: `omshub demo --exit-when-done`, then `omshub serve`
on its data directory), logs in through the console with Debian's Chromium (Playwright), opens
every page `--runs` times as a new tab would (a whole load: page, scripts, session check, data) and
prints, per page, the median and the slowest time from the navigation's start to the end of its
last request. The baseline in the same run is the login page (no data): each page's median is also
given as a multiple of it. Figures, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics

import httpx

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PAGES = [
    ("dashboard", "#/"),
    ("gateways", "#/gateways"),
    ("meters", "#/meters"),
    ("telegrams", "#/telegrams"),
    ("metering points", "#/points"),
    ("alarms", "#/alarms?show=all"),
    ("operations", "#/operations"),
    ("search", "#/search?q=1"),
    ("export", "#/export"),
    ("users and tokens", "#/admin"),
    ("audit log", "#/audit"),
]


def _first_ids(url: str, session_cookie: str) -> list[tuple[str, str]]:
    """A gateway's, a meter's and a metering point's page as well (the first of each list)."""
    headers = {"Cookie": f"omshub_session={session_cookie}"}
    out = []
    for name, path, route in (
        ("a gateway", "/api/v1/gateways", "#/gateways/{}"),
        ("a meter", "/api/v1/meters", "#/meters/{}"),
        ("a metering point", "/api/v1/metering-points", "#/points/{}"),
    ):
        items = httpx.get(url + path, params={"limit": 1}, headers=headers, timeout=60).json().get("items") or []
        if items:
            out.append((name, route.format(items[0]["id"])))
    return out


def _timed(page, url: str) -> float:
    """A whole load, as a new tab or a reload does it: the page, its scripts, the session, the data."""
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_load_state("networkidle")  # (which waits 0.5 s of quiet: the end is read from the page)
    page.wait_for_function("() => !document.querySelector('#loading')")
    # from the navigation's start to the end of the last request (the page renders as answers come)
    return page.evaluate(
        "() => Math.max(performance.getEntriesByType('navigation')[0].loadEventEnd,"
        " ...performance.getEntriesByType('resource').map((e) => e.responseEnd)) / 1000"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--lang", choices=("de", "en"), default="de")
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    from playwright.sync_api import sync_playwright  # the test extra's browser driver

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(locale="de-DE" if a.lang == "de" else "en-GB")
        page = context.new_page()
        baseline = statistics.median(_timed(page, a.url + "/") for _ in range(a.runs))
        page.fill("input[name=username]", a.username)
        page.fill("input[name=password]", a.password)
        page.click("button[type=submit]")
        page.wait_for_selector("#topbar:not([hidden])")
        cookie = next(c["value"] for c in context.cookies() if c["name"] == "omshub_session")
        print(f"login page (baseline): {baseline * 1000:.0f} ms")
        for name, route in PAGES + _first_ids(a.url, cookie):
            times = [_timed(page, f"{a.url}/{route}") for _ in range(a.runs)]
            median = statistics.median(times)
            print(
                f"{name:18} median {median * 1000:6.0f} ms, slowest {max(times) * 1000:6.0f} ms, "
                f"{median / baseline:4.1f}× the login page"
            )
        browser.close()


if __name__ == "__main__":
    main()
