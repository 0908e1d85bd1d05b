"""The operator side of the monthly customer information (docs/console.md §Customer information):
a month started through the API with its progress counts, resending a failed notice, the occupants'
invitation states, corrected information after a record changed (never the same revision twice),
and the background retry inside `omshub serve` that sends a notice once the SMTP server is up."""

from __future__ import annotations

import time
from datetime import timedelta

import time_machine
from sqlalchemy import select

from omshub.cloud.services.customer_console import resend, send_all_due
from omshub.cloud.services.customer_delivery import plan_deliveries, print_batch, send_due
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models import MeteringPoint
from omshub.cloud.store.models_billing import BillingConsumption, Occupant
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord
from tests.cloud import customer_scenario
from tests.cloud.conftest import free_port
from tests.cloud.customer_scenario import NOW
from tests.cloud.test_customer_channels import smtp_server  # noqa: F401  (the aiosmtpd fixture)

API = "/api/v1/customer-info"


def Z(at) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _smtp(port: int) -> dict:
    return {"smtp": {"host": "127.0.0.1", "port": port, "sender": "info@sw.example", "timeout_s": 3}}


def test_a_month_started_from_the_console_with_progress_resend_and_invitations(client, hub, db, smtp_server):
    inbox, port = smtp_server
    t, other = hub.tenant(), hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(s, t.id, _smtp(free_port()), actor="test", now=NOW)  # nobody listens there
    h, viewer = hub.headers(t), hub.headers(t, "viewer")
    with time_machine.travel(NOW, tick=False):
        assert client.post(f"{API}/runs", json={"month": "2026-11"}, headers=viewer).status_code == 403
        r = client.post(f"{API}/runs", json={"month": "2026-11"}, headers=h)
        assert r.status_code == 200, r.text
        run = r.json()
        assert run["records"]["new"] == 10
        assert run["deliveries_planned"] == {"email": 6, "post": 1, "corrections": 0}
        assert run["summary"]["notices"]["email"] == {"pending": 6, "sent": 0, "failed": 0}
        assert run["summary"]["records"] == 10 and run["summary"]["next_attempt_at"] == Z(NOW)
        again = client.post(f"{API}/runs", json={"month": "2026-11"}, headers=h).json()
        assert again["deliveries_planned"] == {"email": 0, "post": 0, "corrections": 0}
        bad = client.post(f"{API}/runs", json={"month": "2026-13"}, headers=h)
        assert bad.status_code == 422
        # the server is down: the notices wait for their next attempt, a minute later
        assert send_all_due(db, NOW)[t.id] == {"sent": 0, "retry": 6, "failed": 0}
        summary = client.get(f"{API}/summary", params={"month": "2026-11"}, headers=viewer).json()
        assert summary["next_attempt_at"] == Z(NOW + timedelta(minutes=1))
        report = client.get(f"{API}/completeness", params={"month": "2026-11"}, headers=viewer).json()
        anna = next(u for p in report["properties"] for u in p["units"] if u["occupant"] == "Anna")
        assert anna["delivery_id"] and "SMTPConnect" in anna["last_error"]
        # resend: due now; once the server is there it goes out
        with db.transaction() as s:
            update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
        r = client.post(f"{API}/deliveries/{anna['delivery_id']}/resend", headers=h)
        assert r.status_code == 200 and r.json()["next_attempt_at"] == Z(NOW)
        assert send_all_due(db, NOW)[t.id] == {"sent": 1, "retry": 0, "failed": 0}
        assert [m for m in inbox.messages if m[0] == ["anna@example.de"]]
        sent = client.post(f"{API}/deliveries/{anna['delivery_id']}/resend", headers=h)
        assert sent.status_code == 409 and "failed or waits" in sent.text  # sent already: not again
        assert (
            client.post(f"{API}/deliveries/{anna['delivery_id']}/resend", headers=hub.headers(other)).status_code == 404
        )
        # invitations: every occupant with the state of their portal account
        r = client.post(f"{API}/invitations", json={"occupant_id": sc.occupants["Anna"], "send": False}, headers=h)
        assert r.status_code == 200, r.text
        page = client.get(f"{API}/invitations", params={"limit": 3}, headers=viewer).json()
        assert len(page["items"]) == 3 and page["next_cursor"]
        found = client.get(f"{API}/invitations", params={"search": "ANNA"}, headers=viewer).json()["items"]
        assert [(i["name"], i["state"]) for i in found] == [("Anna", "invited")]
        assert found[0]["invite_expires_at"] == Z(NOW + timedelta(days=14))
        states = {i["name"]: i["state"] for i in client.get(f"{API}/invitations", headers=viewer).json()["items"]}
        assert states["Bert"] == "none" and len(states) == 7
        assert client.get(f"{API}/invitations", headers=hub.headers(other)).json()["items"] == []


def _change_consumption(s, tenant_id: int, ref: str, value: float) -> None:
    row = s.scalar(
        select(BillingConsumption)
        .join(MeteringPoint, MeteringPoint.id == BillingConsumption.metering_point_id)
        .where(MeteringPoint.tenant_id == tenant_id, MeteringPoint.ref == ref, BillingConsumption.period == "2026-11")
    )
    row.value = value
    s.flush()


def test_a_record_changed_after_its_notice_gets_one_corrected_notice(s, hub, smtp_server):
    inbox, port = smtp_server
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    plan_deliveries(s, t.id, "2026-11", NOW)
    assert send_due(s, t.id, NOW)["sent"] == 6
    assert print_batch(s, t.id, "2026-11", NOW)[1] == 1  # Gina's letter
    later = NOW + timedelta(days=3)
    # Anna's heat (mail) and Gina's allocator units (letter) of November change; the property's
    # average changes with them, so the other occupants' records of the property change as well
    _change_consumption(s, t.id, "MP1", 520)
    _change_consumption(s, t.id, "MP8", 130)
    assert build_month(s, t.id, "2026-11", actor="test", now=later)["changed"] > 0
    changed = s.scalars(
        select(CustomerRecord.occupant_id).where(
            CustomerRecord.tenant_id == t.id, CustomerRecord.revision == 2, CustomerRecord.occupant_id.is_not(None)
        )
    ).all()
    assert {sc.occupants["Anna"], sc.occupants["Gina"]} <= set(changed)
    assert plan_deliveries(s, t.id, "2026-11", later) == {"email": 0, "post": 0, "corrections": len(changed)}
    mails = len(changed) - 1  # Gina's goes by post
    assert send_due(s, t.id, later) == {"sent": mails, "retry": 0, "failed": 0}
    assert len(inbox.messages) == 6 + mails
    msg = next(m for r, m in inbox.messages[6:] if r == ["anna@example.de"])
    assert msg["Subject"] == "Korrigierte Verbrauchsinformation November 2026"
    body = msg.get_body(("plain",)).get_content()
    assert "ersetzt unsere Verbrauchsinformation für November 2026 vom 05.12.2026 (Stand 1)" in body
    assert "Heizung November 2026: 520,0 kWh" in body
    anna = s.scalar(
        select(CustomerDelivery).join(CustomerRecord).where(CustomerRecord.occupant_id == sc.occupants["Anna"])
    )
    assert (anna.state, anna.revision, anna.sent_at) == ("sent", 2, later)
    assert print_batch(s, t.id, "2026-11", later)[1] == 1  # Gina's corrected letter
    # the next run: nothing changed, nothing sent again
    build_month(s, t.id, "2026-11", actor="test", now=later)
    assert plan_deliveries(s, t.id, "2026-11", later) == {"email": 0, "post": 0, "corrections": 0}
    assert send_due(s, t.id, later + timedelta(hours=1)) == {"sent": 0, "retry": 0, "failed": 0}
    assert len(inbox.messages) == 6 + mails


def test_a_changed_record_whose_notice_has_not_gone_out_gets_a_single_first_notice(s, hub, smtp_server):
    inbox, port = smtp_server
    t = hub.tenant()
    customer_scenario.build(s, t.id)
    update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    plan_deliveries(s, t.id, "2026-11", NOW)
    _change_consumption(s, t.id, "MP1", 520)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    assert plan_deliveries(s, t.id, "2026-11", NOW)["corrections"] == 0
    assert send_due(s, t.id, NOW)["sent"] == 6
    anna = next(m for r, m in inbox.messages if r == ["anna@example.de"])
    assert anna["Subject"] == "Ihre Verbrauchsinformation November 2026"
    assert "520,0 kWh" in anna.get_body(("plain",)).get_content()


def test_omshub_serve_sends_a_waiting_notice_once_the_smtp_server_is_up(db, hub, live_server, smtp_server):
    inbox, port = smtp_server
    t = hub.tenant()
    down = free_port()
    with db.transaction() as s:
        customer_scenario.build(s, t.id)
        update_settings(s, t.id, _smtp(down), actor="test", now=NOW)
        build_month(s, t.id, "2026-11", actor="test", now=NOW)
        plan_deliveries(s, t.id, "2026-11", NOW)
        assert send_due(s, t.id, NOW) == {"sent": 0, "retry": 6, "failed": 0}  # the server is down
        # the server is up now, and the next attempt is due (the backoff has passed)
        update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
    live_server(delivery_interval_s=0.5)

    def states() -> list[str]:
        with db.transaction(write=False) as s:
            return list(
                s.scalars(
                    select(CustomerDelivery.state).where(
                        CustomerDelivery.tenant_id == t.id, CustomerDelivery.channel == "email"
                    )
                ).all()
            )

    deadline = time.monotonic() + 30
    # the server commits the states after the messages are accepted: wait for both
    while (len(inbox.messages) < 6 or states() != ["sent"] * 6) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(r[0] for r, _ in inbox.messages) == sorted(
        f"{n}@example.de" for n in ("anna", "bert", "carl", "dora", "emil", "frida")
    )
    assert states() == ["sent"] * 6


def test_a_wrong_sender_address_is_refused_with_the_field_it_concerns(client, hub):
    h = hub.headers(hub.tenant())
    r = client.patch(f"{API}/settings", json={"smtp": {"sender": "info at sw"}}, headers=h)
    assert r.status_code == 422
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["smtp.sender"]


def test_send_again_uses_the_occupants_corrected_address(s, hub, smtp_server):
    inbox, port = smtp_server
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    plan_deliveries(s, t.id, "2026-11", NOW)
    anna = s.scalar(
        select(CustomerDelivery).join(CustomerRecord).where(CustomerRecord.occupant_id == sc.occupants["Anna"])
    )
    anna.address = "anna at example"  # a typo when the notice was planned
    assert send_due(s, t.id, NOW)["failed"] == 1 and anna.state == "failed"
    s.get(Occupant, sc.occupants["Anna"]).email = "anna.alt@example.de"
    resend(s, t.id, anna.id, actor="test", now=NOW)
    assert send_due(s, t.id, NOW) == {"sent": 1, "retry": 0, "failed": 0}
    assert inbox.messages[-1][0] == ["anna.alt@example.de"]
