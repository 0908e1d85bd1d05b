"""A corrected letter says so on the page: "Korrigierte Information" / "Corrected information" with the
date and version of the information it replaces — in the e-mail's PDF and the print batch (the notice
the occupant got), and in a PDF read directly (the record's earlier revision). Read back with pdftotext."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from omshub.cloud.services.customer_delivery import plan_deliveries, print_batch, send_due
from omshub.cloud.services.customer_pdf import letter_pdf
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.services.customer_settings import settings_of, update_settings
from omshub.cloud.store.models_customers import CustomerRecord
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW
from tests.cloud.test_customer_channels import _text, smtp_server  # noqa: F401  (the aiosmtpd fixture)
from tests.cloud.test_customer_console import _change_consumption, _smtp

BANNER_DE = "Korrigierte Information – ersetzt die Information vom 05.12.2026 (Stand 1)"


def _record(s, tenant_id: int, occupant_id: int) -> CustomerRecord:
    return s.scalar(
        select(CustomerRecord).where(
            CustomerRecord.tenant_id == tenant_id,
            CustomerRecord.occupant_id == occupant_id,
            CustomerRecord.month == "2026-11",
        )
    )


def _attachment(msg) -> bytes:
    (part,) = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    return part.get_content()


def test_corrected_letters_name_the_information_they_replace(s, hub, smtp_server, tmp_path):
    inbox, port = smtp_server
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    anna = _record(s, t.id, sc.occupants["Anna"])
    settings = settings_of(s, t.id)
    first = _text(letter_pdf(anna.content, settings, "Anna", "de"), tmp_path)
    assert "Korrigierte" not in first and "Ihre Verbrauchsinformation für November 2026" in first
    plan_deliveries(s, t.id, "2026-11", NOW)
    send_due(s, t.id, NOW)
    assert "Korrigierte" not in _text(_attachment(inbox.messages[0][1]), tmp_path)
    print_batch(s, t.id, "2026-11", NOW)

    # four days later Anna's and Gina's November change: revision 2
    later = NOW + timedelta(days=4)
    _change_consumption(s, t.id, "MP1", 520)
    _change_consumption(s, t.id, "MP8", 130)
    build_month(s, t.id, "2026-11", actor="test", now=later)
    s.refresh(anna)
    assert anna.revision == 2 and anna.content["corrects"] == {"revision": 1, "date": "2026-12-05"}
    # read directly (API, portal): the record's earlier revision and its date
    text = _text(letter_pdf(anna.content, settings, "Anna", "de"), tmp_path)
    assert BANNER_DE in text and "520,0" in text
    english = _text(letter_pdf(anna.content, settings, "Anna", "en"), tmp_path)
    assert "Corrected information – replaces the information of 5 Dec 2026 (version 1)" in english
    # computing again changes nothing: the note is not part of the values
    assert build_month(s, t.id, "2026-11", actor="test", now=later + timedelta(hours=1))["changed"] == 0

    # the corrected e-mail's PDF and the corrected letter in the print batch name the notice that went out
    plan_deliveries(s, t.id, "2026-11", later)
    send_due(s, t.id, later)
    mail = next(m for rcpt, m in inbox.messages[6:] if rcpt == ["anna@example.de"])
    assert BANNER_DE in _text(_attachment(mail), tmp_path)
    batch, letters = print_batch(s, t.id, "2026-11", later)
    assert letters == 1
    text = _text(batch, tmp_path)
    assert BANNER_DE in text and "Gina" in text


def test_a_first_notice_of_a_changed_record_is_not_called_a_correction(s, hub, smtp_server, tmp_path):
    inbox, port = smtp_server
    t = hub.tenant()
    sc = customer_scenario.build(s, t.id)
    update_settings(s, t.id, _smtp(port), actor="test", now=NOW)
    build_month(s, t.id, "2026-11", actor="test", now=NOW)
    plan_deliveries(s, t.id, "2026-11", NOW)
    _change_consumption(s, t.id, "MP1", 520)
    build_month(s, t.id, "2026-11", actor="test", now=NOW + timedelta(hours=2))
    assert _record(s, t.id, sc.occupants["Anna"]).revision == 2
    send_due(s, t.id, NOW + timedelta(hours=2))
    mail = next(m for rcpt, m in inbox.messages if rcpt == ["anna@example.de"])
    text = _text(_attachment(mail), tmp_path)
    assert "Korrigierte" not in text and "520,0" in text
