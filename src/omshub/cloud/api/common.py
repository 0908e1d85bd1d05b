"""What every API module shares: the error type, cursor pagination, time formatting."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from ..db import get_session

MAX_LIMIT = 1000


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with HTTP `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(what: str) -> ApiError:
    """404 — also for objects of other tenants, so their existence is not revealed."""
    return ApiError(404, "not_found", f"{what} not found")


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 with zone; naive datetimes are UTC (SQLite keeps no zone)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 query parameter (a zone is required; `Z` allowed) -> aware datetime; 422 otherwise."""
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(422, "invalid_time", f"{name}: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ApiError(422, "invalid_time", f"{name}: {text!r} needs a zone (e.g. Z or +01:00)")
    return value.astimezone(timezone.utc)


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"id:{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "cursor is not one this API returned") from None


def paginate(session: Session, stmt, *, cursor: str | None, limit: int, key_column,
             descending: bool = False) -> tuple[list, str | None]:
    """Keyset pagination on a unique integer column: (rows, next cursor or None).
    `stmt` selecting one ORM entity yields objects, else rows."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(422, "invalid_limit", f"limit must be 1 to {MAX_LIMIT}, not {limit}")
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
