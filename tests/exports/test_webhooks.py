"""Webhooks against a real HTTP receiver on loopback: events of what happened (alarm raised and
cleared, period closed, value changed after export) are POSTed signed (the receiver checks the
signature with the verification code of docs/exports.md); a receiver that fails for a while gets
every event once it recovers (retries with backoff, one idempotency key per event); a receiver that
stays down past the retry time leaves dead letters, which a replay delivers. Times are fixed."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from omshub.cloud.services import billing_review, event_sources, export_runs, webhooks
from omshub.cloud.store.models import Alarm
from omshub.cloud.store.models_billing import BillingConsumption, BillingValue

from . import fleet

T0 = fleet.CLOSED + timedelta(hours=1)


def verify(secret: str, headers, body: bytes, now: float, tolerance_s: int = 300) -> bool:
    """The receiver's check, as docs/exports.md shows it."""
    timestamp = headers["Omshub-Timestamp"]
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["Omshub-Signature"])


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 503 to the first `fail` requests."""

    def __init__(self, fail: int) -> None:
        self.fail, self.seen, self.ok = fail, [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append((dict(self.headers), body))
                failing = len(receiver.seen) <= receiver.fail
                if not failing:  # recorded before the answer: the sender checks right after it
                    receiver.ok.append((dict(self.headers), body))
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(fail=5)
    yield r
    r.close()


def _events_happen(db, tenant_id: int) -> None:
    """An export, then: a value edited after it, an alarm raised, a new period closed."""
    export_runs.export_now(db, tenant_id, "v1-csv", fleet.PERIOD, actor="t", now=T0)
    with db.transaction() as s:
        v = s.query(BillingValue).filter_by(tenant_id=tenant_id, value=12345.0).one()
        billing_review.edit_value(s, tenant_id, v.id, 12350.0, "photo", actor="clerk", now=T0 + timedelta(minutes=1))
        s.add(Alarm(tenant_id=tenant_id, kind="meter_silent", subject_type="meter", subject_id=1, message="silent",
                    details={}, active=True, raised_at=T0))  # fmt: skip
        c = s.query(BillingConsumption).filter_by(tenant_id=tenant_id).first()
        s.add(BillingConsumption(tenant_id=tenant_id, metering_point_id=c.metering_point_id, quantity=c.quantity,
                                 period="2026-01", start_at=fleet.END, end_at=fleet.END + timedelta(days=31),
                                 value=1.0, quality="measured", runs=[], computed_at=T0 + timedelta(minutes=2)))  # fmt: skip


@pytest.mark.slow  # ~6 s of real HTTP attempts; the end-to-end test covers it too
def test_failing_receiver_gets_every_event_once_signed(client, hub, db, app, receiver):
    t = hub.tenant()
    h = hub.headers(t)
    with db.transaction() as s:
        fleet.build(s, "", tenant_id=t.id)
    r = client.post("/api/v1/webhooks", json={"url": receiver.url, "retry_for_s": 3600}, headers=h)
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert client.get("/api/v1/webhooks", headers=h).json()["items"][0].get("secret") is None
    assert event_sources.scan(db, T0) == 0  # the first scan starts at the present
    _events_happen(db, t.id)
    now = T0 + timedelta(minutes=5)
    assert event_sources.scan(db, now) == 3
    with db.transaction() as s:
        s.query(Alarm).filter_by(tenant_id=t.id).update({"active": False, "cleared_at": now})
    assert event_sources.scan(db, now + timedelta(seconds=1)) == 1
    assert event_sources.scan(db, now + timedelta(seconds=2)) == 0  # idempotent
    keystore = app.state.keystore
    for _ in range(12):  # 30 s, 1, 2, 4 … minutes: the receiver recovers after 5 failed requests
        webhooks.deliver_due(db, keystore, now)
        now += timedelta(minutes=10)
    assert len(receiver.seen) == 4 + 5 and len(receiver.ok) == 4
    keys = [hd["Idempotency-Key"] for hd, _ in receiver.ok]
    assert len(set(keys)) == 4
    types = sorted(json.loads(b)["type"] for _, b in receiver.ok)
    assert types == ["alarm.cleared", "alarm.raised", "period.closed", "value.changed_after_export"]
    for headers, body in receiver.ok:
        assert verify(secret, headers, body, now=int(headers["Omshub-Timestamp"]))
        assert not verify("whsec_wrong", headers, body, now=int(headers["Omshub-Timestamp"]))
    changed = next(json.loads(b) for _, b in receiver.ok if b"value.changed" in b)
    assert changed["data"]["value"] == 12350.0 and changed["data"]["previous_export_id"].endswith("-000001")
    delivered = client.get("/api/v1/webhooks/deliveries", params={"state": "delivered"}, headers=h).json()["items"]
    assert len(delivered) == 4 and all(d["attempts"] >= 1 for d in delivered)


def test_dead_letters_and_replay(client, hub, db, app):
    down = Receiver(fail=10**6)
    try:
        t = hub.tenant()
        h = hub.headers(t)
        r = client.post("/api/v1/webhooks", json={"url": down.url, "retry_for_s": 120}, headers=h)
        ep = r.json()
        r = client.post(f"/api/v1/webhooks/{ep['id']}/test", headers=h)
        assert r.status_code == 202 and r.json()["event_id"]
        keystore = app.state.keystore
        # the test event is due at the wall clock's now; then retried past 120 s
        start = webhooks.deliveries(db.session(), t.id, "pending", None, 10)[0]["next_at"]
        for step in range(6):
            webhooks.deliver_due(db, keystore, start + timedelta(minutes=step))
        dead = client.get("/api/v1/webhooks/deliveries", params={"state": "dead"}, headers=h).json()["items"]
        assert len(dead) == 1 and dead[0]["type"] == "webhook.test" and "503" in dead[0]["last_error"]
        down.fail = 0  # the receiver recovers; the operator replays the dead letters
        with db.transaction() as s:
            assert webhooks.replay(s, t.id, None, ep["id"], actor="op", now=start + timedelta(hours=1)) == 1
        done = webhooks.deliver_due(db, keystore, start + timedelta(hours=1))
        assert len(down.ok) == 1, (done, webhooks.deliveries(db.session(), t.id, None, None, 10))
        r = client.post(f"/api/v1/webhooks/{ep['id']}/replay", json={}, headers=h)
        assert r.status_code == 200 and r.json() == {"replayed": 0}
        # another tenant sees none of it
        other = hub.headers(hub.tenant())
        assert client.get("/api/v1/webhooks/deliveries", headers=other).json()["items"] == []
        assert client.post(f"/api/v1/webhooks/{ep['id']}/test", headers=other).status_code == 404
    finally:
        down.close()


def test_bad_endpoints_are_refused(client, hub):
    h = hub.headers(hub.tenant())
    for body in ({"url": "ftp://x"}, {"url": "http://"}, {"url": "http://x", "events": ["nope"]},
                 {"url": "http://x", "retry_for_s": 1}):  # fmt: skip
        r = client.post("/api/v1/webhooks", json=body, headers=h)
        assert r.status_code == 422 and r.json()["error"]["message"], r.text


def test_worker_round_and_serve_settings(db, app):
    from omshub.cloud.services.delivery_worker import DeliveryWorker, tick

    out = tick(db, app.state.keystore)
    assert set(out) == {"events", "webhooks", "jobs", "customer_notices"} and "failed" not in out.values(), out
    worker = DeliveryWorker(db, app.state.keystore, 0.05)
    worker.start()
    worker.stop()
    assert not worker.is_alive()
    assert app.state.settings.delivery_interval_s == 10
