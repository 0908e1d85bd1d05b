"""The console's search and audit log (issue 15, item 3): found by what people type, the tenant's only."""

from __future__ import annotations


def _point(client, headers, ref, address, customer):
    r = client.post(
        "/api/v1/metering-points", json={"ref": ref, "address": address, "customer_ref": customer}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_search_finds_meters_by_number_prefix_points_by_address_and_customer_gateways_by_serial(hub, client):
    t = hub.tenant()
    admin = hub.headers(t)
    m1 = hub.meter(t, "61000001")
    hub.meter(t, "61000002", manufacturer="DME")
    hub.meter(t, "62000001")
    gw = hub.gateway(t, "GW-SEARCH-7")
    p = _point(client, admin, "MP-77", "Lindenallee 12, Musterstadt", "K-998877")
    r = client.post(f"/api/v1/metering-points/{p['id']}/install", json={"meter": m1, "at": "2026-01-01"}, headers=admin)
    assert r.status_code == 201, r.text

    def find(q):
        r = client.get("/api/v1/search", params={"q": q}, headers=admin)
        assert r.status_code == 200, r.text
        return r.json()

    hits = find("6100")
    assert sorted(m["meter_id"] for m in hits["meters"]) == ["61000001", "61000002"]
    assert next(m for m in hits["meters"] if m["id"] == m1)["metering_point"]["ref"] == "MP-77"
    assert [m["meter_id"] for m in find("dme 6100")["meters"]] == ["61000002"]
    assert [x["ref"] for x in find("lindenallee")["points"]] == ["MP-77"]
    assert [x["ref"] for x in find("K-9988")["points"]] == ["MP-77"]
    assert [g["id"] for g in find("search-7")["gateways"]] == [gw.id]
    assert find("   ") == {"meters": [], "points": [], "gateways": []}
    assert find("100%_")["points"] == []  # LIKE wildcards are text here
    # another tenant finds none of it
    other = hub.headers(hub.tenant())
    for q in ("6100", "lindenallee", "search-7"):
        r = client.get("/api/v1/search", params={"q": q}, headers=other).json()
        assert r == {"meters": [], "points": [], "gateways": []}


def test_audit_log_lists_the_tenants_changes_newest_first_for_admins(hub, client):
    t = hub.tenant()
    admin = hub.headers(t)
    r = client.post("/api/v1/users", json={"username": f"audit-{t.slug}", "password": "x" * 12}, headers=admin)
    assert r.status_code == 201
    client.post("/api/v1/gateways", json={"serial": f"GW-A-{t.slug}"}, headers=admin)
    items = client.get("/api/v1/audit", headers=admin).json()["items"]
    assert [e["action"] for e in items[:2]] == ["gateway.register", "user.create"]
    assert items[0]["at"].endswith("Z") and items[0]["actor"]
    only = client.get("/api/v1/audit", params={"action": "user.create"}, headers=admin).json()["items"]
    assert [e["action"] for e in only] == ["user.create"]
    assert client.get("/api/v1/audit", headers=hub.headers(t, "operator")).status_code == 403
    theirs = client.get("/api/v1/audit", headers=hub.headers(hub.tenant())).json()["items"]
    assert theirs and not [e for e in theirs if t.slug in str(e)]  # only their own token's creation


def test_search_texts_with_a_nul_are_refused_with_a_422_on_every_database(hub, client):
    # PostgreSQL cannot compare text with a NUL in it (the driver raised, a 500); SQLite could
    admin = hub.headers(hub.tenant())
    for path, name in (("/api/v1/search", "q"), ("/api/v1/customer-info/invitations", "search")):
        r = client.get(path, params={name: "61\x0000"}, headers=admin)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert "NUL" in r.text
