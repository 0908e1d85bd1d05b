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
from omshub.cloud.store.models import Base, Tenant, include_name


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
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

    keys = ("quantity", "unit", "value", "storage", "tariff", "subunit", "function", "dif_vif")
    value = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.sampled_from(["energy", "volume", "hca", "power", "error_flags", "datetime", "date", "instantaneous"]),
        st.lists(st.integers(0, 9), max_size=9),
    )
    standard = st.fixed_dictionaries(dict.fromkeys(keys, value))
    return st.one_of(standard, st.dictionaries(st.sampled_from(keys + ("name",)), value, max_size=9), value)


def test_typed_values_answer_what_the_decoded_dict_answers():
    """The accessors on a reading's typed columns give what domain.registers and domain.alarms give
    on the whole decoded telegram, for any records (fuzzed)."""
    from types import SimpleNamespace

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from omshub.cloud.domain.alarms import error_causes
    from omshub.cloud.domain.registers import registers
    from omshub.cloud.store.reading_values import reading_error_causes, reading_registers, stored_values, typed_values
    from omshub.codec.tpl import status_dict

    units = {"energy": "kWh", "volume": "m3", "hca": "HCA", "date": "", "datetime": ""}

    @settings(max_examples=300, deadline=None)
    @given(st.lists(_record_strategy(), max_size=12), st.integers(0, 255))
    def check(records, status):
        data = {"status": status_dict(status), "records": records}
        values = typed_values(data)
        row = SimpleNamespace(**values)
        assert reading_registers(row) == registers(data)
        assert reading_error_causes(row) == error_causes(data)
        # the stored values come back as they were, those in their quantity's canonical unit
        kept = [
            [r.get("storage") or 0, r.get("tariff") or 0, r.get("subunit") or 0, r["quantity"], r["unit"], r["value"]]
            for r in records
            if isinstance(r, dict)
            and r.get("storage")
            and isinstance(r.get("quantity"), str)
            and r["quantity"] in units
            and r.get("unit") == units[r["quantity"]]
        ]
        assert all(entry in kept for entry in stored_values(row))
        assert all(type(v) in (float, str) for *_k, v in stored_values(row))

    check()


def test_migration_0007_converts_stored_readings(empty_database_url):
    """Readings stored with their decoded JSON (before 0007) get their typed values; nothing is lost
    that the raw telegram does not hold."""
    from alembic import command
    from alembic.config import Config

    from omshub.cloud.store.database import MIGRATIONS
    from omshub.cloud.store.models import Reading
    from omshub.cloud.store.reading_values import stored_values

    db = Database(empty_database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        rec = {"unit": "kWh", "storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous", "dif_vif": "04"}
        data = {
            "meter": {"manufacturer": "KAM", "id": "12345678", "version": 27},
            "status": {"code": 0x04, "flags": ["power_low"]},
            "records_as": "rows",
            "records": [
                ["energy", "kWh", 35908.0, 0, 0, 0, "instantaneous", "0406"],
                {**rec, "quantity": "volume", "unit": "m3", "value": 12.5},
                {**rec, "quantity": "datetime", "unit": "", "value": "2026-01-01T02:00"},
                {**rec, "quantity": "energy", "value": 30000.0, "storage": 1},
                {**rec, "quantity": "date", "unit": "", "value": "2025-12-31", "storage": 1},
            ],
        }
        with db.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0006")
            conn.commit()
            conn.exec_driver_sql(
                "INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 't', 'T', '2026-01-01 02:00:00')"
            )
            conn.exec_driver_sql(
                "INSERT INTO meters (id, tenant_id, manufacturer, meter_id, device_type, key_status, created_at) "
                "VALUES (1, 1, 'KAM', '12345678', 'heat', 'present', '2026-01-01 02:00:00')"
            )
            t0 = "'2026-01-01 02:00:00'"
            conn.exec_driver_sql(
                "INSERT INTO gateways (id, tenant_id, serial, name, credential_hash, created_at, status, "
                f"applied_config_version, desired_config_version) VALUES (1, 1, 'GW', '', 'x', {t0}, '{{}}', 0, 0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO uplinks (id, tenant_id, gateway_id, seq, received_at, transport, content_type, body, "
                f"telegram_count, response) VALUES (1, 1, 1, 1, {t0}, 'https', 'application/cbor', 'b', 1, '{{}}')"
            )
            conn.exec_driver_sql(
                "INSERT INTO telegrams (id, tenant_id, gateway_id, uplink_id, received_at, link_mode, raw, raw_hash, "
                f"state) VALUES (1, 1, 1, 1, {t0}, 'T', 'r', 'h', 'decoded')"
            )
            conn.execute(
                text(
                    "INSERT INTO readings (id, tenant_id, meter_pk, telegram_id, timestamp, received_at, fields, data) "
                    f"VALUES (1, 1, 1, 1, {t0}, {t0}, '{{}}', :data)"
                ),
                {"data": orjson.dumps(data).decode()},
            )
            conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
        with db.session() as s:
            r = s.get(Reading, 1)
            assert (r.energy, r.volume, r.status, r.meter_clock, r.meter_version) == (
                35908.0,
                12.5,
                4,
                "2026-01-01T02:00",
                27,
            )
            assert stored_values(r) == [[1, 0, 0, "energy", "kWh", 30000.0], [1, 0, 0, "date", "", "2025-12-31"]]
            assert r.data["status"] == {"code": 4, "flags": ["power_low"]}
            # 0008_store2 kept the telegram (on PostgreSQL: copied into the partitioned table)
            assert r.telegram_id == 1 and s.scalar(text("SELECT state FROM telegrams WHERE id = 1")) == "decoded"
    finally:
        db.dispose()
