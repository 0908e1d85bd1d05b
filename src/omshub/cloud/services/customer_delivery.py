"""Getting the monthly information to each occupant (docs/customer-information.md §Channels):

- which channel: an occupant with a valid e-mail address and channel `email` or `portal` gets an
  e-mail notice (the PDF attached, or the portal's link, as the tenant configured); everyone else a
  letter in the print batch — nobody is left without information;
- one delivery row per record and channel, so running the month again sends nothing twice;
- e-mail through the tenant's SMTP server: a server that is down, times out or answers 4xx leaves the
  notice pending with the next attempt after a growing pause (1, 5, 15, 60 minutes, then every 4 hours)
  — never lost; a permanent refusal (5xx) or an invalid address marks it failed; every failed attempt
  is recorded with its time and reason;
- the print batch: one PDF of the letters not printed yet, in address order (postcode, street, name).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.dsn import notice_tag, verp_sender
from omshub.cloud.services.customer_pdf import letters_pdf
from omshub.cloud.services.customer_settings import settings_of, valid_email
from omshub.cloud.services.customer_texts import day_text, figure_text, month_name, t
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models_billing import Occupant
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord

BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))


def backoff(attempts: int) -> timedelta:
    """The pause after the `attempts`-th failed attempt."""
    return BACKOFF[min(attempts, len(BACKOFF)) - 1]


def recipient_lines(occupant: Occupant, content: dict) -> str:
    """The address a letter goes to: the occupant's postal address, else their name at the unit."""
    if occupant.postal_address.strip():
        return occupant.postal_address.strip()
    return "\n".join([occupant.name, *[x.strip() for x in content["property"]["address"].split(",")]])


def plan_deliveries(session: Session, tenant_id: int, month: str, now: datetime) -> dict:
    """A delivery row for each occupant's record of the month that has none yet; a record whose
    content changed (new revision) after its notice went out gets the notice again as a correction
    of the earlier one (`revision`/`sent_at` keep the earlier one until the correction is sent). A
    revision already delivered is never sent twice. -> counts"""
    rows = session.execute(
        select(CustomerRecord, Occupant)
        .join(Occupant, Occupant.id == CustomerRecord.occupant_id)
        .where(CustomerRecord.tenant_id == tenant_id, CustomerRecord.month == month)
    ).all()
    have: dict[int, CustomerDelivery] = {
        d.record_id: d
        for d in session.scalars(
            select(CustomerDelivery).where(
                CustomerDelivery.tenant_id == tenant_id, CustomerDelivery.record_id.in_([r.id for r, _ in rows])
            )
        )
    }
    counts = {"email": 0, "post": 0, "corrections": 0}
    for record, occupant in rows:
        known = have.get(record.id)
        if known is not None:
            if known.state == "sent" and record.revision > known.revision:
                known.state = "pending"
                known.next_attempt_at = now if known.channel == "email" else None
                audit(
                    session,
                    tenant_id,
                    "system",
                    "customers.correction",
                    {
                        "delivery_id": known.id,
                        "record_id": record.id,
                        "sent_revision": known.revision,
                        "revision": record.revision,
                        "sent_at": known.sent_at.isoformat() if known.sent_at else None,
                    },
                )
                counts["corrections"] += 1
            continue
        digital = occupant.channel in ("email", "portal") and valid_email(occupant.email)
        channel = "email" if digital else "post"
        address = occupant.email.strip() if digital else recipient_lines(occupant, record.content)
        session.add(
            CustomerDelivery(
                tenant_id=tenant_id,
                record_id=record.id,
                channel=channel,
                address=address,
                state="pending",
                attempts=0,
                next_attempt_at=now if digital else None,
                last_error="",
                errors=[],
                revision=0,
                created_at=now,
            )
        )
        counts[channel] += 1
    session.flush()
    return counts


def correction_of(delivery: CustomerDelivery, record: CustomerRecord) -> dict | None:
    """The earlier notice a pending one corrects (its revision and when it went out), else None."""
    if delivery.revision and delivery.sent_at is not None and record.revision > delivery.revision:
        return {"revision": delivery.revision, "sent_at": delivery.sent_at}
    return None


def _message(settings: dict, content: dict, occupant: Occupant, to: str, corrects: dict | None = None) -> EmailMessage:
    lang = occupant.language if occupant.language in ("de", "en") else "de"
    month = month_name(content["month"], lang)
    heat = next((line for line in content["lines"] if line["kind"] == "heat"), None)
    heat_text = f"{figure_text(heat['month'], lang)} {heat['unit']}" if heat else "–"
    attach = settings["delivery"] == "attachment" or not settings["portal_url"]
    how = t("mail_attached", lang) if attach else t("mail_link", lang, url=settings["portal_url"])
    supplier = settings["supplier_name"] or "omshub"
    msg = EmailMessage()
    sender = settings["smtp"]["sender"] or "no-reply@localhost"
    msg["From"] = formataddr((supplier, sender))
    msg["To"] = to
    msg["Subject"] = t("mail_subject_corrected" if corrects else "mail_subject", lang, month=month)
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[-1])
    body = t("mail_body", lang, name=occupant.name, month=month, how=how, heat=heat_text, supplier=supplier)
    if corrects:
        sent = day_text(corrects["sent_at"].date().isoformat(), lang)
        note = t("mail_corrected", lang, month=month, sent=sent, revision=corrects["revision"])
        head, _, rest = body.partition("\n\n")
        body = f"{head}\n\n{note}\n\n{rest}"
    msg.set_content(body)
    if attach:
        pdf = letters_pdf([(content, recipient_lines(occupant, content), lang, corrects or False)], settings)
        name = (
            f"Verbrauchsinformation-{content['month']}.pdf" if lang == "de" else f"consumption-{content['month']}.pdf"
        )
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    return msg


def _permanent(exc: Exception) -> bool:
    """A refusal the server will repeat (5xx): the notice fails; anything else is retried."""
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [getattr(r, "code", 0) for r in exc.recipients]
        return bool(codes) and all(500 <= c < 600 for c in codes)
    return isinstance(code, int) and 500 <= code < 600


async def _send_all(settings: dict, messages: list[tuple[int, EmailMessage, str]]) -> dict[int, Exception | None]:
    """Send over one connection; the outcome per delivery id (None: accepted)."""
    smtp = settings["smtp"]
    out: dict[int, Exception | None] = {}
    client = aiosmtplib.SMTP(
        hostname=smtp["host"] or "127.0.0.1",
        port=int(smtp["port"]),
        timeout=float(smtp.get("timeout_s") or 10),
        start_tls=bool(smtp["starttls"]),
        username=smtp["username"] or None,
        password=smtp.get("password") or None,
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return {did: exc for did, _, _ in messages}
    try:
        for did, msg, envelope_sender in messages:
            try:
                await client.send_message(msg, sender=envelope_sender)
                out[did] = None
            except (aiosmtplib.SMTPException, OSError) as exc:
                out[did] = exc
                if isinstance(exc, aiosmtplib.SMTPServerDisconnected | OSError):
                    break
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass  # the connection is gone anyway; the outcomes are already known
    for did, _, _ in messages:
        out.setdefault(did, aiosmtplib.SMTPServerDisconnected("connection lost before this message"))
    return out


def send_due(
    session: Session,
    tenant_id: int,
    now: datetime,
    *,
    actor: str = "system",
    limit: int = 200,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Send the tenant's pending e-mail notices whose next attempt is due (at most `limit`). -> counts"""
    settings = settings_of(session, tenant_id)
    due = session.execute(
        select(CustomerDelivery, CustomerRecord, Occupant)
        .join(CustomerRecord, CustomerRecord.id == CustomerDelivery.record_id)
        .join(Occupant, Occupant.id == CustomerRecord.occupant_id)
        .where(
            CustomerDelivery.tenant_id == tenant_id,
            CustomerDelivery.channel == "email",
            CustomerDelivery.state == "pending",
            CustomerDelivery.next_attempt_at <= now,
        )
        .order_by(CustomerDelivery.id)
        .limit(limit)
    ).all()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    messages = []
    for delivery, record, occupant in due:
        if not valid_email(delivery.address):
            _failed(delivery, now, f"invalid address {delivery.address!r}", final=True)
            counts["failed"] += 1
            continue
        corrects = correction_of(delivery, record)
        msg = _message(settings, record.content, occupant, delivery.address, corrects)
        # a bounce that arrives later finds its notice by these (services/customer_bounces.py)
        tag = notice_tag(tenant_id, delivery.id, record.id)
        msg["X-Omshub-Notice"] = f"{delivery.id}-{tag}"
        sender = settings["smtp"]["sender"] or "no-reply@localhost"
        messages.append((delivery.id, msg, verp_sender(sender, delivery.id, tag)))
    outcomes = asyncio.run(_send_all(settings, messages)) if messages else {}
    by_id = {d.id: (d, r) for d, r, _ in due}
    for did, exc in outcomes.items():
        delivery, record = by_id[did]
        if exc is None:
            delivery.state, delivery.sent_at, delivery.revision = "sent", now, record.revision
            delivery.attempts += 1
            counts["sent"] += 1
        else:
            final = _permanent(exc)
            _failed(delivery, now, _reason(exc), final=final)
            counts["failed" if final else "retry"] += 1
    if progress:
        progress(counts["sent"])
    if any(counts.values()):
        audit(session, tenant_id, actor, "customers.email", counts)
    session.flush()
    return counts


def _reason(exc: Exception) -> str:
    return re.sub(r"\s+", " ", f"{type(exc).__name__}: {exc}")[:500]


def _failed(delivery: CustomerDelivery, now: datetime, reason: str, *, final: bool) -> None:
    delivery.attempts += 1
    delivery.last_error = reason
    delivery.errors = [*delivery.errors, {"at": now.isoformat(), "error": reason}][-20:]
    if final:
        delivery.state, delivery.next_attempt_at = "failed", None
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)


def _address_key(address: str) -> tuple:
    """Sort letters by postcode, then street, then name (how a print shop bundles them)."""
    lines = [x.strip() for x in address.splitlines() if x.strip()]
    last = lines[-1] if lines else ""
    m = re.match(r"(\d{4,5})\b", last)
    return (m.group(1) if m else "~", lines[-2] if len(lines) > 1 else "", lines[0] if lines else "", address)


def print_batch(
    session: Session, tenant_id: int, month: str, now: datetime, *, actor: str = "system"
) -> tuple[bytes, int]:
    """One PDF of the month's letters not printed yet, in address order; they count as delivered."""
    settings = settings_of(session, tenant_id)
    rows = session.execute(
        select(CustomerDelivery, CustomerRecord, Occupant)
        .join(CustomerRecord, CustomerRecord.id == CustomerDelivery.record_id)
        .join(Occupant, Occupant.id == CustomerRecord.occupant_id)
        .where(
            CustomerDelivery.tenant_id == tenant_id,
            CustomerDelivery.channel == "post",
            CustomerDelivery.state == "pending",
            CustomerRecord.month == month,
        )
    ).all()
    rows = sorted(rows, key=lambda r: _address_key(r[0].address))
    letters = [
        (r.content, d.address, o.language if o.language in ("de", "en") else "de", correction_of(d, r) or False)
        for d, r, o in rows
    ]
    pdf = letters_pdf(letters, settings) if letters else b""
    for d, r, _ in rows:
        d.state, d.sent_at, d.revision, d.attempts = "sent", now, r.revision, d.attempts + 1
    if rows:
        audit(session, tenant_id, actor, "customers.print_batch", {"month": month, "letters": len(rows)})
    session.flush()
    return pdf, len(rows)
