"""Login, sessions, API tokens, roles, users, gateway registration and tenant scoping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from omshub.cloud.services.accounts import hash_secret
from omshub.cloud.store.models import ApiToken, AuditEntry, Gateway, User


def _login(client, username, password="correct horse"):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_login_gives_an_expiring_session_token(hub, client, db):
    t = hub.tenant()
    name = hub.user(t, "operator")
    r = _login(client, name)
    assert r.status_code == 200
    body = r.json()
    assert body["role"] == "operator" and body["tenant"] == t.slug and body["token_type"] == "bearer"
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    headers = {"Authorization": f"Bearer {body['token']}"}
    me = client.get("/api/v1/auth/me", headers=headers).json()
    assert me["name"] == name and me["tenant"]["slug"] == t.slug
    with db.session() as s:  # only the hash is stored
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(body["token"])))
        assert row.kind == "session" and body["token"].encode() not in row.token_hash
    # expired: refused
    with db.transaction() as s:
        s.execute(
            update(ApiToken).where(ApiToken.id == row.id).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_wrong_password_and_unknown_user_look_the_same(hub, client):
    t = hub.tenant()
    name = hub.user(t)
    a = _login(client, name, "wrong password")
    b = _login(client, "nobody-" + name, "correct horse")
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_logout_revokes(hub, client):
    t = hub.tenant()
    token = _login(client, hub.user(t)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401


def test_disabled_user_cannot_log_in_and_sessions_end(hub, client):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    name = hub.user(t, "viewer")
    session = {"Authorization": f"Bearer {_login(client, name).json()['token']}"}
    user_id = client.get("/api/v1/auth/me", headers=session).json()["user_id"]
    assert client.delete(f"/api/v1/users/{user_id}", headers=admin).status_code == 204
    assert client.get("/api/v1/auth/me", headers=session).status_code == 401
    assert _login(client, name).status_code == 401


def test_missing_or_garbage_token_is_401(client):
    assert client.get("/api/v1/gateways").status_code == 401
    r = client.get("/api/v1/gateways", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/gateways", headers={"Authorization": "Basic abc"}).status_code == 401


def test_api_tokens_shown_once_listed_without_secret_revocable(hub, client, db):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    r = client.post("/api/v1/tokens", json={"name": "billing", "role": "viewer"}, headers=admin)
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    listed = client.get("/api/v1/tokens", headers=admin).json()["items"]
    mine = [x for x in listed if x["id"] == created["id"]]
    assert mine and "token" not in mine[0] and token not in str(listed)
    billing = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/gateways", headers=billing).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/gateways", headers=billing).status_code == 401
    with db.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == t.id)).all()
    assert "token.create" in actions and "token.revoke" in actions


def test_roles(hub, client):
    t = hub.tenant()
    viewer, operator, admin = (hub.headers(t, role) for role in ("viewer", "operator", "admin"))
    # viewer reads, does not register gateways
    assert client.get("/api/v1/gateways", headers=viewer).status_code == 200
    r = client.post("/api/v1/gateways", json={"serial": "ROLE-1"}, headers=viewer)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # operator registers gateways but does not manage tokens or users
    assert client.post("/api/v1/gateways", json={"serial": f"ROLE-{t.id}"}, headers=operator).status_code == 201
    assert client.post("/api/v1/tokens", json={"name": "x"}, headers=operator).status_code == 403
    assert client.get("/api/v1/users", headers=operator).status_code == 403
    # admin does all
    assert client.get("/api/v1/users", headers=admin).status_code == 200
    assert client.post("/api/v1/tokens", json={"name": "x", "role": "boss"}, headers=admin).status_code == 422


def test_session_follows_the_users_current_role(hub, client):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    name = hub.user(t, "viewer")
    session = {"Authorization": f"Bearer {_login(client, name).json()['token']}"}
    user_id = client.get("/api/v1/auth/me", headers=session).json()["user_id"]
    assert client.post("/api/v1/gateways", json={"serial": f"RF-{t.id}"}, headers=session).status_code == 403
    assert client.patch(f"/api/v1/users/{user_id}", json={"role": "operator"}, headers=admin).status_code == 200
    assert client.post("/api/v1/gateways", json={"serial": f"RF-{t.id}"}, headers=session).status_code == 201


def test_user_management(hub, client, db):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    r = client.post(
        "/api/v1/users", json={"username": f"carol{t.id}", "password": "long enough", "role": "operator"}, headers=admin
    )
    assert r.status_code == 201 and "password" not in r.json()
    assert (
        client.post(
            "/api/v1/users", json={"username": f"carol{t.id}", "password": "long enough"}, headers=admin
        ).status_code
        == 409
    )
    assert (
        client.post("/api/v1/users", json={"username": f"dan{t.id}", "password": "short"}, headers=admin).status_code
        == 422
    )
    assert _login(client, f"carol{t.id}", "long enough").status_code == 200
    with db.session() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == f"carol{t.id}"))
    assert stored.startswith("$argon2") and "long enough" not in stored


def test_other_tenants_objects_are_404(hub, client):
    a, b = hub.tenant(), hub.tenant()
    gw_b = hub.gateway(b)
    admin_a = hub.headers(a, "admin")
    r = client.get(f"/api/v1/gateways/{gw_b.id}", headers=admin_a)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/gateways/{gw_b.id}/config", headers=admin_a).status_code == 404
    assert client.post(f"/api/v1/gateways/{gw_b.id}/credential", headers=admin_a).status_code == 404
    assert all(g["id"] != gw_b.id for g in client.get("/api/v1/gateways", headers=admin_a).json()["items"])
    token_b = client.post("/api/v1/tokens", json={"name": "b"}, headers=hub.headers(b)).json()["id"]
    assert client.delete(f"/api/v1/tokens/{token_b}", headers=admin_a).status_code == 404
    user_b = client.post(
        "/api/v1/users", json={"username": f"bee{b.id}", "password": "long enough"}, headers=hub.headers(b)
    ).json()["id"]
    assert client.get(f"/api/v1/users/{user_b}", headers=admin_a).status_code == 404
    assert client.patch(f"/api/v1/users/{user_b}", json={"role": "admin"}, headers=admin_a).status_code == 404


def test_gateway_registration_shows_the_credential_once(hub, client, db):
    t = hub.tenant()
    op = hub.headers(t, "operator")
    r = client.post("/api/v1/gateways", json={"serial": f"GW-REG-{t.id}", "name": "roof"}, headers=op)
    assert r.status_code == 201
    body = r.json()
    cred = body["credential"]
    got = client.get(f"/api/v1/gateways/{body['id']}", headers=op).json()
    assert "credential" not in got and cred not in str(got) and got["name"] == "roof"
    with db.session() as s:
        assert s.get(Gateway, body["id"]).credential_hash == hash_secret(cred)
    assert client.post("/api/v1/gateways", json={"serial": f"GW-REG-{t.id}"}, headers=op).status_code == 409
    r = client.post("/api/v1/gateways", json={"serial": "bad serial!"}, headers=op)
    assert r.status_code == 422 and "serial" in r.json()["error"]["message"]
    config = client.get(f"/api/v1/gateways/{body['id']}/config", headers=op).json()
    assert config["version"] == 0 and config["factory_default"] and config["config"]["timezone"] == "UTC"
    # rotating the credential: the old one stops working
    new = client.post(f"/api/v1/gateways/{body['id']}/credential", headers=hub.headers(t, "admin")).json()
    assert new["credential"] != cred


def test_pagination(hub, client):
    t = hub.tenant()
    admin = hub.headers(t, "admin")
    for _ in range(5):
        hub.gateway(t)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/gateways", params=params, headers=admin).json()
        seen += [g["id"] for g in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)
    assert client.get("/api/v1/gateways", params={"cursor": "garbage!"}, headers=admin).status_code == 422
    assert client.get("/api/v1/gateways", params={"limit": 0}, headers=admin).status_code == 422


def test_validation_errors_are_consistent(hub, client):
    t = hub.tenant()
    r = client.post("/api/v1/gateways", json={"name": "no serial"}, headers=hub.headers(t))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request" and "serial" in r.json()["error"]["message"]
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
