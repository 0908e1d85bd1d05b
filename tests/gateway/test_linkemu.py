"""Link emulation: what a bad NB-IoT link does to an uplink, in simulated time."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from omshub.gateway.agent import Agent
from omshub.gateway.clock import Clock, SimClock
from omshub.gateway.settings import settings_from_dict
from omshub.gateway.uplink import UplinkTransport
from omshub.protocol.envelope import PayloadTooLarge, TransportError
from omshub.sim.linkemu import EmulatedLink, TcpProxy, UdpProxy
from tests.gateway.helpers import FakeHeadend, FakeTransport, ScheduledSource, frame

T0 = 1_750_000_000.0
DAY = 86_400.0


class Head:
    """A head-end that answers every body with b'ok:<n>' and remembers what it stored."""

    name = "fake"
    cred_in_envelope = True

    def __init__(self):
        self.stored: list[bytes] = []
        self.closed = False

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        self.stored.append(body)
        return b"ok:%d" % len(self.stored)

    async def close(self) -> None:
        self.closed = True


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def outcomes(link: EmulatedLink, n: int) -> list[bool]:
    results = []
    for i in range(n):
        try:
            await link.send(b"x%d" % i)
            results.append(True)
        except TransportError:
            results.append(False)
    return results


def test_is_an_uplink_transport_and_passes_through():
    async def main():
        head = Head()
        link = EmulatedLink(head, clock=SimClock(T0))
        assert isinstance(link, UplinkTransport) and link.name == "fake" and link.cred_in_envelope
        assert await link.send(b"hello") == b"ok:1"
        await link.close()
        assert head.stored == [b"hello"] and head.closed

    run(main())


def test_loss_rate_is_within_bounds_and_seeded():
    async def main(seed):
        clock = SimClock(T0)  # jump mode: the timeouts of lost exchanges cost no real time
        head = Head()
        link = EmulatedLink(head, loss=0.2, seed=seed, clock=clock, timeout_s=30)
        started = time.monotonic()
        ok = await outcomes(link, 2_000)
        assert time.monotonic() - started < 10
        s = link.stats
        assert s.attempts == 2_000 and s.answered == sum(ok)
        assert 0.17 < s.lost_requests / s.attempts < 0.23
        assert 0.17 < s.lost_answers / s.delivered < 0.23
        # a lost answer means the head-end did store the batch: the retry must be a duplicate
        assert len(head.stored) == s.delivered == s.attempts - s.lost_requests
        assert clock.now() == pytest.approx(T0 + 30 * (s.lost_requests + s.lost_answers))
        return ok

    first = run(main(seed=4))
    assert run(main(seed=4)) == first  # same seed, same losses
    assert run(main(seed=5)) != first
    assert 0.30 < 1 - sum(first) / len(first) < 0.42  # 1 - 0.8 * 0.8 = 0.36 end to end


def test_outage_of_days_refuses_then_recovers():
    async def main():
        clock = SimClock(T0)
        head = Head()
        link = EmulatedLink(head, clock=clock, outages=[(T0 + 3_600, T0 + 3 * DAY)])
        await link.send(b"before")
        clock.advance(2 * 3_600)
        with pytest.raises(TransportError, match="link down"):
            await link.send(b"during")
        clock.advance(2 * DAY)
        with pytest.raises(TransportError, match="link down"):
            await link.send(b"still")
        clock.advance(DAY)
        await link.send(b"after")
        assert head.stored == [b"before", b"after"] and link.stats.outage == 2

    run(main())


def test_outage_starting_during_the_exchange_loses_the_answer():
    async def main():
        clock = SimClock(T0)
        head = Head()
        link = EmulatedLink(head, clock=clock, latency_s=5, outages=[(T0 + 8, T0 + 100)], timeout_s=60)
        with pytest.raises(TransportError, match="answer lost"):
            await link.send(b"batch")
        assert head.stored == [b"batch"]  # stored, but the gateway never learns it
        assert clock.now() == pytest.approx(T0 + 60)

    run(main())


def test_payload_limit():
    async def main():
        head = Head()
        link = EmulatedLink(head, clock=SimClock(T0), max_payload=1_000)
        await link.send(b"a" * 1_000)
        with pytest.raises(PayloadTooLarge, match="1001 bytes exceeds the link's limit of 1000"):
            await link.send(b"a" * 1_001)
        assert len(head.stored) == 1 and link.stats.too_large == 1

    run(main())


def test_slow_head_end_within_and_beyond_the_timeout():
    async def main():
        clock = SimClock(T0)
        head = Head()
        link = EmulatedLink(head, clock=clock, latency_s=2, response_delay_s=20, timeout_s=60)
        assert await link.send(b"one") == b"ok:1"
        assert clock.now() == pytest.approx(T0 + 24)
        link.response_delay_s = 90
        with pytest.raises(TransportError, match="answers after 94 s"):
            await link.send(b"two")
        assert clock.now() == pytest.approx(T0 + 24 + 60)
        assert head.stored == [b"one", b"two"] and link.stats.unanswered == 1

    run(main())


def test_silent_head_end_times_out_without_processing():
    async def main():
        clock = SimClock(T0)
        head = Head()
        link = EmulatedLink(head, clock=clock, silent=True, timeout_s=45)
        with pytest.raises(TransportError, match="no answer within 45 s"):
            await link.send(b"x")
        assert head.stored == [] and clock.now() == pytest.approx(T0 + 45)

    run(main())


def test_latency_in_real_time():
    async def main():
        link = EmulatedLink(Head(), clock=Clock(), latency_s=0.05)
        started = time.monotonic()
        await link.send(b"x")
        assert time.monotonic() - started >= 0.1

    run(main())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss": 1.5}, "loss"),
        ({"latency_s": -1}, "negative"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_payload": 0}, "max_payload"),
        ({"outages": [(10, 5)]}, "ends"),
        ({"outages": [(1,)]}, "pair"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmulatedLink(Head(), **kwargs)


def agent_behind(tmp_path, link_kwargs, meters=10):
    """The real gateway agent uploading through an EmulatedLink to an in-memory head-end."""

    clock = SimClock(T0, 0)
    headend = FakeHeadend()
    link = EmulatedLink(FakeTransport(headend), clock=clock, **link_kwargs)
    source = ScheduledSource(clock, [frame(f"{i:08d}", access=i) for i in range(meters)], interval=60, step=60 / meters)
    settings = settings_from_dict(
        {
            "serial": "GW-1",
            "credential": "s3cret",
            "server": "https://x",
            "source": "hexfile:/none",
            "state_dir": str(tmp_path / "state"),
            "uplink": {"retry_base_s": 600, "retry_max_s": 6 * 3600},
            "config": {
                "timezone": "UTC",
                "spread_s": 0,
                "collection": [{"cron": "0 0 2 * * *", "duration_s": 900, "link_modes": ["T1"]}],
                "upload": {"cron": "0 30 3 * * *"},
            },
        }
    )
    agent = Agent(settings, clock=clock, source=source, transport=link, rng=random.Random(2))
    return agent, link, headend


def run_agent(agent, until):
    async def main():
        try:
            await agent.run(until=until)
        finally:
            await agent.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_agent_retries_through_a_two_day_outage_and_catches_up(tmp_path):
    agent, link, headend = agent_behind(tmp_path, {"outages": [(T0 + 3_600, T0 + 3 * DAY)]})
    run_agent(agent, T0 + 5 * DAY)
    # contacts inside the outage were refused (and retried with backoff), none reached the head-end
    assert link.stats.outage >= 5
    assert all(not (T0 + 3_600 <= env["status"]["time"] < T0 + 3 * DAY) for env in headend.uplinks)
    # nothing collected was lost: 10 meters x 5 daily windows, each telegram stored once
    assert len(headend.stored) == 50 and agent.spool.rows == 0


def test_agent_over_a_lossy_link_stores_everything_exactly_once(tmp_path):
    agent, link, headend = agent_behind(tmp_path, {"loss": 0.3, "seed": 3, "timeout_s": 60})
    run_agent(agent, T0 + 6 * DAY)
    assert link.stats.lost_requests + link.stats.lost_answers >= 2
    assert link.stats.lost_answers >= 1  # stored but unacknowledged: the retry was a duplicate
    assert len(headend.stored) == 60 and agent.spool.rows == 0
    assert sum(1 for env in headend.uplinks for _ in env["telegrams"]) > 60


def test_agent_halves_a_batch_the_link_cannot_carry(tmp_path):
    agent, link, headend = agent_behind(tmp_path, {"max_payload": 1_500}, meters=40)
    run_agent(agent, T0 + DAY)
    assert link.stats.too_large >= 1
    assert len(headend.stored) == 40 and agent.spool.rows == 0


def test_agent_facing_a_silent_head_end_keeps_its_spool(tmp_path):
    agent, link, headend = agent_behind(tmp_path, {"silent": True, "timeout_s": 30})
    run_agent(agent, T0 + 2 * DAY)
    assert link.stats.unanswered >= 3 and headend.uplinks == []
    assert agent.spool.rows == 20  # two windows of 10 meters, waiting for the head-end
    assert "no answer within 30 s" in agent.last_contact.error


def test_udp_proxy_counts_and_drops():
    async def main():
        loop = asyncio.get_running_loop()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(data.upper(), addr)

        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        proxy = UdpProxy(server.get_extra_info("sockname"))
        await proxy.start()
        answers: asyncio.Queue[bytes] = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                answers.put_nowait(data)

        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", proxy.port))
        client.sendto(b"hello")
        assert await asyncio.wait_for(answers.get(), 2) == b"HELLO"
        proxy.down = True
        client.sendto(b"lost")
        await asyncio.sleep(0.1)
        assert answers.empty()
        client.close()
        await proxy.stop()
        server.close()
        return proxy.stats

    stats = run(main())
    assert (stats.bytes_up, stats.bytes_down, stats.packets_up, stats.dropped) == (5, 5, 1, 1)


def test_tcp_proxy_counts_both_ways_and_cuts():
    async def main():
        async def echo(reader, writer):
            while data := await reader.read(100):
                writer.write(data * 2)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        proxy = TcpProxy(server.sockets[0].getsockname()[:2])
        await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"abc")
        assert await reader.readexactly(6) == b"abcabc"
        proxy.down = True
        assert await asyncio.wait_for(reader.read(), 2) == b""  # cut
        with pytest.raises((ConnectionError, OSError, asyncio.IncompleteReadError)):
            r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
            await asyncio.wait_for(r2.readexactly(1), 2)
        await proxy.stop()
        server.close()
        return proxy.stats

    stats = run(main())
    assert (stats.bytes_up, stats.bytes_down, stats.connections) == (3, 6, 1)
