"""Health, readiness, metrics, maintenance, the read replica URL and the decode work division
(issue 11 items 5 and 6; docs/deploy.md)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from omshub.cloud.decode.workers import PipelineProcesses
from omshub.cloud.services.maintenance import HOT_TABLES, TASKS, autovacuum_status, run_maintenance
from tests.clock import EPOCH

from .conftest import encode


def test_healthz_answers_without_the_database(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_checks_database_migrations_and_reports_autovacuum(client, db):
    r = client.get("/readyz")
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ready"
    migrations = body["checks"]["migrations"]
    assert migrations["ok"] and migrations["current"] == migrations["expected"] == db.migration_status()[1]
    av = body["checks"]["autovacuum"]
    if db.is_sqlite:
        assert av["applies"] is False and body["warnings"] == []
    else:
        with db.engine.connect() as conn:
            on = conn.execute(text("SHOW autovacuum")).scalar() == "on"
        assert av["on"] is on
        assert (body["warnings"] == []) is on
        if not on:
            assert "autovacuum" in body["warnings"][0] and "Autovacuum ist aus" in body["warnings"][0]


def test_readyz_is_503_when_the_schema_is_behind(tmp_path, settings, keystore):
    from alembic import command
    from alembic.config import Config
    from fastapi.testclient import TestClient

    from omshub.cloud.app import create_app
    from omshub.cloud.store.database import MIGRATIONS, Database

    old = Database(f"sqlite:///{tmp_path}/old.db")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with old.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.commit()
    app = create_app(settings, db=old, keystore=keystore, migrate=False)
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    migrations = r.json()["checks"]["migrations"]
    assert migrations == {"ok": False, "current": "0006", "expected": old.migration_status()[1]}
    assert migrations["expected"] != "0006"
    old.dispose()


def test_metrics_count_ingest_and_show_the_decode_queue(client, hub, pipeline):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.meter(t, "30000001")
    hub.keys(t, {"30000001": bytes.fromhex("000102030405060708090A0B0C0D0E0F")})

    def sample(body: str, name: str, **labels) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in body.splitlines():
            if line.startswith(name + ("{" + want + "}" if want else " ")) or (
                want and line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = client.get("/metrics").text
    hub.send(gw, 1, [encode("30000001", energy=1.0, access_number=1), encode("30000002", access_number=2)])
    waiting = client.get("/metrics")
    assert waiting.status_code == 200 and waiting.headers["content-type"].startswith("text/plain")
    after = waiting.text
    assert (
        sample(after, "omshub_uplinks_total", transport="https")
        == sample(before, "omshub_uplinks_total", transport="https") + 1
    )
    assert sample(after, "omshub_telegrams_ingested_total", transport="https", outcome="stored") >= 2
    assert sample(after, "omshub_uplink_bytes_total", transport="https") > sample(
        before, "omshub_uplink_bytes_total", transport="https"
    )
    assert sample(after, "omshub_telegrams_waiting", state="new") >= 2
    assert sample(after, "omshub_decode_lag_seconds") >= 0
    assert sample(after, "omshub_database_up") == 1
    assert "omshub_request_seconds_bucket" in after and 'route="/api/v1/uplink"' in after
    pipeline.run_until_idle()
    done = client.get("/metrics").text
    assert sample(done, "omshub_telegrams_waiting", state="new") == 0
    assert sample(done, "omshub_decode_lag_seconds") == 0
    assert sample(done, "omshub_telegrams_waiting", state="unknown_meter") >= 1


def test_refused_uplinks_are_counted(client):
    def refused(body: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith("omshub_uplinks_refused_total{")
        )

    before = refused(client.get("/metrics").text)
    r = client.post("/api/v1/uplink", content=b"\xa0", headers={"content-type": "application/cbor"})
    assert r.status_code >= 400
    assert refused(client.get("/metrics").text) >= before + (1 if r.status_code != 401 else 0)


def test_maintenance_runs_every_task_and_tunes_the_hot_tables(db):
    results = run_maintenance(db, EPOCH)
    assert [r.name for r in results] == [name for name, _ in TASKS]
    assert all(r.ok for r in results), [r.as_dict() for r in results]
    if db.is_sqlite:
        return
    with db.engine.connect() as conn:
        options = dict(
            conn.execute(
                text(
                    "SELECT coalesce(p.relname, c.relname), c.reloptions FROM pg_class c "
                    "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent "
                    "WHERE coalesce(p.relname, c.relname) IN ('meters', 'telegrams', 'readings', 'gateways') "
                    "AND c.relkind = 'r'"
                )
            ).all()
        )  # (telegrams on PostgreSQL: its monthly partitions, each tuned)
    for table, params in HOT_TABLES.items():
        assert set(options[table]) == {f"{k}={v}" for k, v in params.items()}, table
    by_name = {r.name: r for r in results}
    assert by_name["vacuum_analyze"].details["vacuumed"] == list(HOT_TABLES)


def test_maintenance_refuses_an_unknown_task(db):
    with pytest.raises(ValueError, match="unknown maintenance task"):
        run_maintenance(db, EPOCH, ["vacuum_everything"])


def test_admin_maintenance_command_json_and_table(database_url, data_dir):
    from typer.testing import CliRunner

    from omshub.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["admin", "maintenance", "--database", database_url, "--data-dir", str(data_dir), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert [t["task"] for t in report["tasks"]] == [name for name, _ in TASKS]
    assert all(t["ok"] for t in report["tasks"])
    assert report["database"] in ("sqlite", "postgresql")
    table = runner.invoke(app, ["admin", "maintenance", "--database", database_url, "--data-dir", str(data_dir)])
    assert table.exit_code == 0 and "vacuum_analyze" in table.stdout
    bad = runner.invoke(
        app, ["admin", "maintenance", "--database", database_url, "--data-dir", str(data_dir), "--task", "x"]
    )
    assert bad.exit_code == 2 and "unknown maintenance task" in bad.output


def test_autovacuum_off_is_a_clear_warning_in_both_languages(db):
    status = autovacuum_status(db)
    if db.is_sqlite:
        assert status == {"applies": False, "on": True, "message": None}
        return
    if status["on"]:
        assert status["message"] is None
    else:
        assert "autovacuum is off" in status["message"] and "Autovacuum ist aus" in status["message"]


def test_read_replica_url_serves_get_routes_read_only(database_url, hub, client):
    """A second connection URL for the read routes (here the same PostgreSQL, as a replica would
    be): its transactions are read only, so a read route that wrote would fail here too."""
    from sqlalchemy.exc import DBAPIError

    from omshub.cloud.store.database import Database

    if database_url.startswith("sqlite"):
        with pytest.raises(ValueError, match="read replica"):
            Database(database_url, read_url=database_url)
        return
    db = Database(database_url, read_url=database_url)
    try:
        with db.read_session() as s:
            assert s.execute(text("SELECT count(*) FROM meters")).scalar() >= 0
            with pytest.raises(DBAPIError, match="read-only"):
                s.execute(text("UPDATE meters SET key_status = key_status"))
    finally:
        db.dispose()


def test_decode_work_is_divided_across_nodes_by_design():
    """Node j of m, worker k of w: each telegram id belongs to exactly one worker of one node."""
    for nodes, workers in ((1, 1), (1, 3), (2, 2), (3, 4)):
        owners: dict[int, list] = {}
        for node in range(nodes):
            procs = PipelineProcesses("sqlite://", b"\0" * 32, workers=workers, fill_cores=False, node=(node, nodes))
            for k in range(workers):
                share, total = procs.partition(k)
                assert total == nodes * workers
                for telegram_id in range(1, 200):
                    if telegram_id % total == share:
                        owners.setdefault(telegram_id, []).append((node, k))
                        assert telegram_id % nodes == node  # the node's share first
        assert all(len(v) == 1 for v in owners.values()) and len(owners) == 199, (nodes, workers)


def test_serve_schedules_the_maintenance(db):
    """The maintenance worker of `omshub serve` runs every task at its interval."""
    import time

    from omshub.cloud.app import MaintenanceWorker

    worker = MaintenanceWorker(db, 0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not worker.last and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert [r["task"] for r in worker.last] == [name for name, _ in TASKS]
    assert all(r["ok"] for r in worker.last), worker.last
    assert not worker.is_alive()


def test_node_settings_are_checked():
    from omshub.cloud.settings import SettingsError, load_settings

    s = load_settings(None, environ={"OMSHUB_NODE_INDEX": "1", "OMSHUB_NODE_COUNT": "3"})
    assert (s.node_index, s.node_count) == (1, 3)
    with pytest.raises(SettingsError, match="node_index 3 must be below node_count 3"):
        load_settings(None, environ={"OMSHUB_NODE_INDEX": "3", "OMSHUB_NODE_COUNT": "3"})
