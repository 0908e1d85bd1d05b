"""Authentication and roles: tenants, users (argon2 passwords), bearer tokens.

Two kinds of bearer token live in `api_tokens`: login sessions (expiring, carry the user's current
role) and long-lived API tokens (for billing systems). An API token created through the API
belongs to the user who created it (`user_id`): it works only while that user is enabled and never
with more than that user's current role. One created with `omshub admin create-token` has no
owner: a service token of the tenant, with its fixed role, until revoked. Only SHA-256 hashes of
tokens and gateway credentials are stored — they are random, so a fast hash is enough and keeps
the uplink hot path cheap; passwords, chosen by people, get argon2.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from omshub.cloud.domain.language import LANGUAGES, check_language
from omshub.cloud.domain.tokens import hash_secret, new_secret
from omshub.cloud.services import login_throttle as throttle
from omshub.cloud.services.time_zones import TimeInputError, check_zone
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import DEFAULT_ZONE, ApiToken, Tenant, User
from omshub.times import iso, utcnow

ROLES = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")
MAX_PASSWORD = 1024
MIN_PASSWORD = 8

# OWASP's argon2id baseline (19 MiB, 2 passes): strong, yet a login costs tens of ms, not a
# second of CPU (the library default) that would make the login endpoint a DoS lever
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    user_id: int | None
    role: str
    name: str
    language: str | None = None  # the user's chosen language ("de" | "en"), None: not chosen

    def at_least(self, role: str) -> bool:
        return RANK.get(self.role, -1) >= RANK[role]


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def lower_role(a: str, b: str) -> str:
    return a if RANK.get(a, -1) <= RANK.get(b, -1) else b


def check_role(role: str) -> str:
    if role not in RANK:
        raise Invalid(
            f"role must be one of {', '.join(ROLES)}, not {role!r}",
            code="invalid_role",
            field="role",
            german="Die Rolle muss Betrachter (viewer), Bearbeiter (operator) oder Administrator (admin) sein.",
        )
    return role


def check_password(password: str) -> str:
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise Invalid(
            f"password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            code="invalid_password",
            field="password",
            german=f"Das Passwort muss {MIN_PASSWORD} bis {MAX_PASSWORD} Zeichen lang sein.",
        )
    return password


# --- tenants, users, tokens (used by the API and the `omshub admin` CLI) ---


def create_tenant(
    session: Session, slug: str, name: str, *, timezone: str | None = None, meter_timezone: str | None = None
) -> Tenant:
    """A new tenant; its local time zone and its meters' time zone are Europe/Berlin unless given."""
    if not SLUG_RE.match(slug or ""):
        raise Invalid(
            f"tenant slug {slug!r} must be 1-64 of a-z 0-9 _ - (starting a-z/0-9)",
            code="invalid_slug",
            german="Das Kürzel des Mandanten darf nur Kleinbuchstaben, Ziffern, _ und - enthalten "
            "(1 bis 64 Zeichen, am Anfang ein Buchstabe oder eine Ziffer).",
        )
    try:
        local = check_zone(timezone or DEFAULT_ZONE, "timezone")
        meters = check_zone(meter_timezone or DEFAULT_ZONE, "meter_timezone")
    except TimeInputError as exc:
        raise Invalid(str(exc), code=exc.code) from None
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Conflict(f"tenant {slug!r} already exists", code="exists", german=f"Den Mandanten {slug} gibt es schon.")
    tenant = Tenant(slug=slug, name=(name or slug)[:200], created_at=utcnow(), timezone=local, meter_timezone=meters)
    session.add(tenant)
    session.flush()
    return tenant


def tenant_by_slug(session: Session, slug: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"tenant {slug!r} not found", german=f"Den Mandanten {slug} gibt es nicht.")
    return tenant


def create_user(session: Session, tenant_id: int, username: str, password: str, role: str) -> User:
    if not USERNAME_RE.match(username or ""):
        raise Invalid(
            f"username {username!r} must be 1-200 of A-Z a-z 0-9 . _ @ + -",
            code="invalid_username",
            field="username",
            german="Der Benutzername darf nur Buchstaben ohne Umlaute, Ziffern und . _ @ + - enthalten "
            "(1 bis 200 Zeichen).",
        )
    check_role(role)
    check_password(password)
    # Usernames are login names, unique across the head-end (the login names no tenant), so a
    # clash may be in another tenant: the answer is the same either way and says nothing about where.
    unavailable = Conflict(
        f"username {username!r} is not available; choose another (login names are unique across the whole head-end)",
        code="username_unavailable",
    )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise unavailable
    user = User(
        tenant_id=tenant_id,
        username=username,
        password_hash=hash_password(password),
        role=role,
        disabled=False,
        created_at=utcnow(),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # created concurrently: the same answer (the caller's transaction rolls back)
        raise unavailable from None
    return user


def add_user(session: Session, tenant_id: int, username: str, password: str, role: str, *, actor: str) -> User:
    """`create_user`, audited."""
    user = create_user(session, tenant_id, username, password, role)
    audit(session, tenant_id, actor, "user.create", {"user_id": user.id, "role": user.role})
    return user


def create_api_token(
    session: Session,
    tenant_id: int,
    name: str,
    role: str,
    *,
    expires_at: datetime | None = None,
    actor: str = "",
    owner_id: int | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A long-lived API token; returns (row, token) — the token is shown once, only its hash is kept.
    `owner_id`: the user it belongs to (works while they are enabled, capped at their role);
    None makes a service token of the tenant (the CLI's)."""
    check_role(role)
    if not name or len(name) > 200:
        raise Invalid(
            "token name must have 1 to 200 characters",
            code="invalid_name",
            field="name",
            german="Der Name des Tokens muss 1 bis 200 Zeichen lang sein.",
        )
    if owner_id is not None:
        owner = session.scalar(select(User).where(User.id == owner_id, User.tenant_id == tenant_id))
        if owner is None or owner.disabled:
            raise Forbidden(
                "a token can only belong to an enabled user of its tenant",
                german="Ein Token kann nur einem aktiven Benutzer des Mandanten gehören.",
            )
        if lower_role(role, owner.role) != role:
            raise Forbidden(
                f"a token cannot have a higher role ({role}) than its owner ({owner.role})",
                german="Ein Token kann keine höhere Rolle haben als sein Besitzer.",
            )
    token = "omh_" + new_secret()
    row = ApiToken(
        tenant_id=tenant_id,
        user_id=owner_id,
        kind="api",
        name=name,
        role=role,
        token_hash=hash_secret(token),
        created_at=now or utcnow(),
        expires_at=expires_at,
        revoked=False,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        tenant_id,
        actor or "system",
        "token.create",
        {"token_id": row.id, "name": name, "role": role, "owner_id": owner_id},
    )
    return row, token


def end_user_tokens(session: Session, user_id: int) -> int:
    """Revoke every session and API token of a user (they are disabled). -> how many."""
    return session.execute(  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
        update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False)).values(revoked=True)
    ).rowcount


def tenant_user(session: Session, tenant_id: int, user_id: int) -> User:
    """The tenant's user `user_id`, else NotFound."""
    user = session.scalar(select(User).where(User.id == user_id, User.tenant_id == tenant_id))
    if user is None:
        raise NotFound(f"user {user_id} not found", german=f"Den Benutzer {user_id} gibt es nicht.")
    return user


def set_language(session: Session, tenant_id: int, user_id: int, language: str | None) -> User:
    """The user's own language ("de" | "en"; None: follow the browser and the tenant)."""
    try:
        check_language(language)
    except ValueError:
        raise Invalid(
            f"language must be one of {', '.join(LANGUAGES)} or null, not {language!r}",
            code="invalid_language",
            german="Die Sprache muss Deutsch (de) oder Englisch (en) sein.",
        ) from None
    user = tenant_user(session, tenant_id, user_id)
    user.language = language
    return user


def change_user(
    session: Session,
    tenant_id: int,
    user_id: int,
    *,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
    actor: str,
) -> User:
    """Change what is given (None: left as it is). Disabling ends the user's sessions and API
    tokens (enabling again does not revive them); a new password ends their sessions. Audited."""
    user = tenant_user(session, tenant_id, user_id)
    changes: dict = {}
    if role is not None:
        user.role = check_role(role)
        changes["role"] = role
    if password is not None:
        user.password_hash = hash_password(check_password(password))
        changes["password"] = "changed"
    if disabled is not None:
        user.disabled = disabled
        changes["disabled"] = disabled
    if disabled:
        changes["tokens_revoked"] = end_user_tokens(session, user.id)
    elif password is not None:  # API tokens stay
        session.execute(
            update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == "session").values(revoked=True)
        )
    audit(session, tenant_id, actor, "user.update", {"user_id": user.id, **changes})
    return user


def disable_user(session: Session, tenant_id: int, user_id: int, *, actor: str) -> User:
    """Disable the user (rows referencing users stay valid) and end their sessions and API tokens."""
    user = tenant_user(session, tenant_id, user_id)
    user.disabled = True
    revoked = end_user_tokens(session, user.id)
    audit(
        session, tenant_id, actor, "user.disable", {"user_id": user.id, "at": iso(utcnow()), "tokens_revoked": revoked}
    )
    return user


def revoke_token_id(session: Session, tenant_id: int, token_id: int, *, actor: str) -> None:
    """Revoke a token of the tenant (an API token of any owner, a service token or a session)."""
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == tenant_id))
    if row is None:
        raise NotFound(f"token {token_id} not found", german=f"Das Token {token_id} gibt es nicht.")
    row.revoked = True
    audit(
        session,
        tenant_id,
        actor,
        "token.revoke",
        {"token_id": token_id, "name": row.name, "kind": row.kind, "owner_id": row.user_id},
    )


def revoke_token(session: Session, tenant_id: int, token: str) -> None:
    """Revoke the token `token` of the tenant (a logout)."""
    session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == hash_secret(token), ApiToken.tenant_id == tenant_id)
        .values(revoked=True)
    )


def check_login(session: Session, username: str, password: str) -> User | None:
    """The enabled user with this username and password, else None (as slow for an unknown user)."""
    user = session.scalar(select(User).where(User.username == username))
    # verify even for unknown users so timing does not tell which usernames exist
    stored = user.password_hash if user is not None else _dummy_hash()
    ok = verify_password(stored, password)
    return user if user is not None and ok and not user.disabled else None


def new_session(session: Session, user: User, ttl_s: int, now: datetime) -> tuple[ApiToken, str]:
    """A login session of the user, expiring after `ttl_s`: (row, token shown once)."""
    token = "oms_" + new_secret()
    row = ApiToken(
        tenant_id=user.tenant_id,
        user_id=user.id,
        kind="session",
        name="login",
        role=user.role,
        token_hash=hash_secret(token),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        revoked=False,
    )
    session.add(row)
    session.flush()
    return row, token


def attempt_login(
    db, username: str, password: str, *, address: str, ttl_s: int, now: datetime, policy=None
) -> tuple[User, ApiToken, str, str]:
    """A session token for a correct username + password, behind the login throttle
    (cloud/services/login_throttle.py) -> (user, session row, token, tenant slug). LoginThrottled before the
    password is checked when a counter of the account, the client address or the pair is closed;
    Unauthorized for a wrong username or password, the same for an unknown user (the attempt stays
    counted as a failure)."""
    policy = policy or throttle.DEFAULT_POLICY
    for _ in range(5):
        try:  # committed before the password is checked, so parallel attempts see it
            with db.transaction() as session:
                reservation = throttle.reserve(session, username, address, now, policy)
            break
        except throttle.Contended:
            continue
    else:
        raise throttle.LoginThrottled(1)
    with db.session() as session:  # a read: no (SQLite) write lock is held while argon2 works
        user = check_login(session, username, password)
    if user is None:
        raise Unauthorized("wrong username or password", german="Benutzername oder Passwort ist falsch.")
    with db.transaction() as session:
        row, token = new_session(session, user, ttl_s, now)
        throttle.succeeded(session, reservation, now)
        slug = session.scalar(select(Tenant.slug).where(Tenant.id == user.tenant_id))
    return user, row, token, slug


_DUMMY: str | None = None


def _dummy_hash() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password(secrets.token_hex(16))
    return _DUMMY


def authenticate_token(session: Session, token: str, now: datetime | None = None) -> tuple[Principal, Any] | None:
    """(principal, token row) of a bearer token, or None when it is unknown, revoked, expired or its
    user disabled."""
    now = now or utcnow()
    row = session.execute(
        select(
            ApiToken.id,
            ApiToken.tenant_id,
            ApiToken.user_id,
            ApiToken.kind,
            ApiToken.name,
            ApiToken.role,
            ApiToken.expires_at,
            ApiToken.revoked,
            ApiToken.last_used_at,
        ).where(ApiToken.token_hash == hash_secret(token))
    ).first()
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now):
        return None
    role, name, language = row.role, f"token:{row.name}", None
    if row.user_id is not None:  # a session or a user's API token: only while the user is enabled
        user = session.execute(
            select(User.username, User.role, User.disabled, User.language).where(
                User.id == row.user_id, User.tenant_id == row.tenant_id
            )
        ).first()
        if user is None or user.disabled:
            return None
        language = user.language
        if row.kind == "session":  # a session follows the user's current role
            role, name = user.role, user.username
        else:  # an API token keeps its role, but never above its owner's current one
            role, name = lower_role(row.role, user.role), f"token:{row.name} of {user.username}"
    return Principal(tenant_id=row.tenant_id, user_id=row.user_id, role=role, name=name, language=language), row
