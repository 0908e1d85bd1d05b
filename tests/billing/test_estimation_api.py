"""The review queue's `estimate` action through the API, and the estimated share of a property's area
(HeizkostenV §9a(2)), on SQLite and PostgreSQL; numbers as in test_estimation.py."""

from __future__ import annotations

import pytest

from omshub.cloud.store.models_billing import BillingFinding
from tests.billing.test_estimation import NOW, build

API = "/api/v1"


def test_estimate_a_finding_through_the_review_queue(client, hub, db):
    t, other = hub.tenant(), hub.tenant()
    h = hub.headers(t)
    with db.transaction() as s:
        w = build(s, t.id)
        f = BillingFinding(
            tenant_id=t.id,
            metering_point_id=w.mp1,
            quantity="energy",
            period="2026-11",
            rule="stale_reading",
            severity="warning",
            message="no reading",
            german="kein Messwert",
            details={},
            state="open",
            created_at=NOW,
        )
        s.add(f)
        s.flush()
        ids = {"finding": f.id, "point": w.mp1, "property": w.p1.id}
    share = client.get(f"{API}/properties/{ids['property']}/billing-consumption?period=2026-11", headers=h).json()
    # U1 (60 m²) has no value yet: it counts as estimated; 60 of 180 m² = a third, above 25 %
    assert share["estimated_share"] == pytest.approx(0.3333) and share["over_25_percent"] is True

    url = f"{API}/review/{ids['finding']}"
    no_method = client.post(url, json={"action": "estimate", "note": "meter broken"}, headers=h)
    assert no_method.status_code in (400, 422) and "method" in no_method.text
    foreign = client.post(
        url, json={"action": "estimate", "method": "previous_period", "note": "x"}, headers=hub.headers(other)
    )
    assert foreign.status_code == 404
    done = client.post(url, json={"action": "estimate", "method": "previous_period", "note": "meter broken"}, headers=h)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "estimated"
    assert client.post(url, json={"action": "accept", "note": "again"}, headers=h).status_code == 409

    values = client.get(f"{API}/metering-points/{ids['point']}/billing-values", headers=h).json()["items"]
    end = max(values, key=lambda v: v["boundary"])
    assert (end["origin"], end["code"], end["method"]) == ("estimated", "07", "previous_period")
    assert end["value"] == pytest.approx(5960.0) and end["computed"]["origin"] == "missing"
    assert "Gradtagzahlen (360 jetzt gegenüber 450 damals)" in end["details"]["german"]
    estimated = client.get(f"{API}/review?state=estimated", headers=h).json()["items"]
    assert [x["id"] for x in estimated] == [ids["finding"]]
