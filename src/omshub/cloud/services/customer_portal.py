"""The customer portal's accounts (docs/customer-information.md §Portal): an operator invites an
occupant by e-mail with a one-time link (valid 14 days; only its hash is stored), the occupant sets a
password with it, logs in for a session (12 hours; only the token's hash is stored) and sees only
their own records — a record of another unit or another occupant's months is not found. Every read
is logged (HeizkostenV §6b). A locked account (e.g. after moving out) cannot log in.

The e-mail login link (also the way back for a forgotten password): the occupant asks for it with
their tenant and e-mail address; an active account gets a one-time link valid 30 minutes (only its
hash is kept; a new request replaces the previous link). The answer is the same whether or not the
account exists, and asking is behind the login throttle. A session opened with such a link may set
a new password without the old one (the occupant just proved they hold the mailbox)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr

import aiosmtplib
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, NotFound, Unauthorized
from omshub.cloud.services import login_throttle as throttle
from omshub.cloud.services.accounts import hash_password, verify_password
from omshub.cloud.services.customer_settings import check_email, settings_of
from omshub.cloud.services.properties import tenant_row
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Tenant
from omshub.cloud.store.models_billing import Occupancy, Occupant
from omshub.cloud.store.models_customers import CustomerRecord, PortalAccount, PortalRead, PortalSession

INVITE_VALID = timedelta(days=14)
LINK_VALID = timedelta(minutes=30)
SESSION_VALID = timedelta(hours=12)
MIN_PASSWORD = 10
_BAD_LOGIN = Unauthorized(
    "e-mail or password wrong, or the account is locked",
    german="E-Mail-Adresse oder Passwort falsch, oder das Konto ist gesperrt.",
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(
    session: Session, tenant_id: int, occupant_id: int, *, actor: str, now: datetime
) -> tuple[PortalAccount, str]:
    """Create (or renew the invitation of) the occupant's account. -> (account, one-time token)"""
    occupant = tenant_row(session, Occupant, tenant_id, occupant_id, "occupant", "Bewohner")
    email = check_email(occupant.email or "", "email")
    account = session.scalar(select(PortalAccount).where(PortalAccount.occupant_id == occupant.id))
    clash = session.scalar(
        select(PortalAccount).where(PortalAccount.tenant_id == tenant_id, PortalAccount.email == email.lower())
    )
    if clash is not None and clash is not account:
        raise Conflict(f"{email} already has a portal account", german=f"{email} hat schon ein Kundenportal-Konto")
    token = secrets.token_urlsafe(32)
    if account is None:
        account = PortalAccount(
            tenant_id=tenant_id,
            occupant_id=occupant.id,
            email=email.lower(),
            password_hash="",
            language=occupant.language if occupant.language in ("de", "en") else "de",
            created_at=now,
        )
        session.add(account)
    account.invite_hash, account.invite_expires_at = _hash(token), now + INVITE_VALID
    session.flush()
    audit(session, tenant_id, actor, "portal.invite", {"occupant_id": occupant.id, "account_id": account.id})
    return account, token


def invite_url(session: Session, tenant_id: int, token: str, *, kind: str = "invite") -> str:
    """The portal link carrying a one-time token: `kind` "invite" (set a password) or "login" (the
    e-mail login link)."""
    base = settings_of(session, tenant_id)["portal_url"].rstrip("/") or "/portal"
    slug = session.get(Tenant, tenant_id).slug  # type: ignore[union-attr]
    return f"{base}/#{kind}={token}&t={slug}"


def _send(settings: dict, to: str, subject: str, body: str) -> None:
    """One e-mail through the tenant's SMTP server (aiosmtplib errors and OSError pass through)."""
    smtp = settings["smtp"]
    msg = EmailMessage()
    msg["From"] = formataddr((settings["supplier_name"] or "omshub", smtp["sender"] or "no-reply@localhost"))
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    asyncio.run(
        aiosmtplib.send(
            msg,
            hostname=smtp["host"] or "127.0.0.1",
            port=int(smtp["port"]),
            start_tls=bool(smtp["starttls"]),
            username=smtp["username"] or None,
            password=smtp.get("password") or None,
            timeout=float(smtp.get("timeout_s") or 10),
        )
    )


def send_invitation(session: Session, tenant_id: int, account: PortalAccount, url: str) -> None:
    """The invitation e-mail through the tenant's SMTP server; a refusal or an unreachable server is
    an error the operator sees (the invitation stays valid and can be sent again)."""
    de = account.language == "de"
    try:
        _send(
            settings_of(session, tenant_id),
            account.email,
            "Einladung zum Kundenportal" if de else "Invitation to the customer portal",
            (
                f"Guten Tag,\n\nüber diesen Link legen Sie Ihr Passwort für das Kundenportal fest (14 Tage gültig, "
                f"einmal verwendbar):\n{url}\n\nDort sehen Sie Ihre monatliche Verbrauchsinformation.\n"
            )
            if de
            else (
                f"Hello,\n\nset your password for the customer portal with this link (valid 14 days, once):\n{url}\n\n"
                "There you see your monthly consumption information.\n"
            ),
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise Invalid(
            f"the invitation e-mail could not be sent: {exc}; the link stays valid",
            german=f"Die Einladung konnte nicht gesendet werden: {exc}; der Link bleibt gültig",
        ) from None


def accept(session: Session, token: str, password: str, now: datetime) -> PortalAccount:
    """Set the password with the one-time token (it is used up)."""
    account = session.scalar(select(PortalAccount).where(PortalAccount.invite_hash == _hash(token or "")))
    if account is None or account.invite_expires_at is None or account.invite_expires_at < now:
        raise NotFound(
            "this invitation link is unknown, used or expired",
            german="Dieser Einladungslink ist unbekannt, schon benutzt oder abgelaufen.",
        )
    _check_password(password)
    account.password_hash, account.invite_hash, account.invite_expires_at = hash_password(password), None, None
    audit(session, account.tenant_id, f"portal:{account.id}", "portal.accept", {"account_id": account.id})
    return account


def _reserve(db, key: str, address: str, now: datetime, policy) -> throttle.Reservation:
    """Count the attempt on the login throttle's counters in a transaction of its own (committed
    before the secret is checked, so parallel attempts see it); LoginThrottled (429) when closed."""
    for _ in range(5):
        try:
            with db.transaction() as session:
                return throttle.reserve(session, key, address, now, policy)
        except throttle.Contended:
            continue
    raise throttle.LoginThrottled(1)


def attempt_login(
    db, tenant_slug: str, email: str, password: str, *, address: str, now: datetime, policy=None
) -> tuple[dict, str]:
    """A portal login behind the console's login throttle (services/login_throttle.py: per account,
    per client address and per pair; the account key is the tenant and e-mail address, so an unknown
    address is throttled exactly like a known one). -> (profile, session token)"""
    policy = policy or throttle.DEFAULT_POLICY
    reservation = _reserve(db, f"portal:{tenant_slug}:{email.strip().lower()}", address, now, policy)
    with db.session() as session:  # a read: no write lock while argon2 works
        account = check_login(session, tenant_slug, email, password)
    with db.transaction() as session:
        account = session.get(PortalAccount, account.id)
        token = new_session(session, account, now)
        throttle.succeeded(session, reservation, now)
        return profile(session, account), token


def attempt_accept(db, token: str, password: str, *, address: str, now: datetime, policy=None) -> tuple[dict, str]:
    """Set the password with an invitation link behind the login throttle (guessing links is
    throttled per client address; each link is its own account key). -> (profile, session token)"""
    _check_password(password)  # before counting: a valid link with a short password is no guess
    policy = policy or throttle.DEFAULT_POLICY
    reservation = _reserve(db, f"portal-invite:{_hash(token or '')[:16]}", address, now, policy)
    with db.transaction() as session:
        account = accept(session, token, password, now)
        session_token = new_session(session, account, now)
        throttle.succeeded(session, reservation, now)
        return profile(session, account), session_token


@dataclass(frozen=True)
class LinkMail:
    """A login-link e-mail, sent after the answer went out (so asking for a known address takes as
    long as asking for an unknown one)."""

    tenant_id: int
    account_id: int
    to: str
    language: str
    url: str


def request_login_link(
    db, tenant_slug: str, email: str, *, address: str, now: datetime, policy=None
) -> LinkMail | None:
    """Ask for an e-mail login link. An active (not locked) account of the tenant with that address
    gets a new one-time link (valid LINK_VALID; only its hash is stored; it replaces an earlier
    link). -> the e-mail to send, or None (unknown tenant or address, locked account) — the caller
    answers the same either way. Behind the login throttle (account key: tenant and address; per
    client address); every request counts as an attempt and none is taken back, so an address
    cannot be flooded with mails and the throttle tells nothing about which accounts exist."""
    policy = policy or throttle.DEFAULT_POLICY
    email = email.strip().lower()
    _reserve(db, f"portal-link:{tenant_slug}:{email}", address, now, policy)
    with db.transaction() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
        if tenant is None:
            return None
        account = session.scalar(
            select(PortalAccount).where(PortalAccount.tenant_id == tenant.id, PortalAccount.email == email)
        )
        if account is None or account.locked_at is not None:
            details = {"account_id": account.id if account else None, "sent": False}
            details["reason"] = "locked" if account else "no such account"
            audit(session, tenant.id, "portal:anonymous", "portal.login_link", details)
            return None
        token = secrets.token_urlsafe(32)
        account.link_hash, account.link_expires_at = _hash(token), now + LINK_VALID
        audit(session, tenant.id, "portal:anonymous", "portal.login_link", {"account_id": account.id, "sent": True})
        url = invite_url(session, tenant.id, token, kind="login")
        return LinkMail(tenant.id, account.id, account.email, account.language, url)


def send_login_link(db, mail: LinkMail) -> None:
    """Send the login-link e-mail through the tenant's SMTP server. It runs after the answer, so a
    failure cannot be shown to the asker (that would tell the account exists): it is audited
    (`portal.login_link_failed`, visible to the operator) and the occupant may ask again."""
    de = mail.language == "de"
    minutes = int(LINK_VALID.total_seconds() // 60)
    with db.session() as session:
        settings = settings_of(session, mail.tenant_id)
    try:
        _send(
            settings,
            mail.to,
            "Ihr Anmeldelink für das Kundenportal" if de else "Your login link for the customer portal",
            (
                f"Guten Tag,\n\nmit diesem Link melden Sie sich im Kundenportal an ({minutes} Minuten gültig, "
                f"einmal verwendbar):\n{mail.url}\n\nIm Profil können Sie danach ein neues Passwort festlegen.\n"
                "Haben Sie keinen Link angefordert, können Sie diese E-Mail ignorieren.\n"
            )
            if de
            else (
                f"Hello,\n\nlog in to the customer portal with this link (valid {minutes} minutes, once):\n"
                f"{mail.url}\n\nIn your profile you can then set a new password.\n"
                "If you did not ask for a link, you can ignore this e-mail.\n"
            ),
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        with db.transaction() as session:
            audit(
                session,
                mail.tenant_id,
                "system",
                "portal.login_link_failed",
                {"account_id": mail.account_id, "error": str(exc)[:500]},
            )


_BAD_LINK = NotFound(
    "this login link is unknown, used or expired; please ask for a new one",
    german="Dieser Anmeldelink ist unbekannt, schon benutzt oder abgelaufen; bitte fordern Sie einen neuen an.",
)


def attempt_link_login(db, token: str, *, address: str, now: datetime, policy=None) -> tuple[dict, str]:
    """Log in with an e-mail login link (it is used up) behind the login throttle (guessing links
    is throttled per client address; each link is its own account key). The session is marked
    `via_link`. -> (profile, session token)"""
    policy = policy or throttle.DEFAULT_POLICY
    reservation = _reserve(db, f"portal-link-login:{_hash(token or '')[:16]}", address, now, policy)
    with db.transaction() as session:
        account = session.scalar(select(PortalAccount).where(PortalAccount.link_hash == _hash(token or "")))
        if (
            account is None
            or account.link_expires_at is None
            or account.link_expires_at < now
            or account.locked_at is not None
        ):
            raise _BAD_LINK
        # used up with a compare-and-set: of two requests with the same link only one logs in
        used = session.execute(  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
            update(PortalAccount)
            .where(PortalAccount.id == account.id, PortalAccount.link_hash == account.link_hash)
            .values(link_hash=None, link_expires_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if used != 1:
            raise _BAD_LINK
        session.refresh(account)
        session_token = new_session(session, account, now, via_link=True)
        throttle.succeeded(session, reservation, now)
        audit(session, account.tenant_id, f"portal:{account.id}", "portal.link_login", {"account_id": account.id})
        return profile(session, account), session_token


def change_password(
    db, cookie: str | None, current: str | None, new: str, *, address: str, now: datetime, policy=None
) -> None:
    """Set a new password in the profile. A session opened with an e-mail login link needs no
    current password (the occupant proved the mailbox — the way back after a forgotten password);
    any other session must give the current one, checked behind the same throttle counters as the
    password login (a stolen session cookie cannot guess it faster). The account's other sessions
    end and an outstanding login link is void. Audited."""
    _check_password(new)
    policy = policy or throttle.DEFAULT_POLICY
    with db.session() as session:
        account, row = session_of(session, cookie, now)
        account_id, session_id, via_link, old_hash = account.id, row.id, row.via_link, account.password_hash
        slug = session.get(Tenant, account.tenant_id).slug  # type: ignore[union-attr]
        key = f"portal:{slug}:{account.email}"
    reservation = None
    if not via_link:
        reservation = _reserve(db, key, address, now, policy)
        if not current or not old_hash or not verify_password(old_hash, current):
            raise Unauthorized("the current password is wrong", german="Das bisherige Passwort ist falsch.")
    with db.transaction() as session:
        account = session.get(PortalAccount, account_id)
        assert account is not None
        account.password_hash = hash_password(new)
        account.link_hash, account.link_expires_at = None, None
        session.execute(
            delete(PortalSession).where(PortalSession.account_id == account_id, PortalSession.id != session_id)
        )
        if reservation is not None:
            throttle.succeeded(session, reservation, now)
        audit(
            session,
            account.tenant_id,
            f"portal:{account_id}",
            "portal.password",
            {"account_id": account_id, "via_link": via_link},
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(
            f"password: at least {MIN_PASSWORD} characters",
            german=f"Passwort: mindestens {MIN_PASSWORD} Zeichen",
        )


def check_login(session: Session, tenant_slug: str, email: str, password: str) -> PortalAccount:
    """The account for a correct e-mail and password, else Unauthorized — the same answer (and the
    same work) for an unknown address, a wrong password and a locked account."""
    tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
    account = None
    if tenant is not None:
        account = session.scalar(
            select(PortalAccount).where(
                PortalAccount.tenant_id == tenant.id, PortalAccount.email == email.strip().lower()
            )
        )
    if account is None or account.locked_at is not None or not account.password_hash:
        hash_password(password)  # the same work as a real check: no timing hint which addresses exist
        raise _BAD_LOGIN
    if not verify_password(account.password_hash, password):
        raise _BAD_LOGIN
    return account


def new_session(session: Session, account: PortalAccount, now: datetime, *, via_link: bool = False) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        PortalSession(
            account_id=account.id,
            token_hash=_hash(token),
            created_at=now,
            expires_at=now + SESSION_VALID,
            via_link=via_link,
        )
    )
    session.flush()
    return token


def session_of(session: Session, token: str | None, now: datetime) -> tuple[PortalAccount, PortalSession]:
    """The logged-in account and its session row, else Unauthorized."""
    if not token:
        raise Unauthorized("not logged in", german="Sie sind nicht angemeldet.")
    row = session.scalar(select(PortalSession).where(PortalSession.token_hash == _hash(token)))
    account = session.get(PortalAccount, row.account_id) if row is not None and row.expires_at > now else None
    if row is None or account is None or account.locked_at is not None:
        raise Unauthorized("session expired, please log in again", german="Bitte melden Sie sich neu an.")
    return account, row


def account_of(session: Session, token: str | None, now: datetime) -> PortalAccount:
    return session_of(session, token, now)[0]


def logout(session: Session, token: str | None) -> None:
    if token:
        row = session.scalar(select(PortalSession).where(PortalSession.token_hash == _hash(token)))
        if row is not None:
            session.delete(row)


def log_read(session: Session, account: PortalAccount, what: str, now: datetime) -> None:
    session.add(PortalRead(tenant_id=account.tenant_id, account_id=account.id, what=what[:200], at=now))


def own_records(session: Session, account: PortalAccount) -> list[CustomerRecord]:
    """The account's occupant's records, newest month first (records exist only for the occupant's
    stays, and each shows only the stay's months)."""
    return list(
        session.scalars(
            select(CustomerRecord)
            .where(CustomerRecord.tenant_id == account.tenant_id, CustomerRecord.occupant_id == account.occupant_id)
            .order_by(CustomerRecord.month.desc(), CustomerRecord.day_from.desc())
        )
    )


def own_record(session: Session, account: PortalAccount, month: str) -> CustomerRecord:
    """The occupant's record of `month`; another's, or a month outside the stay: not found."""
    row = session.scalar(
        select(CustomerRecord)
        .where(
            CustomerRecord.tenant_id == account.tenant_id,
            CustomerRecord.occupant_id == account.occupant_id,
            CustomerRecord.month == month,
        )
        .order_by(CustomerRecord.day_from.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound(f"no information for {month}", german=f"Für {month} gibt es keine Information.")
    return row


def profile(session: Session, account: PortalAccount) -> dict:
    occupant = session.get(Occupant, account.occupant_id)
    assert occupant is not None
    return {
        "name": occupant.name,
        "email": account.email,
        "language": account.language,
        "channel": occupant.channel,
        "has_password": bool(account.password_hash),
    }


def update_profile(session: Session, account: PortalAccount, changes: dict, now: datetime) -> dict:
    """E-mail (validated; also the login), language, and the channel preference (`email`, `portal`,
    `post`), kept on the occupant for the next month's delivery. Audited with the field names."""
    occupant = session.get(Occupant, account.occupant_id)
    assert occupant is not None
    if "email" in changes:
        email = check_email(changes["email"]).lower()
        clash = session.scalar(
            select(PortalAccount.id).where(
                PortalAccount.tenant_id == account.tenant_id,
                PortalAccount.email == email,
                PortalAccount.id != account.id,
            )
        )
        if clash is not None:
            raise Conflict("this e-mail address is taken", german="Diese E-Mail-Adresse ist schon vergeben.")
        account.email = occupant.email = email
    if "language" in changes:
        account.language = occupant.language = changes["language"]
    if "channel" in changes:
        occupant.channel = changes["channel"]
    audit(session, account.tenant_id, f"portal:{account.id}", "portal.profile", {"changed": sorted(changes)})
    return profile(session, account)


def _moved_out(session: Session, occupant_id: int):
    """The day the occupant left their last unit, or None while they live in one (or never did)."""
    stays = session.scalars(select(Occupancy).where(Occupancy.occupant_id == occupant_id)).all()
    if not stays or any(s.moved_out is None for s in stays):
        return None
    return max(s.moved_out for s in stays if s.moved_out is not None)


def lock_moved_out(session: Session, tenant_id: int, now: datetime, *, days: int, actor: str = "system") -> int:
    """Lock the portal accounts of occupants who moved out of every unit more than `days` ago
    (HeizkostenV §6b: their data serve no information duty any more). -> how many were locked."""
    today = now.date()
    locked = 0
    for account in session.scalars(
        select(PortalAccount).where(PortalAccount.tenant_id == tenant_id, PortalAccount.locked_at.is_(None))
    ):
        left = _moved_out(session, account.occupant_id)
        if left is not None and (today - left).days > days:
            account.locked_at = now
            session.execute(delete(PortalSession).where(PortalSession.account_id == account.id))
            locked += 1
            audit(
                session,
                tenant_id,
                actor,
                "portal.lock",
                {"account_id": account.id, "reason": "moved out", "moved_out": left.isoformat()},
            )
    return locked


def remove_moved_out(session: Session, tenant_id: int, now: datetime, *, days: int, actor: str = "system") -> int:
    """Remove the portal accounts of occupants who moved out of every unit more than `days` ago: the
    account (e-mail, password hash), its sessions and its read log are deleted; the audit log keeps
    that it happened (account, occupant, move-out, how many reads). The occupant's master data and
    records stay (billing evidence). -> how many were removed."""
    today = now.date()
    removed = 0
    for account in list(session.scalars(select(PortalAccount).where(PortalAccount.tenant_id == tenant_id))):
        left = _moved_out(session, account.occupant_id)
        if left is None or (today - left).days <= days:
            continue
        reads = session.scalar(select(func.count()).select_from(PortalRead).where(PortalRead.account_id == account.id))
        session.execute(delete(PortalRead).where(PortalRead.account_id == account.id))
        session.execute(delete(PortalSession).where(PortalSession.account_id == account.id))
        audit(
            session,
            tenant_id,
            actor,
            "portal.remove",
            {
                "account_id": account.id,
                "occupant_id": account.occupant_id,
                "moved_out": left.isoformat(),
                "reads_removed": reads,
            },
        )
        session.delete(account)
        removed += 1
    session.flush()
    return removed


def portal_privacy(db, now: datetime, *, actor: str = "system") -> dict:
    """Every tenant's portal accounts after move-out: locked after `lock_after_days`, removed after
    `remove_after_days` (tenant settings). Run daily by `omshub serve` (maintenance task
    `portal_accounts`) and by `omshub admin maintenance --task portal_accounts`. -> per tenant id counts"""
    out: dict = {}
    with db.session() as session:
        tenants = list(session.scalars(select(PortalAccount.tenant_id).distinct()))
    for tenant_id in tenants:
        with db.transaction() as session:
            settings = settings_of(session, tenant_id)
            locked = lock_moved_out(session, tenant_id, now, days=int(settings["lock_after_days"]), actor=actor)
            removed = remove_moved_out(session, tenant_id, now, days=int(settings["remove_after_days"]), actor=actor)
        if locked or removed:
            out[tenant_id] = {"locked": locked, "removed": removed}
    return out
