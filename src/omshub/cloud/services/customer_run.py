"""The monthly run of the customer information (docs/customer-information.md §Monthly run): records,
deliveries, one PDF per record into the output folder, the e-mail notices, the print batch. Each
step commits on its own, so a failure later (an SMTP server down) never loses what is done; running
it again sends and prints nothing twice and picks up what is still pending."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from omshub.cloud.services.customer_delivery import plan_deliveries, print_batch, recipient_lines, send_due
from omshub.cloud.services.customer_pdf import letter_pdf
from omshub.cloud.services.customer_portal import lock_moved_out
from omshub.cloud.services.customer_records import build_month, check_month
from omshub.cloud.services.customer_settings import settings_of
from omshub.cloud.store.models_billing import Occupant
from omshub.cloud.store.models_customers import CustomerRecord

Progress = Callable[[str, int], None]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "_"


def write_pdfs(db, tenant_id: int, month: str, folder: Path, progress: Progress | None = None) -> int:
    """One PDF per record of the month (the occupant's language; German for a vacant unit) into
    `folder`, named unit-occupant; a file whose record did not change is written again the same way."""
    folder.mkdir(parents=True, exist_ok=True)
    done, after = 0, 0
    while True:
        with db.transaction(write=False) as session:
            settings = settings_of(session, tenant_id)
            rows = session.execute(
                select(CustomerRecord, Occupant)
                .outerjoin(Occupant, Occupant.id == CustomerRecord.occupant_id)
                .where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.month == month, CustomerRecord.id > after)
                .order_by(CustomerRecord.id)
                .limit(500)
            ).all()
            for record, occupant in rows:
                lang = occupant.language if occupant is not None and occupant.language in ("de", "en") else "de"
                recipient = (
                    recipient_lines(occupant, record.content) if occupant else record.content["property"]["name"]
                )
                who = f"occupant-{occupant.id}" if occupant else "vacant"
                name = f"{_safe(record.content['unit']['ref'])}-{record.unit_id}-{who}.pdf"
                (folder / name).write_bytes(letter_pdf(record.content, settings, recipient, lang))
        if not rows:
            return done
        after = rows[-1][0].id
        done += len(rows)
        if progress:
            progress("pdfs", done)


def run_month(
    db, tenant_id: int, month: str, *, out: Path, actor: str, now: datetime, progress: Progress | None = None
) -> dict:
    """Records, deliveries, PDFs, e-mails and the print batch of `month`. -> counts"""
    month = check_month(month, now)
    with db.transaction() as session:
        records = build_month(session, tenant_id, month, actor=actor, now=now, progress=progress)
        planned = plan_deliveries(session, tenant_id, month, now)
        locked = lock_moved_out(session, tenant_id, now, days=int(settings_of(session, tenant_id)["lock_after_days"]))
    pdfs = write_pdfs(db, tenant_id, month, out / month, progress)
    mail = {"sent": 0, "retry": 0, "failed": 0}
    while True:
        with db.transaction() as session:
            counts = send_due(session, tenant_id, now, actor=actor)
        for k in mail:
            mail[k] += counts[k]
        if progress:
            progress("emails", mail["sent"])
        if sum(counts.values()) == 0 or counts["retry"]:
            break  # nothing more due, or the server is not taking mail now: the rest waits for its next attempt
    batch_path = None
    with db.transaction() as session:
        batch, letters = print_batch(session, tenant_id, month, now, actor=actor)
        if letters:
            # written before the letters count as printed (the transaction commits after this block)
            batch_path = out / month / f"print-batch-{now.strftime('%Y%m%dT%H%M%SZ')}.pdf"
            batch_path.write_bytes(batch)
    return {
        "month": month,
        "records": records,
        "deliveries_planned": planned,
        "pdfs": pdfs,
        "folder": str(out / month),
        "emails": mail,
        "printed": letters,
        "print_batch": str(batch_path) if batch_path else None,
        "portal_accounts_locked": locked,
    }
