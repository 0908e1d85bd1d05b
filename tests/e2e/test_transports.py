"""A simulated fleet (2 gateways x 20 meters; ELL with compact frames, mode 7, mode 5) through real
gateway agents and each transport into a running head-end (`omshub serve`): every telegram a
gateway collected is stored and decoded exactly once — also across a link outage of three days."""

from __future__ import annotations

import pytest

from omshub.demo import free_port
from omshub.gateway.clock import SimClock
from omshub.sim.linkemu import EmulatedLink

from .conftest import DAY, check_exactly_once, day_start, make_world, mqtt_broker, run_agent


def test_https_with_three_day_outage(database_url, live_server, tmp_path):
    server = live_server()
    world = make_world(tmp_path, database_url, server, tag="HTTPS", corrupt_rate=0.02)
    start = day_start(7)
    end = start + 6 * DAY
    outage = (start + 1 * DAY, start + 4 * DAY)
    for serial in world.serials:
        clock = SimClock(start, 0)
        links = []

        def link(inner, clock=clock, links=links):
            links.append(EmulatedLink(inner, outages=[outage], clock=clock, timeout_s=20, latency_s=0.5))
            return links[-1]

        agent = world.agent(serial, clock, server=server.base_url, state_dir=tmp_path / serial, link=link)
        assert run_agent(agent, end) == 0, "the spool must be empty after the catch-up"
        stats = links[0].stats
        assert stats.outage >= 3, f"{serial}: the outage was never hit ({stats})"
        assert stats.answered >= 3
    report = check_exactly_once(world)
    assert report["states"].get("decoded", 0) >= 2 * 5 * 20  # 2 gateways, 5+ windows, 20 meters


def test_coap(database_url, live_server, tmp_path):
    port = free_port()
    server = live_server(omshub_coap_port=port, omshub_coap_host="127.0.0.1")
    world = make_world(tmp_path, database_url, server, tag="COAP")
    start = day_start(4)
    end = start + 3 * DAY
    for serial in world.serials:
        clock = SimClock(start, 0)
        agent = world.agent(
            serial, clock, server=f"coap://127.0.0.1:{port}/u", transport="coap", state_dir=tmp_path / serial
        )
        assert run_agent(agent, end) == 0
    check_exactly_once(world)


def test_mqtt(database_url, live_server, tmp_path):
    broker = mqtt_broker()
    if broker is None:
        pytest.skip("no MQTT broker at OMSHUB_TEST_MQTT (default 127.0.0.1:1883)")
    server = live_server(omshub_mqtt_url=f"mqtt://{broker}")
    world = make_world(tmp_path, database_url, server, tag="MQTT")
    start = day_start(4)
    end = start + 3 * DAY
    for serial in world.serials:
        clock = SimClock(start, 0)
        agent = world.agent(serial, clock, server=f"mqtt://{broker}", transport="mqtt", state_dir=tmp_path / serial)
        assert run_agent(agent, end) == 0
    check_exactly_once(world)
