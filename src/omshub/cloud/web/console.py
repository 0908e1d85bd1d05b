"""The operator web console: a static single-page app served at `/` and `/console/<file>`; and the
API documentation pages `/docs` (Swagger UI) and `/redoc` (ReDoc).

The page and its assets carry no data and need no login; the console logs in with
`POST /api/v1/auth/login` for a cookie session (HttpOnly, CSRF-checked: docs/security.md, "Console
sessions") and calls the JSON API with it. Two read-only endpoints under `/api/v1/console/` give the
console what the domain API has no single call for: the dashboard's counts and a meter's newest readings.

The documentation pages load Swagger UI and ReDoc from this server (`/docs/assets/`, the files the
`fastapi-offline` package ships), never from a CDN: they work offline and under a
Content-Security-Policy that allows no third party.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from omshub.cloud.api.common import DbSession, Id, iso
from omshub.cloud.api.deps import require_role
from omshub.cloud.api.errors import ApiError
from omshub.cloud.api.readings import full_data, reading_json
from omshub.cloud.domain.errors import not_found
from omshub.cloud.services.accounts import Principal, utcnow
from omshub.cloud.services.alarms import DEFAULT_GRACE as LATE_GRACE  # late as the missed-contact alarm counts it
from omshub.cloud.store.models import Alarm, Gateway, Meter, MeteringPoint, Operation, Reading, Telegram

router = APIRouter(tags=["console"])

STATIC_DIR = Path(__file__).parent / "static"
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg|html)$")
CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "html": "text/html; charset=utf-8",
}
# Everything the console needs comes from this server; nothing inline, no third party.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MAX_LATE_LISTED = 50
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

Viewer = Annotated[Principal, Depends(require_role("viewer"))]


@lru_cache(maxsize=128)
def _asset(directory: Path, name: str) -> tuple[bytes, str] | None:
    """(content, etag) of a file of a static directory, or None. Assets are fixed per install."""
    path = directory / name
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def serve_asset(
    request: Request, directory: Path, name: str, pattern: re.Pattern[str], what: tuple[str, str]
) -> Response:
    """A file of `directory` whose name `pattern` admits, with an ETag (304 when unchanged); else
    404 naming it as `what` (English, German), e.g. ("console file", "der Konsole")."""
    found = _asset(directory, name) if pattern.match(name) else None
    if found is None:
        raise not_found(f"{what[0]} {name!r}", f"Die Datei {name} {what[1]}")
    data, etag = found
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]], headers=headers)


def _serve(request: Request, name: str) -> Response:
    return serve_asset(request, STATIC_DIR, name, ASSET_NAME, ("console file", "der Konsole"))


@router.get("/", include_in_schema=False)
def console_page(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/console", include_in_schema=False)
@router.get("/console/", include_in_schema=False)
def console_dir() -> RedirectResponse:
    return RedirectResponse("/", status_code=307)


@router.get("/console/{name}", include_in_schema=False)
def console_asset(name: str, request: Request) -> Response:
    return _serve(request, name)


# --- API documentation (Swagger UI, ReDoc) served from here ---


def _docs_dir() -> Path:
    import fastapi_offline  # ships swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js

    return Path(fastapi_offline.__file__).parent / "static"


@lru_cache(maxsize=8)
def _docs_asset(name: str) -> tuple[bytes, str] | None:
    path = _docs_dir() / name
    if name not in DOCS_ASSETS or not path.is_file():
        return None
    data = path.read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _docs_csp(html: bytes) -> str:
    """The pages' own inline script (Swagger UI's start) allowed by its hash, nothing inline else;
    styles inline too (both libraries style their elements at run time), everything from here."""
    scripts = re.findall(rb"<script>(.*?)</script>", html, re.S)
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(code).digest()).decode() + "'" for code in scripts)
    return (
        "default-src 'none'; script-src 'self'" + (" " + hashes if hashes else "") + "; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _docs_page(html: bytes) -> Response:
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": _docs_csp(html), "Cache-Control": "no-cache"}
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> Response:
    app = request.app
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} — API (Swagger UI)",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},
    )  # (else it asks a third party)
    return _docs_page(bytes(page.body))


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> Response:
    app = request.app
    page = get_redoc_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} — API (ReDoc)",
        redoc_js_url="/docs/assets/redoc.standalone.js",
        redoc_favicon_url="/docs/assets/favicon.png",
        with_google_fonts=False,
    )
    return _docs_page(bytes(page.body))


@router.get("/docs/assets/{name}", include_in_schema=False)
def docs_asset(name: str, request: Request) -> Response:
    found = _docs_asset(name)
    if found is None:
        raise not_found(f"documentation file {name!r}", f"Die Datei {name} der Dokumentation")
    data, etag = found
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=DOCS_ASSETS[name], headers=headers)


@router.get("/api/v1/console/summary", summary="Dashboard figures of the tenant")
def summary(principal: Viewer, session: DbSession) -> dict:
    """Counts (gateways, meters, metering points, telegrams by state, active alarms by kind, open
    operations), gateways whose expected contact is more than 30 minutes past, and how many
    meters were heard but are not registered."""
    tid = principal.tenant_id
    now = utcnow()

    def count(model) -> int:
        return session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tid)) or 0

    telegrams = dict(
        session.execute(
            select(Telegram.state, func.count()).where(Telegram.tenant_id == tid).group_by(Telegram.state)
        ).all()
    )
    alarms = dict(
        session.execute(
            select(Alarm.kind, func.count()).where(Alarm.tenant_id == tid, Alarm.active.is_(True)).group_by(Alarm.kind)
        ).all()
    )
    operations = dict(
        session.execute(
            select(Operation.state, func.count())
            .where(Operation.tenant_id == tid, Operation.state.in_(("PENDING", "DELIVERED")))
            .group_by(Operation.state)
        ).all()
    )
    late_rows = session.scalars(
        select(Gateway)
        .where(
            Gateway.tenant_id == tid, Gateway.next_contact_at.is_not(None), Gateway.next_contact_at < now - LATE_GRACE
        )
        .order_by(Gateway.next_contact_at)
        .limit(MAX_LATE_LISTED + 1)
    ).all()
    unregistered = (
        session.scalar(
            select(func.count()).select_from(
                select(Telegram.manufacturer, Telegram.meter_id)
                .where(Telegram.tenant_id == tid, Telegram.state == "unknown_meter", Telegram.meter_id.is_not(None))
                .distinct()
                .subquery()
            )
        )
        or 0
    )
    return {
        "at": iso(now),
        "gateways": count(Gateway),
        "meters": count(Meter),
        "metering_points": count(MeteringPoint),
        "telegrams": {"total": sum(telegrams.values()), "by_state": telegrams},
        "alarms": {"active": sum(alarms.values()), "by_kind": alarms},
        "operations": {"open": sum(operations.values()), "by_state": operations},
        "meters_unregistered": unregistered,
        "gateways_late": [
            {
                "id": g.id,
                "serial": g.serial,
                "name": g.name,
                "expected_contact_at": iso(g.next_contact_at),
                "last_contact_at": iso(g.last_contact_at),
            }
            for g in late_rows[:MAX_LATE_LISTED]
        ],
        "gateways_late_more": len(late_rows) > MAX_LATE_LISTED,
    }


@router.get("/api/v1/console/meters/{meter_pk}/recent-readings", summary="A meter's newest readings, newest first")
def recent_readings(
    request: Request, meter_pk: Id, principal: Viewer, session: DbSession, limit: int = Query(20)
) -> dict:
    """The newest `limit` (1-200) readings of a meter by meter time: the first is its latest reading."""
    if not 1 <= limit <= 200:
        raise ApiError(
            422, "invalid_limit", f"limit must be 1 to 200, not {limit}", "Es können 1 bis 200 Werte gezeigt werden."
        )
    meter = session.scalar(select(Meter).where(Meter.id == meter_pk, Meter.tenant_id == principal.tenant_id))
    if meter is None:
        raise not_found(f"meter {meter_pk}", f"Der Zähler {meter_pk}")
    rows = session.scalars(
        select(Reading)
        .where(Reading.tenant_id == principal.tenant_id, Reading.meter_pk == meter.id)
        .order_by(Reading.timestamp.desc(), Reading.id.desc())
        .limit(limit)
    ).all()
    data = full_data(request, session, principal.tenant_id, list(rows))
    return {"items": [reading_json(r, data[r.id]) for r in rows], "next_cursor": None}
