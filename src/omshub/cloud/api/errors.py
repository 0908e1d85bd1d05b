"""Refusals as HTTP answers, in one place: `{"error": {"code", "message", ...}}` with a status.

Domain errors (cloud/domain/errors.py) map by class to a status here; `ApiError` is for the
refusals only HTTP knows (a body too large, a media type); validation errors, database outages,
Starlette's own errors and defects get the same shape. `install_error_handlers(app)` registers them.
`message` is in the caller's language (cloud/api/wording.py: the user's choice, Accept-Language,
else English); `code` stays the same in every language. A validation error also lists its
problems per field (`fields`), so a form can show each next to its field.
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
from omshub.cloud.domain.language import LANGUAGES, from_accept_language
from omshub.cloud.domain.wording import field_label, german_of, validation_fields
from omshub.cloud.store.outage import database_outage


def request_language(request: Request) -> str:
    """The language of the answer: the user's choice, else Accept-Language, else English (the API's
    language for programs; the console always sends its language)."""
    principal = getattr(request.state, "principal", None)
    chosen = getattr(principal, "language", None)
    if chosen in LANGUAGES:
        return chosen
    return from_accept_language(request.headers.get("accept-language")) or "en"


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with HTTP `status`."""

    def __init__(self, status: int, code: str, message: str, german: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.german = german

    def body(self, language: str = "en") -> dict:
        text = (self.german or german_of(self.message) or self.message) if language == "de" else self.message
        return {"error": {"code": self.code, "message": text}}


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


def domain_error_response(exc: DomainError, language: str = "en") -> JSONResponse:
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooMany):
        headers = {"Retry-After": str(exc.retry_after_s), "Cache-Control": "no-store"}
    text = (exc.german or german_of(exc.message) or exc.message) if language == "de" else exc.message
    body = {"error": {"code": exc.code, "message": text, **_plain(exc.details)}}
    if exc.problems:
        body["error"]["fields"] = validation_fields(exc.problems, language)
    elif exc.field:
        label = field_label([exc.field], language)
        body["error"]["fields"] = [{"field": exc.field, "label": label, "message": text}]
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")  # pydantic's wrapping of our own checks
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _unparsable_body_message(exc: StarletteHTTPException, language: str) -> str:
    # FastAPI answers 400 for a body its JSON parser raised on with something else than a syntax
    # error: Python refuses integers of more than 4,300 digits.
    if isinstance(exc.__cause__, ValueError) and "digits" in str(exc.__cause__):
        if language == "de":
            return "Die Anfrage enthält eine Zahl mit mehr als 4.300 Stellen; Zahlen haben hier höchstens 64 Bit."
        return "the request body holds a number of more than 4,300 digits; numbers here are at most 64-bit"
    return "Die Anfrage konnte nicht gelesen werden." if language == "de" else "the request body could not be parsed"


# Starlette's own refusals, by status: (German, English) where its text is not for people
HTTP_TEXTS = {
    404: ("Diese Adresse gibt es nicht.", "Not Found"),
    405: ("Diese Aktion ist hier nicht möglich.", "Method Not Allowed"),
}


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)  # registered for it
    return domain_error_response(exc, request_language(request))


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for it
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(request_language(request)), status_code=exc.status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for it
    language = request_language(request)
    fields = validation_fields(list(exc.errors()), language)
    # English keeps the parameters' names (programs and their logs read it); people get `fields`
    message = "; ".join(f["message"] for f in fields) if language == "de" else _validation_message(exc)
    return JSONResponse({"error": {"code": "invalid_request", "message": message, "fields": fields}}, status_code=422)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    if not database_outage.failed(exc):  # a bad statement is a bug: a 500 with its traceback
        raise exc
    message = "the database is unreachable; try again later"
    if request_language(request) == "de":
        message = "Die Datenbank ist gerade nicht erreichbar; bitte versuchen Sie es später noch einmal."
    return JSONResponse(
        {"error": {"code": "database_unavailable", "message": message}},
        status_code=503,
        headers={"Retry-After": "10"},
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # registered for it
    language = request_language(request)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    message = str(exc.detail)
    if language == "de" and exc.status_code in HTTP_TEXTS:
        message = HTTP_TEXTS[exc.status_code][0]
    if exc.status_code == 400 and exc.__cause__ is not None:
        code, message = "invalid_body", _unparsable_body_message(exc, language)
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # a defect of ours: logged with its traceback by the server; the client gets the error shape, no details
    message = "internal server error; it is logged"
    if request_language(request) == "de":
        message = "Ein interner Fehler ist aufgetreten; er wurde protokolliert."
    return JSONResponse({"error": {"code": "internal_error", "message": message}}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(SqlPoolTimeout, _database)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
