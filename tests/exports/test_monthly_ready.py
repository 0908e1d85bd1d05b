"""`monthly_information.ready`: when a month's customer information is computed (the monthly run's
records), the tenant's webhook gets one signed event with the month, its counts and the API paths;
computing the month again (a revision) sends nothing twice. Real HTTP receiver on loopback."""

from __future__ import annotations

import json
from datetime import timedelta

from omshub.cloud.services import event_sources, webhooks
from omshub.cloud.services.customer_records import build_month

from . import fleet
from .test_webhooks import Receiver, verify


def test_monthly_information_ready_is_delivered_signed(client, hub, db, app):
    receiver = Receiver(fail=1)  # the first attempt fails: retried like every event
    try:
        t = hub.tenant()
        h = hub.headers(t)
        with db.transaction() as s:
            fleet.build(s, "", tenant_id=t.id)
        r = client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["monthly_information.ready"],
                                                  "retry_for_s": 3600}, headers=h)  # fmt: skip
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        now = fleet.CLOSED + timedelta(hours=2)
        assert event_sources.scan(db, now) == 0  # the first scan starts at the present
        with db.transaction() as s:
            counts = build_month(s, t.id, fleet.PERIOD, actor="run", now=now)
        records = client.get("/api/v1/customer-info/records", params={"month": fleet.PERIOD}, headers=h).json()
        assert records["items"], counts
        assert event_sources.scan(db, now + timedelta(minutes=1)) == 1
        assert event_sources.scan(db, now + timedelta(minutes=2)) == 0
        with db.transaction() as s:  # computed again: no second event for the month
            build_month(s, t.id, fleet.PERIOD, actor="run", now=now + timedelta(minutes=3))
        assert event_sources.scan(db, now + timedelta(minutes=4)) == 0
        keystore = app.state.keystore
        for step in range(3):
            webhooks.deliver_due(db, keystore, now + timedelta(minutes=5 + 10 * step))
        assert len(receiver.seen) == 2 and len(receiver.ok) == 1
        headers, body = receiver.ok[0]
        assert verify(secret, headers, body, now=int(headers["Omshub-Timestamp"]))
        assert not verify("whsec_wrong", headers, body, now=int(headers["Omshub-Timestamp"]))
        event = json.loads(body)
        assert event["type"] == headers["Omshub-Event-Type"] == "monthly_information.ready"
        assert headers["Idempotency-Key"] == event["id"]
        data = event["data"]
        n = len(records["items"])
        assert data["month"] == fleet.PERIOD and data["records"] == n
        assert data["complete"] + data["incomplete"] == n
        assert data["complete"] == sum(1 for r in records["items"] if r["complete"])
        assert data["units"] == len({r["unit"]["ref"] for r in records["items"]})
        assert data["api"]["records"] == f"/api/v1/customer-info/records?month={fleet.PERIOD}"
        # the link works with the tenant's credentials
        got = client.get(data["api"]["records"], headers=h)
        assert got.status_code == 200 and len(got.json()["items"]) == n
        assert client.get(data["api"]["summary"], headers=h).status_code == 200
    finally:
        receiver.close()
