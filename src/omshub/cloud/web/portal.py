"""The customer portal's static pages at `/portal/` (separate from the operator console): a page and
its script, styles and words, carrying no data; the page talks to `/portal/api` (api/portal.py).
Same security headers as the console: nothing inline, nothing from a third party."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from omshub.cloud.domain.errors import not_found
from omshub.cloud.web.console import CONTENT_TYPES, SECURITY_HEADERS

router = APIRouter(tags=["customer portal"])
PORTAL_DIR = Path(__file__).parent / "portal_static"  # beside the console's static/, not in it
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|html)$")


@lru_cache(maxsize=16)
def _asset(name: str) -> tuple[bytes, str] | None:
    path = PORTAL_DIR / name
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _serve(request: Request, name: str) -> Response:
    found = _asset(name) if ASSET_NAME.match(name) else None
    if found is None:
        raise not_found(f"portal file {name!r}", f"Die Datei {name} des Kundenportals")
    data, etag = found
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]], headers=headers)


@router.get("/portal", include_in_schema=False)
def portal_root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=308)


@router.get("/portal/", include_in_schema=False)
def portal_page(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/portal/{name}", include_in_schema=False)
def portal_file(request: Request, name: str) -> Response:
    return _serve(request, name)
