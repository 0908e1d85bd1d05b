"""The console's cookie session (issue 15, item 5): HttpOnly, Secure, SameSite=Strict, CSRF-checked,
ended after the configured idle time; bearer tokens keep working for the API as before."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from omshub.cloud.api.deps import csrf_token
from omshub.cloud.services.accounts import hash_secret, utcnow
from omshub.cloud.store.models import ApiToken

PASSWORD = "correct horse"


def _cookie_login(client, username):
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD, "cookie": True})
    assert r.status_code == 200, r.text
    return r


def _session_of(response) -> str:
    header = next(v for v in response.headers.get_list("set-cookie") if v.startswith("omshub_session="))
    return header.split(";")[0].split("=", 1)[1]


def test_a_cookie_login_gives_a_session_the_page_cannot_read(hub, client):
    t = hub.tenant()
    name = hub.user(t, "operator", PASSWORD)
    r = _cookie_login(client, name)
    body = r.json()
    assert body["token"] is None and body["token_type"] == "cookie" and body["username"] == name
    cookies = {v.split("=", 1)[0]: v.lower() for v in r.headers.get_list("set-cookie")}
    session = cookies["omshub_session"]
    assert "httponly" in session and "secure" in session and "samesite=strict" in session and "path=/api/" in session
    csrf = cookies["omshub_csrf"]
    assert "httponly" not in csrf and "secure" in csrf and "samesite=strict" in csrf
    token = _session_of(r)
    assert body["csrf_token"] == csrf_token(token) and token not in r.text


def test_the_cookie_works_and_changes_need_the_csrf_token(hub, client):
    t = hub.tenant()
    name = hub.user(t, "admin", PASSWORD)
    token = _session_of(_cookie_login(client, name))
    cookie = {"Cookie": f"omshub_session={token}"}
    client.cookies.clear()
    assert client.get("/api/v1/auth/me", headers=cookie).json()["name"] == name
    assert client.get("/api/v1/auth/session", headers=cookie).json()["active"] is True
    assert client.get("/api/v1/auth/session").json() == {"active": False}  # logged out: no refusal
    r = client.post("/api/v1/gateways", json={"serial": f"GW-{token[:6]}"}, headers=cookie)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = client.post(
        "/api/v1/gateways", json={"serial": f"GW-{token[:6]}"}, headers={**cookie, "X-CSRF-Token": "x" * 64}
    )
    assert r.status_code == 403
    good = {**cookie, "X-CSRF-Token": csrf_token(token)}
    assert client.post("/api/v1/gateways", json={"serial": f"GW-{token[:6]}"}, headers=good).status_code == 201
    # a bearer token needs no CSRF token (no browser sends it by itself)
    assert (
        client.post("/api/v1/gateways", json={"serial": f"GW-B{token[:6]}"}, headers=hub.headers(t)).status_code == 201
    )
    # logging out ends the session and clears both cookies
    r = client.post("/api/v1/auth/logout", headers=good)
    assert r.status_code == 204
    cleared = r.headers.get_list("set-cookie")
    assert any(c.startswith('omshub_session=""') or c.startswith("omshub_session=;") for c in cleared), cleared
    assert client.get("/api/v1/auth/me", headers=cookie).status_code == 401


def test_an_api_token_in_the_cookie_is_refused(hub, client):
    t = hub.tenant()
    token = hub.token(t, "admin")
    r = client.get("/api/v1/auth/me", headers={"Cookie": f"omshub_session={token}"})
    assert r.status_code == 401


def test_the_session_ends_after_the_idle_timeout(hub, client, db, settings):
    t = hub.tenant()
    name = hub.user(t, "viewer", PASSWORD)
    token = _session_of(_cookie_login(client, name))
    cookie = {"Cookie": f"omshub_session={token}"}
    client.cookies.clear()
    assert client.get("/api/v1/gateways", headers=cookie).status_code == 200
    idle = timedelta(seconds=client.app.state.settings.session_idle_s)
    with db.transaction() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_secret(token))
            .values(last_used_at=utcnow() - idle - timedelta(seconds=5))
        )
    r = client.get("/api/v1/gateways", headers={**cookie, "Accept-Language": "de"})
    assert r.status_code == 401 and "Pause" in r.json()["error"]["message"]


def test_a_body_with_only_the_cookie_passes_the_guard(hub, client):
    """The body guard (cloud/api/guard.py) takes the session cookie as a credential too."""
    t = hub.tenant()
    name = hub.user(t, "operator", PASSWORD)
    token = _session_of(_cookie_login(client, name))
    client.cookies.clear()
    headers = {"Cookie": f"omshub_session={token}", "X-CSRF-Token": csrf_token(token), "Content-Type": "text/csv"}
    r = client.post(
        "/api/v1/meters/import", content=b"manufacturer,id,device_type\nKAM,51000001,heat\n", headers=headers
    )
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/meters/import", content=b"x" * 10, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401
