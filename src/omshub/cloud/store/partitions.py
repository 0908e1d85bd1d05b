"""Monthly partitions of the telegrams table on PostgreSQL (declarative range partitioning on
`received_at`), made by the project itself: `ensure_partitions` creates the current month's and
the next AHEAD_MONTHS months' partitions (the maintenance task of the same name, run by
`omshub admin maintenance`, on `omshub serve`'s schedule and at its start), so a telegram always
lands in a partition made before it arrived. A telegram whose receive time lies outside every
monthly partition (a gateway clock far off) lands in `telegrams_default`; when its month's
partition is made later, it is moved there.

Why partitions: a month's rows and their indexes lie together, so the hot index pages are the
current month's (the old months' pages are not touched by inserts), and retention drops a whole
old month with DROP TABLE instead of deleting row by row (store/retention.py asks
`droppable_partitions`).

Readings and uplinks are not partitioned (see docs/deploy.md, "Partitions"): readings are looked
up by id (meters.last_reading_id, billing's references) and a partitioned table has no unique key
on id alone; uplinks carry their telegrams' bytes no more (store/uplink_bodies.py) and their
retry key (gateway, seq, content) cannot include the receive time.

SQLite has no partitions; there the equivalent is the layout of the indexes: every index of
telegrams and readings that grows with the history starts with a time or an id, so inserts
append at its right edge and only its last pages are hot.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

PARTITIONED = ("telegrams",)
PARTITION_KEY = {"telegrams": "received_at"}
AHEAD_MONTHS = 3


def month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(at: datetime) -> datetime:
    return datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y_%m}"


def is_partitioned(conn: Connection, table: str) -> bool:
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}).scalar()
    return kind == "p"


def partitions(conn: Connection, table: str) -> list[tuple[str, datetime | None, datetime | None]]:
    """[(name, from, to)] of a partitioned table's partitions (from/to None: the default one)."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": table},
    ).all()
    out: list[tuple[str, datetime | None, datetime | None]] = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append((name, None, None))
            continue
        # FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')
        parts = bound.split("'")
        out.append((name, _parse(parts[1]), _parse(parts[3])))
    return out


def _parse(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace(" ", "T"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _literal(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00")


def create_month(conn: Connection, table: str, month: datetime) -> bool:
    """The partition of `month` (its first instant, UTC), made if missing; rows of that month
    found in the default partition are moved into it. -> whether it was made."""
    name = partition_name(table, month)
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return False
    key, default = PARTITION_KEY[table], f"{table}_default"
    lo, hi = _literal(month), _literal(next_month(month))
    bounds = f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
    has_default = conn.execute(text("SELECT to_regclass(:n)"), {"n": default}).scalar() is not None
    if has_default:
        # the default partition is checked for rows of the new range: none may come in meanwhile
        conn.exec_driver_sql(f'LOCK TABLE "{default}" IN ACCESS EXCLUSIVE MODE')
    stray = (
        has_default
        and conn.exec_driver_sql(
            f"SELECT 1 FROM \"{default}\" WHERE {key} >= '{lo}' AND {key} < '{hi}' LIMIT 1"
        ).first()
    )
    if not stray:
        conn.exec_driver_sql(f'CREATE TABLE "{name}" PARTITION OF "{table}" {bounds}')
        return True
    conn.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING STORAGE)')
    moved = f"{key} >= '{lo}' AND {key} < '{hi}'"
    conn.exec_driver_sql(f'INSERT INTO "{name}" SELECT * FROM "{default}" WHERE {moved}')
    conn.exec_driver_sql(f'DELETE FROM "{default}" WHERE {moved}')
    # (attaching makes the partitioned table's indexes and constraints on it)
    conn.exec_driver_sql(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" {bounds}')
    return True


def ensure_partitions(conn: Connection, now: datetime, ahead: int = AHEAD_MONTHS) -> list[str]:
    """This month's and the next `ahead` months' partitions of every partitioned table (those
    missing are made). -> names made. Nothing on SQLite or where the table is not partitioned."""
    if conn.dialect.name == "sqlite":
        return []
    made = []
    for table in PARTITIONED:
        if not is_partitioned(conn, table):
            continue
        month = month_start(now)
        for _ in range(ahead + 1):
            if create_month(conn, table, month):
                made.append(partition_name(table, month))
            month = next_month(month)
    return made
