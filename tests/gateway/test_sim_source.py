"""The gateway with the meter fleet simulator's radio (`sim:FLEET.toml`) in jump time."""

import asyncio
import random
from datetime import UTC, datetime

from omshub.gateway.agent import Agent
from omshub.gateway.clock import SimClock
from omshub.gateway.settings import settings_from_dict
from omshub.sim import fleet as sim
from omshub.sim import radio as _sim_radio  # noqa: F401 - registers the "sim:" source
from tests.gateway.helpers import FakeHeadend, FakeTransport

FLEET = """
[fleet]
name = "gw-test"
seed = 7
[[sites]]
name = "s1"
position = [0.0, 0.0]
[[sites.gateways]]
serial = "GW-SIM"
neighbours = 4
[[sites.gateways.meters]]
kind = "heat"
count = 6
manufacturers = ["KAM"]
security = "5"
link_mode = "T1"
interval_s = 32
distance_m = [2.0, 10.0]
[[sites.gateways.meters]]
kind = "water"
count = 4
manufacturers = ["DME"]
security = "5"
link_mode = "C1"
interval_s = 16
distance_m = [2.0, 10.0]
"""

START = datetime(2026, 2, 2, tzinfo=UTC).timestamp()


def test_agent_with_simulated_fleet(tmp_path):
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(FLEET)
    own = list(sim.load_fleet(fleet_file).meters_of("GW-SIM"))
    ids = [{"manufacturer": m.manufacturer, "id": m.id} for m in own]
    settings = settings_from_dict(
        {
            "serial": "GW-SIM",
            "credential": "x",
            "server": "https://unused",
            "source": f"sim:{fleet_file}",
            "state_dir": str(tmp_path / "st"),
            "spool": {"synchronous": "normal"},
            "config": {
                "timezone": "UTC",
                "spread_s": 0,
                "collection": [{"cron": "0 0 2 * * *", "duration_s": 900, "link_modes": ["T1", "C1"]}],
                "filters": {"mode": "whitelist", "meters": ids},
            },
        }
    )
    clock = SimClock(START, 0)
    headend = FakeHeadend()
    agent = Agent(settings, clock=clock, transport=FakeTransport(headend), rng=random.Random(2))

    async def main():
        await agent.run(until=START + 2 * 86_400)
        await agent.close()

    asyncio.run(main())
    got = {(bytes(t["raw"])[2:4], bytes(t["raw"])[4:8][::-1].hex()) for t in headend.stored.values()}
    assert {i for _, i in got} == {m["id"] for m in ids}  # every own meter, no neighbour
    assert agent.last_window.reason == "all_heard"
    assert len(headend.stored) >= 2 * len(ids)
