"""The agent end to end in jump time: windows, spool, uplink, ack, backoff, remote configuration."""

import asyncio
import json
import random
from datetime import UTC, datetime

from omshub.gateway.agent import Agent
from omshub.gateway.clock import SimClock
from omshub.gateway.settings import settings_from_dict
from omshub.sim.battery import battery_from_settings
from tests.gateway.helpers import FakeHeadend, FakeTransport, ScheduledSource, frame

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC).timestamp()
DAY = 86_400


def settings(tmp_path, synchronous="normal", **config):
    cfg = {
        "version": 0,
        "timezone": "UTC",
        "spread_s": 0,
        "collection": [{"cron": "0 0 2 * * *", "duration_s": 900, "link_modes": ["T1"], "max_telegrams": 2000}],
        "upload": {"cron": "0 30 3 * * *", "max_batch": 5000},
    }
    cfg.update(config)
    return settings_from_dict(
        {
            "serial": "GW-1",
            "credential": "s3cret-token",
            "server": "https://x",
            "source": "hexfile:/nonexistent",
            "state_dir": str(tmp_path / "state"),
            "config": cfg,
            "uplink": {"retry_base_s": 60, "retry_max_s": 3600},
            "spool": {"synchronous": synchronous},
        }
    )


def make_agent(tmp_path, meters=10, headend=None, clock=None, synchronous="normal", **config):
    clock = clock or SimClock(START, 0)
    headend = headend or FakeHeadend()
    frames = [frame(f"{i:08d}", access=i) for i in range(meters)]
    source = ScheduledSource(clock, frames, interval=60, step=60 / meters)
    transport = FakeTransport(headend)
    s = settings(tmp_path, synchronous, **config)
    agent = Agent(
        s,
        clock=clock,
        source=source,
        transport=transport,
        rng=random.Random(1),
        battery=battery_from_settings(s.battery),
    )
    return agent, clock, headend, source, transport


def run(agent, until):
    async def main():
        try:
            await agent.run(until=until)
        finally:
            await agent.close()

    asyncio.run(main())


def test_days_of_collection_and_upload(tmp_path):
    agent, clock, headend, source, _ = make_agent(tmp_path, meters=10, synchronous="full")
    run(agent, START + 3 * DAY)
    # contact at start + one per day; newest per kind: each window keeps one frame per meter
    assert len(headend.uplinks) == 4
    assert len(headend.stored) == 30
    assert all(env["gw"] == "GW-1" for env in headend.uplinks)
    assert [e["seq"] for e in headend.uplinks] == [1, 2, 3, 4]
    st = headend.uplinks[-1]["status"]
    assert st["spool"] == 10 and st["heard"] == 10 and st["filtered"] == 0
    assert 0 < st["battery_pct"] <= 100 and st["uptime_s"] > 2 * DAY
    assert source.modes_set[0] == ["T1"]
    # each stored telegram was received inside a window (02:00-02:15 UTC)
    for _, raw, rx in headend.stored:
        t = datetime.fromtimestamp(rx, UTC)
        assert t.hour == 2 and t.minute < 15
    # the newest frame per meter: received in the last minute of the 15-minute window
    assert all(datetime.fromtimestamp(rx, UTC).minute == 14 for (_, _, rx) in headend.stored)


def test_keep_all_and_max_telegrams(tmp_path):
    agent, clock, headend, source, _ = make_agent(
        tmp_path,
        meters=10,
        keep="all",
        collection=[{"cron": "0 0 2 * * *", "duration_s": 900, "link_modes": ["T1"], "max_telegrams": 25}],
    )
    run(agent, START + DAY)
    assert len(headend.stored) == 25
    assert agent.last_window.reason == "max_telegrams"


def test_window_ends_when_all_whitelisted_meters_heard(tmp_path):
    agent, clock, headend, source, _ = make_agent(
        tmp_path,
        meters=10,
        filters={"mode": "whitelist", "meters": [{"manufacturer": "KAM", "id": "00000002"}, {"id": "00000005"}]},
    )
    run(agent, START + DAY)
    w = agent.last_window
    assert w.reason == "all_heard"
    assert w.end - w.start < 60
    assert {rx[1] for rx in headend.stored} == {frame("00000002", access=2), frame("00000005", access=5)}
    assert headend.uplinks[-1]["status"]["filtered"] == w.received - 2


def test_outage_backoff_and_catch_up(tmp_path):
    agent, clock, headend, source, transport = make_agent(
        tmp_path, meters=20, keep="all", upload={"cron": "0 30 3 * * *", "max_batch": 100}
    )
    headend.down = True

    async def main():
        task = asyncio.ensure_future(agent.run(until=START + 4 * DAY))
        await clock.sleep_until(START + 3 * DAY + 6 * 3600)
        headend.down = False
        await task
        await agent.close()

    asyncio.run(main())
    # 4 windows x 15 min x 20 meters/min = 1200 telegrams, all delivered exactly once
    assert len(headend.stored) == 1200
    assert agent.spool.rows == 0
    # retries were spaced by a growing backoff, capped at retry_max_s (1 h) with jitter
    assert transport.attempts > 10
    seqs = [e["seq"] for e in headend.uplinks]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # the catch-up after the outage sent several batches of at most 100 in a row
    sizes = [len(e["telegrams"]) for e in headend.uplinks]
    assert max(sizes) == 100 and sizes.count(100) >= 9


def test_answer_lost_retry_repeats_seq_without_duplicates(tmp_path):
    agent, clock, headend, source, transport = make_agent(tmp_path, meters=5)
    headend.fail_after_processing = True

    async def main():
        task = asyncio.ensure_future(agent.run(until=START + 2 * DAY))
        await clock.sleep_until(START + DAY + 3 * 3600 + 45 * 60)
        headend.fail_after_processing = False
        await task
        await agent.close()

    asyncio.run(main())
    seqs = [e["seq"] for e in headend.uplinks]
    assert len(seqs) > len(set(seqs))  # retries repeated the same seq
    assert len(headend.stored) == 10  # 2 windows x 5 meters, each stored once


def test_remote_config_applied_and_reported(tmp_path):
    agent, clock, headend, source, _ = make_agent(tmp_path, meters=5)
    headend.desired = {
        "version": 7,
        "timezone": "Europe/Berlin",
        "spread_s": 0,
        "collection": [{"cron": "0 0 4 * * *", "duration_s": 600, "link_modes": ["C1"], "max_telegrams": 100}],
        "upload": {"cron": "0 0 6 * * *", "max_batch": 10},
    }
    run(agent, START + 2 * DAY)
    assert headend.uplinks[0]["cfg"] == 0
    assert all(e["cfg"] == 7 for e in headend.uplinks[1:])
    assert agent.config.version == 7
    stored = json.loads((tmp_path / "state" / "config.json").read_text())
    assert stored["version"] == 7 and stored["timezone"] == "Europe/Berlin"
    assert ["C1"] in source.modes_set
    for _, _, rx in headend.stored:  # 04:00 Berlin = 03:00 UTC
        assert datetime.fromtimestamp(rx, UTC).hour == 3
    # a restarted agent keeps the applied configuration
    again = Agent(settings(tmp_path), clock=clock, source=source, transport=FakeTransport(headend))
    assert again.config.version == 7
    again.spool.close()


def test_invalid_remote_config_is_refused_and_reported(tmp_path):
    agent, clock, headend, source, _ = make_agent(tmp_path, meters=5)
    headend.desired = {"version": 3, "timezone": "Mars/Olympus", "collection": []}
    run(agent, START + DAY)
    assert agent.config.version == 0
    errs = [e.get("cfg_error") for e in headend.uplinks]
    assert errs[0] is None
    assert errs[1]["version"] == 3 and "timezone" in errs[1]["message"]
    assert len(headend.stored) == 5  # kept collecting with the old configuration


def test_credential_not_in_logs(tmp_path, caplog):
    caplog.set_level("DEBUG")
    agent, clock, headend, source, transport = make_agent(tmp_path, meters=3)
    transport.cred_in_envelope = True
    run(agent, START + DAY)
    assert headend.uplinks[0]["cred"] == "s3cret-token"
    assert "s3cret-token" not in caplog.text
    assert "s3cret-token" not in repr(agent.settings)


def test_spool_full_stops_collection_and_says_so(tmp_path):
    clock = SimClock(START, 0)
    headend = FakeHeadend()
    headend.down = True
    s = settings(tmp_path, keep="all")
    s.spool.max_rows = 200
    source = ScheduledSource(clock, [frame(f"{i:08d}") for i in range(10)], interval=60, step=6)
    transport = FakeTransport(headend)
    agent = Agent(s, clock=clock, source=source, transport=transport, rng=random.Random(1))

    async def main():
        task = asyncio.ensure_future(agent.run(until=START + 4 * DAY))
        await clock.sleep_until(START + 2 * DAY + 12 * 3600)
        assert agent.status()["spool_full"] is True and agent.spool.rows == 200
        sent_before = source.sent
        headend.down = False
        await task
        await agent.close()
        return sent_before

    asyncio.run(main())
    first = headend.uplinks[0]
    assert first["status"]["spool_full"] is True and first["status"]["spool"] == 200
    # 150 telegrams a window: day 1 150, day 2 stopped at 200, day 3 skipped, day 4 150 again
    assert agent.last_window.kept == 150
    assert len(headend.stored) == 200 + 150
    assert headend.uplinks[-1]["status"]["spool_full"] is False


def test_battery_drains_visibly_over_a_year(tmp_path):
    agent, clock, headend, source, _ = make_agent(
        tmp_path,
        meters=2,
        collection=[{"cron": "0 0 2 * * *", "duration_s": 900, "link_modes": ["T1"]}],
        filters={"meters": [{"id": "00000000"}, {"id": "00000001"}]},
    )
    run(agent, START + 365 * DAY)
    pcts = [u["status"]["battery_pct"] for u in headend.uplinks]
    assert pcts == sorted(pcts, reverse=True) and pcts[0] == 100
    assert 80 < pcts[-1] <= 97  # sleep current, ~1 min of radio a day, a daily contact
    assert 3500 < headend.uplinks[-1]["status"]["battery_mv"] < 3650
    assert len(headend.uplinks) == 366


def test_config_persistence_rules(tmp_path):
    agent, clock, headend, source, _ = make_agent(tmp_path)
    assert agent.apply_config(["not", "a", "map"]) is False
    assert agent.cfg_error["version"] == 0 and "object" in agent.cfg_error["message"]
    assert agent.apply_config({"version": 4, "spread_s": 60}) is True and agent.cfg_error is None
    assert not (tmp_path / "state" / "config.json.tmp").exists()
    agent.spool.close()
    # the stored (head-end) configuration wins over the settings' initial one ...
    again = Agent(settings(tmp_path, version=3), clock=clock, source=source, transport=FakeTransport(headend))
    assert again.config.version == 4 and again.config.spread_s == 60
    again.spool.close()
    # ... unless the settings carry a newer version
    newer = Agent(settings(tmp_path, version=9), clock=clock, source=source, transport=FakeTransport(headend))
    assert newer.config.version == 9
    newer.spool.close()
    # a refused configuration is remembered across a restart until one is applied
    (tmp_path / "state" / "config.json").write_text("{broken")
    broken = Agent(settings(tmp_path), clock=clock, source=source, transport=FakeTransport(headend))
    assert broken.config.version == 0
    broken.apply_config({"version": 5, "keep": "some"})
    broken.spool.close()
    restarted = Agent(settings(tmp_path), clock=clock, source=source, transport=FakeTransport(headend))
    assert restarted.cfg_error["version"] == 5 and "keep" in restarted.cfg_error["message"]
    restarted.spool.close()


def test_accelerated_clock(tmp_path):
    t0 = START + 2 * 3600 - 60  # 01:59 UTC
    clock = SimClock(t0, 2000.0)  # 2000 simulated seconds per real second
    agent, clock, headend, source, _ = make_agent(
        tmp_path, meters=5, clock=clock, upload={"cron": "0 20 2 * * *", "max_batch": 100}
    )
    run(agent, t0 + 22 * 60)
    assert len(headend.stored) == 5 and len(headend.uplinks) == 2
    assert all(START + 2 * 3600 <= rx < START + 2 * 3600 + 900 for (_, _, rx) in headend.stored)
