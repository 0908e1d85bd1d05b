"""Storing a close's results (docs/billing.md §Closing a period), idempotently and in bulk.

Per batch of metering points: one query each for the stored values, consumption, findings and
occupant segments that the results can touch, compared in Python; new rows and changed rows written
at the driver level (store/database.BulkSql: COPY and staged UPDATEs on PostgreSQL, executemany on
SQLite), unchanged rows not at all. A close of 100,000 points writes some 300,000 rows, and the ORM's
unit of work spent more time on each than the computation.

A value an operator edited or estimated keeps its value; what omshub computes is updated next to it
(`computed_*`). A value that changes after it was exported is marked `export_stale`. A finding that a
later run no longer finds is `cleared`; decided findings stay decided.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.cloud.domain.billing import validation as v
from omshub.cloud.domain.billing.boundary import BoundaryValue
from omshub.cloud.domain.billing.consumption import Run, period_consumption
from omshub.cloud.domain.billing.origins import QUALITY_OF_ORIGIN, Origin
from omshub.cloud.domain.billing.segments import segment_consumption
from omshub.cloud.services.billing_compute import Boundary, PointResult
from omshub.cloud.store.database import BulkSql, json_text, one_of
from omshub.cloud.store.models_billing import BillingConsumption, BillingFinding, BillingSegment, BillingValue

OPERATOR_ORIGINS = (Origin.EDITED.value, Origin.ESTIMATED.value)
_V, _C, _F = BillingValue.__table__, BillingConsumption.__table__, BillingFinding.__table__
_S = BillingSegment.__table__
_VALUE_MUTABLE = (
    "value",
    "origin",
    "quality",
    "code",
    "details",
    "computed_value",
    "computed_origin",
    "computed_details",
    "computed_at",
    "changed_at",
    "export_stale",
    "reason",
    "state",
)


def plain(details: dict) -> dict:
    """Details as JSON keeps them (dates as ISO text), so a stored and a computed dict compare."""
    return {k: (val.isoformat() if isinstance(val, (datetime, date)) else val) for k, val in details.items()}


def store_results(session: Session, tenant_id: int, results: list, now: datetime, counts: dict) -> None:
    """Store `results` ([(period, label, PointResult)]) of one batch; `counts` is updated."""
    if not results:
        return
    ids = sorted({r.point_id for _, _, r in results})
    labels = sorted({label for _, label, _ in results})
    starts = min(p.start for p, _, _ in results)
    ends = max(p.end for p, _, _ in results)
    values = _existing_values(session, ids, starts, ends)
    first_open = dict(
        session.connection()
        .execute(
            select(BillingFinding.metering_point_id, func.min(BillingFinding.period))
            .where(one_of(session, BillingFinding.metering_point_id, ids), BillingFinding.state == "open")
            .group_by(BillingFinding.metering_point_id)
        )
        .all()
    )
    writes = _Writes()
    for _period, label, result in results:
        pending = first_open.get(result.point_id, "~") < label
        errors = any(f.severity == v.ERROR for f in result.findings)
        state = "pending" if pending else ("review" if errors else "ok")
        mine = values.setdefault((result.point_id, result.quantity), {})
        for b in result.boundaries:
            _value(writes, tenant_id, result, b, mine, state, now, counts)
        _apply_operator_values(result, mine)
    _consumption(session, tenant_id, results, ids, labels, now, writes)
    store_segments(session, tenant_id, results, values, ids, labels, now, writes)
    _findings(session, tenant_id, results, ids, labels, now, counts, writes)
    writes.flush(session)


# per table: each column's PostgreSQL type (the staging tables of BulkSql are made from them)
_TYPES = {
    "tenant_id": "bigint",
    "metering_point_id": "bigint",
    "quantity": "text",
    "boundary_at": "timestamptz",
    "boundary_day": "date",
    "reason": "text",
    "value": "double precision",
    "origin": "text",
    "quality": "text",
    "code": "text",
    "method": "text",
    "details": "json",
    "computed_value": "double precision",
    "computed_origin": "text",
    "computed_details": "json",
    "state": "text",
    "computed_at": "timestamptz",
    "changed_at": "timestamptz",
    "exported_at": "timestamptz",
    "export_stale": "boolean",
    "period": "text",
    "start_at": "timestamptz",
    "end_at": "timestamptz",
    "runs": "json",
    "rule": "text",
    "severity": "text",
    "message": "text",
    "german": "text",
    "created_at": "timestamptz",
    "decided_at": "timestamptz",
    "decided_by": "text",
    "note": "text",
    "unit_id": "bigint",
    "occupancy_id": "bigint",
    "first_day": "date",
    "last_day": "date",
}


class _Writes:
    """The batch's inserts and updates per table, sent together at the driver level (BulkSql: COPY
    and staged UPDATEs on PostgreSQL, executemany on SQLite)."""

    def __init__(self) -> None:
        self.inserts: dict = {_V: [], _C: [], _F: [], _S: []}
        self.updates: dict = {_V: [], _C: [], _F: [], _S: []}
        self.deletes: dict = {_S: []}

    def flush(self, session: Session) -> None:
        sql = BulkSql(session, session.get_bind().dialect.name == "sqlite")
        for table, rows in self.inserts.items():
            if rows:
                columns = tuple(rows[0])
                sql.insert(table.name, columns, _types(columns), [_driver_row(sql, r, columns) for r in rows])
        for table, rows in self.updates.items():
            by_columns: dict[tuple, list[dict]] = {}
            for row in rows:
                by_columns.setdefault(tuple(sorted(c for c in row if c != "b_id")), []).append(row)
            for columns, group in by_columns.items():
                values = [(*_driver_row(sql, g, columns), g["b_id"]) for g in group]
                sql.update(table.name, columns, _types(columns), values)
        for table, ids in self.deletes.items():
            if ids:
                session.connection().execute(table.delete().where(table.c.id.in_(ids)))


def _types(columns: tuple) -> tuple[str, ...]:
    return tuple(_TYPES[c] for c in columns)


def _driver_row(sql: BulkSql, row: dict, columns: tuple) -> tuple:
    """A row's values as the column types would bind them (times, JSON, dates)."""
    out: list = []
    for c in columns:
        value, kind = row[c], _TYPES[c]
        if value is None:
            out.append(None)
        elif kind == "timestamptz":
            out.append(sql.time(value))
        elif kind == "json":
            out.append(json_text(value))
        elif kind == "date" and sql.sqlite:
            out.append(value.isoformat())
        else:
            out.append(value)
    return tuple(out)


def _existing_values(session: Session, ids: list[int], start: datetime, end: datetime) -> dict:
    """{(point, quantity): {boundary_at: row as dict}} of the values in [start, end]."""
    out: dict = {}
    rows = session.connection().execute(
        select(_V.c.id, _V.c.metering_point_id, _V.c.quantity, _V.c.boundary_at, *(_V.c[n] for n in _VALUE_MUTABLE))
        .where(one_of(session, _V.c.metering_point_id, ids), _V.c.boundary_at >= start, _V.c.boundary_at <= end)
        .add_columns(_V.c.exported_at)
    )
    for r in rows.mappings():
        out.setdefault((r["metering_point_id"], r["quantity"]), {})[r["boundary_at"]] = dict(r)
    return out


def _fields(b: Boundary) -> dict:
    return {
        "value": b.value.value,
        "origin": b.value.origin.value,
        "quality": QUALITY_OF_ORIGIN[b.value.origin].value,
        "code": b.code,
        "details": plain(b.value.details),
    }


def _value(writes: _Writes, tenant_id, result: PointResult, b: Boundary, mine: dict, state, now, counts) -> None:
    fields = _fields(b)
    row = mine.get(b.at)
    if row is None:
        new = {
            "tenant_id": tenant_id,
            "metering_point_id": result.point_id,
            "quantity": result.quantity,
            "boundary_at": b.at,
            "boundary_day": b.day,
            "reason": b.reason,
            "method": None,
            "computed_value": fields["value"],
            "computed_origin": fields["origin"],
            "computed_details": fields["details"],
            "state": state,
            "computed_at": now,
            "changed_at": now,
            "exported_at": None,
            "export_stale": False,
            **fields,
        }
        writes.inserts[_V].append(new)
        mine[b.at] = new
        counts["values_changed"] += 1
        return
    change: dict = {}
    computed = {
        "computed_value": fields["value"],
        "computed_origin": fields["origin"],
        "computed_details": fields["details"],
    }
    if any(row[k] != val for k, val in computed.items()):
        change |= computed | {"computed_at": now}
    # an operator's value stays; the close's own estimate only while nothing better is computed
    auto = (row["details"] or {}).get("auto") and fields["origin"] != Origin.MISSING.value
    operator_set = row["origin"] in OPERATOR_ORIGINS and not auto
    if not operator_set and (row["value"], row["origin"], row["code"]) != (
        fields["value"],
        fields["origin"],
        fields["code"],
    ):
        change |= fields | {"changed_at": now, "method": None}
        counts["values_changed"] += 1
        if row["exported_at"] is not None and not row["export_stale"]:
            change["export_stale"] = True
            counts["export_stale"] += 1
    if row["reason"] != b.reason:
        change["reason"] = b.reason
    if not operator_set and row["state"] != state:
        change["state"] = state
    if change:
        row.update(change)
        writes.updates[_V].append({"b_id": row["id"], **change})


def _apply_operator_values(result: PointResult, mine: dict) -> None:
    """Where an operator set a boundary value (edited or estimated), the period's consumption uses it."""
    set_by_hand = {at: row for at, row in mine.items() if row["origin"] in OPERATOR_ORIGINS}
    if not set_by_hand or not result.runs:
        return

    def swap(bv: BoundaryValue) -> BoundaryValue:
        row = set_by_hand.get(bv.at)
        if row is None or bv.details.get("source"):  # an installation's or a reset's own value stays
            return bv
        return BoundaryValue(bv.at, row["value"], Origin(row["origin"]), {"billing_value": row.get("id")})

    result.runs = [Run(r.meter, swap(r.start), swap(r.end)) for r in result.runs]
    result.consumption = period_consumption(result.runs)


def _consumption(session, tenant_id, results, ids, labels, now, writes: _Writes) -> None:
    existing = {
        (r.metering_point_id, r.quantity, r.period): r
        for r in session.connection().execute(
            select(
                _C.c.id, _C.c.metering_point_id, _C.c.quantity, _C.c.period, _C.c.value, _C.c.quality, _C.c.runs
            ).where(one_of(session, _C.c.metering_point_id, ids), _C.c.period.in_(labels))
        )
    }
    for period, label, result in results:
        c = result.consumption
        if c is None:
            continue
        row = existing.get((result.point_id, result.quantity, label))
        fields = {"value": c.value, "quality": c.quality.value, "runs": c.runs}
        if row is None:
            writes.inserts[_C].append(
                {
                    "tenant_id": tenant_id,
                    "metering_point_id": result.point_id,
                    "quantity": result.quantity,
                    "period": label,
                    "start_at": period.start,
                    "end_at": period.end,
                    "computed_at": now,
                    **fields,
                }
            )
        elif (row.value, row.quality, row.runs) != (c.value, c.quality.value, c.runs):
            writes.updates[_C].append({"b_id": row.id, **fields, "computed_at": now})


def _findings(session, tenant_id, results, ids, labels, now, counts, writes: _Writes) -> None:
    existing: dict = {}
    for r in session.connection().execute(
        select(
            _F.c.id,
            _F.c.metering_point_id,
            _F.c.quantity,
            _F.c.period,
            _F.c.rule,
            _F.c.state,
            _F.c.severity,
            _F.c.message,
            _F.c.german,
            _F.c.details,
        ).where(one_of(session, _F.c.metering_point_id, ids), _F.c.period.in_(labels))
    ):
        existing.setdefault((r.metering_point_id, r.quantity, r.period), {})[r.rule] = r
    for _period, label, result in results:
        mine = existing.get((result.point_id, result.quantity, label), {})
        found = {f.rule: f for f in result.findings}
        for rule, f in found.items():
            row = mine.get(rule)
            fields = {"severity": f.severity, "message": f.message, "german": f.german, "details": plain(f.details)}
            if row is None:
                writes.inserts[_F].append(
                    {
                        "tenant_id": tenant_id,
                        "metering_point_id": result.point_id,
                        "quantity": result.quantity,
                        "period": label,
                        "rule": rule,
                        "state": "open",
                        "created_at": now,
                        "decided_at": None,
                        "decided_by": None,
                        "note": None,
                        **fields,
                    }
                )
                counts["findings_open"] += 1
            elif row.state in ("open", "cleared"):
                change = {k: val for k, val in fields.items() if getattr(row, k) != val}
                if row.state == "cleared":
                    change["state"] = "open"
                    counts["findings_open"] += 1
                if change:
                    writes.updates[_F].append({"b_id": row.id, **change})
        for rule, row in mine.items():
            if rule not in found and row.state == "open":
                writes.updates[_F].append(
                    {"b_id": row.id, "state": "cleared", "decided_at": now, "note": "no longer found"}
                )
                counts["findings_cleared"] += 1


def store_segments(session, tenant_id, results, values: dict, ids, labels, now, writes: _Writes) -> None:
    """Each result's occupant segments (domain/billing/segments.py), from its boundary values with the
    operators' values in place; segments no longer there (an occupancy changed) are deleted."""
    existing: dict = {}
    for r in session.connection().execute(
        select(
            _S.c.id,
            _S.c.metering_point_id,
            _S.c.quantity,
            _S.c.period,
            _S.c.first_day,
            *(_S.c[n] for n in _SEGMENT_FIELDS),
        ).where(one_of(session, _S.c.metering_point_id, ids), _S.c.period.in_(labels))
    ):
        existing[(r.metering_point_id, r.quantity, r.period, r.first_day)] = r
    seen = set()
    for _period, label, result in results:
        if not result.segments:
            continue
        mine = values.get((result.point_id, result.quantity), {})
        at_values = {b.at: b.value for b in result.boundaries}
        codes = {b.at: b.code for b in result.boundaries}
        for at, row in mine.items():
            if row["origin"] in OPERATOR_ORIGINS:
                at_values[at] = BoundaryValue(at, row["value"], Origin(row["origin"]))
                codes[at] = row["code"]
        due_end = next((b.at for b in result.boundaries if b.reason == "due_date"), None)
        total = result.consumption.value if result.consumption else None
        parts = segment_consumption(
            result.segments,
            at_values,
            total,
            quantity=result.quantity,
            readable=len(result.runs) == 1,
            due_end=due_end,
            codes=codes,
            means=result.means,
        )
        for part in parts:
            key = (result.point_id, result.quantity, label, part.first_day)
            seen.add(key)
            fields = {
                "unit_id": result.unit_id,
                "occupancy_id": None if part.occupant is None else int(part.occupant),
                "last_day": part.last_day,
                "start_at": part.start,
                "end_at": part.end,
                "value": part.value,
                "code": part.code,
                "method": part.method,
                "details": plain(part.details),
            }
            row = existing.get(key)
            if row is None:
                writes.inserts[_S].append(
                    {
                        "tenant_id": tenant_id,
                        "metering_point_id": result.point_id,
                        "quantity": result.quantity,
                        "period": label,
                        "first_day": part.first_day,
                        "computed_at": now,
                        **fields,
                    }
                )
            else:
                change = {k: val for k, val in fields.items() if getattr(row, k) != val}
                if change:
                    writes.updates[_S].append({"b_id": row.id, **change, "computed_at": now})
    done = {(r.point_id, r.quantity, label) for _, label, r in results}
    for key, row in existing.items():
        if key[:3] in done and key not in seen:
            writes.deletes[_S].append(row.id)


_SEGMENT_FIELDS = ("unit_id", "occupancy_id", "last_day", "start_at", "end_at", "value", "code", "method", "details")
