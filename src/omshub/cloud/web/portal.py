"""The customer portal's static pages at `/portal/` (separate from the operator console): a page and
its script, styles and words, carrying no data; the page talks to `/portal/api` (api/portal.py).
Same security headers as the console: nothing inline, nothing from a third party."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from omshub.cloud.web.console import serve_asset

router = APIRouter(tags=["customer portal"])
PORTAL_DIR = Path(__file__).parent / "portal_static"  # beside the console's static/, not in it
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|html)$")


def _serve(request: Request, name: str) -> Response:
    return serve_asset(request, PORTAL_DIR, name, ASSET_NAME, ("portal file", "des Kundenportals"))


@router.get("/portal", include_in_schema=False)
def portal_root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=308)


@router.get("/portal/", include_in_schema=False)
def portal_page(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/portal/{name}", include_in_schema=False)
def portal_file(request: Request, name: str) -> Response:
    return _serve(request, name)
