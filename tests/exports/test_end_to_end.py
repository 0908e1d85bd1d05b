"""End to end: a small fleet's telegrams → decoded → the month closed through the API → the SFTP job
delivers the reading export to OpenSSH on loopback, and a webhook receiver that fails for a while
gets the `period.closed` event (signature checked) once it recovers; then a late telegram changes a
boundary value: the close is run again, the receiver gets `value.changed_after_export`, and the
next SFTP run delivers the value again naming the first export. Times from tests/clock.py."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from omshub.cloud.services import event_sources, sftp_jobs, webhooks
from tests.clock import EPOCH

from ..cloud.conftest import KEY, encode
from .sshd import start_sshd
from .test_webhooks import Receiver, verify

pytestmark = pytest.mark.subprocess
API = "/api/v1"
FIRST = (EPOCH.replace(day=1) - timedelta(days=1)).replace(day=1).date()  # the month before EPOCH's
NEXT = (FIRST + timedelta(days=32)).replace(day=1)
PERIOD = f"{FIRST:%Y-%m}"


@pytest.fixture
def sftp(tmp_path):
    yield from start_sshd(tmp_path)


def _send(hub, gw, meter_id: str, day: date, hour: int, energy: float, seq: int) -> None:
    rec = {"quantity": "energy", "unit": "kWh", "value": energy, "storage": 0, "tariff": 0, "subunit": 0}
    t0 = int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp())
    hub.send(gw, seq, [encode(meter_id, [rec])], t0=t0, dts=[0])


def test_fleet_month_closed_sftp_and_webhook(client, hub, db, app, pipeline, sftp):
    t = hub.tenant()
    h = hub.headers(t)
    gw = hub.gateway(t)
    digits = "".join(c for c in gw.serial if c.isdigit())[-6:].rjust(6, "0")
    meters = [f"6{n}{digits}" for n in range(2)]
    hub.keys(t, dict.fromkeys(meters, KEY))
    prop = client.post(f"{API}/properties", json={"ref": "LG-E2E"}, headers=h).json()
    points = []
    for n, meter_id in enumerate(meters):
        unit = client.post(
            f"{API}/properties/{prop['id']}/units", json={"ref": f"WE{n}", "area_m2": 60}, headers=h
        ).json()
        point = client.post(f"{API}/metering-points", json={"ref": f"MP-E2E-{n}"}, headers=h).json()
        client.post(f"{API}/units/{unit['id']}/metering-points", json={"metering_point_id": point["id"]}, headers=h)
        pk = hub.meter(t, meter_id)
        installed = (FIRST - timedelta(days=5)).isoformat()
        r = client.post(f"{API}/metering-points/{point['id']}/install", json={"meter": pk, "at": installed}, headers=h)
        assert r.status_code == 201, r.text
        points.append(point)
    seq = 1
    day = FIRST - timedelta(days=3)
    while day <= NEXT + timedelta(days=2):
        for n, meter_id in enumerate(meters):
            _send(hub, gw, meter_id, day, 11, 1000.0 * (n + 1) + 10 * (day - FIRST).days, seq)
            seq += 1
        day += timedelta(days=1)
    while pipeline.run_once():
        pass

    receiver = Receiver(fail=3)
    try:
        hook = client.post(f"{API}/webhooks", json={"url": receiver.url, "events": ["period.closed",
                           "value.changed_after_export"], "retry_for_s": 86400}, headers=h).json()  # fmt: skip
        now = datetime.combine(NEXT + timedelta(days=3), datetime.min.time(), UTC)
        event_sources.scan(db, now)  # the tenant's events start here
        job = client.post(f"{API}/export-jobs", headers=h, json={
            "name": "monthly", "format": "v1-csv", "scope": PERIOD, "cron": "0 6 2 * *", "host": "127.0.0.1",
            "port": sftp.port, "username": sftp.user, "directory": str(sftp.drop), "private_key": sftp.private_key,
        }).json()  # fmt: skip
        closed = client.post(f"{API}/billing/close", json={"period": PERIOD}, headers=h)
        assert closed.status_code == 200 and closed.json()["points"] == 2, closed.text

        first = sftp_jobs.run_job(db, app.state.keystore, t.id, job["id"], now=now, actor="schedule")
        assert first["state"] == "ok" and first["rows"] == 2 * 2 + 2, first
        rows = list(csv.DictReader(io.StringIO((sftp.drop / first["file_name"]).read_text())))
        assert {r["metering_point"] for r in rows} == {"MP-E2E-0", "MP-E2E-1"}
        assert all(
            r["delivery"] == "new" and r["tabelle_s"] in ("12", "13") for r in rows if r["record"] == "boundary_value"
        )
        assert (sftp.drop / (first["file_name"] + ".manifest.json")).exists()

        # a late telegram right at the month's end for meter 0: the end value becomes measured
        end_local = datetime.fromisoformat(next(r["boundary_utc"] for r in rows if r["metering_point"] == "MP-E2E-0"
                                                and r["boundary_local"].startswith(NEXT.isoformat())).replace("Z", "+00:00"))  # fmt: skip
        late = end_local + timedelta(minutes=10)
        hub.send(gw, seq + 1, [encode(meters[0], [{"quantity": "energy", "unit": "kWh", "value": 1310.5, "storage": 0,
                                                   "tariff": 0, "subunit": 0}])], t0=int(late.timestamp()), dts=[0])  # fmt: skip
        while pipeline.run_once():
            pass
        again = client.post(f"{API}/billing/close", json={"period": PERIOD}, headers=h).json()
        assert again["export_stale"] >= 1, again

        later = now + timedelta(hours=1)
        assert event_sources.scan(db, later) >= 2  # period.closed and value.changed_after_export
        for step in range(10):  # the receiver fails 3 times, then recovers
            webhooks.deliver_due(db, app.state.keystore, later + timedelta(minutes=5 * step))
        got = [json.loads(b) for _, b in receiver.ok]
        assert sorted(e["type"] for e in got).count("period.closed") == 1
        changed = [e for e in got if e["type"] == "value.changed_after_export"]
        assert changed and changed[0]["data"]["value"] == 1310.5
        assert changed[0]["data"]["previous_export_id"] == first["export_id"]
        assert all(verify(hook["secret"], hd, b, now=int(hd["Omshub-Timestamp"])) for hd, b in receiver.ok)
        assert len({hd["Idempotency-Key"] for hd, _ in receiver.ok}) == len(receiver.ok)

        second = sftp_jobs.run_job(db, app.state.keystore, t.id, job["id"], now=later, actor="schedule")
        rows2 = list(csv.DictReader(io.StringIO((sftp.drop / second["file_name"]).read_text())))
        value_rows = [r for r in rows2 if r["record"] == "boundary_value"]
        assert [(r["metering_point"], r["value"], r["origin"], r["delivery"], r["previous_export_id"])
                for r in value_rows] == [("MP-E2E-0", "1310.5", "measured", "changed", first["export_id"])]  # fmt: skip
    finally:
        receiver.close()
