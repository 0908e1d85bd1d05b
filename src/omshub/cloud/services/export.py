"""The readings export: a tenant's readings of a period, read through the
`(tenant_id, timestamp)` index (only the period asked for is visited) by one driver-level statement
fetched in batches (no ORM object, no type processing per row), so memory stays flat. The read
transaction lasts as long as the export (at 100,000 rows/s a month of 300,000 readings is ~3 s).

Rows come in (timestamp, id) order. The export's columns are the readings' typed values
(store/reading_values.py); the JSON export's named `fields` (asked for with `fields=true`) are
the decoded telegram's, decoded again per batch (decode/redecode.py: a decode per row, ~10x slower).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from omshub.cloud.decode.redecode import Redecoder
from omshub.cloud.store.database import Database, time_to_db

EXPORT_BATCH = 5000
# The export's "main fields": (column, Reading column) of the current registers
EXPORT_QUANTITIES = (
    ("energy_kwh", "energy"),
    ("volume_m3", "volume"),
    ("hca", "hca"),
    ("power_kw", "power"),
    ("volume_flow_m3h", "volume_flow"),
    ("flow_temperature_c", "flow_temperature"),
    ("return_temperature_c", "return_temperature"),
    ("error_flags", "error_flags"),
)
EXPORT_COLUMNS = (
    "reading_id",
    "manufacturer",
    "meter_id",
    "device_type",
    "timestamp",
    "received_at",
    *(c for c, _ in EXPORT_QUANTITIES),
    "status",
)
# times as the export writes them (times.iso: UTC, "Z", microseconds only when there are some),
# made by the database: per row, Python then only passes the values on
_ISO = {
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (database.sqlite_time: naive UTC)
    "sqlite": "replace(substr({c}, 1, 19), ' ', 'T') || "
    "CASE WHEN substr({c}, 20) IN ('', '.000000') THEN '' ELSE substr({c}, 20) END || 'Z'",
    "postgresql": "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
    "CASE WHEN date_trunc('second', {c}) = {c} THEN '' ELSE to_char({c} AT TIME ZONE 'UTC', '.US') END || 'Z'",
}


def _select(dialect: str, with_telegram: bool) -> str:
    iso_sql = _ISO["sqlite" if dialect == "sqlite" else "postgresql"]
    columns = [
        "r.id",
        "m.manufacturer",
        "m.meter_id",
        "m.device_type",
        iso_sql.format(c='r."timestamp"'),
        iso_sql.format(c="r.received_at"),
        *(f"r.{column}" for _c, column in EXPORT_QUANTITIES),
        "r.status",
    ]
    if with_telegram:
        columns.append("r.telegram_id")
    return (
        f"SELECT {', '.join(columns)} FROM readings r JOIN meters m ON m.id = r.meter_pk "
        'WHERE r.tenant_id = {m} AND r."timestamp" >= {m} AND r."timestamp" <= {m}'
    )


def export_rows(
    db: Database, tenant_id: int, start: datetime, end: datetime, meter_pk: int | None, *, with_telegram: bool = False
) -> Iterator[list]:
    """Batches of export rows: values in EXPORT_COLUMNS order (times as ISO text, absent values
    None), with `with_telegram` followed by the reading's telegram id. One statement at the driver
    level, fetched a batch at a time (PostgreSQL: a server-side cursor), in (timestamp, id) order."""
    to_db = time_to_db(db.is_sqlite)
    mark = "?" if db.is_sqlite else "%s"
    sql = _select(db.dialect, with_telegram).replace("{m}", mark)
    params: tuple = (tenant_id, to_db(start), to_db(end))
    if meter_pk is not None:
        sql += f" AND r.meter_pk = {mark}"
        params += (meter_pk,)
    sql += ' ORDER BY r."timestamp", r.id'
    with db.session() as session:
        # the driver's own cursor: SQLAlchemy's result rows cost as much as the database's work
        driver = session.connection().connection.driver_connection
        if driver is None:
            raise RuntimeError("the export's connection is closed")
        # PostgreSQL: a server-side cursor (rows come a batch at a time, memory stays flat)
        cursor = driver.cursor() if db.is_sqlite else driver.cursor(name="omshub_export")
        try:
            cursor.execute(sql, params)
            while True:
                rows = cursor.fetchmany(EXPORT_BATCH)
                if not rows:
                    return
                yield rows
        finally:
            cursor.close()


def with_fields(
    db: Database, decoder: Redecoder, tenant_id: int, batches: Iterator[list[tuple]]
) -> Iterator[list[tuple[tuple, dict]]]:
    """Each export row with its reading's named fields (decoded again; {} where it no longer decodes)."""
    for batch in batches:
        with db.session() as session:
            decoded = decoder.telegrams(session, [row[-1] for row in batch], tenant_id)
        yield [(row, (decoded.get(row[-1]) or {}).get("fields") or {}) for row in batch]
