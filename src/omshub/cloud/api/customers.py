"""Customer consumption information for operators and suppliers' own apps (`/api/v1/customer-info`):
compute a month's records, read them as JSON or PDF, see deliveries and completeness, and the
tenant's settings. Tenant-scoped like every route. The rules: services/customer_*.py;
docs/customer-information.md."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from omshub.cloud.api import customer_schemas as S
from omshub.cloud.api.common import DbSession, Id, Limit, Text, iso, page, paginate
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.guard import read_body
from omshub.cloud.domain.customer_info import mark
from omshub.cloud.domain.dsn import MAX_BYTES
from omshub.cloud.domain.errors import NotFound
from omshub.cloud.services import customer_consent as consent
from omshub.cloud.services.accounts import Principal
from omshub.cloud.services.customer_annual import annual_information
from omshub.cloud.services.customer_annual_pdf import annual_letter
from omshub.cloud.services.customer_bounces import record_bounce
from omshub.cloud.services.customer_completeness import completeness
from omshub.cloud.services.customer_console import (
    accounts_of,
    invitation_state,
    invitations_stmt,
    month_summary,
    resend,
)
from omshub.cloud.services.customer_delivery import plan_deliveries, recipient_lines
from omshub.cloud.services.customer_pdf import letter_pdf
from omshub.cloud.services.customer_records import build_month, check_month
from omshub.cloud.services.customer_settings import public_settings, settings_of, update_settings
from omshub.cloud.store.models_billing import Occupant
from omshub.cloud.store.models_customers import CustomerDelivery, CustomerRecord
from omshub.times import utcnow

router = APIRouter(prefix="/api/v1/customer-info", tags=["customer information"])

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


def _figure(f: dict) -> dict:
    return {**f, "mark": mark(f)}


def record_json(r: CustomerRecord) -> dict:
    """A stored record with the marks every display shows (`*` estimated, `–` no value)."""
    c = r.content
    lines = []
    for line in c["lines"]:
        lines.append(
            {
                **line,
                "month": _figure(line["month"]),
                "previous": _figure(line["previous"]),
                "last_year": _figure(line["last_year"]),
                "history": [_figure(h) for h in line["history"]],
            }
        )
    return {
        "id": r.id,
        "month": r.month,
        "days": c["days"],
        "unit": c["unit"],
        "property": c["property"],
        "occupant": c["occupant"],
        "lines": lines,
        "complete": r.complete,
        "gaps": r.gaps,
        "revision": r.revision,
        "corrects": c.get("corrects"),
        "changed_at": iso(r.changed_at),
    }


def get_record(session, tenant_id: int, record_id: int) -> CustomerRecord:
    row = session.scalar(
        select(CustomerRecord).where(CustomerRecord.id == record_id, CustomerRecord.tenant_id == tenant_id)
    )
    if row is None:
        raise NotFound(f"record {record_id} not found", german=f"Verbrauchsinformation {record_id} nicht gefunden")
    return row


def pdf_response(session, tenant_id: int, record: CustomerRecord, language: str) -> Response:
    occupant = session.get(Occupant, record.occupant_id) if record.occupant_id else None
    recipient = recipient_lines(occupant, record.content) if occupant else record.content["property"]["name"]
    pdf = letter_pdf(record.content, settings_of(session, tenant_id), recipient, language)
    name = f"{'Verbrauchsinformation' if language == 'de' else 'consumption'}-{record.month}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"},
    )


class SmtpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: Text | None = Field(None, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    starttls: bool | None = None
    username: Text | None = Field(None, max_length=200)
    sender: Text | None = Field(None, max_length=254)
    timeout_s: float | None = Field(None, gt=0, le=120)


class ConversionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Text = Field(min_length=1, max_length=40)
    version: Text = Field(min_length=1, max_length=40)
    kwh_per_unit: float = Field(gt=0, le=1000, allow_inf_nan=False)


AnnualBlock = Literal[
    "energy_mix",
    "emissions",
    "primary_energy_factor",
    "taxes_levies",
    "device_charges",
    "consumer_organisations",
    "dispute_resolution",
]


class SettingsIn(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")
    supplier_name: Text | None = Field(None, max_length=200)
    supplier_address: Text | None = Field(None, max_length=500)
    supplier_contact: Text | None = Field(None, max_length=300)
    delivery: Literal["attachment", "link"] | None = None
    portal_url: Text | None = Field(None, max_length=500)
    deadline_day: int | None = Field(None, ge=1, le=28)
    cohort_keys: list[Literal["energy_carrier", "size_class", "flat_size"]] | None = Field(None, max_length=3)
    flat_size_bins: list[Annotated[float, Field(gt=0, le=10000, allow_inf_nan=False)]] | None = Field(
        None, min_length=1, max_length=10
    )
    min_cohort: int | None = Field(None, ge=1, le=1000)
    lock_after_days: int | None = Field(None, ge=0, le=3650)
    remove_after_days: int | None = Field(
        None, ge=0, le=3650, description="portal accounts removed this many days after the last move-out"
    )
    hca_conversion: ConversionIn | None = None
    annual_blocks: dict[AnnualBlock, Annotated[Text, Field(max_length=4000)]] | None = Field(
        None, description="the annual information's content blocks: block -> text (all are required)"
    )
    reference_degree_days: float | None = Field(None, gt=0, le=10000, allow_inf_nan=False)
    smtp: SmtpIn | None = None
    smtp_password: Text | None = Field(None, max_length=200)
    logo_png: Text | None = Field(None, max_length=400_000, description="base64 PNG, at most ~300 kB")


class MonthIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    month: Text


@router.post("/records", summary="Compute a closed month's records", response_model=S.MonthCounts)
def compute(body: MonthIn, principal: Operator, session: DbSession) -> dict:
    """Idempotent: computing again changes only records whose billing values changed (`revision` grows)."""
    return build_month(session, principal.tenant_id, body.month, actor=principal.name, now=utcnow())


@router.get("/records", summary="A month's records", response_model=S.RecordPage)
def list_records(
    principal: Viewer,
    session: DbSession,
    month: Text,
    unit_id: Id | None = None,
    occupant_id: Id | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    check_month(month, utcnow())
    stmt = select(CustomerRecord).where(CustomerRecord.tenant_id == principal.tenant_id, CustomerRecord.month == month)
    if unit_id is not None:
        stmt = stmt.where(CustomerRecord.unit_id == unit_id)
    if occupant_id is not None:
        stmt = stmt.where(CustomerRecord.occupant_id == occupant_id)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=CustomerRecord.id)
    return page([record_json(r) for r in rows], nxt)


@router.get("/records/{record_id}", summary="One record", response_model=S.RecordOut)
def read_record(record_id: Id, principal: Viewer, session: DbSession) -> dict:
    return record_json(get_record(session, principal.tenant_id, record_id))


@router.get(
    "/records/{record_id}/pdf",
    summary="One record as the PDF letter",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def record_pdf(record_id: Id, principal: Viewer, session: DbSession, language: Literal["de", "en"] = "de") -> Response:
    return pdf_response(session, principal.tenant_id, get_record(session, principal.tenant_id, record_id), language)


@router.get("/deliveries", summary="A month's deliveries (e-mail, post)", response_model=S.DeliveryPage)
def list_deliveries(
    principal: Viewer,
    session: DbSession,
    month: Text,
    state: Literal["pending", "sent", "failed"] | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    stmt = (
        select(CustomerDelivery)
        .join(CustomerRecord, CustomerRecord.id == CustomerDelivery.record_id)
        .where(CustomerDelivery.tenant_id == principal.tenant_id, CustomerRecord.month == month)
    )
    if state:
        stmt = stmt.where(CustomerDelivery.state == state)
    rows, nxt = paginate(session, stmt, cursor=cursor, limit=limit, key_column=CustomerDelivery.id)
    items = [
        {
            "id": d.id,
            "record_id": d.record_id,
            "channel": d.channel,
            "state": d.state,
            "attempts": d.attempts,
            "next_attempt_at": iso(d.next_attempt_at),
            "last_error": d.last_error,
            "errors": d.errors,
            "sent_at": iso(d.sent_at),
        }
        for d in rows
    ]
    return page(items, nxt)


@router.get("/completeness", summary="Who got complete information by the deadline", response_model=S.Completeness)
def read_completeness(principal: Viewer, session: DbSession, month: Text) -> dict:
    now = utcnow()
    return completeness(session, principal.tenant_id, check_month(month, now), now)


@router.get("/settings", summary="The tenant's customer information settings")
def read_settings(principal: Admin, session: DbSession) -> dict:
    return public_settings(settings_of(session, principal.tenant_id))


@router.patch("/settings", summary="Change the customer information settings")
def change_settings(body: SettingsIn, principal: Admin, session: DbSession) -> dict:
    """A partial settings object; `smtp` is merged key by key; `smtp_password` is stored, never shown;
    `hca_conversion` may be set to null explicitly (allocator units shown as units again)."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k == "hca_conversion"}
    if "smtp" in changes:
        changes["smtp"] = {k: v for k, v in changes["smtp"].items() if v is not None}
    return public_settings(update_settings(session, principal.tenant_id, changes, actor=principal.name, now=utcnow()))


@router.get(
    "/units/{unit_id}/annual", summary="A unit's annual information: weather-corrected comparison and content blocks"
)
def read_annual(
    unit_id: Id, principal: Viewer, session: DbSession, year: Annotated[int, Query(ge=2000, le=2100)]
) -> dict:
    """Refused (422) while a required content block is missing from the settings."""
    return annual_information(session, principal.tenant_id, unit_id, year)


@router.get(
    "/units/{unit_id}/annual/pdf",
    summary="A unit's annual information as a PDF (chart and content blocks)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def read_annual_pdf(
    unit_id: Id,
    principal: Viewer,
    session: DbSession,
    year: Annotated[int, Query(ge=2000, le=2100)],
    occupant_id: Id | None = None,
    language: Literal["de", "en"] = "de",
) -> Response:
    """Addressed to `occupant_id` (one of the unit's occupants) or to the property; refused (422)
    while a required content block is missing."""
    pdf = annual_letter(session, principal.tenant_id, unit_id, year, language, occupant_id=occupant_id)
    return annual_response(pdf, year, language)


def annual_response(pdf: bytes, year: int, language: str) -> Response:
    name = f"{'Jahresinformation' if language == 'de' else 'annual-information'}-{year}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"},
    )


# --- the console's monthly run, resend and invitations (docs/console.md §Customer information) ---


@router.post("/runs", summary="Start a month: records and notices", response_model=S.RunOut)
def start_run(body: MonthIn, principal: Operator, session: DbSession) -> dict:
    """Computes the month's records and plans a notice for each occupant that has none yet (or a
    corrected one where the content changed since it was sent). The e-mails go out in the background
    (`omshub serve`), the letters with `omshub customers monthly` (print batch); running again sends
    nothing twice."""
    now = utcnow()
    month = check_month(body.month, now)
    records = build_month(session, principal.tenant_id, month, actor=principal.name, now=now)
    planned = plan_deliveries(session, principal.tenant_id, month, now)
    return {
        "month": month,
        "records": records,
        "deliveries_planned": planned,
        "summary": _summary(session, principal.tenant_id, month),
    }


def _summary(session, tenant_id: int, month: str) -> dict:
    out = month_summary(session, tenant_id, month)
    return {**out, "next_attempt_at": iso(out["next_attempt_at"])}


@router.get("/summary", summary="A month's progress: records and notices by state", response_model=S.MonthSummary)
def read_summary(principal: Viewer, session: DbSession, month: Text) -> dict:
    return _summary(session, principal.tenant_id, check_month(month, utcnow()))


@router.post("/deliveries/{delivery_id}/resend", summary="Send a failed or waiting e-mail notice again")
def resend_delivery(delivery_id: Id, principal: Operator, session: DbSession) -> dict:
    """Due now: the background sender takes it within its interval."""
    d = resend(session, principal.tenant_id, delivery_id, actor=principal.name, now=utcnow())
    return {"id": d.id, "state": d.state, "next_attempt_at": iso(d.next_attempt_at)}


@router.get("/invitations", summary="Occupants and their portal invitation", response_model=S.InvitationPage)
def list_invitations(
    principal: Viewer,
    session: DbSession,
    search: Annotated[Text | None, Query(max_length=100)] = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> dict:
    now = utcnow()
    rows, nxt = paginate(
        session, invitations_stmt(principal.tenant_id, search), cursor=cursor, limit=limit, key_column=Occupant.id
    )
    accounts = accounts_of(session, principal.tenant_id, [o.id for o in rows])
    items = []
    for o in rows:
        a = accounts.get(o.id)
        items.append(
            {
                "occupant_id": o.id,
                "customer_ref": o.customer_ref,
                "name": o.name,
                "email": o.email,
                "channel": o.channel,
                "state": invitation_state(a, now),
                "invite_expires_at": iso(a.invite_expires_at) if a is not None else None,
            }
        )
    return page(items, nxt)


# --- consent and export to an energy-service provider the customer names (FFVAV §5(4), HeizkostenV §6b) ---


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_: Text = Field(alias="from", description="first month, e.g. 2025-01")
    to: Text = Field(description="last month, e.g. 2026-11")
    kinds: list[Literal["heat", "hot_water", "hca"]] | None = Field(None, max_length=3)


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occupant_id: Id
    provider: Text = Field(min_length=1, max_length=200, description="the energy-service provider the customer named")
    provider_contact: Text = Field("", max_length=500)
    scope: ScopeIn
    evidence: Text = Field(min_length=1, max_length=2000, description="how the consent was given, e.g. a signed form")


def scope_dict(scope: ScopeIn) -> dict:
    return {"from": scope.from_, "to": scope.to, "kinds": scope.kinds}


@router.post("/consents", summary="Record a customer's consent to export their history to a provider")
def give_consent(body: ConsentIn, principal: Operator, session: DbSession) -> dict:
    row = consent.give(
        session,
        principal.tenant_id,
        body.occupant_id,
        provider=body.provider,
        provider_contact=body.provider_contact,
        scope=scope_dict(body.scope),
        evidence=body.evidence,
        actor=principal.name,
        now=utcnow(),
    )
    return consent.as_json(row)


@router.get("/consents", summary="The recorded consents (of one occupant)")
def list_consents(principal: Viewer, session: DbSession, occupant_id: Id | None = None) -> list[dict]:
    return [consent.as_json(r) for r in consent.of_occupant(session, principal.tenant_id, occupant_id)]


@router.post("/consents/{consent_id}/withdraw", summary="Withdraw a consent (the record stays)")
def withdraw_consent(consent_id: Id, principal: Operator, session: DbSession) -> dict:
    row = consent.get(session, principal.tenant_id, consent_id)
    return consent.as_json(consent.withdraw(session, row, actor=principal.name, now=utcnow()))


@router.get(
    "/consents/{consent_id}/export",
    summary="The customer's history for the named provider (JSON or CSV); only while the consent is in force",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}, 409: {"description": "withdrawn"}},
)
def export_history(
    consent_id: Id, principal: Operator, session: DbSession, format: Literal["json", "csv"] = "json"
) -> Response:
    data = consent.export(session, principal.tenant_id, consent_id, actor=principal.name, now=utcnow())
    headers = {"Cache-Control": "private, no-store"}
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="history-consent-{consent_id}.csv"'
        return Response(consent.to_csv(data), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse(data, headers=headers)


async def _bounce_body(request: Request) -> bytes:
    return await read_body(request, MAX_BYTES, "the bounce message")


@router.post(
    "/bounces",
    summary="Record a bounce (RFC 3464 delivery status notification) that arrived after sending",
    openapi_extra={"requestBody": {"content": {"message/rfc822": {"schema": {"type": "string"}}}}},
    responses={413: {"description": "larger than 1 MB"}},
)
def post_bounce(principal: Operator, body: Annotated[bytes, Depends(_bounce_body)], session: DbSession) -> dict:
    """The raw bounce message as the body (at most 1 MB). A permanent failure marks its notice
    `failed` (completeness: `email_failed`, shown in the console); 422 with the reason when it is not a
    usable bounce, 404 when it refers to no notice of this tenant."""
    return record_bounce(session, principal.tenant_id, body, actor=principal.name, now=utcnow())
