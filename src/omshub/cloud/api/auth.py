"""Login, the caller's identity, API tokens and the tenant's users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from ..auth import (Principal, audit, check_password, check_role, create_api_token, create_user, current_principal,
                    hash_password, login, require_role, utcnow)
from ..models import ApiToken, Tenant, User
from .common import DbSession, Id, Limit, Text, Time, iso, not_found, page, paginate

router = APIRouter(prefix="/api/v1", tags=["auth"])


class LoginBody(BaseModel):
    username: Text = Field(max_length=200)
    password: Text = Field(max_length=1024)


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
    return {"id": user.id, "username": user.username, "role": user.role, "disabled": user.disabled,
            "created_at": iso(user.created_at)}


def _token_json(row: ApiToken) -> dict:
    return {"id": row.id, "name": row.name, "role": row.role, "created_at": iso(row.created_at),
            "expires_at": iso(row.expires_at), "last_used_at": iso(row.last_used_at), "revoked": row.revoked}


@router.post("/auth/login")
def post_login(body: LoginBody, request: Request, session: DbSession) -> dict:
    """Username + password -> a bearer session token (expires after the configured session TTL)."""
    ttl = request.app.state.settings.session_ttl_s
    user, row, token = login(session, body.username, body.password, ttl)
    tenant = session.get(Tenant, user.tenant_id)
    return {"token": token, "token_type": "bearer", "expires_at": iso(row.expires_at), "role": user.role,
            "username": user.username, "tenant": tenant.slug}


@router.post("/auth/logout", status_code=204)
def post_logout(request: Request, session: DbSession, principal: Principal = Depends(current_principal)) -> None:
    """Revoke the bearer token of this request."""
    from ..auth import _bearer, hash_secret
    session.execute(update(ApiToken).where(ApiToken.token_hash == hash_secret(_bearer(request)),
                                           ApiToken.tenant_id == principal.tenant_id).values(revoked=True))


@router.get("/auth/me")
def get_me(session: DbSession, principal: Principal = Depends(current_principal)) -> dict:
    tenant = session.get(Tenant, principal.tenant_id)
    return {"name": principal.name, "role": principal.role, "user_id": principal.user_id,
            "tenant": {"id": tenant.id, "slug": tenant.slug, "name": tenant.name}}


# --- API tokens (admin) ---

@router.post("/tokens", status_code=201)
def post_token(body: TokenBody, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> dict:
    """A long-lived API token (e.g. for a billing system). The token is in this response only."""
    row, token = create_api_token(session, principal.tenant_id, body.name, body.role,
                                  expires_at=body.expires_at, actor=principal.name)
    return {**_token_json(row), "token": token}


@router.get("/tokens")
def list_tokens(session: DbSession, principal: Principal = Depends(require_role("admin")),
                cursor: str | None = None, limit: Limit = 100) -> dict:
    stmt = select(ApiToken).where(ApiToken.tenant_id == principal.tenant_id, ApiToken.kind == "api")
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=ApiToken.id)
    return page([_token_json(r) for r in rows], nxt)


@router.delete("/tokens/{token_id}", status_code=204)
def delete_token(token_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> None:
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == principal.tenant_id,
                                                ApiToken.kind == "api"))
    if row is None:
        raise not_found(f"token {token_id}")
    row.revoked = True
    audit(session, principal.tenant_id, principal.name, "token.revoke", {"token_id": token_id, "name": row.name})


# --- users (admin) ---

def _tenant_user(session, principal: Principal, user_id: int) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.tenant_id == principal.tenant_id))
    if user is None:
        raise not_found(f"user {user_id}")
    return user


@router.get("/users")
def list_users(session: DbSession, principal: Principal = Depends(require_role("admin")),
               cursor: str | None = None, limit: Limit = 100) -> dict:
    stmt = select(User).where(User.tenant_id == principal.tenant_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=User.id)
    return page([_user_json(u) for u in rows], nxt)


@router.post("/users", status_code=201)
def post_user(body: UserBody, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> dict:
    user = create_user(session, principal.tenant_id, body.username, body.password, body.role)
    audit(session, principal.tenant_id, principal.name, "user.create", {"user_id": user.id, "role": user.role})
    return _user_json(user)


@router.get("/users/{user_id}")
def get_user(user_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> dict:
    return _user_json(_tenant_user(session, principal, user_id))


@router.patch("/users/{user_id}")
def patch_user(user_id: Id, body: UserPatch, session: DbSession,
               principal: Principal = Depends(require_role("admin"))) -> dict:
    user = _tenant_user(session, principal, user_id)
    changes: dict = {}
    if body.role is not None:
        user.role = check_role(body.role)
        changes["role"] = body.role
    if body.password is not None:
        user.password_hash = hash_password(check_password(body.password))
        changes["password"] = "changed"
    if body.disabled is not None:
        user.disabled = body.disabled
        changes["disabled"] = body.disabled
    if body.disabled or body.password is not None:  # end the user's sessions
        session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == "session")
                        .values(revoked=True))
    audit(session, principal.tenant_id, principal.name, "user.update", {"user_id": user.id, **changes})
    return _user_json(user)


@router.delete("/users/{user_id}", status_code=204)
def delete_user(user_id: Id, session: DbSession, principal: Principal = Depends(require_role("admin"))) -> None:
    """Disables the user (rows referencing users stay valid) and ends their sessions."""
    user = _tenant_user(session, principal, user_id)
    user.disabled = True
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked=True))
    audit(session, principal.tenant_id, principal.name, "user.disable", {"user_id": user.id, "at": iso(utcnow())})
