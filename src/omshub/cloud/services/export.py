"""The readings export (issue 11 item 4): a tenant's readings of a period, read through the
`(tenant_id, timestamp)` index (only the period asked for is visited) in keyset batches of plain
Core rows (no ORM object per row), each batch in its own short session so memory stays flat and a
SQLite reader never holds the WAL for the whole export.

Rows come in (timestamp, id) order. The export's columns are the readings' typed values
(store/reading_values.py); the JSON export's named `fields` are the decoded telegram's, decoded
again per batch (decode/redecode.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import and_, or_, select

from omshub.cloud.decode.redecode import Redecoder
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Meter, Reading
from omshub.times import iso

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
_SELECTED = (
    Reading.id,
    Meter.manufacturer,
    Meter.meter_id,
    Meter.device_type,
    Reading.timestamp,
    Reading.received_at,
    *(getattr(Reading, column) for _c, column in EXPORT_QUANTITIES),
    Reading.status,
    Reading.telegram_id,
)


def export_rows(
    db: Database, tenant_id: int, start: datetime, end: datetime, meter_pk: int | None
) -> Iterator[list[tuple]]:
    """Batches of export rows: tuples in EXPORT_COLUMNS order (times as ISO text, absent values
    None), each followed by the reading's telegram id."""
    last: tuple[datetime, int] | None = None
    while True:
        stmt = select(*_SELECTED).join(Meter, Meter.id == Reading.meter_pk)
        stmt = stmt.where(Reading.tenant_id == tenant_id, Reading.timestamp >= start, Reading.timestamp <= end)
        if meter_pk is not None:
            stmt = stmt.where(Reading.meter_pk == meter_pk)
        if last is not None:
            stmt = stmt.where(
                or_(Reading.timestamp > last[0], and_(Reading.timestamp == last[0], Reading.id > last[1]))
            )
        stmt = stmt.order_by(Reading.timestamp, Reading.id).limit(EXPORT_BATCH)
        with db.session() as session:
            rows = session.execute(stmt).all()
        if not rows:
            return
        last = (rows[-1][4], rows[-1][0])
        yield [(r[0], r[1], r[2], r[3], iso(r[4]), iso(r[5]), *r[6:]) for r in rows]
        if len(rows) < EXPORT_BATCH:
            return


def with_fields(
    db: Database, decoder: Redecoder, tenant_id: int, batches: Iterator[list[tuple]]
) -> Iterator[list[tuple[tuple, dict]]]:
    """Each export row with its reading's named fields (decoded again; {} where it no longer decodes)."""
    for batch in batches:
        with db.session() as session:
            decoded = decoder.telegrams(session, [row[-1] for row in batch], tenant_id)
        yield [(row, (decoded.get(row[-1]) or {}).get("fields") or {}) for row in batch]
