"""Times as the head-end's services write them: aware UTC, ISO 8601 with `Z`.
(SQLite keeps no zone: naive datetimes from the database are UTC.)"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(dt: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 with zone; naive datetimes are UTC."""
    if dt is None:
        return None
    return utc(dt).isoformat().replace("+00:00", "Z")
