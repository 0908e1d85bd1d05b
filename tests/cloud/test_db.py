"""Database, migrations and settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from omshub.cloud.settings import SettingsError, load_settings
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Base, Tenant


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models.py and the migrations differ: {diff}"
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables


def test_migrate_is_idempotent(db):
    db.migrate()
    db.migrate()
    with db.session() as s:
        assert s.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_sqlite_is_wal_with_foreign_keys(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/sub/dir/x.db")  # directories created on first use
    db.migrate()
    with db.session() as s:
        assert s.scalar(text("PRAGMA journal_mode")) == "wal"
        assert s.scalar(text("PRAGMA foreign_keys")) == 1
        assert s.scalar(text("PRAGMA synchronous")) in (1, 2)  # NORMAL or FULL
    db.dispose()


def test_times_come_back_aware_utc(db):
    when = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    with db.transaction() as s:
        s.add(Tenant(slug="tz-" + str(id(when)), name="tz", created_at=when))
    with db.session() as s:
        got = s.scalar(select(Tenant.created_at).where(Tenant.slug == "tz-" + str(id(when))))
    assert got == when and got.tzinfo == UTC and got.hour == 5


def test_settings_precedence(tmp_path):
    toml = tmp_path / "omshub.toml"
    toml.write_text('port = 9000\nhost = "0.0.0.0"\ndatabase = "postgresql://u@h/db"\nsilent_days = 5\n')
    s = load_settings(toml, environ={})
    assert (s.port, s.host, s.silent_days) == (9000, "0.0.0.0", 5)
    assert s.database_url == "postgresql+psycopg://u@h/db"
    s = load_settings(toml, environ={"OMSHUB_PORT": "9100", "OMSHUB_HOST": "::1"})
    assert (s.port, s.host) == (9100, "::1")
    s = load_settings(toml, environ={"OMSHUB_PORT": "9100"}, port=9200)
    assert s.port == 9200
    s = load_settings(None, environ={"OMSHUB_DATA_DIR": str(tmp_path / "d")})
    assert s.database_url == f"sqlite:///{tmp_path}/d/omshub.db"
    with pytest.raises(SettingsError, match="port"):
        load_settings(None, environ={"OMSHUB_PORT": "many"})
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    with pytest.raises(SettingsError, match="bad.toml"):
        load_settings(bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[omshub]\nprot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(unknown, environ={})


def test_mqtt_topic_settings():
    s = load_settings(None, environ={"OMSHUB_MQTT_PREFIX": "supplier-a/omshub", "OMSHUB_MQTT_SHARED_GROUP": "headends"})
    assert (s.mqtt_prefix, s.mqtt_shared_group) == ("supplier-a/omshub", "headends")
    assert load_settings(None, environ={}).mqtt_prefix == "omshub"
    for bad in ("omshub/+", "a/#", "", "a//b", "/a", "$SYS"):
        with pytest.raises(SettingsError, match="mqtt_prefix"):
            load_settings(None, environ={}, mqtt_prefix=bad)
    with pytest.raises(SettingsError, match="mqtt_shared_group"):
        load_settings(None, environ={}, mqtt_shared_group="a/b")


def _record_strategy():
    from hypothesis import strategies as st

    from omshub.cloud.store.models import RECORD_KEYS

    value = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.lists(st.integers(0, 9), max_size=9),
    )
    keys = st.sampled_from(RECORD_KEYS + ("name", "flags"))
    standard = st.fixed_dictionaries(dict.fromkeys(RECORD_KEYS, value))
    return st.one_of(standard, st.dictionaries(keys, value, max_size=9), value)


def test_reading_data_stored_compact_reads_back_the_same():
    """Readings keep their records as rows (about half the bytes); every reader gets the dicts back."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from omshub.cloud.store.models import compact_reading_data, expand_reading_data

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(_record_strategy(), max_size=12),
        st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000), max_size=3),
    )
    def check(records, extra):
        data = {**extra, "status": {"code": 0}, "records": records, "fields": {"x": 1}}
        stored = orjson.loads(orjson.dumps(compact_reading_data(data)))  # as it goes through the JSON column
        expected = orjson.loads(orjson.dumps({k: v for k, v in data.items() if k != "fields"}))
        assert expand_reading_data(stored) == expected

    check()
    legacy = {"records": [{"quantity": "energy"}], "fields": {}}
    assert expand_reading_data(legacy) is legacy  # stored before the rows form: unchanged


def test_reading_rows_are_half_the_bytes_and_the_orm_reads_dicts(db):
    from sqlalchemy import update

    from omshub.cloud.store.models import Reading, compact_reading_data

    from .domain_fixtures import T0, meter, reading, tenant

    record = {
        "quantity": "energy",
        "unit": "kWh",
        "value": 35908.0,
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
        "dif_vif": "0406",
    }
    data = {"status": {"code": 0, "flags": []}, "records": [record] * 12}
    assert len(orjson.dumps(compact_reading_data(data))) < 0.6 * len(orjson.dumps(data))
    with db.transaction() as s:
        r = reading(s, meter(s, tenant(s, "rows")), T0)
        rid = r.id
        # the stored form, as the decode pipeline writes it
        s.execute(
            update(Reading.__table__).where(Reading.__table__.c.id == rid).values(data=compact_reading_data(data))
        )
    with db.session() as s:
        assert s.get(Reading, rid).data == data
