"""Bounces that arrive after the SMTP server accepted a notice: every notice carries its reference
(VERP envelope sender, X-Omshub-Notice), the operator hands in the raw RFC 3464 bounce (API or
`omshub customers bounce`), the notice is marked failed with the reason and completeness says
`email_failed`; a delayed notification changes nothing; foreign, malformed and oversized input gets
a clear refusal; the parser is fuzzed (any bytes: a bounce or a DsnError)."""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from omshub.cli import app as cli
from omshub.cloud.domain.dsn import MAX_BYTES, Bounce, DsnError, notice_tag, parse_dsn, verp_sender
from omshub.cloud.services.customer_delivery import plan_deliveries, send_due
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord
from tests.cloud import customer_scenario
from tests.cloud.conftest import free_port
from tests.cloud.customer_scenario import NOW


class Envelopes:
    """aiosmtpd handler keeping the envelope sender with each message."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.mail_from, envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 Message accepted"


@pytest.fixture
def mta():
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    inbox = Envelopes()
    port = free_port()
    controller = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def dsn(
    to: str, notice_header: str, *, action: str = "failed", status: str = "5.1.1", rcpt: str = "anna@example.de"
) -> bytes:
    """A bounce as Postfix writes it: multipart/report with the status fields and the returned headers."""
    return (
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"\r\n'
        "\r\n"
        "--B0UND\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "\r\n"
        "--B0UND\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example\r\n"
        "Arrival-Date: Sat, 5 Dec 2026 10:00:00 +0100 (CET)\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <anna@example.de>: Recipient address rejected: User unknown\r\n"
        "\r\n"
        "--B0UND\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        "From: Stadtwerke <info@sw.example>\r\n"
        "To: anna@example.de\r\n"
        f"X-Omshub-Notice: {notice_header}\r\n"
        "Subject: Ihre Verbrauchsinformation November 2026\r\n"
        "\r\n"
        "--B0UND--\r\n"
    ).encode()


def _sent(db, hub, port):
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        update_settings(
            s, t.id, {"smtp": {"host": "127.0.0.1", "port": port, "sender": "info@sw.example"}}, actor="t", now=NOW
        )
        build_month(s, t.id, "2026-11", actor="t", now=NOW)
        plan_deliveries(s, t.id, "2026-11", NOW)
        assert send_due(s, t.id, NOW)["sent"] == 6
        anna = s.scalar(
            select(CustomerDelivery).join(CustomerRecord).where(CustomerRecord.occupant_id == sc.occupants["Anna"])
        )
        ref = f"{anna.id}-{notice_tag(t.id, anna.id, anna.record_id)}"
    return t, sc, anna.id, ref


def test_a_late_bounce_marks_its_notice_failed_and_completeness_says_so(client, db, hub, mta):
    inbox, port = mta
    t, sc, delivery_id, ref = _sent(db, hub, port)
    # the notice carries its reference in the envelope sender and a header
    sender, rcpts, msg = next(m for m in inbox.messages if m[1] == ["anna@example.de"])
    assert sender == f"info+notice-{ref}@sw.example" and msg["X-Omshub-Notice"] == ref
    assert msg["From"] == "info@sw.example" or "info@sw.example" in msg["From"]

    op = hub.headers(t, "operator")
    url = "/api/v1/customer-info/bounces"
    with time_machine.travel(NOW, tick=False):
        # a delayed notification is recorded only
        r = client.post(url, content=dsn(sender, ref, action="delayed", status="4.4.1"), headers=op)
        assert r.status_code == 200 and r.json()["state"] == "sent" and r.json()["changed"] is False
        r = client.post(url, content=dsn(sender, ref), headers=op)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["state"], body["changed"], body["status"]) == ("failed", True, "5.1.1")
        assert body["recipient"] == "anna@example.de" and "User unknown" in body["diagnostic"]
        # the same bounce again changes nothing
        assert client.post(url, content=dsn(sender, ref), headers=op).json()["changed"] is False
        done = client.get("/api/v1/customer-info/completeness", params={"month": "2026-11"}, headers=op).json()
        unit = next(u for p in done["properties"] for u in p["units"] if u["occupant"] == "Anna")
        assert unit["reasons"] == ["email_failed"] and unit["state"] == "failed"
        assert unit["last_error"].startswith("bounced (DSN 5.1.1 failed): smtp; 550 5.1.1")
        listed = client.get(
            "/api/v1/customer-info/deliveries", params={"month": "2026-11", "state": "failed"}, headers=op
        ).json()["items"]
        assert [d["id"] for d in listed] == [delivery_id] and listed[0]["errors"][-1]["bounce"] is True

        # a reference with a wrong tag, another tenant's operator, not a bounce, too large
        forged = ref[:-1] + ("0" if ref[-1] != "0" else "1")
        forged_sender = f"info+notice-{forged}@sw.example"
        assert client.post(url, content=dsn(forged_sender, forged), headers=op).status_code == 404
        other = hub.headers(hub.tenant(), "operator")
        assert client.post(url, content=dsn(sender, ref), headers=other).status_code == 404
        r = client.post(url, content=b"Subject: hello\r\n\r\nX-Omshub-Notice: " + ref.encode() + b"\r\n", headers=op)
        assert r.status_code == 422 and "RFC 3464" in r.text
        r = client.post(url, content=b"Subject: hi\r\n\r\nno reference", headers=op)
        assert r.status_code == 422 and "no omshub notice reference" in r.text
        assert client.post(url, content=b"x" * (MAX_BYTES + 1), headers=op).status_code == 413
        assert client.post(url, content=dsn(sender, ref), headers=hub.headers(t, "viewer")).status_code == 403


def test_the_command_line_records_a_bounce(db, hub, mta, database_url, data_dir, tmp_path):
    inbox, port = mta
    t, sc, delivery_id, ref = _sent(db, hub, port)
    path = tmp_path / "bounce.eml"
    path.write_bytes(dsn(f"info+notice-{ref}@sw.example", ref))
    args = [
        "customers",
        "bounce",
        "--tenant",
        t.slug,
        str(path),
        "--database",
        database_url,
        "--data-dir",
        str(data_dir),
    ]
    with time_machine.travel(NOW, tick=False):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["state"] == "failed"
        path.write_bytes(b"not a bounce")
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and "no omshub notice reference" in r.output
        r = CliRunner().invoke(cli, [*args[:4], str(tmp_path / "missing.eml"), *args[5:]])
        assert r.exit_code == 1 and "cannot read" in r.output and "missing.eml" in r.output
    with db.session() as s:
        assert s.get(CustomerDelivery, delivery_id).state == "failed"


def test_parse_a_bounce_with_only_the_verp_address():
    raw = dsn("info+notice-17-0a1b2c3d4e@sw.example", "none")
    assert parse_dsn(raw) == Bounce(
        17,
        "0a1b2c3d4e",
        "failed",
        "5.1.1",
        "smtp; 550 5.1.1 <anna@example.de>: Recipient address rejected: User unknown",
        "anna@example.de",
    )
    assert verp_sender("info@sw.example", 17, "0a1b2c3d4e") == "info+notice-17-0a1b2c3d4e@sw.example"
    with pytest.raises(DsnError, match="2 different notices"):
        parse_dsn(dsn("info+notice-17-0a1b2c3d4e@sw.example", "18-0a1b2c3d4e"))
    with pytest.raises(DsnError, match="status 'x'"):
        parse_dsn(dsn("info+notice-17-0a1b2c3d4e@sw.example", "none", status="x"))
    with pytest.raises(DsnError, match="unknown DSN action"):
        parse_dsn(dsn("info+notice-17-0a1b2c3d4e@sw.example", "none", action="exploded"))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_any_bytes_give_a_bounce_or_a_clear_error(raw):
    try:
        assert isinstance(parse_dsn(raw), Bounce)
    except DsnError as exc:
        assert exc.message and exc.german


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_bounces_give_a_bounce_or_a_clear_error(data):
    raw = bytearray(dsn("info+notice-17-0a1b2c3d4e@sw.example", "17-0a1b2c3d4e"))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at : at + data.draw(st.integers(0, 20))] = data.draw(st.binary(max_size=20))
    try:
        assert isinstance(parse_dsn(bytes(raw)), Bounce)
    except DsnError as exc:
        assert exc.message and exc.german
