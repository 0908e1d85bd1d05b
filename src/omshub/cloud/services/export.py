"""The readings export: a tenant's readings of a period, read through the
`(tenant_id, timestamp)` index (only the period asked for is visited) by one driver-level statement
fetched in batches (no ORM object, no type processing per row), so memory stays flat. The read
transaction lasts as long as the export (at 100,000 rows/s a month of 300,000 readings is ~3 s).

Rows come in (timestamp, id) order. The export's columns are the readings' typed values
(store/reading_values.py); the JSON export's named `fields` (asked for with `fields=true`) are
the decoded telegram's, decoded again per batch (decode/redecode.py: a decode per row, ~10x slower).

The batches are fetched one ahead in a thread of their own (`_ahead`): the database's work
(SQLite's steps and PostgreSQL's round trips release the GIL) overlaps the formatting of the
batch before, and at most three batches are held at a time.
"""

from __future__ import annotations

import csv
import io
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from datetime import datetime
from operator import itemgetter

from omshub.cloud.decode.redecode import Redecoder
from omshub.cloud.store.database import Database, iso_sql, time_to_db

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


# CSV rows by one %-format per row (the csv module's per-field work was a third of the CSV
# export's time); the same text as csv.writer(lineterminator="\r\n") writes: values by str(), None
# empty. Only the meter's text columns could need quotes (or contain "None"); a batch where one
# does is written by the csv module.
_CSV_ROW = ",".join(["%s"] * len(EXPORT_COLUMNS))
_TEXT_COLUMNS = itemgetter(1, 2, 3)  # manufacturer, meter id, device type
_NOT_PLAIN = re.compile(r'[,"\r\n]|None')


def csv_text(batch: list[tuple]) -> str:
    """Export rows (EXPORT_COLUMNS) as CSV lines, exactly as the csv module writes them."""
    if not batch:
        return ""
    for texts in set(map(_TEXT_COLUMNS, batch)):
        if any(type(t) is not str or _NOT_PLAIN.search(t) for t in texts):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\r\n").writerows(batch)
            return buf.getvalue()
    # (None is written "None" by %s and taken out here: no other value has it after a comma)
    return ("\r\n".join(map(_CSV_ROW.__mod__, batch)) + "\r\n").replace(",None", ",")


def _select(dialect: str, with_telegram: bool) -> str:
    columns = [
        "r.id",
        "m.manufacturer",
        "m.meter_id",
        "m.device_type",
        iso_sql(dialect, 'r."timestamp"'),
        iso_sql(dialect, "r.received_at"),
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
    level, fetched a batch at a time (PostgreSQL: a server-side cursor), in (timestamp, id) order,
    a batch ahead of the caller (`_ahead`)."""
    to_db = time_to_db(db.is_sqlite)
    mark = "?" if db.is_sqlite else "%s"
    sql = _select(db.dialect, with_telegram).replace("{m}", mark)
    params: tuple = (tenant_id, to_db(start), to_db(end))
    if meter_pk is not None:
        sql += f" AND r.meter_pk = {mark}"
        params += (meter_pk,)
    sql += ' ORDER BY r."timestamp", r.id'
    return _ahead(lambda: _fetched(db, sql, params))


def _fetched(db: Database, sql: str, params: tuple) -> Generator[list, None, None]:
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


_END = object()


def _ahead(batches: Callable[[], Generator[list, None, None]]) -> Iterator[list]:
    """The batches of `batches()`, which runs in a thread of its own one batch ahead (its session
    opened, used and closed there). Its error is raised here; when the caller stops early (a
    client that went away closes the generator), the thread stops at its next batch."""
    handed: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with closing(batches()) as fetched:
                for batch in fetched:
                    if not put(batch):
                        return
            put(_END)
        except BaseException as exc:  # (handed to the caller, raised there)
            put(exc)

    def consume() -> Iterator[list]:
        thread = threading.Thread(target=produce, name="omshub-export", daemon=True)
        thread.start()
        try:
            while (item := handed.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    return consume()


def with_fields(
    db: Database, decoder: Redecoder, tenant_id: int, batches: Iterator[list[tuple]]
) -> Iterator[list[tuple[tuple, dict]]]:
    """Each export row with its reading's named fields (decoded again; {} where it no longer decodes)."""
    for batch in batches:
        with db.session() as session:
            decoded = decoder.telegrams(session, [row[-1] for row in batch], tenant_id)
        yield [(row, (decoded.get(row[-1]) or {}).get("fields") or {}) for row in batch]
