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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.domain.exports.v1 import SCHEMA, UNIT_OF_QUANTITY, Shared, TimeTexts
from omshub.cloud.store.database import Database, time_to_db
from omshub.cloud.store.models import Tenant

BATCH = 5000
_CURSOR = re.compile(r"^(v|c):(\d{1,18})$")
_PERIOD = re.compile(r"^(\d{4}-(0[1-9]|1[0-2])|year:\d{4})$")

# the telegram a value was read from (meter_stored, measured): its id inside the details JSON
_TELEGRAM = {
    "sqlite": "CAST(json_extract(bv.details, '$.telegram_id') AS INTEGER)",
    "postgresql": "CAST(bv.details::jsonb ->> 'telegram_id' AS BIGINT)",
}

_VALUES = """
SELECT bv.id, bv.changed_at, p.ref, u.ref, mp.ref, COALESCE(oc.customer_ref, mp.customer_ref),
       m.manufacturer, m.meter_id, bv.value, tg.received_at, mp.id, NULL,
       {shared}
FROM billing_consumption c
JOIN billing_values bv ON bv.metering_point_id = c.metering_point_id AND bv.quantity = c.quantity
     AND bv.boundary_at >= c.start_at AND bv.boundary_at <= c.end_at
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
SELECT c.id, c.computed_at, p.ref, u.ref, mp.ref, COALESCE(oc.customer_ref, mp.customer_ref),
       m.manufacturer, m.meter_id, c.value, NULL, mp.id, c.runs,
       {shared}
FROM billing_consumption c
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
# The columns many rows share, as one text (fewer columns to fetch: the driver's cost is per column):
# separated by \x1f, NULL as \x1e, times as naive UTC text. See _SharedTexts.
_SHARED = {
    "v": ("bv.quantity", "bv.boundary_at", "bv.reason", "c.start_at", "c.end_at", "bv.origin", "bv.code",
          "bv.quality", "bv.state", "p.timezone"),
    "c": ("c.quantity", None, None, "c.start_at", "c.end_at", None, None, "c.quality", None, "p.timezone"),
}  # fmt: skip
_TIMES = {"bv.boundary_at", "c.start_at", "c.end_at"}


def _shared_sql(dialect: str, section: str) -> str:
    parts = []
    for column in _SHARED[section]:
        if column is None:
            parts.append("char(30)" if dialect == "sqlite" else "chr(30)")
        elif dialect == "sqlite":
            parts.append(f"COALESCE({column}, char(30))")
        elif column in _TIMES:
            parts.append(f"COALESCE(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), chr(30))")
        else:
            parts.append(f"COALESCE({column}, chr(30))")
    return (" || char(31) || " if dialect == "sqlite" else " || chr(31) || ").join(parts)


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


# a consumption whose period has several meter runs (a swap): all the SAP upload takes of that section
_SWAPS = {"sqlite": "json_array_length(c.runs) > 1", "postgresql": "json_array_length(CAST(c.runs AS json)) > 1"}


def _sql(db: Database, section: str, since: bool, swaps_only: bool = False) -> str:
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    mark = "?" if db.is_sqlite else "%s"
    if section == "v":
        sql = _VALUES.format(telegram=_TELEGRAM[dialect], m=mark, shared=_shared_sql(dialect, "v"))
        sql += f" AND bv.changed_at > {mark}" if since else ""
        return sql + " ORDER BY bv.id"
    sql = _CONSUMPTION.format(end_day=_END_DAY[dialect], m=mark, shared=_shared_sql(dialect, "c"))
    sql += f" AND c.computed_at > {mark}" if since else ""
    sql += f" AND {_SWAPS[dialect]}" if swaps_only else ""
    return sql + " ORDER BY c.id"


def rows(db: Database, tenant_id: int, scope: Scope, export_id: str = "", extras: bool = True,
         swaps_only: bool = False) -> Iterator[list[list]]:  # fmt: skip
    """Batches of v1 rows: lists of COLUMNS, then (domain/exports/v1.py) the zone, the metering
    point, the consumption's meter runs (with `extras`: the SAP upload needs them), the previous
    run and the row's Shared texts. A row's `row_id` is the cursor after it. `swaps_only`: of the
    consumption, only the rows with a meter swap (the SAP upload makes rows of nothing else)."""
    check_scope(scope)
    to_db = time_to_db(db.is_sqlite)
    section, after = "v", 0
    if scope.cursor:
        found = _CURSOR.match(scope.cursor)
        assert found is not None
        section, after = found.group(1), int(found.group(2))
    left = scope.limit
    times = TimeTexts()
    with db.session() as session:
        slug = session.execute(select(Tenant.slug).where(Tenant.id == tenant_id)).scalar_one()
    for sec in ("v", "c"):
        if sec == "v" and section == "c":
            continue
        start = after if sec == section else 0
        params: tuple = (tenant_id, scope.period) + ((tenant_id,) if sec == "v" else ()) + (start,)
        if scope.changed_since is not None:
            params += (to_db(scope.changed_since),)
        sql = _sql(db, sec, scope.changed_since is not None, swaps_only)
        if left is not None:
            sql += f" LIMIT {int(left)}"
        shared = _SharedTexts(sec, export_id, slug, scope.period, times)
        with db.session() as session:
            # a driver cursor (PostgreSQL: server-side): plain tuples, no result object per row
            raw = session.connection().connection
            if not db.is_sqlite:
                # all rows are read: plan for all of them, not for the first 10 % (a cursor's default,
                # which picks slow nested loops over hash joins)
                session.connection().exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor = raw.cursor() if db.is_sqlite else raw.cursor(name="omshub_export")
            cursor.execute(sql, params)
            while fetched := cursor.fetchmany(BATCH):
                batch = _batch(sec, fetched, shared, times, extras)
                if left is not None:
                    left -= len(batch)
                yield batch
            cursor.close()
        if left is not None and left <= 0:
            return


class _SharedTexts:
    """The Shared texts of a section's rows, by the columns they come from (few distinct ones)."""

    def __init__(self, section: str, export_id: str, slug: str, period: str, times: TimeTexts) -> None:
        self.section, self.export_id, self.slug, self.period, self.times = section, export_id, slug, period, times
        self.found: dict[str, Shared] = {}

    def make(self, key: str) -> Shared:
        quantity, boundary, reason, start, end, origin, code, quality, state, zone = (
            None if part == "\x1e" else part for part in key.split("\x1f")
        )
        t = self.times
        values = (
            SCHEMA, self.export_id, _RECORD[self.section], self.slug,
            quantity, UNIT_OF_QUANTITY.get(quantity or "", ""), t.utc(boundary), t.local(boundary, zone),
            reason or None, self.period, t.utc(start), t.utc(end), origin, code, quality, state,
        )  # fmt: skip
        if len(self.found) > 10_000:
            self.found.clear()
        made = self.found[key] = Shared(values, zone)
        return made


def _batch(section: str, fetched: Sequence, shared: _SharedTexts, times: TimeTexts, extras: bool) -> list[list]:
    out = []
    found, make = shared.found, shared.make
    utc_get, utc = times.cache.get, times.utc
    loads = orjson.loads
    for r in fetched:
        key = r[12]
        s = found.get(key) or make(key)
        v = s.values
        received, runs = r[9], r[11]
        if received is not None:
            received = utc_get(received) or utc(received)
        if runs is not None:
            runs = (loads(runs) if isinstance(runs, str) else runs) if extras else None
        # the wM-Bus identification number is the serial number printed on the meter: meter_serial
        out.append([
            v[0], v[1], v[2], v[3], r[2], r[3], r[4], r[5] or None, r[6], r[7], r[7], v[4], r[8], *v[5:],
            received, f"{section}:{r[0]}", utc_get(r[1]) or utc(r[1]), None, None, s.zone, r[10], runs, None, s,
        ])  # fmt: skip
    return out


_RECORD = {"v": "boundary_value", "c": "consumption"}
