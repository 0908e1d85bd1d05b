"""Webhooks (docs/exports.md §Webhooks): a tenant's endpoints get its events as signed JSON POSTs.

* `emit(session, tenant_id, type, key, data)` is the event API: any service calls it inside its own
  transaction; `key` names the happening, so emitting it twice gives one event. Each enabled
  endpoint subscribed to the type gets a delivery.
* `deliver_due` POSTs the deliveries that are due: body `{"id", "type", "created_at", "tenant",
  "data"}`, headers `Omshub-Timestamp` (Unix seconds), `Omshub-Signature: v1=<hex HMAC-SHA256 of
  "<timestamp>.<body>" under the endpoint's secret>`, `Idempotency-Key` (the event's id: the same
  on every retry and replay). A 2xx answer delivers; anything else is retried after 30 s, 1, 2, 4 …
  minutes (at most an hour apart) until the endpoint's `retry_for_s` has passed since the first
  attempt: then the delivery is dead (a dead letter), until it is replayed.
* `scan` turns what happened elsewhere into events (services/event_sources.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid, not_found
from omshub.cloud.domain.exports.v1 import utc_text
from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import Database
from omshub.cloud.store.keystore import KeyStore
from omshub.cloud.store.models import Tenant
from omshub.cloud.store.models_exports import WebhookDelivery, WebhookEndpoint, WebhookEvent

EVENT_TYPES = (
    "period.closed",
    "value.changed_after_export",
    "alarm.raised",
    "alarm.cleared",
    "monthly_information.ready",  # a month of customer information computed (event_sources, docs/exports.md)
    "webhook.test",
)
_SECRET_AAD = "webhook-secret"
TIMEOUT_S = 10.0
BATCH = 100


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s, 60 s, 2 min, … at most 1 hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    return "v1=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


ALLOW_PRIVATE_ENV = "OMSHUB_WEBHOOK_ALLOW_PRIVATE"


def _allowed_networks() -> list | None:
    """The operator's exceptions (OMSHUB_WEBHOOK_ALLOW_PRIVATE): None = any address ("1", "true",
    "yes", "all"); else the networks listed ("10.20.0.0/16,127.0.0.1"; empty: none)."""
    raw = os.environ.get(ALLOW_PRIVATE_ENV, "").strip()
    if raw.lower() in ("1", "true", "yes", "all"):
        return None
    if raw.lower() in ("", "0", "false", "no", "none"):
        return []
    networks = []
    for part in raw.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            wrong = part.strip()
            raise Invalid(
                f"setting {ALLOW_PRIVATE_ENV}: {wrong!r} is not a network (like 10.20.0.0/16) or a yes",
                german=f"Einstellung {ALLOW_PRIVATE_ENV}: {wrong!r} ist kein Netz (wie 10.20.0.0/16) und kein yes",
                field="url",
            ) from None
    return networks


_KINDS = (
    ("is_loopback", "loopback", "Loopback"),
    ("is_link_local", "link-local", "Link-Local"),
    ("is_multicast", "multicast", "Multicast"),
    ("is_unspecified", "unspecified", "unspezifizierte"),
    ("is_private", "private", "private"),
)


def _not_public(ip) -> tuple[str, str] | None:
    """(English, German) kind of an address a webhook must not reach; None for a public one."""
    for attr, en, de in _KINDS:
        if getattr(ip, attr):
            return en, de
    if ip.is_reserved or not ip.is_global:
        return "reserved or not public", "reservierte oder nicht öffentliche"
    return None


def check_target(url: str, resolve=socket.getaddrinfo) -> str:
    """The webhook URL if omshub may POST to it (SSRF guard, docs/exports.md §Webhooks): http or
    https, a host, no user name or password, and every address the host resolves to public — not
    loopback, link-local, private, multicast or reserved — unless the operator allows its network
    (OMSHUB_WEBHOOK_ALLOW_PRIVATE). Checked when an endpoint is created and before every delivery."""
    shown = url[:100]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"url {shown!r}: not a URL ({exc})", german=f"url {shown!r}: keine URL ({exc})",
                      field="url") from None  # fmt: skip
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"url {shown!r}: an http:// or https:// URL with a host",
                      german=f"url {shown!r}: eine http://- oder https://-URL mit Host", field="url")  # fmt: skip
    if parts.username is not None or parts.password is not None:
        raise Invalid(
            f"url {parts.hostname!r}: no user name or password in the URL (the signature proves the sender; "
            "the receiver checks it)",
            german=f"url {parts.hostname!r}: kein Benutzername und kein Passwort in der URL (die Signatur weist "
            "den Absender aus; der Empfänger prüft sie)",
            field="url",
        )
    allowed = _allowed_networks()
    if allowed is None:
        return url
    host = parts.hostname
    try:
        infos = resolve(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Invalid(
            f"url: the host {host!r} cannot be resolved ({exc})",
            german=f"url: der Host {host!r} lässt sich nicht auflösen ({exc})",
            field="url",
        ) from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        kind = _not_public(ip)
        if kind is not None and not any(ip in net for net in allowed if net.version == ip.version):
            raise Invalid(
                f"url: the host {host!r} is {ip}, a {kind[0]} address: webhooks go only to public addresses "
                f"(the operator can allow a network with {ALLOW_PRIVATE_ENV})",
                german=f"url: der Host {host!r} ist {ip}, eine {kind[1]} Adresse: Webhooks gehen nur an "
                f"öffentliche Adressen (der Betreiber kann ein Netz mit {ALLOW_PRIVATE_ENV} erlauben)",
                field="url",
            )
    return url


def _check_events(events: list[str]) -> list[str]:
    wrong = [e for e in events if e not in EVENT_TYPES]
    if wrong:
        raise Invalid(f"events: unknown {', '.join(wrong)} (known: {', '.join(EVENT_TYPES)})",
                      german=f"events: unbekannt {', '.join(wrong)} (bekannt: {', '.join(EVENT_TYPES)})",
                      field="events")  # fmt: skip
    return sorted(set(events))


def create_endpoint(session: Session, keystore: KeyStore, tenant_id: int, url: str, events: list[str],
                    retry_for_s: int, *, actor: str, now: datetime) -> tuple[WebhookEndpoint, str]:  # fmt: skip
    """A new endpoint and its secret (shown once: only its encryption is kept)."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    nonce, cipher = keystore.seal(tenant_id, None, _SECRET_AAD, secret.encode())
    ep = WebhookEndpoint(tenant_id=tenant_id, url=check_target(url), events=_check_events(events), secret_nonce=nonce,
                         secret_cipher=cipher, retry_for_s=retry_for_s, enabled=True, created_at=now)  # fmt: skip
    session.add(ep)
    session.flush()
    audit(session, tenant_id, actor, "webhook_created", {"endpoint": ep.id, "url": ep.url, "events": ep.events})
    return ep, secret


def endpoint_json(ep: WebhookEndpoint) -> dict:
    return {"id": ep.id, "url": ep.url, "events": ep.events, "retry_for_s": ep.retry_for_s, "enabled": ep.enabled,
            "created_at": ep.created_at}  # fmt: skip


def list_endpoints(session: Session, tenant_id: int) -> list[WebhookEndpoint]:
    q = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True))
    return list(session.scalars(q.order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, tenant_id: int, endpoint_id: int) -> WebhookEndpoint:
    ep = session.get(WebhookEndpoint, endpoint_id)
    if ep is None or ep.tenant_id != tenant_id or not ep.enabled:
        raise not_found(f"webhook endpoint {endpoint_id}", f"Webhook-Endpunkt {endpoint_id}")
    return ep


def delete_endpoint(session: Session, tenant_id: int, endpoint_id: int, *, actor: str) -> None:
    """Disabled (its deliveries stay as evidence; pending ones are not sent any more)."""
    ep = get_endpoint(session, tenant_id, endpoint_id)
    ep.enabled = False
    audit(session, tenant_id, actor, "webhook_deleted", {"endpoint": ep.id})


def emit(session: Session, tenant_id: int, type_: str, key: str, data: dict, *, now: datetime,
         only_endpoint: int | None = None) -> WebhookEvent | None:  # fmt: skip
    """Record an event (once per `key`) with a delivery to each enabled endpoint that wants it.
    None: the event had been emitted before."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    if session.scalar(select(WebhookEvent.id).where(WebhookEvent.tenant_id == tenant_id, WebhookEvent.key == key)):
        return None
    event = WebhookEvent(tenant_id=tenant_id, key=key[:200], type=type_, data=data, created_at=now)
    session.add(event)
    session.flush()
    for ep in list_endpoints(session, tenant_id):
        if (only_endpoint is None and (not ep.events or type_ in ep.events)) or ep.id == only_endpoint:
            session.add(WebhookDelivery(tenant_id=tenant_id, endpoint_id=ep.id, event_id=event.id, state="pending",
                                        attempts=0, first_at=now, next_at=now))  # fmt: skip
    return event


def deliveries(session: Session, tenant_id: int, state: str | None, endpoint_id: int | None, limit: int) -> list[dict]:
    q = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.tenant_id == tenant_id)
    )
    if state is not None:
        q = q.where(WebhookDelivery.state == state)
    if endpoint_id is not None:
        q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
    return [
        {"id": d.id, "endpoint_id": d.endpoint_id, "event_id": e.id, "type": e.type, "state": d.state,
         "attempts": d.attempts, "first_at": d.first_at, "next_at": d.next_at, "last_at": d.last_at,
         "last_status": d.last_status, "last_error": d.last_error, "delivered_at": d.delivered_at, "data": e.data}
        for d, e in session.execute(q.order_by(WebhookDelivery.id.desc()).limit(limit))
    ]  # fmt: skip


def replay(session: Session, tenant_id: int, delivery_ids: list[int] | None, endpoint_id: int | None, *,
           actor: str, now: datetime) -> int:  # fmt: skip
    """Dead deliveries (those named, or all of an endpoint) pending again, with a fresh retry time."""
    q = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.state == "dead")
    if delivery_ids is not None:
        q = q.where(WebhookDelivery.id.in_(delivery_ids))
    if endpoint_id is not None:
        q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
    rows = list(session.scalars(q))
    for d in rows:
        d.state, d.first_at, d.next_at = "pending", now, now
    audit(session, tenant_id, actor, "webhook_replay", {"deliveries": [d.id for d in rows]})
    return len(rows)


def payload(event: WebhookEvent, slug: str) -> bytes:
    body = {"id": f"evt_{event.id}", "type": event.type, "created_at": utc_text(event.created_at), "tenant": slug,
            "data": event.data}  # fmt: skip
    return orjson.dumps(body)


def deliver_due(db: Database, keystore: KeyStore, now: datetime, client: httpx.Client | None = None) -> dict:
    """POST the due deliveries (at most BATCH); after a failure, the endpoint's other deliveries wait
    for the next round. Counts of delivered, retried and dead ones."""
    counts = {"delivered": 0, "retry": 0, "dead": 0}
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
    try:
        with db.session() as session:
            due = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_at <= now,
                       WebhookEndpoint.enabled.is_(True))
                .order_by(WebhookDelivery.next_at, WebhookDelivery.id)
                .limit(BATCH)
            ).all()  # fmt: skip
        failing: set[int] = set()
        for delivery_id, endpoint_id in due:
            if endpoint_id in failing:
                continue  # an endpoint that just failed is not tried again this round (it may hang each time)
            outcome = _attempt(db, keystore, client, delivery_id, now)
            counts[outcome] += 1
            if outcome != "delivered":
                failing.add(endpoint_id)
    finally:
        if own:
            client.close()
    return counts


def _attempt(db: Database, keystore: KeyStore, client: httpx.Client, delivery_id: int, now: datetime) -> str:
    with db.session() as session:
        d = session.get(WebhookDelivery, delivery_id)
        assert d is not None
        ep, event = session.get(WebhookEndpoint, d.endpoint_id), session.get(WebhookEvent, d.event_id)
        assert ep is not None and event is not None
        slug = session.scalar(select(Tenant.slug).where(Tenant.id == d.tenant_id)) or ""
        secret = keystore.open(d.tenant_id, None, _SECRET_AAD, ep.secret_nonce, ep.secret_cipher)
        url, retry_for, first_at, attempts = ep.url, ep.retry_for_s, d.first_at, d.attempts
        body = payload(event, slug)
        event_id = f"evt_{event.id}"
        event_type = event.type
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "omshub-webhooks/1",
        "Omshub-Timestamp": str(timestamp),
        "Omshub-Signature": sign(secret, timestamp, body),
        "Omshub-Event-Type": event_type,
        "Idempotency-Key": event_id,
    }
    status, error = None, None
    try:
        check_target(url)  # again: what the name resolves to may have changed since the endpoint was made
        answer = client.post(url, content=body, headers=headers)
        status = answer.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}: {answer.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    except Invalid as exc:
        error = f"refused: {exc}"[:500]
    with db.transaction() as session:
        d = session.get(WebhookDelivery, delivery_id)
        assert d is not None
        d.attempts, d.last_at, d.last_status, d.last_error = attempts + 1, now, status, error
        if error is None:
            d.state, d.delivered_at, d.next_at = "delivered", now, None
            return "delivered"
        later = now + backoff(attempts + 1)
        if later > first_at + timedelta(seconds=retry_for):
            d.state, d.next_at = "dead", None
            return "dead"
        d.next_at = later
        return "retry"
