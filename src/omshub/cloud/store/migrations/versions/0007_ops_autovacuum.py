"""Autovacuum tuned for the hot tables (PostgreSQL only)

Every telegram updates its meter's row and its own state, and readings and telegrams only grow:
with PostgreSQL's defaults a table is vacuumed after 20 % of its rows changed, which for a table of
millions of rows means dead rows and bloated indexes for weeks. Vacuum and analyze after 1-2 %, and
count inserts too (visibility map current for index-only scans). A partitioned table takes the
parameters on each of its partitions (services/maintenance.py sets them on partitions created
later). A copy of services/maintenance.HOT_TABLES (migrations import no live code). SQLite: nothing.

Revision ID: 0007_ops
Revises: 0007_store
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0007_ops"
down_revision = "0007_store"
branch_labels = None
depends_on = None

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


def _leaves(conn, table: str) -> list[str]:
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}).scalar()
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
    return [leaf for child in list(children) for leaf in _leaves(conn, child)]


def _apply(reset: bool) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, params in HOT_TABLES.items():
        for leaf in _leaves(conn, table):
            quoted = '"' + leaf.replace('"', '""') + '"'
            if reset:
                op.execute(f"ALTER TABLE {quoted} RESET ({', '.join(params)})")
            else:
                op.execute(f"ALTER TABLE {quoted} SET ({', '.join(f'{k} = {v}' for k, v in params.items())})")


def upgrade() -> None:
    _apply(reset=False)


def downgrade() -> None:
    _apply(reset=True)
