"""The operator API of the customer information: compute, read as JSON (typed, marks) and PDF,
deliveries, completeness with its reasons and alarm, settings (password never shown), tenant scope."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from omshub.cloud.services.customer_completeness import completeness
from omshub.cloud.services.customer_delivery import plan_deliveries, print_batch
from omshub.cloud.services.customer_records import build_month
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW


def test_records_as_json_and_pdf_for_the_tenant_only(client, hub, db):
    t, other = hub.tenant(), hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
    h, h_other = hub.headers(t), hub.headers(other)
    with time_machine.travel(NOW, tick=False):
        r = client.post("/api/v1/customer-info/records", json={"month": "2026-11"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["new"] == 10
        emil = client.get(
            "/api/v1/customer-info/records", params={"month": "2026-11", "occupant_id": sc.occupants["Emil"]}, headers=h
        ).json()["items"][0]
        heat = emil["lines"][0]
        assert heat["month"] == {"value": 640.0, "status": "estimated", "mark": "*"}
        assert heat["last_year"] == {"value": None, "status": "not_collected", "mark": "–"}
        assert emil["complete"] is False and emil["gaps"] == ["estimated:heat"]
        pdf = client.get(f"/api/v1/customer-info/records/{emil['id']}/pdf", params={"language": "en"}, headers=h)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        # another tenant sees none of it
        assert client.get(f"/api/v1/customer-info/records/{emil['id']}", headers=h_other).status_code == 404
        assert client.get(f"/api/v1/customer-info/records/{emil['id']}/pdf", headers=h_other).status_code == 404
        listed = client.get("/api/v1/customer-info/records", params={"month": "2026-11"}, headers=h_other).json()
        assert listed["items"] == []
        bad = client.get("/api/v1/customer-info/records", params={"month": "2026-12"}, headers=h)
        assert bad.status_code == 422 and "not over" in bad.text


def test_settings_hide_the_smtp_password_and_refuse_bad_values(client, hub):
    t = hub.tenant()
    h = hub.headers(t)
    r = client.patch(
        "/api/v1/customer-info/settings",
        json={
            "supplier_name": "SW",
            "smtp": {"host": "mail.example", "sender": "info@sw.example"},
            "smtp_password": "geheim",
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["smtp"]["password_set"] is True and "geheim" not in r.text
    assert client.get("/api/v1/customer-info/settings", headers=h).json()["supplier_name"] == "SW"
    for bad in ({"smtp": {"sender": "not an address"}}, {"deadline_day": 31}, {"colour": "red"}, {"logo_png": "eA=="}):
        r = client.patch("/api/v1/customer-info/settings", json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    assert client.get("/api/v1/customer-info/settings", headers=hub.headers(t, "viewer")).status_code == 403


def test_completeness_names_who_is_missing_and_why_and_raises_the_alarm(s, hub):
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    plan_deliveries(s, t.id, "2026-11", NOW)
    print_batch(s, t.id, "2026-11", NOW)  # Gina's letter
    report = completeness(s, t.id, "2026-11", NOW)
    assert report["deadline"] == "2026-12-28T23:00:00+00:00"  # end of 28 Dec, Berlin
    assert report["occupants"] == 7 and report["complete"] == 1 and report["alarm"] is False
    units = {u["occupant"]: u for p in report["properties"] for u in p["units"]}
    assert units["Gina"]["complete"] and units["Gina"]["channel"] == "post"
    assert units["Emil"]["reasons"] == ["estimated:heat", "not_sent_yet"]
    assert units["Anna"]["reasons"] == ["not_sent_yet"]
    assert report["reasons"] == {"estimated": 1, "not_sent_yet": 6}
    late = completeness(s, t.id, "2026-11", NOW + timedelta(days=21))
    assert late["alarm"] is True
    assert sc.occupants["Anna"]
