"""Reading export v1 (docs/exports.md): a tenant's boundary values and period consumption of one
period, as rows of domain/exports/v1.COLUMNS, streamed in batches (constant memory: one
driver-level statement per section, fetched a batch at a time).

Rows come in two sections, each in id order: the boundary values of the period's metering points
(every value at the period's start, end and each move inside it), then the consumption of each
point. A cursor ("v:<id>" / "c:<id>") names the last row of a page: the next page starts after it.
`changed_since` keeps rows changed after that time (a value's `changed_at`, a consumption's
`computed_at`): an incremental load.

The meter of a row is the one installed at the boundary (for consumption: at the period's end); the
customer reference is the occupant's whose stay covers the boundary day (else the metering point's).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.domain.exports.v1 import COLUMNS, SCHEMA, UNIT_OF_QUANTITY, TimeTexts
from omshub.cloud.store.database import Database, time_to_db

BATCH = 5000
_CURSOR = re.compile(r"^(v|c):(\d{1,18})$")
_PERIOD = re.compile(r"^(\d{4}-(0[1-9]|1[0-2])|year:\d{4})$")

# the telegram a value was read from (meter_stored, measured): its id inside the details JSON
_TELEGRAM = {
    "sqlite": "CAST(json_extract(bv.details, '$.telegram_id') AS INTEGER)",
    "postgresql": "CAST(bv.details::jsonb ->> 'telegram_id' AS BIGINT)",
}

_VALUES = """
SELECT bv.id, bv.changed_at, t.slug, p.ref, u.ref, mp.ref, COALESCE(oc.customer_ref, mp.customer_ref),
       m.manufacturer, m.meter_id, bv.quantity, bv.value, bv.boundary_at, bv.reason, c.period, c.start_at,
       c.end_at, bv.origin, bv.code, bv.quality, bv.state, p.timezone, tg.received_at, mp.id
FROM billing_consumption c
JOIN billing_values bv ON bv.metering_point_id = c.metering_point_id AND bv.quantity = c.quantity
     AND bv.boundary_at >= c.start_at AND bv.boundary_at <= c.end_at
JOIN tenants t ON t.id = c.tenant_id
JOIN metering_points mp ON mp.id = c.metering_point_id
LEFT JOIN units u ON u.id = mp.unit_id
LEFT JOIN properties p ON p.id = u.property_id
LEFT JOIN installations i ON i.metering_point_id = mp.id AND i.installed_at <= bv.boundary_at
     AND (i.removed_at IS NULL OR i.removed_at > bv.boundary_at)
LEFT JOIN meters m ON m.id = i.meter_pk
LEFT JOIN occupancies o ON o.unit_id = u.id AND o.moved_in <= bv.boundary_day
     AND (o.moved_out IS NULL OR o.moved_out >= bv.boundary_day)
LEFT JOIN occupants oc ON oc.id = o.occupant_id
LEFT JOIN telegrams tg ON tg.id = {telegram} AND tg.tenant_id = c.tenant_id
WHERE c.tenant_id = {m} AND c.period = {m} AND bv.tenant_id = {m} AND bv.id > {m}
"""

_CONSUMPTION = """
SELECT c.id, c.computed_at, t.slug, p.ref, u.ref, mp.ref, COALESCE(oc.customer_ref, mp.customer_ref),
       m.manufacturer, m.meter_id, c.quantity, c.value, c.end_at, '', c.period, c.start_at,
       c.end_at, NULL, NULL, c.quality, NULL, p.timezone, NULL, mp.id, c.runs
FROM billing_consumption c
JOIN tenants t ON t.id = c.tenant_id
JOIN metering_points mp ON mp.id = c.metering_point_id
LEFT JOIN units u ON u.id = mp.unit_id
LEFT JOIN properties p ON p.id = u.property_id
LEFT JOIN installations i ON i.metering_point_id = mp.id AND i.installed_at < c.end_at
     AND (i.removed_at IS NULL OR i.removed_at >= c.end_at)
LEFT JOIN meters m ON m.id = i.meter_pk
LEFT JOIN occupancies o ON o.unit_id = u.id AND o.moved_in < {end_day}
     AND (o.moved_out IS NULL OR o.moved_out >= {end_day})
LEFT JOIN occupants oc ON oc.id = o.occupant_id
WHERE c.tenant_id = {m} AND c.period = {m} AND c.id > {m}
"""
# the last local day of the period, approximately (the occupant at the period end): the day of end_at
_END_DAY = {"sqlite": "date(c.end_at)", "postgresql": "CAST(c.end_at AS date)"}


@dataclass(frozen=True)
class Scope:
    """What to export: one period ("2026-11", "year:2026"), optionally only rows changed after
    `changed_since`, starting after `cursor`, at most `limit` rows (None: all)."""

    period: str
    changed_since: datetime | None = None
    cursor: str | None = None
    limit: int | None = None


def check_scope(scope: Scope) -> None:
    if not _PERIOD.match(scope.period):
        raise Invalid(
            f"period {scope.period!r}: expected a month like 2026-11 or a billing year like year:2026",
            german=f"Zeitraum {scope.period!r}: erwartet ein Monat wie 2026-11 oder ein Abrechnungsjahr wie year:2026",
        )
    if scope.cursor is not None and not _CURSOR.match(scope.cursor):
        raise Invalid(
            f"cursor {scope.cursor!r}: not a cursor of this export (take next_cursor of the previous page)",
            german=f"Cursor {scope.cursor!r}: kein Cursor dieses Exports (next_cursor der vorigen Seite nehmen)",
        )
    if scope.limit is not None and not 1 <= scope.limit <= 100_000:
        raise Invalid(
            f"limit {scope.limit}: between 1 and 100000", german=f"limit {scope.limit}: zwischen 1 und 100000"
        )


def _sql(db: Database, section: str, since: bool) -> str:
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    mark = "?" if db.is_sqlite else "%s"
    if section == "v":
        sql = _VALUES.format(telegram=_TELEGRAM[dialect], m=mark)
        sql += f" AND bv.changed_at > {mark}" if since else ""
        return sql + " ORDER BY bv.id"
    sql = _CONSUMPTION.format(end_day=_END_DAY[dialect], m=mark)
    sql += f" AND c.computed_at > {mark}" if since else ""
    return sql + " ORDER BY c.id"


def rows(db: Database, tenant_id: int, scope: Scope, export_id: str = "", extras: bool = True) -> Iterator[list[dict]]:
    """Batches of v1 rows: dicts of COLUMNS, with `extras` also `_zone`, `_point` and (consumption)
    `_runs`, which the SAP upload needs. A row's `row_id` is the cursor after it."""
    check_scope(scope)
    to_db = time_to_db(db.is_sqlite)
    section, after = "v", 0
    if scope.cursor:
        found = _CURSOR.match(scope.cursor)
        assert found is not None
        section, after = found.group(1), int(found.group(2))
    left = scope.limit
    times = TimeTexts()
    for sec in ("v", "c"):
        if sec == "v" and section == "c":
            continue
        start = after if sec == section else 0
        params: tuple = (tenant_id, scope.period) + ((tenant_id,) if sec == "v" else ()) + (start,)
        if scope.changed_since is not None:
            params += (to_db(scope.changed_since),)
        sql = _sql(db, sec, scope.changed_since is not None)
        if left is not None:
            sql += f" LIMIT {int(left)}"
        with db.session() as session:
            # a driver cursor (PostgreSQL: server-side): plain tuples, no result object per row
            raw = session.connection().connection
            cursor = raw.cursor() if db.is_sqlite else raw.cursor(name="omshub_export")
            cursor.execute(sql, params)
            while fetched := cursor.fetchmany(BATCH):
                batch = [_row(sec, r, export_id, times, extras) for r in fetched]
                if left is not None:
                    left -= len(batch)
                yield batch
            cursor.close()
        if left is not None and left <= 0:
            return


def _row(section: str, r, export_id: str, times: TimeTexts, extras: bool) -> dict:
    boundary = r[11] if section == "v" else None
    zone = r[20]
    utc_get, utc = times.cache.get, times.utc
    row = {
        "schema": SCHEMA,
        "export_id": export_id,
        "record": _RECORD[section],
        "tenant": r[2],
        "property": r[3],
        "unit": r[4],
        "metering_point": r[5],
        "customer_ref": r[6] or None,
        "meter_manufacturer": r[7],
        "meter_id": r[8],
        # the wM-Bus identification number is the serial number printed on the meter
        "meter_serial": r[8],
        "register": r[9],
        "value": r[10],
        "value_unit": UNIT_OF_QUANTITY.get(r[9], ""),
        # the times are a few instants: their texts come from the cache, None stays None
        "boundary_utc": None if boundary is None else utc_get(boundary) or utc(boundary),
        "boundary_local": None if boundary is None else times.local(boundary, zone),
        "boundary_reason": r[12] or None,
        "period": r[13],
        "period_start_utc": utc_get(r[14]) or utc(r[14]),
        "period_end_utc": utc_get(r[15]) or utc(r[15]),
        "origin": r[16],
        "tabelle_s": r[17],
        "quality": r[18],
        "validation_state": r[19],
        "received_utc": None if r[21] is None else utc_get(r[21]) or utc(r[21]),
        "row_id": f"{section}:{r[0]}",
        "version": utc_get(r[1]) or utc(r[1]),
        "delivery": None,
        "previous_export_id": None,
    }
    if extras:
        row["_zone"], row["_point"] = zone, r[22]
        if section == "c":
            row["_runs"] = orjson.loads(r[23]) if isinstance(r[23], str) else r[23]
    return row


_RECORD = {"v": "boundary_value", "c": "consumption"}


def public(row: dict) -> dict:
    """The row as the JSON export writes it: COLUMNS only (not `_zone`, `_point`, `_runs`)."""
    return {c: row[c] for c in COLUMNS}
