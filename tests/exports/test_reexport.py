"""Delivery bookkeeping: every recorded export names its rows' versions; on a channel in `changes`
mode a second run delivers nothing new, and a value edited after its export is delivered again as
`changed` with the earlier export's id; the pull API pages with a cursor and `changed_since`."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from omshub.cloud.services import billing_review, export_runs
from omshub.cloud.store.models_billing import BillingValue
from omshub.cloud.store.models_exports import ExportItem, ExportRun

from . import fleet

NOW = fleet.CLOSED + timedelta(hours=2)


@pytest.fixture(scope="module")
def tenant(db):
    with db.transaction() as s:
        t = fleet.build(s, "sw-reexport")
        return t.id, t.slug


def _csv(db, tenant_id: int, run_id: int) -> list[dict]:
    import gzip

    with db.session() as s:
        run = s.get(ExportRun, run_id)
        return list(csv.DictReader(io.StringIO(gzip.decompress(run.content_gz).decode())))


def test_changed_value_is_delivered_again_with_reason_and_reference(db, tenant):
    tenant_id, slug = tenant
    first = export_runs.export_now(db, tenant_id, "v1-csv", fleet.PERIOD, channel="job:t", mode="changes",
                                   actor="test", now=NOW)  # fmt: skip
    assert (first.state, first.rows, first.export_id) == ("ok", 10, f"{slug}-000001")
    rows = _csv(db, tenant_id, first.run_id)
    assert {r["delivery"] for r in rows} == {"new"} and {r["export_id"] for r in rows} == {first.export_id}
    with db.session() as s:
        values = s.scalars(select(BillingValue).where(BillingValue.tenant_id == tenant_id)).all()
        assert all(v.exported_at == NOW and not v.export_stale for v in values)
        target = next(v for v in values if v.value == 12345.0)
    # nothing changed: the next run on the channel delivers nothing
    again = export_runs.export_now(db, tenant_id, "v1-csv", fleet.PERIOD, channel="job:t", mode="changes",
                                   actor="test", now=NOW + timedelta(hours=1))  # fmt: skip
    assert (again.state, again.rows) == ("empty", 0)
    # an operator corrects the due-date value after the export: billing marks it stale
    later = NOW + timedelta(days=1)
    with db.transaction() as s:
        billing_review.edit_value(s, tenant_id, target.id, 12400.0, "meter photo", actor="clerk", now=later)
    with db.session() as s:
        assert s.get(BillingValue, target.id).export_stale
    third = export_runs.export_now(db, tenant_id, "v1-csv", fleet.PERIOD, channel="job:t", mode="changes",
                                   actor="test", now=later)  # fmt: skip
    assert third.rows == 1
    (row,) = _csv(db, tenant_id, third.run_id)
    assert (row["value"], row["origin"], row["tabelle_s"]) == ("12400.0", "edited", "01")
    assert (row["delivery"], row["previous_export_id"]) == ("changed", first.export_id)
    with db.session() as s:
        item = s.scalars(select(ExportItem).where(ExportItem.run_id == third.run_id)).one()
        assert (item.reason, item.value, item.previous_run_id) == ("changed", 12400.0, first.run_id)
        assert not s.get(BillingValue, target.id).export_stale
    # another channel has its own history: everything is new there
    other = export_runs.export_now(db, tenant_id, "sap-csv", fleet.PERIOD, channel="job:other", mode="changes",
                                   actor="test", now=later)  # fmt: skip
    assert other.rows == 9  # SAP: 7 readings and a swap (removal, installation); consumption rows are not sent


def test_failed_delivery_counts_as_not_delivered(db, tenant):
    tenant_id, _ = tenant

    def broken(result):
        raise ConnectionError("server down")

    with pytest.raises(ConnectionError):
        export_runs.export_now(db, tenant_id, "v1-json", fleet.PERIOD, channel="job:broken", mode="changes",
                               actor="test", now=NOW, deliver=broken)  # fmt: skip
    with db.session() as s:
        run = s.scalars(select(ExportRun).where(ExportRun.channel == "job:broken")).one()
        assert run.state == "failed" and "server down" in run.error
        assert not s.scalars(select(ExportItem).where(ExportItem.run_id == run.id)).all()
    ok = export_runs.export_now(db, tenant_id, "v1-json", fleet.PERIOD, channel="job:broken", mode="changes",
                                actor="test", now=NOW)  # fmt: skip
    assert ok.rows == 10


def test_pull_pages_and_changed_since(client, hub, db):
    t = hub.tenant()
    with db.transaction() as s:
        fleet.build(s, "", tenant_id=t.id)
    h = hub.headers(t)
    got, cursor = [], None
    for _ in range(10):
        params = {"period": fleet.PERIOD, "format": "json", "limit": 4, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/v1/exports/readings", params=params, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        got += body["rows"]
        cursor = body["next_cursor"]
        assert r.headers.get("x-next-cursor") == cursor
        if cursor is None:
            break
    assert len(got) == 10 and len({g["row_id"] for g in got}) == 10
    r = client.get("/api/v1/exports/readings", params={"period": fleet.PERIOD, "changed_since": "2026-01-05T06:00:00Z"},
                   headers=h)  # fmt: skip
    assert r.status_code == 200 and r.text.count("\r\n") == 1  # only the header: nothing changed after the close
    r = client.get("/api/v1/exports/sap", params={"period": fleet.PERIOD}, headers=h)
    assert r.status_code == 200 and r.text.count("\r\n") == 10
    for bad in ({"period": "2025-13"}, {"period": fleet.PERIOD, "cursor": "x:1"}):
        r = client.get("/api/v1/exports/readings", params=bad, headers=h)
        assert r.status_code == 422 and r.json()["error"]["message"], r.text


def test_cli_run_writes_the_file(db, database_url, tenant, tmp_path):
    from typer.testing import CliRunner

    from omshub.cli import app

    out = tmp_path / "sap.csv"
    args = ["exports", "run", "--tenant", tenant[1], "--period", fleet.PERIOD, "--format", "sap-csv", "--out", str(out),
            "--database", database_url, "--data-dir", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rows" in result.output and out.read_bytes().count(b"\r\n") == 10
    bad = CliRunner().invoke(app, [*args[:5], "2025-13", *args[6:]])
    assert bad.exit_code == 1 and "2025-13" in bad.output
