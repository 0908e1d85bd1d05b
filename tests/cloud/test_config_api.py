"""Gateway configuration through the API: a change names only what it changes (JSON merge patch
onto the desired configuration, PUT and PATCH), and a bulk change never drops another pending
change silently (409 with the conflicts, then the operator's decision: supersede or skip)."""

from __future__ import annotations

import cbor2

from omshub.protocol.config import GatewayConfig

API = "/api/v1"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
DEFAULTS = GatewayConfig().model_dump(mode="json")


def _uplink(hub, gw, seq: int, cfg: int) -> dict:
    r = hub.post_uplink(gw, {"v": 1, "gw": gw.serial, "seq": seq, "cfg": cfg, "status": {"battery_pct": 80}})
    assert r.status_code == 200, r.content
    return cbor2.loads(r.content)


def test_the_readme_example_keeps_the_time_zone(hub, client):
    t = hub.tenant()
    op = hub.headers(t, "operator")
    gw = hub.gateway(t)
    r = client.put(
        f"{API}/gateways/{gw.id}/config",
        headers=op,
        json={"timezone": "Europe/Berlin", "spread_s": 600, "collection": [{"cron": "0 0 1 * * *"}]},
    )
    assert r.status_code == 201, r.text
    r = client.put(f"{API}/gateways/{gw.id}/config", json={"upload": {"cron": "0 0 4 * * *"}}, headers=op)
    assert r.status_code == 201, r.text
    desired = client.get(f"{API}/gateways/{gw.id}/config", headers=op).json()["config"]
    assert (desired["timezone"], desired["spread_s"]) == ("Europe/Berlin", 600), desired
    body = r.json()
    assert body["outcome"] == "superseded" and body["config_version"] == 2 and body["state"] == "PENDING"
    cfg = body["config"]
    assert cfg["timezone"] == "Europe/Berlin" and cfg["spread_s"] == 600
    assert cfg["collection"][0]["cron"] == "0 0 1 * * *" and cfg["upload"]["cron"] == "0 0 4 * * *"
    # and that is what the gateway receives
    assert cfg == desired and _uplink(hub, gw, 1, 0)["config"] == cfg


def test_get_returns_the_full_desired_configuration_and_the_pending_operation(hub, client):
    t = hub.tenant()
    op, viewer = hub.headers(t, "operator"), hub.headers(t, "viewer")
    gw = hub.gateway(t)
    got = client.get(f"{API}/gateways/{gw.id}/config", headers=viewer).json()
    assert got["version"] == 0 and got["factory_default"] is True and got["config"] == DEFAULTS
    assert got["applied_version"] == 0 and got["pending_operation"] is None
    made = client.patch(
        f"{API}/gateways/{gw.id}/config", json={"timezone": "Europe/Berlin"}, headers={**op, **MERGE_PATCH}
    ).json()
    got = client.get(f"{API}/gateways/{gw.id}/config", headers=viewer).json()
    assert got["version"] == 1 and got["factory_default"] is False
    assert got["config"] == {**DEFAULTS, "timezone": "Europe/Berlin", "version": 1}
    assert got["pending_operation"]["id"] == made["id"] and got["pending_operation"]["state"] == "PENDING"
    _uplink(hub, gw, 1, 0)
    got = client.get(f"{API}/gateways/{gw.id}/config", headers=viewer).json()
    assert got["pending_operation"]["state"] == "DELIVERED"
    _uplink(hub, gw, 2, 1)
    got = client.get(f"{API}/gateways/{gw.id}/config", headers=viewer).json()
    assert got["applied_version"] == 1 and got["pending_operation"] is None


def test_patch_with_merge_patch_json(hub, client):
    t = hub.tenant()
    op = hub.headers(t, "operator")
    gw = hub.gateway(t)
    url = f"{API}/gateways/{gw.id}/config"
    r = client.patch(
        url, json={"timezone": "Europe/Berlin", "upload": {"max_batch": 100}}, headers={**op, **MERGE_PATCH}
    )
    assert r.status_code == 201 and r.json()["outcome"] == "created", r.text
    # null: back to the default; a list replaces the old one whole
    r = client.patch(
        url,
        json={"upload": {"max_batch": None}, "collection": [{"cron": "0 0 3 * * *"}]},
        headers={**op, **MERGE_PATCH},
    )
    cfg = r.json()["config"]
    assert cfg["timezone"] == "Europe/Berlin" and cfg["upload"] == DEFAULTS["upload"]
    assert cfg["collection"] == [{**DEFAULTS["collection"][0], "cron": "0 0 3 * * *"}]
    # a patch that changes nothing: no new version, and the answer says so
    for same in ({}, {"timezone": "Europe/Berlin"}, {"upload": {"cron": DEFAULTS["upload"]["cron"]}}):
        r = client.patch(url, json=same, headers={**op, **MERGE_PATCH})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["outcome"] == "unchanged" and body["config_version"] == 2
        assert "changes nothing" in body["message"] and body["config"]["version"] == 2
    ops = client.get(f"{API}/operations", params={"gateway_id": gw.id}, headers=op).json()["items"]
    assert [o["config_version"] for o in ops] == [2, 1]
    # plain JSON is a merge patch too; other patch formats are refused before anything changes
    assert client.patch(url, json={"spread_s": 5}, headers=op).status_code == 201
    r = client.patch(
        url,
        content=b'[{"op": "replace", "path": "/spread_s", "value": 6}]',
        headers={**op, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert "merge-patch" in r.json()["error"]["message"]
    r = client.patch(url, content=b"spread_s=6", headers={**op, "Content-Type": "text/plain"})
    assert r.status_code == 415
    # who asks is checked before what is sent
    assert client.patch(url, content=b"spread_s=6", headers={"Content-Type": "text/plain"}).status_code == 401
    assert client.get(url, headers=op).json()["config"]["spread_s"] == 5


def test_bad_changes_are_clear_4xx(hub, client):
    t = hub.tenant()
    op, viewer = hub.headers(t, "operator"), hub.headers(t, "viewer")
    gw = hub.gateway(t)
    url = f"{API}/gateways/{gw.id}/config"
    assert client.patch(url, json={"spread_s": 5}, headers={**viewer, **MERGE_PATCH}).status_code == 403
    for body, code, text in (
        ({"spread_s": -1}, "invalid_config", "spread_s"),
        ({"nope": 1}, "invalid_config", "nope"),
        (
            {
                "a": {
                    "b": {
                        "c": {
                            "d": {
                                "e": {
                                    "f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": {"n": {"o": {"p": {"q": 1}}}}}}}}}}}
                                }
                            }
                        }
                    }
                }
            },
            "invalid_config",
            "nested",
        ),
        ([{"spread_s": 1}], "invalid_request", ""),
    ):
        for method in ("PUT", "PATCH"):
            r = client.request(method, url, json=body, headers={**op, **MERGE_PATCH})
            assert r.status_code == 422, (method, body, r.text)
            assert r.json()["error"]["code"] == code and text in r.json()["error"]["message"]
    assert client.patch(f"{API}/gateways/999999999/config", json={}, headers={**op, **MERGE_PATCH}).status_code == 404
    assert client.get(url, headers=op).json()["version"] == 0


def test_bulk_conflicts_are_shown_and_decided(hub, client, db):
    from sqlalchemy import select

    from omshub.cloud.store.models import AuditEntry

    t = hub.tenant()
    alice, bob = hub.user(t, "operator"), hub.user(t, "operator")
    a_h = {
        "Authorization": "Bearer "
        + client.post(f"{API}/auth/login", json={"username": alice, "password": "correct horse"}).json()["token"]
    }
    b_h = {
        "Authorization": "Bearer "
        + client.post(f"{API}/auth/login", json={"username": bob, "password": "correct horse"}).json()["token"]
    }
    free, busy = hub.gateway(t), hub.gateway(t)
    for gw, zone in ((free, "Europe/Vienna"), (busy, "Europe/Berlin")):
        client.put(f"{API}/gateways/{gw.id}/config", json={"timezone": zone}, headers=a_h)
        _uplink(hub, gw, 1, 1)  # applied
    pending = client.patch(
        f"{API}/gateways/{busy.id}/config", json={"upload": {"cron": "0 0 5 * * *"}}, headers={**a_h, **MERGE_PATCH}
    ).json()
    body = {"gateway_ids": [free.id, busy.id], "config": {"spread_s": 60}}

    r = client.post(f"{API}/gateways/config", json=body, headers=b_h)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "pending_changes" and busy.serial in err["message"] and "on_conflict" in err["message"]
    [c] = err["conflicts"]
    assert c["gateway_id"] == busy.id and c["gateway"] == busy.serial and c["operation_id"] == pending["id"]
    assert c["config_version"] == 2 and c["state"] == "PENDING" and c["created_by"] == alice
    assert c["changes"] == {"upload": {"cron": "0 0 5 * * *"}} and c["created_at"] == pending["created_at"]
    # nothing changed
    ops = client.get(f"{API}/operations", params={"gateway_id": free.id}, headers=b_h).json()["items"]
    assert len(ops) == 1

    r = client.post(f"{API}/gateways/config", json={**body, "on_conflict": "skip"}, headers=b_h)
    assert r.status_code == 201, r.text
    res = {x["gateway_id"]: x for x in r.json()["results"]}
    assert res[free.id]["outcome"] == "created" and res[free.id]["config_version"] == 2
    assert res[busy.id] == {
        "gateway_id": busy.id,
        "gateway": busy.serial,
        "outcome": "skipped",
        "config_version": 2,
        "operation_id": pending["id"],
        "superseded_operations": [],
    }
    assert r.json()["count"] == 1 and [o["gateway_id"] for o in r.json()["operations"]] == [free.id]
    free_cfg = client.get(f"{API}/gateways/{free.id}/config", headers=b_h).json()["config"]
    assert free_cfg["timezone"] == "Europe/Vienna" and free_cfg["spread_s"] == 60  # its own time zone kept
    assert client.get(f"{API}/operations/{pending['id']}", headers=b_h).json()["state"] == "PENDING"

    r = client.post(f"{API}/gateways/config", json={**body, "on_conflict": "supersede"}, headers=b_h)
    assert r.status_code == 201, r.text
    res = {x["gateway_id"]: x for x in r.json()["results"]}
    assert res[free.id]["outcome"] == "unchanged" and res[free.id]["config_version"] == 2
    assert res[busy.id]["outcome"] == "superseded" and res[busy.id]["superseded_operations"] == [pending["id"]]
    old = client.get(f"{API}/operations/{pending['id']}", headers=b_h).json()
    assert old["state"] == "SUPERSEDED" and old["superseded_by"] == res[busy.id]["operation_id"]
    busy_cfg = client.get(f"{API}/gateways/{busy.id}/config", headers=b_h).json()["config"]
    assert (busy_cfg["timezone"], busy_cfg["upload"]["cron"], busy_cfg["spread_s"]) == (
        "Europe/Berlin",
        "0 0 5 * * *",
        60,
    )

    # the same change again changes nothing anywhere: 200, no operation
    r = client.post(f"{API}/gateways/config", json=body, headers=b_h)
    assert r.status_code == 200 and r.json()["count"] == 0
    assert {x["outcome"] for x in r.json()["results"]} == {"unchanged"}
    r = client.post(f"{API}/gateways/config", json={**body, "on_conflict": "overwrite"}, headers=b_h)
    assert r.status_code == 422 and "on_conflict" in r.json()["error"]["message"]

    with db.session() as s:
        entries = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == t.id, AuditEntry.action == "gateway.config")
            .order_by(AuditEntry.id)
        ).all()
    bulk = [e for e in entries if e.actor == bob]
    assert [e.details["on_conflict"] for e in bulk] == ["skip", "supersede", None]
    assert {g["gateway_id"]: g["outcome"] for g in bulk[1].details["gateways"]} == {
        free.id: "unchanged",
        busy.id: "superseded",
    }
