"""Time helpers shared by the whole package: aware UTC datetimes, ISO 8601 text.

SQLite hands back naive datetimes even for timezone-aware columns; they are UTC, so `utc()` reads
a naive datetime as UTC and converts an aware one.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["UTC", "iso", "parse_iso", "utc", "utcnow"]


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def utc(dt: datetime) -> datetime:
    """An aware UTC datetime: a naive one is taken as UTC (SQLite), an aware one converted."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (naive datetimes are UTC); None stays None."""
    if dt is None:
        return None
    return utc(dt).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """ISO 8601 text -> datetime; a trailing `Z`/`z` (or one inside, before a time) means UTC.
    ValueError when it does not parse. A naive result stays naive: the caller decides what it means."""
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
