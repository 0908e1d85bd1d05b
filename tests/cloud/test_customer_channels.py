"""The channels of the monthly information: the PDF letter read back with pdftotext, e-mails received
by a real SMTP server on loopback (aiosmtpd), a server that is down (retried, never lost), a refusal
(recorded), running twice (nothing sent twice), and the print batch in address order."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from omshub.cloud.services.customer_delivery import plan_deliveries, print_batch, send_due
from omshub.cloud.services.customer_pdf import letter_pdf
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import settings_of, update_settings
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord
from tests.cloud import customer_scenario
from tests.cloud.conftest import free_port
from tests.cloud.customer_scenario import NOW

PDFTOTEXT = shutil.which("pdftotext")


def _text(pdf: bytes, tmp_path) -> str:
    if PDFTOTEXT is None:
        pytest.skip("pdftotext (Debian poppler-utils) is not installed; scripts/test installs it")
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    return subprocess.run([PDFTOTEXT, "-layout", str(path), "-"], capture_output=True, check=True, text=True).stdout


class Inbox:
    """aiosmtpd handler: keeps what it receives; refuses recipients starting with 'bounce'."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    inbox = Inbox()
    port = free_port()
    controller = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def month(s, hub):
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    sc.tenant_id = t.id
    update_settings(
        s,
        t.id,
        {
            "supplier_name": "Stadtwerke Musterstadt",
            "supplier_contact": "030 1234, kundenservice@stadtwerke.example",
            "smtp": {"host": "127.0.0.1", "port": free_port(), "sender": "info@stadtwerke.example", "timeout_s": 3},
        },
        actor="test",
        now=NOW,
    )
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    return sc


def _content(s, sc, name):
    return s.scalar(select(CustomerRecord).where(CustomerRecord.occupant_id == sc.occupants[name])).content


def test_the_letter_carries_the_required_items_in_german_and_english(s, month, tmp_path):
    settings = settings_of(s, month.tenant_id)
    text = _text(
        letter_pdf(_content(s, month, "Anna"), settings, "Anna Alt\nLindenstr. 1\n10115 Berlin", "de"), tmp_path
    )
    for item in (
        "Stadtwerke Musterstadt",
        "Anna Alt",
        "Ihre Verbrauchsinformation für November 2026",
        "Heizung (kWh)",
        "500,0",  # November
        "300,0",  # October
        "550,0",  # November 2025
        "522,7",  # property average: 2300 kWh / 220 m² × 50 m²
        "476,6",  # comparable users: 2240 / 235 × 50
        "Ø Vergleichsnutzer",
        "4 Nutzeinheiten",
        "§ 6a Heizkostenverordnung",
        "* geschätzt",
        "Nov. 25",  # the chart's first month of 13
    ):
        assert item in text, item
    emil = _text(letter_pdf(_content(s, month, "Emil"), settings, "Emil", "de"), tmp_path)
    assert "640,0*" in emil and "–" in emil
    frida = _text(letter_pdf(_content(s, month, "Frida"), settings, "Frida", "en"), tmp_path)
    for item in ("Your consumption information for November 2026", "800.0", "Hot water (m³)", "2.50", "21 days"):
        assert item in frida, item
    gina = _text(letter_pdf(_content(s, month, "Gina"), settings, "Gina", "de"), tmp_path)
    assert "Heizkostenverteiler (Einheiten)" in gina and "keine kWh" in gina


def test_emails_arrive_with_the_pdf_and_are_not_sent_twice(s, month, smtp_server):
    inbox, port = smtp_server
    update_settings(s, month.tenant_id, {"smtp": {"port": port}}, actor="test", now=NOW)
    planned = plan_deliveries(s, month.tenant_id, "2026-11", NOW)
    assert planned == {"email": 6, "post": 1, "corrections": 0}  # Gina has no e-mail: a letter
    assert send_due(s, month.tenant_id, NOW) == {"sent": 6, "retry": 0, "failed": 0}
    to = sorted(r[0] for r, _ in inbox.messages)
    assert to == sorted(f"{n}@example.de" for n in ("anna", "bert", "carl", "dora", "emil", "frida"))
    msg = next(m for r, m in inbox.messages if r == ["anna@example.de"])
    assert msg["Subject"] == "Ihre Verbrauchsinformation November 2026"
    assert "Heizung November 2026: 500,0 kWh" in msg.get_body(("plain",)).get_content()
    pdf = next(msg.iter_attachments())
    assert pdf.get_content_type() == "application/pdf" and pdf.get_content().startswith(b"%PDF")
    # running the month again plans and sends nothing
    assert plan_deliveries(s, month.tenant_id, "2026-11", NOW) == {"email": 0, "post": 0, "corrections": 0}
    assert send_due(s, month.tenant_id, NOW + timedelta(hours=1)) == {"sent": 0, "retry": 0, "failed": 0}
    assert len(inbox.messages) == 6


def test_a_server_that_is_down_delays_the_notice_and_a_refusal_is_recorded(s, month, smtp_server):
    inbox, port = smtp_server
    # the settings' port has no server: every notice stays pending, with the next attempt a minute later
    plan_deliveries(s, month.tenant_id, "2026-11", NOW)
    bert = s.scalar(
        select(CustomerDelivery).join(CustomerRecord).where(CustomerRecord.occupant_id == month.occupants["Bert"])
    )
    bert.address = "bounce@example.de"
    assert send_due(s, month.tenant_id, NOW) == {"sent": 0, "retry": 6, "failed": 0}
    pending = s.scalars(select(CustomerDelivery).where(CustomerDelivery.tenant_id == month.tenant_id)).all()
    emails = [d for d in pending if d.channel == "email"]
    assert all(d.state == "pending" and d.next_attempt_at == NOW + timedelta(minutes=1) for d in emails)
    assert all("SMTPConnect" in d.last_error and len(d.errors) == 1 for d in emails)
    # not due yet: nothing tried
    assert send_due(s, month.tenant_id, NOW + timedelta(seconds=30)) == {"sent": 0, "retry": 0, "failed": 0}
    update_settings(s, month.tenant_id, {"smtp": {"port": port}}, actor="test", now=NOW)
    assert send_due(s, month.tenant_id, NOW + timedelta(minutes=2)) == {"sent": 5, "retry": 0, "failed": 1}
    s.refresh(bert)
    assert bert.state == "failed" and "550" in bert.last_error and bert.attempts == 2
    assert len(inbox.messages) == 5


def test_the_print_batch_has_the_letters_without_a_digital_channel_in_address_order(s, month, tmp_path):
    plan_deliveries(s, month.tenant_id, "2026-11", NOW)
    for name, postal in (("Anna", "Anna Alt\nAm Weg 2\n80331 München"), ("Emil", "Emil Ehm\nZuweg 1\n01067 Dresden")):
        d = s.scalar(
            select(CustomerDelivery).join(CustomerRecord).where(CustomerRecord.occupant_id == month.occupants[name])
        )
        d.channel, d.address, d.next_attempt_at = "post", postal, None
    pdf, letters = print_batch(s, month.tenant_id, "2026-11", NOW)
    assert letters == 3
    text = _text(pdf, tmp_path)
    pages = text.split("\f")
    assert [p for p in pages if p.strip()][0].count("Emil Ehm") == 1  # 01067 first
    order = [text.index(x) for x in ("Emil Ehm", "Gina Graf", "Anna Alt")]  # 01067, 10115, 80331
    assert order == sorted(order)
    assert print_batch(s, month.tenant_id, "2026-11", NOW) == (b"", 0)  # printed once
