"""Headers and API docs (issue 9, item 14): /docs and /redoc load Swagger UI and ReDoc from this
server, not a CDN, under a Content-Security-Policy; every response has the usual security headers,
the API's `Cache-Control: no-store` (login and token creation included).

(a) Without a browser: the pages, their assets and the headers. (b) With a browser (Debian's
Chromium via Playwright) against a real `omshub serve`, every request to another host refused as if
offline: both pages render the API and the browser reports no CSP violation.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from .conftest import LiveServer

CHROMIUM = "/usr/bin/chromium"


def _local_refs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets_under_a_csp(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = _local_refs(r.text)
    assert refs and all(ref.startswith("/docs/assets/") for ref in refs), refs
    assert "http://" not in r.text and "https://" not in r.text
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 100, ref
        assert asset.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    # the page's inline start-up script is allowed by its hash, no other inline script
    for script in re.findall(r"<script>(.*?)</script>", r.text, re.S):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"


def test_unknown_docs_assets_are_404(client):
    for path in ("/docs/assets/nothing.js", "/docs/assets/..%2Fcore.py", "/docs/assets/core.py"):
        assert client.get(path).status_code == 404


def test_every_response_has_security_headers_and_the_api_is_not_cached(client, hub):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    for path, headers in (
        ("/api/v1/health", {}),
        ("/api/v1/gateways", admin),
        ("/api/v1/gateways", {}),
        ("/openapi.json", {}),
        ("/", {}),
        ("/no/such/page", {}),
    ):
        r = client.get(path, headers=headers)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        if path.startswith("/api/"):
            assert r.headers["cache-control"] == "no-store", path
    # the console keeps its own policy (scripts from here only)
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_login_and_token_creation_are_not_stored(client, hub):
    t = hub.tenant()
    name = hub.user(t, "admin")
    r = client.post("/api/v1/auth/login", json={"username": name, "password": "correct horse"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    session = {"Authorization": f"Bearer {r.json()['token']}"}
    r = client.post("/api/v1/tokens", json={"name": "billing", "role": "viewer"}, headers=session)
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store" and r.json()["token"]


# --- (b) in a browser, offline ---


@pytest.fixture(scope="module")
def docs_server(database_url, data_dir):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package")
    server = LiveServer(database_url, data_dir)
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                yield server.base_url, browser
            finally:
                browser.close()
    finally:
        server.stop()


def _offline_page(browser, base_url: str):
    """A page that can reach only the head-end; what else it asked for and any CSP complaint are kept."""
    page = browser.new_page()
    page.set_default_timeout(30_000)
    elsewhere, complaints = [], []
    local = urlparse(base_url).netloc

    def route(r):
        if urlparse(r.request.url).netloc == local or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            elsewhere.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda exc: complaints.append(str(exc)))
    return page, elsewhere, complaints


@pytest.mark.slow
def test_swagger_ui_renders_offline(docs_server):
    from playwright.sync_api import expect

    base_url, browser = docs_server
    page, elsewhere, complaints = _offline_page(browser, base_url)
    page.goto(base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("omshub head-end", timeout=30_000)
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/auth/login").first).to_be_visible()
    page.wait_for_timeout(500)
    assert elsewhere == [] and complaints == [], (elsewhere, complaints)
    page.close()


@pytest.mark.slow
def test_redoc_renders_offline(docs_server):
    from playwright.sync_api import expect

    base_url, browser = docs_server
    page, elsewhere, complaints = _offline_page(browser, base_url)
    page.goto(base_url + "/redoc")
    expect(page.locator("h1", has_text="omshub head-end").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/api/v1/auth/login").first).to_be_attached()
    page.wait_for_timeout(500)
    # ReDoc's footer always asks cdn.redoc.ly for its logo (and hides it when that fails): the
    # policy blocks it before any request leaves, the only complaint allowed
    blocked_logo = [c for c in complaints if "cdn.redoc.ly/redoc/logo-mini.svg" in c and "img-src" in c]
    assert elsewhere == [] and complaints == blocked_logo, (elsewhere, complaints)
    page.close()
