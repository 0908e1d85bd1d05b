"""Database maintenance (docs/deploy.md): what a production install needs done regularly, as a
list of named tasks — `omshub admin maintenance` runs them once, `omshub serve` on a schedule
(`maintenance_interval_s`, daily by default). Each task's failure is reported and the others still
run. And the autovacuum check: on PostgreSQL every telegram and reading updates a row (telegram
state, the meter's latest reading), so without autovacuum dead rows pile up (measured
95,521 dead `meters` rows for 10,000 live ones after 32 days); it is checked at start, in
`/readyz` and here.

Tasks:
* `ensure_partitions` — PostgreSQL: this month's and the next three months' partitions of the
  telegrams table (store/partitions.py; also run at `omshub serve`'s start);
* `autovacuum_settings` — the hot tables' autovacuum thresholds (as migration 0007_ops sets them),
  again on every partition of a partitioned table (new partitions are created after the migration);
* `vacuum_analyze` — PostgreSQL: VACUUM (ANALYZE) of the hot tables (dead rows reclaimed, planner
  statistics fresh); SQLite: ANALYZE and `PRAGMA optimize`, then the write-ahead log emptied.

* `billing_reclose` — the last two months each tenant has closed are closed again, so late telegrams
  reach their billing values (services/billing_close.py);
* `retention` — every tenant's retention (store/retention.py), never what billing still needs.
* `portal_accounts` — customer portal accounts of occupants who moved out locked, later removed
  (services/customer_portal.py, HeizkostenV §6b).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from omshub.cloud.services.billing_close import reclose_recent
from omshub.cloud.services.customer_portal import portal_privacy
from omshub.cloud.store.database import Database
from omshub.cloud.store.partitions import ensure_partitions
from omshub.cloud.store.retention import apply_retention
from omshub.times import utcnow

log = logging.getLogger(__name__)

# The tables every telegram writes or updates, with their autovacuum storage parameters: a
# vacuum after 1-2 % of the rows changed instead of PostgreSQL's 20 % (of a table that only grows,
# 20 % means ever longer waits), and inserts counted too (readings and telegrams are mostly
# inserted: a vacuum keeps their visibility map current for index-only scans). Migration 0007_ops
# holds a copy (migrations import no live code).
HOT_TABLES: dict[str, dict[str, float | int]] = {
    "meters": {"autovacuum_vacuum_scale_factor": 0.01, "autovacuum_vacuum_threshold": 1000,
               "autovacuum_analyze_scale_factor": 0.02},
    "gateways": {"autovacuum_vacuum_scale_factor": 0.01, "autovacuum_vacuum_threshold": 100,
                 "autovacuum_analyze_scale_factor": 0.02},
    "telegrams": {"autovacuum_vacuum_scale_factor": 0.02, "autovacuum_vacuum_insert_scale_factor": 0.05,
                  "autovacuum_analyze_scale_factor": 0.02},
    "readings": {"autovacuum_vacuum_scale_factor": 0.02, "autovacuum_vacuum_insert_scale_factor": 0.05,
                 "autovacuum_analyze_scale_factor": 0.02},
}  # fmt: skip

AUTOVACUUM_OFF = (
    "PostgreSQL autovacuum is off (autovacuum = {autovacuum}, track_counts = {track_counts}): dead rows of "
    "meters, telegrams and readings are never reclaimed and the tables and their indexes grow without end. "
    "Turn it on in postgresql.conf (autovacuum = on, track_counts = on) or run `omshub admin maintenance` daily. "
    "/ PostgreSQL-Autovacuum ist aus: tote Zeilen werden nie freigegeben, Tabellen und Indizes wachsen "
    "unbegrenzt. In postgresql.conf einschalten (autovacuum = on, track_counts = on) oder täglich "
    "`omshub admin maintenance` ausführen."
)


@dataclass
class TaskResult:
    name: str
    ok: bool
    seconds: float
    details: dict = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict:
        return {
            "task": self.name,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "details": self.details,
            "error": self.error,
        }


def autovacuum_status(db: Database) -> dict:
    """{"applies": False} on SQLite; on PostgreSQL {"applies", "on", "autovacuum", "track_counts",
    "message" (None when on)} — autovacuum needs both settings on."""
    if db.is_sqlite:
        return {"applies": False, "on": True, "message": None}
    with db.engine.connect() as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                text("SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts')")
            ).all()
        )
    on = settings.get("autovacuum") == "on" and settings.get("track_counts") == "on"
    return {
        "applies": True,
        "on": on,
        "autovacuum": settings.get("autovacuum"),
        "track_counts": settings.get("track_counts"),
        "message": None if on else AUTOVACUUM_OFF.format(**settings),
    }


def dead_rows(db: Database) -> dict[str, dict]:
    """PostgreSQL: live and dead rows and the last (auto)vacuum of each hot table (partitions
    summed under their table's name); {} on SQLite."""
    if db.is_sqlite:
        return {}
    out: dict[str, dict] = {}
    with db.engine.connect() as conn:
        for name, parent, live, dead, last in conn.execute(
            text(
                "SELECT s.relname, p.relname, s.n_live_tup, s.n_dead_tup, "
                "greatest(s.last_vacuum, s.last_autovacuum) FROM pg_stat_user_tables s "
                "LEFT JOIN pg_inherits i ON i.inhrelid = s.relid LEFT JOIN pg_class p ON p.oid = i.inhparent"
            )
        ):
            table = parent if parent in HOT_TABLES else name
            if table not in HOT_TABLES:
                continue
            row = out.setdefault(table, {"live": 0, "dead": 0, "last_vacuum": None})
            row["live"] += live or 0
            row["dead"] += dead or 0
            if last is not None and (row["last_vacuum"] is None or last.isoformat() > row["last_vacuum"]):
                row["last_vacuum"] = last.isoformat()
    return out


def _tables_and_partitions(conn, table: str) -> list[str]:
    """The table itself if it holds rows, else (partitioned) its partitions, recursively."""
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    ).scalar_one_or_none()
    if kind is None:
        return []
    if kind != "p":
        return [table]
    children = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": table},
    ).scalars()
    return [leaf for child in children for leaf in _tables_and_partitions(conn, child)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_autovacuum_settings(db: Database, now: datetime) -> dict:
    """The hot tables' autovacuum parameters on every table (or partition) holding their rows."""
    if db.is_sqlite:
        return {"skipped": "SQLite has no autovacuum parameters"}
    tuned = []
    with db.engine.begin() as conn:
        for table, params in HOT_TABLES.items():
            options = ", ".join(f"{k} = {v}" for k, v in params.items())
            for leaf in _tables_and_partitions(conn, table):
                conn.exec_driver_sql(f"ALTER TABLE {_quoted(leaf)} SET ({options})")
                tuned.append(leaf)
    return {"tables": tuned}


def vacuum_analyze(db: Database, now: datetime) -> dict:
    """PostgreSQL: VACUUM (ANALYZE) the hot tables (outside a transaction, as VACUUM must run);
    SQLite: ANALYZE, PRAGMA optimize, and the write-ahead log copied into the database."""
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA optimize")
            conn.commit()
        db.checkpoint()
        return {"analyzed": "all tables"}
    before = dead_rows(db)
    done = []
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in HOT_TABLES:
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {_quoted(table)}")
                done.append(table)
    return {
        "vacuumed": done,
        "dead_rows_before": {t: r["dead"] for t, r in before.items()},
    }


Task = Callable[[Database, datetime], dict]


def partitions_ahead(db: Database, now: datetime) -> dict:
    """PostgreSQL: this month's and the next months' partitions of the partitioned tables
    (store/partitions.py), made before any telegram needs them."""
    if db.is_sqlite:
        return {"skipped": "SQLite has no partitions (its hot indexes append in time order)"}
    with db.engine.begin() as conn:
        return {"made": ensure_partitions(conn, now)}


def ensure_partitions_at_start(db: Database) -> None:
    """At `omshub serve`'s start: the partitions ahead (a failure is logged; the default partition
    takes telegrams meanwhile and the scheduled maintenance tries again)."""
    try:
        made = partitions_ahead(db, utcnow()).get("made")
        if made:
            log.info("partitions made: %s", ", ".join(made))
    except OperationalError as exc:  # the database is unreachable at start: the outage log says so
        log.debug("partitions not made at start: %s", exc)
    except Exception as exc:
        log.warning("partitions not made at start: %s", exc)


# (name, task) in the order they run
def retention(db: Database, now: datetime) -> dict:
    """Every tenant's retention (store/retention.py), billing's protection horizon honoured."""
    return {"removed": apply_retention(db.session, now=now)}


def billing_reclose(db: Database, now: datetime) -> dict:
    """The last two months each tenant has closed, closed again: late telegrams reach their values."""
    return reclose_recent(db, now)


def portal_accounts(db: Database, now: datetime) -> dict:
    """Portal accounts of occupants who moved out: locked, later removed (HeizkostenV §6b;
    services/customer_portal.py `portal_privacy`)."""
    return {"tenants": portal_privacy(db, now)}


TASKS: list[tuple[str, Task]] = [
    ("ensure_partitions", partitions_ahead),
    ("autovacuum_settings", apply_autovacuum_settings),
    ("billing_reclose", billing_reclose),
    ("retention", retention),
    ("vacuum_analyze", vacuum_analyze),
    ("portal_accounts", portal_accounts),
]


def run_maintenance(db: Database, now: datetime, only: list[str] | None = None) -> list[TaskResult]:
    """Run the tasks (all, or those named in `only`) one after the other. -> a result per task."""
    unknown = sorted(set(only or ()) - {name for name, _ in TASKS})
    if unknown:
        raise ValueError(f"unknown maintenance task(s): {', '.join(unknown)}; known: {task_names()}")
    results = []
    for name, task in TASKS:
        if only and name not in only:
            continue
        start = time.perf_counter()
        try:
            details = task(db, now)
            results.append(TaskResult(name, True, time.perf_counter() - start, details))
        except Exception as exc:
            log.exception("maintenance task %s failed", name)
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            results.append(TaskResult(name, False, time.perf_counter() - start, {}, message))
    return results


def task_names() -> str:
    return ", ".join(name for name, _ in TASKS)
