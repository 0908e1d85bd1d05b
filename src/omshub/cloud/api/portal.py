"""The customer portal's JSON API (`/portal/api`), for occupants — separate from the operator API:
its own accounts and cookie session (HttpOnly, SameSite=Strict; a change needs the `X-Portal`
header, which another site cannot send), only the occupant's own records (another unit's or a
month outside the stay: 404), every read logged (HeizkostenV §6b). Operators invite occupants with
`POST /api/v1/customer-info/invitations`. Rules: services/customer_portal.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from omshub.cloud.api import customer_schemas as S
from omshub.cloud.api.common import Id, Text, WriteSession  # every portal read is logged: a write
from omshub.cloud.api.customers import Operator, ScopeIn, annual_response, pdf_response, record_json, scope_dict
from omshub.cloud.domain.errors import Forbidden, NotFound
from omshub.cloud.services import customer_consent as consent
from omshub.cloud.services import customer_portal as portal
from omshub.cloud.services.customer_annual_pdf import annual_letter, portal_stay, portal_years
from omshub.cloud.services.customer_records import check_month
from omshub.cloud.store.models_customers import PortalAccount
from omshub.times import utcnow

router = APIRouter(tags=["customer portal"])
COOKIE = "omshub_portal"


def _csrf(request: Request) -> None:
    if request.method not in ("GET", "HEAD") and request.headers.get("x-portal") != "1":
        raise Forbidden("missing X-Portal: 1 header", german="Anfrage ohne X-Portal-Kopfzeile abgelehnt.")


def current_account(request: Request, session: WriteSession) -> PortalAccount:
    _csrf(request)
    return portal.account_of(session, request.cookies.get(COOKIE), utcnow())


Account = Annotated[PortalAccount, Depends(current_account)]


def _set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(portal.SESSION_VALID.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/portal",
    )


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Text = Field(min_length=1, max_length=200)
    password: Text = Field(min_length=1, max_length=200)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: Text = Field(min_length=1, max_length=64)
    email: Text = Field(min_length=1, max_length=254)
    password: Text = Field(min_length=1, max_length=200)


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Text | None = Field(None, max_length=254)
    language: Literal["de", "en"] | None = None
    channel: Literal["email", "portal", "post"] | None = None


class ProfileOut(BaseModel):
    name: str
    email: str
    language: Literal["de", "en"]
    channel: str
    has_password: bool = Field(description="the account has a password (else only e-mail login links)")
    link_session: bool = Field(
        False, description="this session was opened with an e-mail login link: a new password needs no current one"
    )


class LinkRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: Text = Field(min_length=1, max_length=64)
    email: Text = Field(min_length=1, max_length=254)


class LinkRequestOut(BaseModel):
    valid_minutes: int = Field(description="how long a link sent is valid")
    message: str = Field(description="the same answer whether or not the account exists")
    german: str


class LinkLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Text = Field(min_length=1, max_length=200)


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Text | None = Field(None, max_length=200, description="not needed in a login-link session")
    new_password: Text = Field(min_length=1, max_length=200)


class MonthItem(BaseModel):
    month: str
    days: list[str]
    heat: S.Figure | None


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occupant_id: Id
    send: bool = Field(True, description="send the invitation e-mail (false: only return the link, e.g. for a letter)")


class InviteOut(BaseModel):
    account_id: int
    email: str
    invite_url: str = Field(description="the one-time link (valid 14 days)")
    sent: bool


@router.post("/api/v1/customer-info/invitations", response_model=InviteOut, tags=["customer information"])
def invite(body: InviteIn, principal: Operator, session: WriteSession) -> dict:
    """Invite an occupant to the customer portal (their e-mail address from the master data)."""
    account, token = portal.invite(session, principal.tenant_id, body.occupant_id, actor=principal.name, now=utcnow())
    url = portal.invite_url(session, principal.tenant_id, token)
    if body.send:
        portal.send_invitation(session, principal.tenant_id, account, url)
    return {"account_id": account.id, "email": account.email, "invite_url": url, "sent": body.send}


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many failed attempts from this address or for this account (Retry-After)"}
}


@router.post("/portal/api/accept", response_model=ProfileOut, responses=THROTTLED)
def accept(body: AcceptIn, request: Request, response: Response) -> dict:
    """Set the password with the invitation link; guessing links is throttled like console logins."""
    _csrf(request)
    profile, token = portal.attempt_accept(
        request.app.state.db, body.token, body.password, address=_address(request), now=utcnow()
    )
    _set_cookie(request, response, token)
    return profile


@router.post("/portal/api/login", response_model=ProfileOut, responses=THROTTLED)
def login(body: LoginIn, request: Request, response: Response) -> dict:
    """E-mail and password; failed logins are throttled like the console's (429 with Retry-After)."""
    _csrf(request)
    profile, token = portal.attempt_login(
        request.app.state.db, body.tenant, body.email, body.password, address=_address(request), now=utcnow()
    )
    _set_cookie(request, response, token)
    return profile


@router.post("/portal/api/login-link", status_code=202, response_model=LinkRequestOut, responses=THROTTLED)
def login_link(body: LinkRequestIn, request: Request, background: BackgroundTasks) -> dict:
    """Ask for a one-time e-mail login link (also the way back after a forgotten password). The
    answer is the same whether or not an active account has this address; the e-mail goes out after
    the answer. Throttled like the password login (429 with Retry-After)."""
    _csrf(request)
    db = request.app.state.db
    mail = portal.request_login_link(db, body.tenant, body.email, address=_address(request), now=utcnow())
    if mail is not None:
        background.add_task(portal.send_login_link, db, mail)
    minutes = int(portal.LINK_VALID.total_seconds() // 60)
    return {
        "valid_minutes": minutes,
        "message": f"If a portal account has this address, a login link (valid {minutes} minutes) is on its way.",
        "german": f"Falls ein Kundenportal-Konto diese Adresse hat, ist ein Anmeldelink ({minutes} Minuten gültig) "
        "unterwegs.",
    }


@router.post("/portal/api/link-login", response_model=ProfileOut, responses=THROTTLED)
def link_login(body: LinkLoginIn, request: Request, response: Response) -> dict:
    """Log in with the e-mail login link (once); guessing links is throttled like invitations."""
    _csrf(request)
    profile, token = portal.attempt_link_login(
        request.app.state.db, body.token, address=_address(request), now=utcnow()
    )
    _set_cookie(request, response, token)
    return {**profile, "link_session": True}


@router.post("/portal/api/me/password", status_code=204, responses=THROTTLED)
def change_password(body: PasswordIn, request: Request) -> Response:
    """A new password (at least 10 characters). The current one is needed unless this session was
    opened with an e-mail login link; a wrong current password counts on the login throttle. The
    account's other sessions end."""
    _csrf(request)
    portal.change_password(
        request.app.state.db,
        request.cookies.get(COOKIE),
        body.current_password,
        body.new_password,
        address=_address(request),
        now=utcnow(),
    )
    return Response(status_code=204)


@router.post("/portal/api/logout", status_code=204)
def logout(request: Request, session: WriteSession) -> Response:
    _csrf(request)
    portal.logout(session, request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/portal")
    return response


@router.get("/portal/api/me", response_model=ProfileOut)
def me(request: Request, session: WriteSession) -> dict:
    now = utcnow()
    account, row = portal.session_of(session, request.cookies.get(COOKIE), now)
    portal.log_read(session, account, "profile", now)
    return {**portal.profile(session, account), "link_session": row.via_link}


@router.patch("/portal/api/me", response_model=ProfileOut)
def change_me(body: ProfileIn, account: Account, session: WriteSession) -> dict:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return portal.update_profile(session, account, changes, utcnow())


@router.get("/portal/api/months", response_model=list[MonthItem])
def months(account: Account, session: WriteSession) -> list[dict]:
    """The occupant's months, newest first, with the heat value for the overview."""
    portal.log_read(session, account, "months", utcnow())
    out = []
    for r in portal.own_records(session, account):
        heat = next((line["month"] for line in record_json(r)["lines"] if line["kind"] == "heat"), None)
        out.append({"month": r.month, "days": [r.day_from.isoformat(), r.day_to.isoformat()], "heat": heat})
    return out


@router.get("/portal/api/months/{month}", response_model=S.RecordOut)
def month(month: Text, account: Account, session: WriteSession) -> dict:
    now = utcnow()
    record = portal.own_record(session, account, check_month(month, now))
    portal.log_read(session, account, f"month {record.month}", now)
    return record_json(record)


@router.get(
    "/portal/api/months/{month}/pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
)
def month_pdf(month: Text, account: Account, session: WriteSession) -> Response:
    now = utcnow()
    record = portal.own_record(session, account, check_month(month, now))
    portal.log_read(session, account, f"pdf {record.month}", now)
    return pdf_response(session, account.tenant_id, record, account.language)


@router.get("/portal/api/annual", response_model=list[int])
def annual_years(account: Account, session: WriteSession) -> list[int]:
    """The years with annual information for the occupant (a finished billing period of their stay)."""
    portal.log_read(session, account, "annual years", utcnow())
    return portal_years(session, account.tenant_id, account.occupant_id, utcnow().date())


@router.get(
    "/portal/api/annual/{year}/pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
)
def annual_pdf(year: int, account: Account, session: WriteSession) -> Response:
    """The annual information of the billing period ending in `year` for the occupant's unit: only a
    stay covering the whole period (404 otherwise); the previous period shows `–` before the move-in."""
    now = utcnow()
    if not 2000 <= year <= 2100:
        raise NotFound(f"no annual information for {year}", german=f"Für {year} gibt es keine Jahresinformation.")
    stay = portal_stay(session, account.tenant_id, account.occupant_id, year)
    pdf = annual_letter(
        session,
        account.tenant_id,
        stay.unit_id,
        year,
        account.language,
        occupant_id=account.occupant_id,
        visible_from=stay.moved_in,
    )
    portal.log_read(session, account, f"annual pdf {year}", now)
    return annual_response(pdf, year, account.language)


class PortalConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Text = Field(min_length=1, max_length=200)
    provider_contact: Text = Field("", max_length=500)
    scope: ScopeIn


@router.get("/portal/api/consents")
def my_consents(account: Account, session: WriteSession) -> list[dict]:
    """The occupant's consents to pass their history to an energy-service provider (FFVAV §5(4))."""
    portal.log_read(session, account, "consents", utcnow())
    return [consent.as_json(r) for r in consent.of_occupant(session, account.tenant_id, account.occupant_id)]


@router.post("/portal/api/consents")
def give_my_consent(body: PortalConsentIn, account: Account, session: WriteSession) -> dict:
    """The occupant consents in the portal (recorded with `given_by` portal:<account>)."""
    row = consent.give(
        session,
        account.tenant_id,
        account.occupant_id,
        provider=body.provider,
        provider_contact=body.provider_contact,
        scope=scope_dict(body.scope),
        evidence="given in the customer portal / im Kundenportal erteilt",
        actor=f"portal:{account.id}",
        now=utcnow(),
    )
    return consent.as_json(row)


@router.post("/portal/api/consents/{consent_id}/withdraw")
def withdraw_my_consent(consent_id: Id, account: Account, session: WriteSession) -> dict:
    row = consent.get(session, account.tenant_id, consent_id, occupant_id=account.occupant_id)
    return consent.as_json(consent.withdraw(session, row, actor=f"portal:{account.id}", now=utcnow()))
