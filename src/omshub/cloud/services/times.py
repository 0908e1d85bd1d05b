"""Times as the head-end's services write them: aware UTC, ISO 8601 with `Z`.
(SQLite keeps no zone: naive datetimes from the database are UTC.)"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def utc(dt: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 with zone; naive datetimes are UTC."""
    if dt is None:
        return None
    return utc(dt).isoformat().replace("+00:00", "Z")
