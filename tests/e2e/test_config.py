"""Remote configuration end to end: a change made through the API — for one gateway, and for
several at once — reaches each gateway at its next contact, is applied and the operation ends
SUCCESSFUL; a configuration the gateway refuses ends FAILED with the reason while the gateway
keeps collecting and uploading with its old configuration."""

from __future__ import annotations

import copy
import traceback

import pytest
from sqlalchemy import func, select, update

from omshub.demo import gateway_config
from omshub.gateway.clock import SimClock

from .conftest import DAY, day_start, make_world, run_agent


class Fleet2:
    """Two in-process gateway agents on their own jump clocks, run day by day against the head-end."""

    def __init__(self, world, server, tmp_path, start):
        self.world, self.server, self.tmp = world, server, tmp_path
        self.clocks = {s: SimClock(start, 0) for s in world.serials}
        self.agents = {}

    def run_until(self, t, serials=None):
        for serial in serials or self.world.serials:
            agent = self.world.agent(
                serial, self.clocks[serial], server=self.server.base_url, state_dir=self.tmp / serial
            )
            run_agent(agent, t)
            self.agents[serial] = agent


def _op(world, op_id):
    return world.headend.call("GET", f"/api/v1/operations/{op_id}")


def _stored(world, gateway_id) -> int:
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models import Telegram

    db = Database(world.database_url)
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Telegram).where(Telegram.gateway_id == gateway_id))
    finally:
        db.dispose()


def _without_version(cfg: dict) -> dict:
    return {k: v for k, v in copy.deepcopy(cfg).items() if k != "version"}


def test_config_one_and_many_gateways(database_url, live_server, tmp_path):
    server = live_server()
    world = make_world(tmp_path, database_url, server, tag="CFG")
    s1, s2 = world.serials
    g1, g2 = world.gateways[s1], world.gateways[s2]
    start = day_start(6)
    fleet = Fleet2(world, server, tmp_path, start)
    fleet.run_until(start + DAY)
    assert fleet.agents[s1].config.version == 0

    # one gateway: its listen window moves to 01:00
    one = _without_version(gateway_config(world.fleet, s1))
    one["collection"][0]["cron"] = "0 0 1 * * *"
    op = world.headend.call("PUT", f"/api/v1/gateways/{g1.id}/config", json=one)
    assert op["state"] == "PENDING"
    fleet.run_until(start + 2 * DAY)
    a1 = fleet.agents[s1]
    assert a1.config.version == op["config_version"] and a1.config.collection[0].cron == "0 0 1 * * *"
    assert fleet.agents[s2].config.version == 0
    done = _op(world, op["id"])
    assert done["state"] == "SUCCESSFUL", done

    # many at once: a new upload time for both gateways
    many = _without_version(gateway_config(world.fleet, s1, filter_mode="whitelist"))
    many["filters"] = {
        "mode": "blacklist",
        "meters": [{"manufacturer": m.manufacturer, "id": m.id} for m in world.fleet.foreign],
    }
    many["upload"]["cron"] = "0 15 4 * * *"
    res = world.headend.call("POST", "/api/v1/gateways/config", json={"gateway_ids": [g1.id, g2.id], "config": many})
    assert res["count"] == 2
    fleet.run_until(start + 3 * DAY)
    for op in res["operations"]:
        done = _op(world, op["id"])
        assert done["state"] == "SUCCESSFUL", done
        agent = fleet.agents[done["gateway"]]
        assert agent.config.version == op["config_version"] and agent.config.upload.cron == "0 15 4 * * *"
    gws = {g["serial"]: g for g in world.headend.call("GET", "/api/v1/gateways")["items"]}
    assert gws[s1]["applied_config_version"] == fleet.agents[s1].config.version


def test_config_refused_by_gateway_keeps_old_one(database_url, live_server, tmp_path):
    """A configuration with a setting this gateway's firmware does not know (a newer head-end's
    schema): the head-end stored and delivered it, the gateway refuses it."""
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models import GatewayConfigVersion

    server = live_server()
    world = make_world(tmp_path, database_url, server, tag="CFGBAD")
    s1 = world.serials[0]
    g1 = world.gateways[s1]
    start = day_start(6)
    fleet = Fleet2(world, server, tmp_path, start)
    fleet.run_until(start + DAY, [s1])
    old = fleet.agents[s1].config

    cfg = _without_version(gateway_config(world.fleet, s1))
    cfg["collection"][0]["cron"] = "0 0 5 * * *"
    op = world.headend.call("PUT", f"/api/v1/gateways/{g1.id}/config", json=cfg)
    db = Database(world.database_url)
    try:
        with db.transaction() as s:
            row = s.scalar(
                select(GatewayConfigVersion).where(
                    GatewayConfigVersion.gateway_id == g1.id, GatewayConfigVersion.version == op["config_version"]
                )
            )
            s.execute(
                update(GatewayConfigVersion)
                .where(GatewayConfigVersion.id == row.id)
                .values(config={**row.config, "radio_power_dbm": 14})
            )
    finally:
        db.dispose()
    before = _stored(world, g1.id)
    fleet.run_until(start + 4 * DAY, [s1])
    agent = fleet.agents[s1]
    done = _op(world, op["id"])
    assert done["state"] == "FAILED", done
    assert "radio_power_dbm" in (done["error"] or ""), done
    assert agent.config == old, "the gateway must keep its old configuration"
    assert _stored(world, g1.id) >= before + 3 * 20, "the gateway must go on collecting and uploading"


def test_config_that_never_fires(database_url, live_server, tmp_path):
    """An upload schedule that never fires (30 February) passes the schema's cron syntax check.
    Either the head-end refuses it (422) or the gateway refuses it (operation FAILED) and keeps
    working — it must not crash or persist a configuration it cannot run."""
    server = live_server()
    world = make_world(tmp_path, database_url, server, tag="CFGNEVER")
    s1 = world.serials[0]
    g1 = world.gateways[s1]
    start = day_start(6)
    fleet = Fleet2(world, server, tmp_path, start)
    fleet.run_until(start + DAY, [s1])
    old = fleet.agents[s1].config

    cfg = _without_version(gateway_config(world.fleet, s1))
    cfg["upload"]["cron"] = "0 0 0 30 2 *"
    r = world.headend.client.put(f"/api/v1/gateways/{g1.id}/config", json=cfg)
    if r.status_code == 422:
        assert "cron" in r.text
        return
    assert r.status_code == 201, r.text
    op = r.json()
    before = _stored(world, g1.id)
    try:
        fleet.run_until(start + 4 * DAY, [s1])
    except Exception:
        pytest.fail(
            "the gateway crashed applying a configuration whose upload cron never fires "
            "(the head-end accepted it):\n" + traceback.format_exc(limit=-4)
        )
    done = _op(world, op["id"])
    assert done["state"] == "FAILED" and done["error"], done
    assert fleet.agents[s1].config == old
    assert _stored(world, g1.id) > before
