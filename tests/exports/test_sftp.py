"""Scheduled SFTP delivery against a real OpenSSH server on loopback (sshd.py): a job created
through the API runs on its schedule, uploads the file and its manifest atomically (no partial file
left), keeps the host key it saw first, records every run; a changed value goes out in the next run;
a server with another host key fails the run (recorded, nothing marked delivered)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from omshub.cloud.services import billing_review, sftp_jobs
from omshub.cloud.store.models_billing import BillingValue

from . import fleet
from .sshd import start_sshd

pytestmark = pytest.mark.subprocess


@pytest.fixture
def sftp(tmp_path):
    yield from start_sshd(tmp_path)


def _job(client, h, server, **over) -> dict:
    body = {"name": "nightly", "format": "v1-csv", "scope": fleet.PERIOD, "cron": "0 6 2 * *",
            "timezone": "Europe/Berlin", "host": "127.0.0.1", "port": server.port, "username": server.user,
            "directory": str(server.drop), "private_key": server.private_key, **over}  # fmt: skip
    r = client.post("/api/v1/export-jobs", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def test_scheduled_delivery_manifest_and_redelivery(client, hub, db, app, sftp):
    t = hub.tenant()
    h = hub.headers(t)
    with db.transaction() as s:
        fleet.build(s, "", tenant_id=t.id)
    job = _job(client, h, sftp)
    assert "private_key" not in job and job["host_key"] == ""
    # the schedule: 06:00 Berlin on the 2nd of each month
    run_at = datetime.fromisoformat(job["next_run_at"].replace("Z", "+00:00"))
    assert run_at.astimezone(UTC).hour in (4, 5) and run_at.day == 2
    assert sftp_jobs.due_jobs(db, app.state.keystore, run_at - timedelta(minutes=1)) == []
    (done,) = sftp_jobs.due_jobs(db, app.state.keystore, run_at)
    assert done["state"] == "ok" and done["rows"] == 10, done
    files = sorted(p.name for p in sftp.drop.iterdir())
    assert files == [done["file_name"], done["file_name"] + ".manifest.json"]  # no .part left
    data = (sftp.drop / done["file_name"]).read_bytes()
    manifest = json.loads((sftp.drop / (done["file_name"] + ".manifest.json")).read_text())
    assert manifest["files"] == [{"name": done["file_name"], "sha256": hashlib.sha256(data).hexdigest(),
                                  "size": len(data), "rows": 10}]  # fmt: skip
    listed = client.get("/api/v1/export-jobs", headers=h).json()["items"][0]
    assert listed["host_key"] == sftp.host_key  # trusted on first use
    assert datetime.fromisoformat(listed["next_run_at"].replace("Z", "+00:00")) > run_at
    # a value changes: the next run delivers it, naming the first delivery
    with db.transaction() as s:
        value = s.query(BillingValue).filter_by(tenant_id=t.id, value=84.0).one()
        billing_review.edit_value(s, t.id, value.id, 85.5, "reading corrected", actor="clerk", now=run_at)
    r = client.post(f"/api/v1/export-jobs/{job['id']}/run", headers=h)
    assert r.status_code == 200 and r.json()["rows"] == 1, r.text
    second = (sftp.drop / r.json()["file_name"]).read_text()
    assert ",85.5,m3," in second and f",changed,{done['export_id']}" in second
    runs = client.get("/api/v1/exports/runs", params={"job": job["id"]}, headers=h).json()["items"]
    assert [x["state"] for x in runs] == ["ok", "ok"] and runs[1]["target"].startswith("sftp://")
    f = client.get(f"/api/v1/exports/runs/{runs[1]['id']}/file", headers=h)
    assert f.status_code == 200 and f.content == data


def test_wrong_host_key_fails_the_run(client, hub, db, sftp):
    t = hub.tenant()
    h = hub.headers(t)
    with db.transaction() as s:
        fleet.build(s, "", tenant_id=t.id)
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBg0jnGqAnvWO+mU7lPNSq2Syn7GEm9+DZ6mLxzJrqMY"
    job = _job(client, h, sftp, name="pinned", host_key=other)
    r = client.post(f"/api/v1/export-jobs/{job['id']}/run", headers=h)
    assert r.status_code == 200 and r.json()["state"] == "failed" and "host key" in r.json()["error"]
    assert list(sftp.drop.iterdir()) == []
    runs = client.get("/api/v1/exports/runs", params={"job": job["id"]}, headers=h).json()["items"]
    assert runs[0]["state"] == "failed" and "host key" in runs[0]["error"]


def test_bad_job_settings_are_refused(client, hub, sftp):
    h = hub.headers(hub.tenant())
    base = {"name": "x", "format": "v1-csv", "cron": "0 6 2 * *", "host": "127.0.0.1", "username": "u",
            "private_key": sftp.private_key}  # fmt: skip
    for field, value in (("cron", "0 25 * * *"), ("format", "xml"), ("private_key", "nonsense"),
                         ("timezone", "Mars/Base"), ("scope", "2026-13")):  # fmt: skip
        r = client.post("/api/v1/export-jobs", json={**base, field: value}, headers=h)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["error"]["message"]
