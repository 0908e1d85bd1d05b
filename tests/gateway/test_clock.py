import asyncio
import math
import time

import pytest

from omshub.gateway.clock import Clock, SimClock


def test_jump_clock_orders_sleepers_and_does_not_wait():
    clock = SimClock(1000.0, 0)
    order = []

    async def sleeper(name, t):
        await clock.sleep_until(t)
        order.append((name, clock.now()))

    async def main():
        await asyncio.gather(sleeper("c", 5000), sleeper("a", 1500), sleeper("b", 2000.5))

    t0 = time.monotonic()
    asyncio.run(main())
    assert order == [("a", 1500), ("b", 2000.5), ("c", 5000)]
    assert time.monotonic() - t0 < 1.0


def test_jump_clock_waits_for_busy_tasks_before_jumping():
    clock = SimClock(0.0, math.inf)
    seen = []

    async def busy():
        for i in range(50):  # work without sleeping on the clock: time must not move meanwhile
            seen.append(clock.now())
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(clock.sleep_until(100), busy())
        return clock.now()

    assert asyncio.run(main()) == 100
    assert set(seen) == {0.0}


def test_run_until_deadline_and_result():
    clock = SimClock(0.0, 0)

    async def later(t, value):
        await clock.sleep_until(t)
        return value

    async def main():
        r1 = await clock.run_until(later(10, "x"), 20)
        r2 = await clock.run_until(later(50, "y"), 30)
        return r1, r2, clock.now()

    assert asyncio.run(main()) == ((True, "x"), (False, None), 30)


def test_advance_wakes_sleepers():
    clock = SimClock(0.0, 0)

    async def main():
        task = asyncio.ensure_future(clock.sleep_until(60))
        await asyncio.sleep(0)
        clock.advance(61)
        await asyncio.wait_for(task, 1)
        return clock.now()

    assert asyncio.run(main()) == 61


def test_accelerated_clock():
    clock = SimClock(0.0, 1000.0)

    async def main():
        t0 = time.monotonic()
        await clock.sleep_until(100.0)  # 0.1 s real
        return time.monotonic() - t0, clock.now()

    real, now = asyncio.run(main())
    assert 0.05 < real < 1.0
    assert now >= 100.0


def test_real_clock_sleep():
    clock = Clock()

    async def main():
        t = clock.now() + 0.05
        await clock.sleep_until(t)
        return clock.now() >= t

    assert asyncio.run(main())


def test_bad_speed():
    with pytest.raises(ValueError):
        SimClock(0, -1)
