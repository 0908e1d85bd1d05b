"""Request dependencies: who is asking (bearer token or the console's session cookie -> Principal)
and whether their role suffices.

The console logs in for a cookie session (docs/security.md, "Console sessions"): the session token
in an HttpOnly, Secure, SameSite=Strict cookie that only `/api/` sees, and a CSRF token derived from
it in a cookie the page can read; a request that changes something and comes with the session cookie
must repeat that token in the `X-CSRF-Token` header (a page of another site can neither read the
cookie nor set the header). A cookie session ends after `session_idle_s` without a request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import Depends, Request
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from omshub.cloud.domain.errors import Forbidden, Unauthorized
from omshub.cloud.domain.language import ROLE_DE
from omshub.cloud.services.accounts import RANK, Principal, authenticate_token, check_role, utcnow
from omshub.cloud.store.models import ApiToken

# last_used_at is refreshed at most this often, so reads do not turn into writes
_TOUCH_INTERVAL = timedelta(minutes=5)
SESSION_COOKIE = "omshub_session"
CSRF_COOKIE = "omshub_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The CSRF token of a cookie session: bound to it, and telling nothing about it."""
    return hashlib.sha256(b"omshub-csrf:" + session_token.encode()).hexdigest()


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def request_token(request: Request) -> str | None:
    """The credential of a request: its bearer token, else the console's session cookie."""
    return bearer_token(request) or session_cookie(request)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def current_principal(request: Request) -> Principal:
    """Bearer session token or API token -> Principal; 401 otherwise."""
    token = bearer_token(request)
    via_cookie = token is None and session_cookie(request) is not None
    token = token or session_cookie(request)
    if token is None:
        raise Unauthorized(
            "missing bearer token (Authorization: Bearer <token>)",
            german="Sie sind nicht angemeldet. Bitte melden Sie sich an.",
        )
    db = request.app.state.db
    now = utcnow()
    with db.session() as session:
        found = authenticate_token(session, token, now)
    if found is None:
        raise Unauthorized(
            "invalid, expired or revoked token",
            german="Ihre Anmeldung ist abgelaufen oder wurde beendet. Bitte melden Sie sich neu an.",
        )
    principal, row = found
    touch = _TOUCH_INTERVAL
    if via_cookie:
        touch = _check_cookie_session(request, token, row, now)
    if row.last_used_at is None or now - row.last_used_at > touch:
        _touch(db, row.id, now)
    request.state.principal = principal
    return principal


def _check_cookie_session(request: Request, token: str, row, now: datetime) -> timedelta:
    """Refuses a cookie that is no login session, one idle too long, and a change without the
    CSRF token; the interval at which its last use is recorded (a fraction of the idle timeout)."""
    idle = timedelta(seconds=request.app.state.settings.session_idle_s)
    if row.kind != "session" or (row.last_used_at is not None and now - row.last_used_at > idle):
        raise Unauthorized(
            "the console session has ended (unused for too long); log in again",
            german="Ihre Sitzung wurde nach längerer Pause beendet. Bitte melden Sie sich neu an.",
        )
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            raise Forbidden(
                "the request lacks the console's CSRF token (header X-CSRF-Token); reload the page",
                code="csrf_failed",
                german="Die Anfrage kam nicht von dieser Konsole. Bitte laden Sie die Seite neu.",
            )
    return min(_TOUCH_INTERVAL, idle / 4)


def _touch(db, token_id: int, now: datetime) -> None:
    try:
        with db.transaction() as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    except OperationalError:  # bookkeeping only; never fail a request over it
        pass


def require_role(*roles: str) -> Callable[..., Principal]:
    """Dependency factory: the principal if its role is at least the lowest of `roles`
    (viewer < operator < admin), else 403."""
    for role in roles:
        check_role(role)
    lowest = min(roles, key=RANK.__getitem__) if roles else "viewer"

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.at_least(lowest):
            raise Forbidden(
                f"this needs the {lowest} role or higher (you are {principal.role})",
                german=f"Dafür brauchen Sie mindestens die Rolle {ROLE_DE[lowest]}; Sie haben die Rolle "
                f"{ROLE_DE.get(principal.role, principal.role)}.",
            )
        return principal

    return dependency
