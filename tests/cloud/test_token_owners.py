"""API tokens belong to the user who created them (issue 9, item 11): they work only while that user
is enabled and never above the user's current role; disabling a user ends their sessions and
tokens at once. Tokens of the CLI (`omshub admin create-token`) are service tokens of the tenant,
listed and revocable like the others; nothing of it crosses tenants."""

from __future__ import annotations

import json

from sqlalchemy import select, text, update
from typer.testing import CliRunner

from omshub.cloud.store.models import ApiToken, User


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _session(client, username: str) -> dict:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": "correct horse"})
    assert r.status_code == 200, r.text
    return _bearer(r.json()["token"])


def _user_id(client, headers: dict) -> int:
    return client.get("/api/v1/auth/me", headers=headers).json()["user_id"]


def _new_token(client, headers: dict, role: str, name: str = "billing") -> dict:
    r = client.post("/api/v1/tokens", json={"name": name, "role": role}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_disabling_an_admin_ends_their_session_and_their_tokens(hub, client, db):
    t = hub.tenant()
    service = hub.headers(t, "admin")  # a service token (no owner): the one doing the disabling
    admin_name = hub.user(t, "admin")
    session = _session(client, admin_name)
    admin_id = _user_id(client, session)
    made = _new_token(client, session, "admin", "made-in-console")
    assert made["owner"]["id"] == admin_id and made["service"] is False
    # a token made with the user's token belongs to the user too
    made_by_token = _new_token(client, _bearer(made["token"]), "viewer", "made-by-token")
    assert made_by_token["owner"]["id"] == admin_id
    tokens = [_bearer(made["token"]), _bearer(made_by_token["token"])]
    for headers in [session, *tokens]:
        assert client.get("/api/v1/gateways", headers=headers).status_code == 200

    r = client.patch(f"/api/v1/users/{admin_id}", json={"disabled": True}, headers=service)
    assert r.status_code == 200
    for headers in [session, *tokens]:
        r = client.get("/api/v1/gateways", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/gateways", headers=service).status_code == 200  # service tokens stay
    listed = {x["id"]: x for x in client.get("/api/v1/tokens", headers=service).json()["items"]}
    for token in (made, made_by_token):
        row = listed[token["id"]]
        assert row["revoked"] is True and row["active"] is False and row["owner"]["disabled"] is True
    # enabling the user again does not bring the tokens back
    assert client.patch(f"/api/v1/users/{admin_id}", json={"disabled": False}, headers=service).status_code == 200
    for headers in tokens:
        assert client.get("/api/v1/gateways", headers=headers).status_code == 401


def test_a_token_works_only_while_its_owner_is_enabled(hub, client, db):
    """Also when the user is disabled without the API (straight in the database): the check is at
    every request, not only the revocation at the disabling."""
    t = hub.tenant()
    name = hub.user(t, "operator")
    owner_session = _session(client, name)
    user_id = _user_id(client, owner_session)
    with db.transaction() as s:  # an operator cannot create tokens: the owner is set as the API would
        from omshub.cloud.services.accounts import create_api_token

        token = create_api_token(s, t.id, "sensor-export", "operator", owner_id=user_id)[1]
    assert client.get("/api/v1/gateways", headers=_bearer(token)).status_code == 200
    with db.transaction() as s:
        s.execute(update(User).where(User.id == user_id).values(disabled=True))
    assert client.get("/api/v1/gateways", headers=_bearer(token)).status_code == 401
    with db.transaction() as s:
        s.execute(update(User).where(User.id == user_id).values(disabled=False))
    assert client.get("/api/v1/gateways", headers=_bearer(token)).status_code == 200


def test_deleting_a_user_ends_their_tokens(hub, client):
    t = hub.tenant()
    service = hub.headers(t, "admin")
    session = _session(client, hub.user(t, "admin"))
    token = _bearer(_new_token(client, session, "viewer")["token"])
    assert client.delete(f"/api/v1/users/{_user_id(client, session)}", headers=service).status_code == 204
    assert client.get("/api/v1/gateways", headers=token).status_code == 401


def test_a_role_downgrade_caps_the_users_tokens(hub, client):
    t = hub.tenant()
    service = hub.headers(t, "admin")
    session = _session(client, hub.user(t, "admin"))
    user_id = _user_id(client, session)
    made = _new_token(client, session, "admin")
    token = _bearer(made["token"])
    assert client.get("/api/v1/users", headers=token).status_code == 200  # admin while its owner is
    assert client.patch(f"/api/v1/users/{user_id}", json={"role": "viewer"}, headers=service).status_code == 200
    me = client.get("/api/v1/auth/me", headers=token).json()
    assert me["role"] == "viewer" and me["user_id"] == user_id
    assert client.get("/api/v1/users", headers=token).status_code == 403
    assert client.post("/api/v1/gateways", json={"serial": f"CAP-{t.id}"}, headers=token).status_code == 403
    assert client.get("/api/v1/gateways", headers=token).status_code == 200
    listed = next(x for x in client.get("/api/v1/tokens", headers=service).json()["items"] if x["id"] == made["id"])
    assert (listed["role"], listed["effective_role"], listed["active"]) == ("admin", "viewer", True)
    # the cap is the owner's current role: back to admin, the token is admin again
    assert client.patch(f"/api/v1/users/{user_id}", json={"role": "admin"}, headers=service).status_code == 200
    assert client.get("/api/v1/users", headers=token).status_code == 200
    # and never more than the token was given
    viewer_token = _bearer(_new_token(client, session, "viewer")["token"])
    assert client.get("/api/v1/users", headers=viewer_token).status_code == 403


def test_cli_tokens_are_service_tokens_listed_and_revocable(hub, client, database_url, data_dir):
    from omshub.cli import app as cli

    t = hub.tenant()
    r = CliRunner().invoke(
        cli,
        [
            "admin",
            "create-token",
            "--tenant",
            t.slug,
            "--name",
            "billing-system",
            "--role",
            "viewer",
            "--database",
            database_url,
            "--data-dir",
            str(data_dir),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    service_token = _bearer(created["token"])
    assert client.get("/api/v1/gateways", headers=service_token).status_code == 200
    admin = _session(client, hub.user(t, "admin"))
    listed = {x["id"]: x for x in client.get("/api/v1/tokens", headers=admin).json()["items"]}
    row = listed[created["id"]]
    assert row["service"] is True and row["owner"] is None and row["role"] == row["effective_role"] == "viewer"
    assert row["created_at"] and "last_used_at" in row and created["token"] not in json.dumps(listed)
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/gateways", headers=service_token).status_code == 401
    # the CLI lists and revokes too
    again = json.loads(
        CliRunner()
        .invoke(
            cli,
            [
                "admin",
                "create-token",
                "--tenant",
                t.slug,
                "--name",
                "second",
                "--database",
                database_url,
                "--data-dir",
                str(data_dir),
                "--json",
            ],
        )
        .output
    )
    r = CliRunner().invoke(
        cli,
        ["admin", "list-tokens", "--tenant", t.slug, "--database", database_url, "--data-dir", str(data_dir), "--json"],
    )
    assert r.exit_code == 0, r.output
    assert {x["name"] for x in json.loads(r.output)} >= {"billing-system", "second"}
    r = CliRunner().invoke(
        cli,
        [
            "admin",
            "revoke-token",
            str(again["id"]),
            "--tenant",
            t.slug,
            "--database",
            database_url,
            "--data-dir",
            str(data_dir),
        ],
    )
    assert r.exit_code == 0, r.output
    assert client.get("/api/v1/gateways", headers=_bearer(again["token"])).status_code == 401


def test_sessions_are_listed_and_can_be_ended(hub, client):
    t = hub.tenant()
    admin = _session(client, hub.user(t, "admin"))
    viewer_name = hub.user(t, "viewer")
    viewer = _session(client, viewer_name)
    sessions = client.get("/api/v1/tokens", params={"kind": "session"}, headers=admin).json()["items"]
    mine = [x for x in sessions if x["owner"]["username"] == viewer_name]
    assert len(mine) == 1 and mine[0]["kind"] == "session" and mine[0]["active"] is True
    assert client.delete(f"/api/v1/tokens/{mine[0]['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/auth/me", headers=viewer).status_code == 401


def test_tokens_are_tenant_scoped(hub, client):
    a, b = hub.tenant(), hub.tenant()
    admin_a = _session(client, hub.user(a, "admin"))
    admin_b = _session(client, hub.user(b, "admin"))
    token_b = _new_token(client, admin_b, "viewer")
    service_b = hub.token(b, "viewer")
    listed_a = client.get("/api/v1/tokens", params={"kind": "all"}, headers=admin_a).json()["items"]
    assert listed_a and all(x["id"] != token_b["id"] for x in listed_a)
    assert all(x["owner"] is None or x["owner"]["username"] != token_b["owner"]["username"] for x in listed_a)
    r = client.delete(f"/api/v1/tokens/{token_b['id']}", headers=admin_a)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/gateways", headers=_bearer(token_b["token"])).status_code == 200
    assert client.get("/api/v1/gateways", headers=_bearer(service_b)).status_code == 200
    # a user of tenant B cannot own a token of tenant A
    from omshub.cloud.api.errors import http_status
    from omshub.cloud.domain.errors import DomainError
    from omshub.cloud.services.accounts import create_api_token

    with hub.db.transaction() as s:
        try:
            create_api_token(s, a.id, "foreign", "viewer", owner_id=token_b["owner"]["id"])
            raise AssertionError("a token of tenant A got an owner of tenant B")
        except DomainError as exc:
            assert http_status(exc) == 403


def test_migration_gives_api_created_tokens_their_creator(tmp_path):
    """Tokens created through the API before migration 0006 get their creator (from the audit log)
    as owner; the CLI's stay service tokens."""
    from alembic import command
    from alembic.config import Config

    from omshub.cloud.store.database import MIGRATIONS, Database

    db = Database(f"sqlite:///{tmp_path}/old.db")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.commit()
    now = "2026-01-14 12:00:00.000000"
    with db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'a', 'A', :now), (2, 'b', 'B', :now)"),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, tenant_id, username, password_hash, role, disabled, created_at) "
                "VALUES (1, 1, 'alice', 'x', 'admin', 0, :now), (2, 2, 'bob', 'x', 'admin', 0, :now)"
            ),
            {"now": now},
        )
        for token_id, tenant_id, name in ((1, 1, "by-alice"), (2, 1, "by-cli"), (3, 1, "by-bob-elsewhere")):
            conn.execute(
                text(
                    "INSERT INTO api_tokens (id, tenant_id, user_id, kind, name, role, token_hash, "
                    "created_at, revoked) VALUES (:id, :t, NULL, 'api', :name, 'viewer', :hash, :now, 0)"
                ),
                {"id": token_id, "t": tenant_id, "name": name, "hash": bytes([token_id]) * 32, "now": now},
            )
        for actor, token_id in (("alice", 1), ("cli:root", 2), ("bob", 3)):
            conn.execute(
                text(
                    "INSERT INTO audit_log (tenant_id, actor, action, details, at) "
                    "VALUES (1, :actor, 'token.create', :details, :now)"
                ),
                {"actor": actor, "details": json.dumps({"token_id": token_id}), "now": now},
            )
    db.migrate()
    with db.session() as s:
        owners = dict(s.execute(select(ApiToken.name, ApiToken.user_id)).all())
    db.dispose()
    assert owners == {"by-alice": 1, "by-cli": None, "by-bob-elsewhere": None}
