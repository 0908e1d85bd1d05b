"""What every API module shares: the bounded input types, cursor pagination, time parsing and
formatting, the per-request database session. (Refusals: api/errors.py.)"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Interval
from fastapi import Depends
from pydantic import AfterValidator, AwareDatetime, Field, WithJsonSchema
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services.time_zones import MAX_TIME, MIN_TIME
from omshub.cloud.store.database import get_session, get_write_session
from omshub.times import iso

MAX_LIMIT = 1000
MAX_INT64 = (1 << 63) - 1  # the database's integers (SQLite and PostgreSQL bigint) hold no more
MAX_TIME_TEXT = 64


def _time_range_problem(value: datetime) -> str | None:
    """Why an aware datetime is outside the times the API takes, else None."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 or 9999-12-31T23:30-01:00: no UTC year 0 or 10000
        utc = None
    if utc is None or not MIN_TIME <= utc <= MAX_TIME:
        return f"is outside {iso(MIN_TIME)} to {iso(MAX_TIME)} (UTC)"
    return None


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 query parameter (a zone is required; `Z` allowed) -> aware datetime; 422 otherwise."""
    if text is None or text == "":
        return None
    shown = repr(text) if len(text) <= MAX_TIME_TEXT else repr(text[:MAX_TIME_TEXT]) + "..."
    try:
        if len(text) > MAX_TIME_TEXT:
            raise ValueError
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00").replace(" ", "+"))
    except ValueError as exc:  # also a day or hour the calendar does not have (2025-02-29, 24:30)
        why = "" if len(text) > MAX_TIME_TEXT or "isoformat" in str(exc) else f" ({exc})"
        raise Invalid(
            code="invalid_time",
            message=f"{name}: {shown} is not an ISO 8601 time{why}",
            german=f"{name}: {shown} ist kein Zeitpunkt (z. B. 2026-01-31T08:00:00Z).",
        ) from None
    if value.tzinfo is None:
        raise Invalid(
            code="invalid_time",
            message=f"{name}: {shown} needs a zone (e.g. Z or +01:00)",
            german=f"{name}: Zu {shown} fehlt die Zeitzone (z. B. Z oder +01:00).",
        )
    problem = _time_range_problem(value)
    if problem:
        raise Invalid(
            code="invalid_time",
            message=f"{name}: {shown} {problem}",
            german=f"{name}: {shown} liegt außerhalb der Jahre 1970 bis 9999.",
        )
    return value.astimezone(UTC)


# --- bounded input types for path, query and body parameters ---


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters (\\x00): the database cannot store them")
    return value


def _time_in_range(value: datetime) -> datetime:
    problem = _time_range_problem(value)
    if problem:
        raise ValueError(f"{value.isoformat()} {problem}")
    return value.astimezone(UTC)


# Text the API stores or looks up: PostgreSQL refuses NUL in text, so it is refused here, for every database alike.
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})]
# The id of a stored object (a database bigint).
Id = Annotated[int, Interval(ge=1, le=MAX_INT64)]
# A page size: bounds documented here, checked by paginate() (code `invalid_limit`); the type only
# keeps it a database integer. (These types keep their bounds as `name: Type = default`; with
# `= Query(...)` FastAPI drops them: there, write `name: Annotated[Type, Query(...)]`.)
Limit = Annotated[
    int,
    Interval(ge=-MAX_INT64, le=MAX_INT64),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}),
]
# An ISO 8601 time with zone in a query, for parse_time(): documented as a date-time, so that
# schema-driven clients (and the API fuzz test) send times.
TimeQuery = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
# An ISO 8601 time with zone in a JSON body, within MIN_TIME..MAX_TIME; as UTC.
Time = Annotated[AwareDatetime, AfterValidator(_time_in_range)]


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"id:{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id" or len(value) > 19:
            raise ValueError
        number = int(value)
        if not 0 <= number <= MAX_INT64:
            raise ValueError
        return number
    except (ValueError, UnicodeDecodeError):
        raise Invalid(
            code="invalid_cursor",
            message="cursor is not one this API returned",
            german="Diese Seite der Liste gibt es nicht (mehr); laden Sie die Liste neu.",
        ) from None


def paginate(
    session: Session, stmt, *, cursor: str | None, limit: int, key_column, descending: bool = False
) -> tuple[list, str | None]:
    """Keyset pagination on a unique integer column: (rows, next cursor or None).
    `stmt` selecting one ORM entity yields objects, else rows."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(
            code="invalid_limit",
            message=f"limit must be 1 to {MAX_LIMIT}, not {limit}",
            german=f"Es können 1 bis {MAX_LIMIT} Zeilen auf einmal gezeigt werden.",
        )
    if cursor:
        after = decode_cursor(cursor)
        stmt = stmt.where(key_column < after if descending else key_column > after)
    stmt = stmt.order_by(key_column.desc() if descending else key_column.asc()).limit(limit + 1)
    if len(stmt.column_descriptions) == 1:
        rows = list(session.scalars(stmt).all())
    else:
        rows = list(session.execute(stmt).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, key_column.key))


def page(items: list, next_cursor: str | None) -> dict:
    """The list envelope every list endpoint returns."""
    return {"items": items, "next_cursor": next_cursor}


# `session: DbSession` in a handler: a per-request session, committed when the handler returns and
# before the response is sent (scope="function"), so a client never sees an uncommitted success.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
# `session: WriteSession`: the same for a read route that writes (the portal's read log)
WriteSession = Annotated[Session, Depends(get_write_session, scope="function")]
