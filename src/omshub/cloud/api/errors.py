"""Refusals as HTTP answers, in one place: `{"error": {"code", "message", ...}}` with a status.

Domain errors (cloud/domain/errors.py) map by class to a status here; `ApiError` is for the
refusals only HTTP knows (a body too large, a media type); validation errors, database outages,
Starlette's own errors and defects get the same shape. `install_error_handlers(app)` registers them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from omshub.cloud.api.common import iso
from omshub.cloud.domain.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, TooMany, Unauthorized
from omshub.cloud.store.outage import database_outage


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with HTTP `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class ErrorDetail(BaseModel):
    code: str = Field(description="stable snake_case name of the error, for programs and translations")
    message: str = Field(description="what was refused, where and why, for people")


class ErrorBody(BaseModel):
    error: ErrorDetail


# Documented on every API route (app.py): the one shape of every refusal, validation errors included.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": 'Refused: `{"error": {"code", "message"}}`'}
}

# The HTTP status of each kind of domain error (the most specific class listed wins).
STATUS = ((NotFound, 404), (Conflict, 409), (Invalid, 422), (Unauthorized, 401), (Forbidden, 403), (TooMany, 429))


def http_status(exc: DomainError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def _plain(value):
    """`details` as JSON: times as the API writes them (ISO 8601, UTC, `Z`)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def domain_error_response(exc: DomainError) -> JSONResponse:
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooMany):
        headers = {"Retry-After": str(exc.retry_after_s), "Cache-Control": "no-store"}
    body = {"error": {"code": exc.code, "message": exc.message, **_plain(exc.details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")  # pydantic's wrapping of our own checks
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _unparsable_body_message(exc: StarletteHTTPException) -> str:
    # FastAPI answers 400 for a body its JSON parser raised on with something else than a syntax
    # error: Python refuses integers of more than 4,300 digits.
    if isinstance(exc.__cause__, ValueError) and "digits" in str(exc.__cause__):
        return "the request body holds a number of more than 4,300 digits; numbers here are at most 64-bit"
    return "the request body could not be parsed"


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)  # registered for it
    return domain_error_response(exc)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for it
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for it
    return JSONResponse({"error": {"code": "invalid_request", "message": _validation_message(exc)}}, status_code=422)


async def _database(_request: Request, exc: Exception) -> JSONResponse:
    if not database_outage.failed(exc):  # a bad statement is a bug: a 500 with its traceback
        raise exc
    return JSONResponse(
        {"error": {"code": "database_unavailable", "message": "the database is unreachable; try again later"}},
        status_code=503,
        headers={"Retry-After": "10"},
    )


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # registered for it
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    message = str(exc.detail)
    if exc.status_code == 400 and exc.__cause__ is not None:
        code, message = "invalid_body", _unparsable_body_message(exc)
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _internal(_request: Request, exc: Exception) -> JSONResponse:
    # a defect of ours: logged with its traceback by the server; the client gets the error shape, no details
    return JSONResponse(
        {"error": {"code": "internal_error", "message": "internal server error; it is logged"}}, status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(SqlPoolTimeout, _database)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
