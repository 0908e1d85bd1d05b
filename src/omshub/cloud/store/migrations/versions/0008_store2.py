"""the raw telegram stored once; fewer, cheaper indexes on the hot tables

Uplinks: `frames_cut_at`, `frames_after_id` — when every frame of an uplink became a telegram row,
the frames' bytes are cut out of the stored body (the telegram rows hold them; the body is put back
together from both, store/uplink_bodies.py). Rows stored before keep their whole body.

Telegrams: the (tenant_id, meter_id, manufacturer) index goes — re-queueing finds waiting
telegrams through the partial indexes of `new` and of the telegrams to decode again, a meter's
telegrams are found through `meter_pk`.

Readings: `telegram_id` loses its foreign key and its unique index (the decode batch claims a
telegram while it is `new` and moves it out of `new` in the same transaction, so it yields one
reading; a foreign key to a time-partitioned telegrams table is not possible). Retention's
"readings of these telegrams" look-up gets an index of its own: on PostgreSQL a BRIN index
(readings are written in telegram id order, so block ranges of ids are nearly disjoint: a few
kB for millions of rows), on SQLite a plain one.

PostgreSQL: the indexes that only ever append (ids, receive and reading times) are built full
(fillfactor 100: an index page that is only appended to is never split in its middle).

PostgreSQL: telegrams become a table partitioned by month of `received_at` (store/partitions.py):
the existing rows are copied into monthly partitions (those within three years back; older or
future ones into `telegrams_default`), this month's and the next three months' partitions are made
(the maintenance task `ensure_partitions` makes the later ones). The primary key becomes
(id, received_at) — a partitioned table's unique keys include its partition key; nothing has a
foreign key to telegrams any more (readings' went above). The id sequence is kept.

Revision ID: 0008_store2
Revises: 0007_billing_b
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0008_store2"
down_revision = "0007_billing_b"
branch_labels = None
depends_on = None

NAMING = {
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}
REDECODABLE_SQL = "state IN ('no_key', 'wrong_key', 'unknown_meter', 'invalid')"  # as models.REDECODABLE_SQL
_TELEGRAM_FKS = (("tenant_id", "tenants"), ("gateway_id", "gateways"), ("uplink_id", "uplinks"), ("meter_pk", "meters"))
# indexes whose keys only grow (new entries land on the right-most page)
_APPEND_ONLY = (
    "readings_pkey",
    "ix_readings_tenant_time",
    "uplinks_pkey",
)


def _driver_sql(bind, sql: str) -> None:
    raw = bind.connection.dbapi_connection
    if raw is not None:
        raw.execute(sql)


def _telegram_constraints(bind) -> tuple[str | None, str | None]:
    """(unique constraint, foreign key) names on readings.telegram_id, as the database has them."""
    inspector = sa.inspect(bind)
    unique = next(
        (c["name"] for c in inspector.get_unique_constraints("readings") if c["column_names"] == ["telegram_id"]),
        None,
    )
    fk = next(
        (c["name"] for c in inspector.get_foreign_keys("readings") if c["constrained_columns"] == ["telegram_id"]),
        None,
    )
    return unique, fk


def _months(first, last) -> list:
    """The first instants (UTC) of the months from `first`'s to `last`'s."""
    out, at = [], datetime(first.year, first.month, 1, tzinfo=UTC)
    while at <= last:
        out.append(at)
        at = datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)
    return out


def _bound(at) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S+00")


def _partition_telegrams(bind) -> None:
    """telegrams -> a table partitioned by month of received_at, the rows copied (PostgreSQL)."""
    run = bind.exec_driver_sql
    run("ALTER TABLE telegrams RENAME TO telegrams_unpartitioned")
    for index in ("telegrams_pkey", "uq_telegrams_time_gateway_hash", "ix_telegrams_new", "ix_telegrams_redecodable"):
        run(f'ALTER INDEX IF EXISTS "{index}" RENAME TO "{index}_unpartitioned"')
    run('ALTER INDEX IF EXISTS "ix_telegrams_meter_pk" RENAME TO "ix_telegrams_meter_pk_unpartitioned"')
    run(
        "CREATE TABLE telegrams (LIKE telegrams_unpartitioned INCLUDING DEFAULTS INCLUDING STORAGE) "
        "PARTITION BY RANGE (received_at)"
    )
    # (append-only keys: full index pages; the partitions' indexes take the option over)
    run("ALTER TABLE telegrams ADD CONSTRAINT telegrams_pkey PRIMARY KEY (id, received_at) WITH (fillfactor = 100)")
    run(
        "ALTER TABLE telegrams ADD CONSTRAINT uq_telegrams_time_gateway_hash "
        "UNIQUE (received_at, gateway_id, raw_hash) WITH (fillfactor = 100)"
    )
    run("CREATE INDEX ix_telegrams_new ON telegrams (id) WHERE state = 'new'")
    run(f"CREATE INDEX ix_telegrams_redecodable ON telegrams (tenant_id, meter_id) WHERE {REDECODABLE_SQL}")
    run("CREATE INDEX ix_telegrams_meter_pk ON telegrams (meter_pk)")
    for column, target in _TELEGRAM_FKS:
        name = f"telegrams_{column}_fkey"
        run(f"ALTER TABLE telegrams ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target} (id)")
    now = datetime.now(UTC)
    oldest = now.replace(year=now.year - 3)
    first = run("SELECT min(received_at) FROM telegrams_unpartitioned WHERE received_at >= %s", (oldest,)).scalar()
    ahead = now.replace(day=1) + timedelta(days=31 * 3)
    for month in _months(min(first or now, now), ahead):
        after = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
        run(
            f'CREATE TABLE "telegrams_p{month:%Y_%m}" PARTITION OF telegrams '
            f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(after)}')"
        )
    run("CREATE TABLE telegrams_default PARTITION OF telegrams DEFAULT")
    run("INSERT INTO telegrams SELECT * FROM telegrams_unpartitioned")
    sequence = run("SELECT pg_get_serial_sequence('telegrams_unpartitioned', 'id')").scalar()
    if sequence:
        run(f"ALTER SEQUENCE {sequence} OWNED BY telegrams.id")
    run("DROP TABLE telegrams_unpartitioned")
    for option in ("autovacuum_vacuum_scale_factor = 0.02", "autovacuum_vacuum_insert_scale_factor = 0.05",
                   "autovacuum_analyze_scale_factor = 0.02"):  # fmt: skip
        # (as 0007_ops set them on the table; a partitioned table keeps them per partition)
        for (name,) in run(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'telegrams'::regclass"
        ).all():
            run(f'ALTER TABLE "{name}" SET ({option})')


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("uplinks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frames_cut_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("frames_after_id", sa.BigInteger(), nullable=True))
    op.drop_index("ix_telegrams_tenant_meter", table_name="telegrams")
    if sqlite:
        # SQLite drops a table constraint only by copying the table (readings: nothing references it)
        bind.commit()
        _driver_sql(bind, "PRAGMA foreign_keys = OFF")
        with op.batch_alter_table("readings", schema=None, naming_convention=NAMING, recreate="always") as batch_op:
            batch_op.drop_constraint("uq_readings_telegram_id", type_="unique")
            batch_op.drop_constraint("fk_readings_telegram_id_telegrams", type_="foreignkey")
            batch_op.create_index("ix_readings_telegram", ["telegram_id"], unique=False)
        bind.commit()
        _driver_sql(bind, "PRAGMA foreign_keys = ON")
        return
    unique, fk = _telegram_constraints(bind)
    if fk:
        op.drop_constraint(fk, "readings", type_="foreignkey")
    if unique:
        op.drop_constraint(unique, "readings", type_="unique")
    op.create_index("ix_readings_telegram", "readings", ["telegram_id"], unique=False, postgresql_using="brin")
    _partition_telegrams(bind)
    for index in _APPEND_ONLY:
        bind.exec_driver_sql(f'ALTER INDEX IF EXISTS "{index}" SET (fillfactor = 100)')


def _unpartition_telegrams(bind) -> None:
    run = bind.exec_driver_sql
    run("ALTER TABLE telegrams RENAME TO telegrams_partitioned")
    for index in ("telegrams_pkey", "uq_telegrams_time_gateway_hash", "ix_telegrams_new", "ix_telegrams_redecodable"):
        run(f'ALTER INDEX IF EXISTS "{index}" RENAME TO "{index}_partitioned"')
    run('ALTER INDEX IF EXISTS "ix_telegrams_meter_pk" RENAME TO "ix_telegrams_meter_pk_partitioned"')
    run("CREATE TABLE telegrams (LIKE telegrams_partitioned INCLUDING DEFAULTS INCLUDING STORAGE)")
    run("INSERT INTO telegrams SELECT * FROM telegrams_partitioned")
    sequence = run("SELECT pg_get_serial_sequence('telegrams_partitioned', 'id')").scalar()
    if sequence:
        run(f"ALTER SEQUENCE {sequence} OWNED BY telegrams.id")
    run("DROP TABLE telegrams_partitioned")
    run("ALTER TABLE telegrams ADD CONSTRAINT telegrams_pkey PRIMARY KEY (id)")
    run(
        "ALTER TABLE telegrams ADD CONSTRAINT uq_telegrams_time_gateway_hash UNIQUE (received_at, gateway_id, raw_hash)"
    )
    run("CREATE INDEX ix_telegrams_new ON telegrams (id) WHERE state = 'new'")
    run(f"CREATE INDEX ix_telegrams_redecodable ON telegrams (tenant_id, meter_id) WHERE {REDECODABLE_SQL}")
    run("CREATE INDEX ix_telegrams_meter_pk ON telegrams (meter_pk)")
    for column, target in _TELEGRAM_FKS:
        name = f"telegrams_{column}_fkey"
        run(f"ALTER TABLE telegrams ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target} (id)")


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if not sqlite:
        _unpartition_telegrams(bind)
    op.drop_index("ix_readings_telegram", table_name="readings")
    if sqlite:
        with op.batch_alter_table("readings", schema=None) as batch_op:
            batch_op.create_unique_constraint("uq_readings_telegram_id", ["telegram_id"])
    else:
        op.create_unique_constraint("readings_telegram_id_key", "readings", ["telegram_id"])
        op.create_foreign_key("readings_telegram_id_fkey", "readings", "telegrams", ["telegram_id"], ["id"])
    op.create_index("ix_telegrams_tenant_meter", "telegrams", ["tenant_id", "meter_id", "manufacturer"])
    with op.batch_alter_table("uplinks", schema=None) as batch_op:
        batch_op.drop_column("frames_after_id")
        batch_op.drop_column("frames_cut_at")
