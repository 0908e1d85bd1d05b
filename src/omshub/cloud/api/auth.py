"""Login, the caller's identity, API tokens and the tenant's users."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from omshub.cloud.api.common import DbSession, Id, Limit, Text, Time, iso, page, paginate
from omshub.cloud.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_token,
    current_principal,
    request_token,
    require_role,
)
from omshub.cloud.domain.errors import Forbidden, Unauthorized
from omshub.cloud.domain.language import tenant_default
from omshub.cloud.services import accounts
from omshub.cloud.services.accounts import Principal, attempt_login, create_api_token, lower_role, revoke_token, utcnow
from omshub.cloud.store.models import ApiToken, Tenant, User

router = APIRouter(prefix="/api/v1", tags=["auth"])


class LoginBody(BaseModel):
    username: Text = Field(max_length=200)
    password: Text = Field(max_length=1024)
    cookie: bool = Field(
        False, description="true: a cookie session for the console (no token in the answer; docs/security.md)"
    )


class TokenBody(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    role: str = "viewer"
    expires_at: Time | None = None


class UserBody(BaseModel):
    username: Text = Field(min_length=1, max_length=200)
    password: Text = Field(max_length=1024)
    role: str = "viewer"


class UserPatch(BaseModel):
    role: str | None = None
    password: Text | None = Field(None, max_length=1024)
    disabled: bool | None = None


def _user_json(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "language": user.language,
        "disabled": user.disabled,
        "created_at": iso(user.created_at),
    }


def _token_json(row: ApiToken, owner: User | None, now: datetime) -> dict:
    """A token as admins see it (never the token itself): whose it is, the role it was given and
    the role it has now (capped at its owner's), and whether it works now."""
    owner_json, effective, works = None, row.role, row.user_id is None
    if owner is not None:  # as authenticate_token: a session has its user's role, a token at most that
        owner_json = {"id": owner.id, "username": owner.username, "role": owner.role, "disabled": owner.disabled}
        effective = owner.role if row.kind == "session" else lower_role(row.role, owner.role)
        works = not owner.disabled
    active = works and not row.revoked and (row.expires_at is None or row.expires_at > now)
    return {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "service": row.user_id is None,
        "owner": owner_json,
        "role": row.role,
        "effective_role": effective,
        "active": active,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
        "revoked": row.revoked,
    }


@router.post("/auth/login", responses={429: {"description": "too many failed logins (see Retry-After)"}})
def post_login(login: LoginBody, request: Request):
    """Username + password -> a bearer session token (expires after the configured session TTL).
    Failed logins are throttled per account, per client address and per pair of both: 429 with
    Retry-After (README, "Logins and tokens")."""
    clock = getattr(request.app.state, "clock", utcnow)  # tests set a fixed one
    address = request.client.host if request.client else "unknown"
    # LoginThrottled: 429 with Retry-After (api/errors.py)
    user, row, token, tenant = attempt_login(
        request.app.state.db,
        login.username,
        login.password,
        address=address,
        ttl_s=request.app.state.settings.session_ttl_s,
        now=clock(),
    )
    body = {
        "token": token,
        "token_type": "bearer",
        "expires_at": iso(row.expires_at),
        "role": user.role,
        "username": user.username,
        "language": user.language,
        "tenant": tenant,
    }
    if not login.cookie:
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
    # a console login: the session token only in a cookie the page cannot read, sent only to the
    # API; the CSRF token bound to it for the page (cloud/api/deps.py)
    body.update(token=None, token_type="cookie", csrf_token=csrf_token(token))
    response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    settings = request.app.state.settings
    ttl, secure = settings.session_ttl_s, settings.cookie_secure
    response.set_cookie(
        SESSION_COOKIE, token, max_age=ttl, path="/api/", secure=secure, httponly=True, samesite="strict"
    )
    response.set_cookie(CSRF_COOKIE, csrf_token(token), max_age=ttl, path="/", secure=secure, samesite="strict")
    return response


@router.post("/auth/logout", status_code=204)
def post_logout(request: Request, session: DbSession, principal: Principal = Depends(current_principal)) -> Response:
    """Revoke the bearer token or the console session of this request (its cookies are cleared)."""
    revoke_token(session, principal.tenant_id, request_token(request) or "")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/api/", secure=request.app.state.settings.cookie_secure)
    response.delete_cookie(CSRF_COOKIE, path="/", secure=request.app.state.settings.cookie_secure)
    return response


class MePatch(BaseModel):
    language: str | None = Field(description='"de", "en", or null to follow the browser and the tenant')


def _me_json(session, principal: Principal, language: str | None) -> dict:
    tenant = session.get_one(Tenant, principal.tenant_id)
    return {
        "name": principal.name,
        "role": principal.role,
        "user_id": principal.user_id,
        "language": language,
        "tenant_language": tenant_default(tenant.timezone),
        "tenant": {"id": tenant.id, "slug": tenant.slug, "name": tenant.name},
    }


@router.get("/auth/me")
def get_me(session: DbSession, principal: Principal = Depends(current_principal)) -> dict:
    """Who is asking; `language`: their own choice (null: none), `tenant_language`: the tenant's
    default (German for a tenant in a German-speaking zone)."""
    return _me_json(session, principal, principal.language)


@router.get("/auth/session")
def get_session(request: Request, session: DbSession) -> dict:
    """Whether this request comes with a valid login (bearer or console cookie) — 200 either way, so
    a console opened in a new tab learns whether it is logged in without a refusal in its log."""
    try:
        principal = current_principal(request)
    except Unauthorized:
        return {"active": False}
    return {"active": True, **_me_json(session, principal, principal.language)}


@router.patch("/auth/me")
def patch_me(body: MePatch, session: DbSession, principal: Principal = Depends(current_principal)) -> dict:
    """Choose your own language for the console and the API's messages."""
    if principal.user_id is None:
        raise Forbidden(
            "a service token has no user to keep a language for; send Accept-Language instead",
            german="Ein Dienst-Token gehört keinem Benutzer; senden Sie die Sprache mit Accept-Language.",
        )
    user = accounts.set_language(session, principal.tenant_id, principal.user_id, body.language)
    return _me_json(session, principal, user.language)


# --- API tokens (admin) ---


@router.post("/tokens", status_code=201)
def post_token(
    body: TokenBody, session: DbSession, response: Response, principal: Principal = Depends(require_role("admin"))
) -> dict:
    """A long-lived API token (e.g. for a billing system). The token is in this response only.
    It belongs to the user behind this request: it works only while they are enabled and never with
    more than their current role. Created with a service token (no user behind it), it is a service
    token of the tenant too, like those of `omshub admin create-token`."""
    now = utcnow()
    row, token = create_api_token(
        session,
        principal.tenant_id,
        body.name,
        body.role,
        expires_at=body.expires_at,
        actor=principal.name,
        owner_id=principal.user_id,
        now=now,
    )
    response.headers["Cache-Control"] = "no-store"
    owner = session.get(User, principal.user_id) if principal.user_id is not None else None
    return {**_token_json(row, owner, now), "token": token}


@router.get("/tokens")
def list_tokens(
    session: DbSession,
    principal: Principal = Depends(require_role("admin")),
    kind: str = Query("api", pattern="^(api|session|all)$"),
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    """The tenant's tokens, never the tokens themselves: API tokens (default; each user's and the
    service tokens), login sessions (`kind=session`) or both (`kind=all`), with owner, role as
    given, effective role now, created and last used."""
    stmt = select(ApiToken).where(ApiToken.tenant_id == principal.tenant_id)
    if kind != "all":
        stmt = stmt.where(ApiToken.kind == kind)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=ApiToken.id)
    owner_ids = {r.user_id for r in rows if r.user_id is not None}
    owners = (
        {
            u.id: u
            for u in session.scalars(select(User).where(User.tenant_id == principal.tenant_id, User.id.in_(owner_ids)))
        }
        if owner_ids
        else {}
    )
    now = utcnow()
    return page([_token_json(r, owners.get(r.user_id), now) for r in rows], nxt)


@router.delete("/tokens/{token_id}", status_code=204)
def delete_token(token_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> None:
    """Revoke a token of the tenant (an API token of any owner, a service token or a session)."""
    accounts.revoke_token_id(session, principal.tenant_id, token_id, actor=principal.name)


# --- users (admin) ---


@router.get("/users")
def list_users(
    session: DbSession,
    principal: Principal = Depends(require_role("admin")),
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = select(User).where(User.tenant_id == principal.tenant_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=User.id)
    return page([_user_json(u) for u in rows], nxt)


@router.post("/users", status_code=201)
def post_user(body: UserBody, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> dict:
    return _user_json(
        accounts.add_user(session, principal.tenant_id, body.username, body.password, body.role, actor=principal.name)
    )


@router.get("/users/{user_id}")
def get_user(user_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> dict:
    return _user_json(accounts.tenant_user(session, principal.tenant_id, user_id))


@router.patch("/users/{user_id}")
def patch_user(
    user_id: Id, body: UserPatch, session: DbSession, principal: Principal = Depends(require_role("admin"))
) -> dict:
    return _user_json(
        accounts.change_user(
            session,
            principal.tenant_id,
            user_id,
            role=body.role,
            password=body.password,
            disabled=body.disabled,
            actor=principal.name,
        )
    )


@router.delete("/users/{user_id}", status_code=204)
def delete_user(user_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> None:
    """Disables the user (rows referencing users stay valid) and ends their sessions and API tokens."""
    accounts.disable_user(session, principal.tenant_id, user_id, actor=principal.name)
