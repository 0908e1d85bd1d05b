"""Request dependencies: who is asking (bearer token -> Principal) and whether their role suffices."""

from __future__ import annotations

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
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_INTERVAL:
        _touch(db, row.id, now)
    request.state.principal = principal
    return principal


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
