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

Revision ID: 0008_store2
Revises: 0007_billing_b
"""

from __future__ import annotations

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
# indexes whose keys only grow (new entries land on the right-most page)
_APPEND_ONLY = (
    "readings_pkey",
    "ix_readings_tenant_time",
    "telegrams_pkey",
    "uq_telegrams_time_gateway_hash",
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
    for index in _APPEND_ONLY:
        bind.exec_driver_sql(f'ALTER INDEX IF EXISTS "{index}" SET (fillfactor = 100)')


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
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
