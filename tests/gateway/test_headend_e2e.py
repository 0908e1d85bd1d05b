"""The gateway agent against the real head-end (`omshub serve`): uplink over HTTPS, remote config
through the API, a gateway restart in the middle; every collected telegram stored exactly once."""

import asyncio
import random

import httpx

from omshub.gateway.agent import Agent
from omshub.gateway.clock import SimClock
from omshub.gateway.settings import settings_from_dict
from omshub.gateway.transport_http import HttpsTransport
from tests.clock import days_before
from tests.cloud.conftest import Hub, _migrated_template, data_dir, database_url, db, keystore, live_server  # noqa: F401
from tests.gateway.helpers import ScheduledSource, frame

DAY = 86_400


def test_agent_into_running_headend(db, keystore, live_server, tmp_path):
    server = live_server()
    hub = Hub(db, keystore)
    tenant = hub.tenant()
    gw = hub.gateway(tenant)
    headers = hub.headers(tenant, "admin")
    desired = {
        "timezone": "Europe/Berlin",
        "spread_s": 0,
        "collection": [{"cron": "0 0 3 * * *", "duration_s": 600, "link_modes": ["T1"]}],
        "upload": {"cron": "0 0 5 * * *", "max_batch": 7},
    }
    r = httpx.put(f"{server.base_url}/api/v1/gateways/{gw.id}/config", json=desired, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    op_id = r.json()["id"]

    start = days_before(4)  # noon UTC, four days before the fixed epoch: 3 windows to come
    clock = SimClock(start, 0)
    meters = [frame(f"{70000000 + i}", access=i) for i in range(12)]
    source = ScheduledSource(clock, meters, interval=40, step=3)
    sent_state = tmp_path / "state"

    def agent():
        s = settings_from_dict(
            {
                "serial": gw.serial,
                "credential": gw.credential,
                "server": server.base_url,
                "source": "hexfile:/unused",
                "state_dir": str(sent_state),
                "spool": {"synchronous": "normal"},
                "config": {"timezone": "UTC", "spread_s": 0},
            }
        )
        return Agent(
            s,
            clock=clock,
            source=source,
            transport=HttpsTransport(server.base_url, gw.credential, timeout_s=20),
            rng=random.Random(5),
        )

    async def run(a, until):
        try:
            await a.run(until=until)
        finally:
            await a.close()

    first = agent()
    asyncio.run(run(first, start + 1.5 * DAY))
    assert first.config.version >= 1 and first.config.timezone == "Europe/Berlin"
    second = agent()  # restart: same state directory
    asyncio.run(run(second, start + 3 * DAY - 60))
    assert second.spool.rows == 0

    # every frame the gateway kept is stored once: 12 meters, newest per window, 3 windows
    rows = hub.telegrams(gw)
    assert len(rows) == 3 * 12
    assert {r.meter_id for r in rows} == {f"{70000000 + i}" for i in range(12)}
    op = httpx.get(f"{server.base_url}/api/v1/operations/{op_id}", headers=headers, timeout=10).json()
    assert op["state"] == "SUCCESSFUL", op
