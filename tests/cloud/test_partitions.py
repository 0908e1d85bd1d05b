"""Monthly partitions of telegrams on PostgreSQL (store/partitions.py): made ahead of time by the
maintenance, stray rows moved out of the default partition, whole old months dropped by retention
only where nothing in them must stay (store/retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text, update

from omshub.cloud.services.maintenance import run_maintenance
from omshub.cloud.store.models import AuditEntry, Meter, Reading, Telegram
from omshub.cloud.store.partitions import ensure_partitions, partitions
from omshub.cloud.store.retention import apply_retention, register_protector, unregister_protector

from .domain_fixtures import meter, reading, tenant


@pytest.fixture
def pg(db):
    if db.is_sqlite:
        pytest.skip("partitions are PostgreSQL's (SQLite: indexes that append in time order)")
    return db


def _names(db) -> set[str]:
    with db.engine.connect() as conn:
        return {name for name, _lo, _hi in partitions(conn, "telegrams")}


def _partition_of(db, telegram_id: int) -> str:
    with db.engine.connect() as conn:
        return conn.execute(
            text("SELECT tableoid::regclass::text FROM telegrams WHERE id = :i"), {"i": telegram_id}
        ).scalar_one()


def test_partitions_are_made_ahead_of_time(pg):
    with pg.engine.begin() as conn:
        made = ensure_partitions(conn, datetime(2031, 5, 10, tzinfo=UTC))
        assert ensure_partitions(conn, datetime(2031, 5, 10, tzinfo=UTC)) == []  # (made once)
    assert made == ["telegrams_p2031_05", "telegrams_p2031_06", "telegrams_p2031_07", "telegrams_p2031_08"]
    # the maintenance task does the same (and at serve's start)
    [result] = run_maintenance(pg, datetime(2031, 7, 2, tzinfo=UTC), only=["ensure_partitions"])
    assert result.ok and result.details["made"] == ["telegrams_p2031_09", "telegrams_p2031_10"]
    with pg.transaction() as s:
        r = reading(s, meter(s, tenant(s, "ahead")), datetime(2031, 7, 3, 12, tzinfo=UTC), energy=1.0)
        telegram_id = r.telegram_id
    assert _partition_of(pg, telegram_id) == "telegrams_p2031_07"


def test_a_stray_row_moves_from_the_default_partition_into_its_month(pg):
    with pg.transaction() as s:
        r = reading(s, meter(s, tenant(s, "stray")), datetime(2033, 2, 10, tzinfo=UTC), energy=1.0)
        telegram_id = r.telegram_id
    assert _partition_of(pg, telegram_id) == "telegrams_default"  # no partition for it yet
    with pg.engine.begin() as conn:
        assert ensure_partitions(conn, datetime(2033, 2, 1, tzinfo=UTC), ahead=0) == ["telegrams_p2033_02"]
    assert _partition_of(pg, telegram_id) == "telegrams_p2033_02"
    with pg.session() as s:
        assert s.scalar(select(Telegram.raw).where(Telegram.id == telegram_id)) is not None


def test_retention_drops_whole_months_but_never_what_an_open_period_needs(pg):
    march, may = datetime(2034, 3, 5, tzinfo=UTC), datetime(2034, 5, 10, tzinfo=UTC)
    with pg.engine.begin() as conn:
        ensure_partitions(conn, march, ahead=2)
    with pg.transaction() as s:
        t = tenant(s, "months")
        m = meter(s, t)
        old = [reading(s, m, march, energy=1.0), reading(s, m, march.replace(day=20), energy=2.0)]
        latest = reading(s, m, may, energy=3.0)
        s.execute(update(Meter).where(Meter.id == m.id).values(last_reading_id=latest.id))
        tenant_id, old_ids, latest_telegram = t.id, [r.id for r in old], latest.telegram_id
    now = datetime(2037, 1, 1, tzinfo=UTC)  # March 2034 is past the telegrams' 2 years
    # an open billing period since 10 March 2034 (or a value not exported yet): March stays whole
    register_protector("open-period", lambda _s, tid, _now: march.replace(day=10) if tid == tenant_id else None)
    try:
        first = apply_retention(pg.session, now=now)
    finally:
        unregister_protector("open-period")
    # only what lies before the horizon went (row by row: 5 March); the month stays
    assert first[tenant_id]["telegrams"] == 1 and "telegrams_p2034_03" in _names(pg)
    with pg.session() as s:
        assert s.scalar(select(Reading.telegram_id).where(Reading.id == old_ids[1])) is not None
    result = apply_retention(pg.session, now=now)
    names = _names(pg)
    # March goes as a whole; May holds the meter's latest reading's telegram: it stays
    assert "telegrams_p2034_03" not in names and "telegrams_p2034_05" in names
    assert result[tenant_id]["telegrams"] == 1
    with pg.session() as s:
        kept = {r.id: r for r in s.scalars(select(Reading).where(Reading.id.in_(old_ids)))}
        assert [kept[i].telegram_id for i in old_ids] == [None, None]  # the readings keep their values
        assert [kept[i].energy for i in old_ids] == [1.0, 2.0]
        assert s.scalar(select(Telegram.id).where(Telegram.id == latest_telegram)) == latest_telegram
        entry = s.scalar(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "retention.apply")
            .order_by(AuditEntry.id.desc())
        )
        assert entry.details["partitions_dropped"] == ["telegrams_p2034_03"] and entry.details["telegrams"] == 1
