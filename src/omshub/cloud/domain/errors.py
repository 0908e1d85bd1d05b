"""Refusals of the domain: what went wrong, without HTTP.

Services raise these; the API maps each class to one HTTP status in one place (cloud/api/errors.py),
the commands print the message. `code` is a stable snake_case name for programs and translations;
`message` is English, for people; `german` is the same message in German (the API answers in
the caller's language, cloud/api/errors.py; every refusal raised has one). `details`: more fields
of the refusal (e.g. the conflicts of a configuration change), plain data.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal; nothing was changed by the operation that raised it."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        german: str | None = None,
        details: dict | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.german = german
        self.details = details or {}
        self.field = field  # the input field the refusal concerns (a form shows the message next to it)
        # validation errors behind the refusal (pydantic's shape): answered per field in plain words
        self.problems: list[dict] = []


class Invalid(DomainError):
    """The input breaks a rule (a format, a range, a combination)."""

    code = "invalid_request"


class NotFound(DomainError):
    """No such object — also for objects of other tenants, so their existence is not revealed."""

    code = "not_found"


class Conflict(DomainError):
    """The input is valid, but the present state does not allow it (exists, in use, pending)."""

    code = "conflict"


class Unauthorized(DomainError):
    """Who asks is not known (no, a wrong or an expired credential)."""

    code = "unauthorized"


class Forbidden(DomainError):
    """Who asks is known but may not do this."""

    code = "forbidden"


class TooMany(DomainError):
    """Too many attempts: try again in `retry_after_s` seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after_s: int, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


def not_found(what: str, german: str) -> NotFound:
    """`<what> not found`, e.g. not_found("meter 7", "Zähler 7")."""
    return NotFound(f"{what} not found", german=f"{german} wurde nicht gefunden")
