"""Meter time (issue 9 item 1): meters' local date-times converted to UTC with their zone and the DST
rules, through the real pipeline (codec encoder -> uplink -> decode -> Reading.timestamp); the
tenant's time settings, model and meter overrides, re-timing stored readings, the migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from omshub.cloud.store.models import AuditEntry, Meter, Reading, Telegram, Tenant
from tests.clock import DST_AUTUMN, DST_SPRING, SUMMER, WINTER

from .conftest import KEY, encode
from .domain_fixtures import decoded_data

API = "/api/v1"
UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")


def _clock_records(clock: str, energy: float) -> list[dict]:
    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    return [
        {**base, "quantity": "energy", "unit": "kWh", "value": energy},
        {**base, "quantity": "datetime", "unit": "", "value": clock},
    ]


class Sender:
    """One gateway of a tenant: telegrams with a meter clock, received at given instants."""

    def __init__(self, hub, pipeline, db, tenant) -> None:
        self.hub, self.pipeline, self.db, self.tenant = hub, pipeline, db, tenant
        self.gw = hub.gateway(tenant)
        self.seq = 0
        self.energy = 100.0

    def send(self, meter_id: str, clock: str, received: datetime, **kw) -> Reading:
        """Encode, upload (received at `received`), decode -> the stored reading."""
        self.seq += 1
        self.energy += 1.0
        frame = encode(meter_id, _clock_records(clock, self.energy), access_number=self.seq % 256, **kw)
        self.hub.send(self.gw, self.seq, [frame], t0=int(received.timestamp()), dts=[0])
        self.pipeline.run_until_idle()
        with self.db.session() as s:
            telegram = s.scalar(
                select(Telegram).where(Telegram.gateway_id == self.gw.id).order_by(Telegram.id.desc()).limit(1)
            )
            assert telegram.state == "decoded", (telegram.state, telegram.error)
            return s.scalar(select(Reading).where(Reading.telegram_id == telegram.id))


def _tenant_with_meters(hub, *meter_ids, device_type="heat"):
    t = hub.tenant()
    pks = {mid: hub.meter(t, mid, device_type=device_type) for mid in meter_ids}
    hub.keys(t, dict.fromkeys(meter_ids, KEY))
    return t, pks


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- through the pipeline, both DST switches ---

CASES = [
    # (meter clock in Europe/Berlin, receive time, the reading's timestamp)
    pytest.param("2026-01-14T13:00", WINTER, WINTER, id="winter-CET"),
    pytest.param("2026-07-15T14:00", SUMMER, SUMMER, id="summer-CEST"),
    pytest.param(
        "2026-03-29T01:59", DST_SPRING - timedelta(seconds=30), _utc(2026, 3, 29, 0, 59), id="spring-last-minute-of-CET"
    ),
    pytest.param("2026-03-29T03:00", DST_SPRING + timedelta(seconds=20), DST_SPRING, id="spring-first-minute-of-CEST"),
    # 02:30 does not exist that night: read with the offset before the switch (the clock has not switched)
    pytest.param("2026-03-29T02:30", DST_SPRING + timedelta(minutes=30), _utc(2026, 3, 29, 1, 30), id="spring-gap"),
    pytest.param(
        "2026-10-25T02:59",
        DST_AUTUMN - timedelta(minutes=1) + timedelta(seconds=10),
        DST_AUTUMN - timedelta(minutes=1),
        id="autumn-first-pass-last-minute",
    ),
    # 02:30 happens twice: the receive time decides
    pytest.param("2026-10-25T02:30", _utc(2026, 10, 25, 0, 30, 40), _utc(2026, 10, 25, 0, 30), id="autumn-first-02:30"),
    pytest.param(
        "2026-10-25T02:30", _utc(2026, 10, 25, 1, 30, 40), _utc(2026, 10, 25, 1, 30), id="autumn-second-02:30"
    ),
    # a meter clock a few minutes fast, in the first pass: not taken for the second
    pytest.param("2026-10-25T02:34", _utc(2026, 10, 25, 0, 30), _utc(2026, 10, 25, 0, 34), id="autumn-clock-fast"),
    pytest.param(
        "2026-10-25T03:00",
        DST_AUTUMN + timedelta(hours=2, seconds=5),
        DST_AUTUMN + timedelta(hours=1),
        id="autumn-after-CET-03:00",
    ),
]


@pytest.mark.parametrize(("clock", "received", "expected"), CASES)
def test_meter_local_time_becomes_utc_through_the_pipeline(hub, db, pipeline, clock, received, expected):
    t, _ = _tenant_with_meters(hub, "41000001")
    reading = Sender(hub, pipeline, db, t).send("41000001", clock, received)
    assert reading.timestamp == expected
    assert reading.received_at == received.replace(microsecond=0)
    # the decoded record keeps the meter's own local text: the evidence the timestamp came from
    assert any(r["quantity"] == "datetime" and r["value"] == clock for r in decoded_data(pipeline, reading)["records"])


def test_new_tenants_default_to_berlin_and_old_ones_keep_the_server_setting(hub, db, pipeline):
    t, _ = _tenant_with_meters(hub, "41000002")
    with db.session() as s:
        row = s.get(Tenant, t.id)
        assert (row.timezone, row.meter_timezone) == ("Europe/Berlin", "Europe/Berlin")
    sender = Sender(hub, pipeline, db, t)
    assert sender.send("41000002", "2026-01-14T13:00", WINTER).timestamp == WINTER
    # a tenant from before tenants had zones (meter_timezone NULL, see migration 0004): the server
    # setting (the test app's: the default UTC), as its stored readings were decoded with
    with db.transaction() as s:
        s.execute(update(Tenant).where(Tenant.id == t.id).values(meter_timezone=None))
    assert pipeline.meter_timezone == "UTC"
    assert sender.send("41000002", "2026-01-14T13:00", WINTER + timedelta(hours=1)).timestamp == _utc(2026, 1, 14, 13)


def test_date_values_stay_dates(hub, db, pipeline):
    t, _ = _tenant_with_meters(hub, "41000003")
    sender = Sender(hub, pipeline, db, t)
    base = {"storage": 1, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    sender.seq += 1
    frame = encode(
        "41000003",
        _clock_records("2026-01-14T13:00", 5.0) + [{**base, "quantity": "date", "unit": "", "value": "2025-12-31"}],
        access_number=9,
    )
    hub.send(sender.gw, sender.seq, [frame], t0=int(WINTER.timestamp()), dts=[0])
    pipeline.run_until_idle()
    with db.session() as s:
        reading = s.scalar(
            select(Reading)
            .join(Telegram, Telegram.id == Reading.telegram_id)
            .where(Telegram.gateway_id == sender.gw.id)
        )
    assert reading.timestamp == WINTER
    assert [r["value"] for r in decoded_data(pipeline, reading)["records"] if r["quantity"] == "date"] == ["2025-12-31"]


def test_model_and_meter_overrides_most_specific_wins(hub, db, pipeline, client):
    t, pks = _tenant_with_meters(hub, "41000011", "41000012", "41000013", "41000014", "41000015")
    h = hub.headers(t)
    models = [
        {"manufacturer": "KAM", "timezone": "UTC"},
        {"manufacturer": "KAM", "version": 2, "timezone": "Asia/Tokyo"},
        {"manufacturer": "KAM", "device_type": "water", "timezone": "America/New_York"},
        {"manufacturer": "KAM", "version": 2, "device_type": "water", "timezone": "Europe/London"},
    ]
    r = client.put(f"{API}/tenant/time/models", headers=h, json={"models": models})
    assert r.status_code == 200, r.text
    r = client.patch(f"{API}/meters/{pks['41000015']}", headers=h, json={"meter_timezone": "Europe/Berlin"})
    assert r.status_code == 200 and r.json()["meter_timezone"] == "Europe/Berlin"
    sender = Sender(hub, pipeline, db, t)
    clock = "2026-07-15T12:00"
    got = {
        "manufacturer": sender.send("41000011", clock, SUMMER + timedelta(hours=10)).timestamp,
        "version": sender.send("41000012", clock, SUMMER + timedelta(hours=10), version=2).timestamp,
        "device type": sender.send("41000013", clock, SUMMER + timedelta(hours=10), device_type_code=7).timestamp,
        "version+type": sender.send(
            "41000014", clock, SUMMER + timedelta(hours=10), version=2, device_type_code=7
        ).timestamp,
        "meter": sender.send("41000015", clock, SUMMER + timedelta(hours=10), version=2).timestamp,
    }
    assert got == {
        "manufacturer": _utc(2026, 7, 15, 12),
        "version": _utc(2026, 7, 15, 3),
        "device type": _utc(2026, 7, 15, 16),
        "version+type": _utc(2026, 7, 15, 11),
        "meter": _utc(2026, 7, 15, 10),
    }
    with db.session() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.tenant_id == t.id))]
    assert "tenant.model_timezones" in actions and "meter.timezone" in actions


# --- the API ---


def test_time_settings_api(hub, db, client):
    t = hub.tenant()
    other = hub.tenant()
    h = hub.headers(t)
    r = client.get(f"{API}/tenant/time", headers=h)
    assert r.status_code == 200
    assert r.json() | {"models": None} == {
        "timezone": "Europe/Berlin",
        "meter_timezone": "Europe/Berlin",
        "effective_meter_timezone": "Europe/Berlin",
        "meter_timezone_source": "tenant",
        "models": None,
        "meters_with_own_timezone": 0,
    }
    # admins only
    for role in ("operator", "viewer"):
        assert client.get(f"{API}/tenant/time", headers=hub.headers(t, role)).status_code == 403
        assert (
            client.put(f"{API}/tenant/time", headers=hub.headers(t, role), json={"timezone": "UTC"}).status_code == 403
        )
    r = client.put(f"{API}/tenant/time", headers=h, json={"meter_timezone": "Europe/Vienna"})
    assert r.status_code == 200 and r.json()["meter_timezone"] == "Europe/Vienna"
    assert r.json()["timezone"] == "Europe/Berlin"  # only what was given changes
    r = client.put(f"{API}/tenant/time", headers=h, json={"meter_timezone": None})
    assert r.json()["meter_timezone_source"] == "server_setting" and r.json()["effective_meter_timezone"] == "UTC"
    for body, code in [
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"timezone": "../etc/passwd"}, "invalid_timezone"),
        ({"timezone": None}, "invalid_timezone"),
        ({"zone": "UTC"}, None),
    ]:
        r = client.put(f"{API}/tenant/time", headers=h, json=body)
        assert r.status_code == 422, r.text
        if code:
            assert r.json()["error"]["code"] == code and "timezone" in r.json()["error"]["message"]
    bad = client.put(
        f"{API}/tenant/time/models",
        headers=h,
        json={
            "models": [{"manufacturer": "KAM", "timezone": "UTC"}, {"manufacturer": "kam", "timezone": "Europe/Berlin"}]
        },
    )
    assert bad.status_code == 422 and "models[1]" in bad.json()["error"]["message"]
    bad = client.put(
        f"{API}/tenant/time/models", headers=h, json={"models": [{"manufacturer": "KA1", "timezone": "UTC"}]}
    )
    assert bad.status_code == 422 and "models[0].manufacturer" in bad.json()["error"]["message"]
    # tenant-scoped: the other tenant's settings are untouched
    with db.session() as s:
        assert s.get(Tenant, other.id).meter_timezone == "Europe/Berlin"
        audit = [
            a.details
            for a in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.tenant_id == t.id, AuditEntry.action == "tenant.time_settings")
                .order_by(AuditEntry.id)
            )
        ]
    assert audit == [
        {
            "before": {"timezone": "Europe/Berlin", "meter_timezone": "Europe/Berlin"},
            "after": {"timezone": "Europe/Berlin", "meter_timezone": "Europe/Vienna"},
        },
        {
            "before": {"timezone": "Europe/Berlin", "meter_timezone": "Europe/Vienna"},
            "after": {"timezone": "Europe/Berlin", "meter_timezone": None},
        },
    ]


def test_meter_zone_through_api_and_import(hub, db, client):
    t = hub.tenant()
    h = hub.headers(t, "operator")
    r = client.post(
        f"{API}/meters",
        headers=h,
        json={"manufacturer": "KAM", "meter_id": "41000021", "meter_timezone": "Nowhere/City"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_timezone"
    csv = b"manufacturer,id,meter_timezone\nKAM,41000021,UTC\nKAM,41000022,\nKAM,41000023,Not/AZone\n"
    r = client.post(f"{API}/meters/import", headers={**h, "Content-Type": "text/csv"}, content=csv)
    assert r.status_code == 422 and "line 4: meter_timezone" in r.json()["error"]["message"]
    r = client.post(f"{API}/meters/import", headers={**h, "Content-Type": "text/csv"}, content=csv[:-24])
    assert r.status_code == 200, r.text
    with db.session() as s:
        zones = dict(s.execute(select(Meter.meter_id, Meter.meter_timezone).where(Meter.tenant_id == t.id)).all())
        audit = s.scalar(
            select(AuditEntry.details).where(AuditEntry.tenant_id == t.id, AuditEntry.action == "meter.timezone")
        )
    assert zones == {"41000021": "UTC", "41000022": None}
    assert audit["changes"] == [{"meter": "KAM 41000021", "before": None, "after": "UTC"}]


# --- re-timing stored readings after a zone change ---


def test_retime_after_changing_the_zone(hub, db, pipeline, client, database_url):
    t, pks = _tenant_with_meters(hub, "41000031", "41000032")
    with db.transaction() as s:  # a tenant from before 0004: its readings were decoded as UTC
        s.execute(update(Tenant).where(Tenant.id == t.id).values(meter_timezone=None))
    sender = Sender(hub, pipeline, db, t)
    a1 = sender.send("41000031", "2026-01-14T13:00", WINTER)
    a2 = sender.send("41000031", "2026-07-15T14:00", SUMMER)
    b1 = sender.send("41000032", "2026-10-25T02:30", _utc(2026, 10, 25, 1, 31))
    assert (a1.timestamp, a2.timestamp) == (_utc(2026, 1, 14, 13), _utc(2026, 7, 15, 14))
    with db.session() as s:
        raw_before = {tg.id: bytes(tg.raw) for tg in s.scalars(select(Telegram).where(Telegram.tenant_id == t.id))}
    h = hub.headers(t)
    assert client.put(f"{API}/tenant/time", headers=h, json={"meter_timezone": "Europe/Berlin"}).status_code == 200
    # only one meter first
    r = client.post(f"{API}/tenant/time/retime", headers=h, json={"meters": [pks["41000031"]]})
    assert r.status_code == 200 and r.json() == {"checked": 2, "moved": 2, "meters": 1}
    r = client.post(f"{API}/tenant/time/retime", headers=h)
    assert r.json() == {"checked": 3, "moved": 1, "meters": 1}
    assert client.post(f"{API}/tenant/time/retime", headers=h).json()["moved"] == 0
    with db.session() as s:
        got = {r.id: r.timestamp for r in s.scalars(select(Reading).where(Reading.tenant_id == t.id))}
        assert got == {a1.id: WINTER, a2.id: SUMMER, b1.id: _utc(2026, 10, 25, 1, 30)}
        meter = s.get(Meter, pks["41000031"])
        assert (meter.last_reading_id, meter.last_reading_at) == (a2.id, SUMMER)
        assert {
            tg.id: bytes(tg.raw) for tg in s.scalars(select(Telegram).where(Telegram.tenant_id == t.id))
        } == raw_before
        audit = [
            a.details
            for a in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.tenant_id == t.id, AuditEntry.action == "readings.retime")
                .order_by(AuditEntry.id)
            )
        ]
    assert [a["moved"] for a in audit] == [2, 1, 0] and audit[0]["tenant_meter_timezone"] == "Europe/Berlin"
    # another tenant's meter: 404, nothing done; viewers may not
    other, other_pks = _tenant_with_meters(hub, "41000033")
    r = client.post(f"{API}/tenant/time/retime", headers=h, json={"meters": [other_pks["41000033"]]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.post(f"{API}/tenant/time/retime", headers=hub.headers(t, "operator")).status_code == 403


def test_cli_create_tenant_zones_and_retime(hub, db, pipeline, database_url, data_dir):
    from typer.testing import CliRunner

    from omshub.cli import app as cli

    runner = CliRunner()
    slug = "cli-tz-" + hub.tenant().slug[-6:]
    base = ["--database", database_url, "--data-dir", str(data_dir), "--json"]
    r = runner.invoke(
        cli, ["admin", "create-tenant", slug, "--timezone", "Europe/Vienna", "--meter-timezone", "UTC", *base]
    )
    assert r.exit_code == 0, r.output
    assert '"meter_timezone": "UTC"' in r.output and '"timezone": "Europe/Vienna"' in r.output
    r = runner.invoke(cli, ["admin", "create-tenant", slug + "-x", "--meter-timezone", "Berlin", *base])
    assert r.exit_code == 1 and "meter_timezone: unknown time zone 'Berlin'" in r.output
    with db.session() as s:
        tenant = s.scalar(select(Tenant).where(Tenant.slug == slug))
    from .conftest import TenantInfo

    t = TenantInfo(tenant.id, tenant.slug)
    pk = hub.meter(t, "41000041")
    hub.keys(t, {"41000041": KEY})
    reading = Sender(hub, pipeline, db, t).send("41000041", "2026-01-14T13:00", WINTER + timedelta(hours=1))
    assert reading.timestamp == _utc(2026, 1, 14, 13)
    with db.transaction() as s:
        s.execute(update(Meter).where(Meter.id == pk).values(meter_timezone="Europe/Berlin"))
    r = runner.invoke(cli, ["admin", "retime", "--tenant", slug, "--meter", "41000041", *base])
    assert r.exit_code == 0, r.output
    assert '"moved": 1' in r.output
    with db.session() as s:
        assert s.get(Reading, reading.id).timestamp == WINTER
    r = runner.invoke(cli, ["admin", "retime", "--tenant", slug, "--meter", "49999999", *base])
    assert r.exit_code == 2 and "no meter 49999999" in r.output


# --- the rules themselves ---


def test_conversion_rules_without_the_pipeline():
    from omshub.cloud.services.time_zones import meter_time_to_utc

    rx = _utc(2026, 10, 25, 0, 45)
    # without a receive time (or before both): the earlier of the autumn hour's two instants
    assert meter_time_to_utc(datetime(2026, 10, 25, 2, 30), BERLIN) == _utc(2026, 10, 25, 0, 30)
    assert meter_time_to_utc(datetime(2026, 10, 25, 2, 30), BERLIN, rx) == _utc(2026, 10, 25, 0, 30)
    # within the tolerance after the receive time: still that pass
    assert meter_time_to_utc(datetime(2026, 10, 25, 2, 59), BERLIN, _utc(2026, 10, 25, 1, 50)) == _utc(
        2026, 10, 25, 1, 59
    )
    # a clock that carries its offset is taken as it is
    assert meter_time_to_utc(datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=2))), BERLIN, rx) == _utc(
        2026, 10, 25, 0, 30
    )


def test_local_times_given_by_people():
    from omshub.cloud.services.time_zones import parse_local_time

    z = "Europe/Berlin"
    assert parse_local_time("2026-01-15", z, "at") == _utc(2026, 1, 14, 23)
    assert parse_local_time("2026-07-01T08:00", z, "at") == _utc(2026, 7, 1, 6)
    assert parse_local_time("2026-07-01T08:00Z", z, "at") == _utc(2026, 7, 1, 8)
    assert parse_local_time("2026-10-25T02:30+01:00", z, "at") == _utc(2026, 10, 25, 1, 30)
    assert parse_local_time("", z, "at") is None
    for text, why in [
        ("2026-03-29T02:30", "does not exist in Europe/Berlin"),
        ("2026-10-25T02:30", "happens twice in Europe/Berlin"),
        ("31.01.2026", "is not an ISO 8601 date or time"),
        ("9999-12-31T23:59-23:59", "is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"),
    ]:
        with pytest.raises(ValueError, match=why) as info:
            parse_local_time(text, z, "installed_at")
        assert str(info.value).startswith("installed_at: ") and info.value.code == "invalid_time"


# --- migration 0004 on a database with data ---


@pytest.fixture
def fresh_url(tmp_path):
    import os
    import uuid

    from .conftest import _pg_connect, _postgres_admin_url

    if os.environ.get("OMSHUB_TEST_DATABASE", "sqlite") != "postgres":
        yield f"sqlite:///{tmp_path}/old.db"
        return
    admin = _postgres_admin_url()
    name = "omshub_mig_" + uuid.uuid4().hex[:10]
    with _pg_connect(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{admin.rsplit('/', 1)[0].split('://', 1)[1]}/{name}"
    with _pg_connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_keeps_old_tenants_truthful(fresh_url):
    """Tenants from before 0004 keep the server setting for their meters' clocks (what their readings
    were decoded with); installations a dateless import made count from the first reading."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from omshub.cloud.store.database import MIGRATIONS, Database
    from omshub.cloud.store.models import Installation

    db = Database(fresh_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.commit()
    at, later = "2026-01-14 12:00:00.000000", "2026-02-01 00:00:00.000000"
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'old', 'Old', :at)"), {"at": at})
        for pk, mid in ((1, "43000001"), (2, "43000002"), (3, "43000003")):
            conn.execute(
                text(
                    "INSERT INTO meters (id, tenant_id, manufacturer, meter_id, device_type, key_status, "
                    "created_at) VALUES (:pk, 1, 'KAM', :mid, 'heat', 'missing', :at)"
                ),
                {"pk": pk, "mid": mid, "at": at},
            )
        conn.execute(
            text(
                "INSERT INTO metering_points (id, tenant_id, ref, address, customer_ref, created_at) "
                "VALUES (1, 1, 'P1', '', '', :at), (2, 1, 'P2', '', '', :at), (3, 1, 'P3', '', '', :at)"
            ),
            {"at": at},
        )
        rows = [
            (1, 1, at, "{}"),  # a dateless import: installed when registered
            (2, 2, later, "{}"),  # a date given
            (3, 3, at, '{"energy": 5.0}'),
        ]  # installed with initial values at registration
        for pk, mp, when, initial in rows:
            conn.execute(
                text(
                    "INSERT INTO installations (id, tenant_id, metering_point_id, meter_pk, installed_at, "
                    "initial_values) VALUES (:pk, 1, :mp, :pk, :when, :initial)"
                ),
                {"pk": pk, "mp": mp, "when": when, "initial": initial},
            )
    db.migrate()
    with db.session() as s:
        old = s.get(Tenant, 1)
        assert (old.timezone, old.meter_timezone) == ("Europe/Berlin", None)
        assert {i.id: i.installed_from for i in s.scalars(select(Installation))} == {
            1: "first_reading",
            2: "given",
            3: "given",
        }
        assert s.scalar(select(Meter.meter_timezone).where(Meter.id == 1)) is None
    db.dispose()


SIM_FLEET = """
[fleet]
name = "tz"
seed = 3
epoch = "2026-01-01T00:00:00Z"

[[sites]]
name = "a"

[[sites.gateways]]
serial = "GW-TZ"

[[sites.gateways.meters]]
kind = "heat"
count = 1
manufacturers = ["KAM"]
security = "5"
interval_s = 240
"""


@pytest.mark.parametrize(
    "when",
    [
        WINTER,
        SUMMER,
        DST_SPRING + timedelta(minutes=5),
        DST_AUTUMN - timedelta(minutes=20),
        DST_AUTUMN + timedelta(minutes=40),
    ],
    ids=["winter", "summer", "after-spring-switch", "autumn-first-pass", "autumn-second-pass"],
)
def test_simulated_meters_keep_local_time_and_the_head_end_gets_it_right(hub, db, pipeline, when):
    """The simulator's meters keep Europe/Berlin time like real German meters; a new tenant's
    head-end turns it back into the instant it was sent (to the minute: type F has no seconds)."""
    from omshub.sim.fleet import parse_fleet
    from omshub.sim.meters import encode_transmission

    fleet = parse_fleet(SIM_FLEET, "tz fleet")
    assert fleet.tz.key == "Europe/Berlin"
    [m] = fleet.meters
    t = hub.tenant()
    hub.meter(t, m.id, manufacturer=m.manufacturer)
    hub.keys(t, {m.id: m.key})
    gw = hub.gateway(t)
    sent = when + timedelta(seconds=17)
    frame = encode_transmission(m, 0, sent.timestamp())
    hub.send(gw, 1, [frame], t0=int(sent.timestamp()), dts=[0])
    pipeline.run_until_idle()
    with db.session() as s:
        reading = s.scalar(
            select(Reading).join(Telegram, Telegram.id == Reading.telegram_id).where(Telegram.gateway_id == gw.id)
        )
    clock = next(
        r["value"]
        for r in decoded_data(pipeline, reading)["records"]
        if r["quantity"] == "datetime" and r["storage"] == 0
    )
    assert clock == sent.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M")
    assert reading.timestamp == when
