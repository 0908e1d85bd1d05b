"""Delivery status notifications (RFC 3464) that arrive after an SMTP server accepted a notice: a
pure parser (no I/O) of the raw bounce message, with Python's email package.

Each notice omshub sends carries a reference to its delivery: the envelope sender is a VERP-like
address `local+notice-<delivery id>-<tag>@domain` (the bounce goes back to it) and the header
`X-Omshub-Notice: <delivery id>-<tag>` (returned in the bounce's copy of the message or its headers).
The tag is a short hash of the tenant, the delivery and the record (`notice_tag`), so a reference from
another tenant or a typo never matches a delivery.

`parse_dsn(raw)` -> `Bounce` or `DsnError` (what is wrong, in German and English). Input is bounded
(`MAX_BYTES`); any bytes give one or the other, never another exception (tests fuzz it)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from omshub.cloud.domain.errors import Invalid

MAX_BYTES = 1_000_000  # a DSN is a few kB; with the returned message at most a few hundred kB
_REF = re.compile(rb"(?:\+notice-|X-Omshub-Notice:[ \t]*)(\d{1,18})-([0-9a-f]{10})\b", re.IGNORECASE)


class DsnError(Invalid):
    """A bounce that cannot be used: what is wrong (English, German)."""

    code = "bad_bounce"

    def __init__(self, english: str, german: str) -> None:
        super().__init__(english, german=german)


@dataclass(frozen=True)
class Bounce:
    delivery_id: int
    tag: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # e.g. 5.1.1
    diagnostic: str  # the remote server's answer, if given
    recipient: str  # Final-Recipient

    @property
    def permanent(self) -> bool:
        """The MTA gave up: the notice did not reach the occupant."""
        return self.action == "failed"


def notice_tag(tenant_id: int, delivery_id: int, record_id: int) -> str:
    return hashlib.sha256(f"omshub-notice:{tenant_id}:{delivery_id}:{record_id}".encode()).hexdigest()[:10]


def verp_sender(sender: str, delivery_id: int, tag: str) -> str:
    """The envelope sender of a notice: "info@sw.example" -> "info+notice-17-0a1b2c3d4e@sw.example"."""
    local, at, domain = sender.rpartition("@")
    if not at or not local:
        return sender
    return f"{local}+notice-{delivery_id}-{tag}@{domain}"


def _clean(value: object, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    return text[:limit]


def _status_blocks(msg: Message) -> list[Message]:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return [p for p in payload if isinstance(p, Message)]
            if isinstance(payload, str):  # a single-part DSN some MTAs write: parse the field groups
                return [
                    message_from_bytes(g.encode("utf-8", "replace"), policy=compat32)
                    for g in re.split(r"\r?\n\r?\n", payload)
                    if g.strip()
                ]
    return []


def parse_dsn(raw: bytes) -> Bounce:
    if not isinstance(raw, bytes | bytearray):
        raise DsnError(
            "a bounce must be the raw message (bytes)", "Ein Rückläufer muss die rohe Nachricht sein (Bytes)"
        )
    if len(raw) > MAX_BYTES:
        raise DsnError(
            f"bounce message too large: {len(raw)} bytes, at most {MAX_BYTES}",
            f"Rückläufer zu groß: {len(raw)} Bytes, höchstens {MAX_BYTES}",
        )
    if not raw.strip():
        raise DsnError("bounce message is empty", "Rückläufer ist leer")
    refs = {(int(m.group(1)), m.group(2).decode().lower()) for m in _REF.finditer(bytes(raw))}
    if not refs:
        raise DsnError(
            "no omshub notice reference in the bounce (envelope address +notice-<id>-<tag> or header X-Omshub-Notice)",
            "Kein Verweis auf eine omshub-Benachrichtigung im Rückläufer (Adresse +notice-<id>-<tag> oder "
            "Kopfzeile X-Omshub-Notice)",
        )
    if len(refs) > 1:
        raise DsnError(
            f"the bounce refers to {len(refs)} different notices; submit one bounce per notice",
            f"Der Rückläufer verweist auf {len(refs)} verschiedene Benachrichtigungen; bitte einzeln einreichen",
        )
    ((delivery_id, tag),) = refs
    try:
        msg = message_from_bytes(bytes(raw), policy=compat32)
        blocks = _status_blocks(msg)
        recipients = [b for b in blocks[1:] if b.get("Action")] or [b for b in blocks if b.get("Action")]
        fields = recipients[0] if recipients else None
        if fields is None:
            raise DsnError(
                "not a delivery status notification (RFC 3464): no message/delivery-status part with an Action field",
                "Keine Zustellstatusnachricht (RFC 3464): kein message/delivery-status-Teil mit Action-Feld",
            )
        action = _clean(fields.get("Action"), 20).lower()
        status = _clean(fields.get("Status"), 20)
        diagnostic = _clean(fields.get("Diagnostic-Code"))
        recipient = _clean(fields.get("Final-Recipient") or fields.get("Original-Recipient"), 254)
    except DsnError:
        raise
    except Exception as exc:  # the email package on hostile input: a clear error, never a traceback
        raise DsnError(
            f"bounce message could not be read: {type(exc).__name__}",
            f"Rückläufer nicht lesbar: {type(exc).__name__}",
        ) from None
    if action not in ("failed", "delayed", "delivered", "relayed", "expanded"):
        raise DsnError(
            f"unknown DSN action {action!r} (RFC 3464: failed, delayed, delivered, relayed, expanded)",
            f"unbekannte DSN-Aktion {action!r} (RFC 3464: failed, delayed, delivered, relayed, expanded)",
        )
    if not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status):
        raise DsnError(
            f"DSN status {status!r} is not a status code like 5.1.1",
            f"DSN-Status {status!r} ist kein Statuscode wie 5.1.1",
        )
    return Bounce(delivery_id, tag, action, status, diagnostic, recipient.split(";", 1)[-1].strip())
