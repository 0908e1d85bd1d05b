"""Clocks for the gateway agent: real time, accelerated time and jump (discrete-event) time.

Everything in the gateway that waits does so through a :class:`Clock`, so the same agent code runs
on a real gateway, in the demo (weeks pass in minutes) and in tests (a year in a second).

* ``Clock()`` — wall-clock time.
* ``SimClock(start, speed)`` — simulated time starting at ``start`` (Unix s) and running ``speed``
  simulated seconds per real second.
* ``SimClock(start, 0)`` or ``SimClock(start, math.inf)`` — *jump* mode: time stands still while any
  task has work to do, and when every task of the event loop is waiting, it jumps to the earliest
  pending ``sleep_until`` deadline (a discrete-event simulation). Tasks blocked on real I/O (a
  socket) do not hold time back: the jump happens anyway, as if the I/O took that long.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

# Real sleeps are cut into chunks so that a wall-clock step (NTP) or SimClock.advance() is noticed.
_MAX_REAL_SLEEP = 30.0


class Clock:
    """Real time: ``now()`` is Unix seconds; ``sleep_until(t)`` waits until ``now() >= t``."""

    def now(self) -> float:
        return time.time()

    def _real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds

    async def sleep_until(self, t: float) -> None:
        while True:
            remaining = t - self.now()
            if remaining <= 0:
                return
            await asyncio.sleep(min(self._real_seconds(remaining), _MAX_REAL_SLEEP))

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)

    async def run_until(self, aw: Awaitable[T], deadline: float) -> tuple[bool, T | None]:
        """Await ``aw`` but give up at ``deadline`` (clock time).

        Returns ``(True, result)`` when it finished in time, else ``(False, None)`` after cancelling it.
        """
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self.sleep_until(deadline))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            timer.cancel()
            await asyncio.wait({task, timer})  # let them unwind before our caller cleans up
            raise
        if task.done():
            timer.cancel()
            return True, task.result()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except StopAsyncIteration:
            pass
        return False, None


class SimClock(Clock):
    """Simulated time: ``SimClock(start, speed)``; speed 0 or ``math.inf`` means jump mode."""

    def __init__(self, start: float, speed: float = 0.0) -> None:
        if speed < 0 or math.isnan(speed):
            raise ValueError(f"SimClock speed must be >= 0 (0/inf = jump mode), got {speed}")
        self.speed = speed
        self.jump = speed == 0 or math.isinf(speed)
        self._start = float(start)
        self._offset = 0.0
        self._real0 = time.monotonic()
        # jump mode: heap of (deadline, sequence, future)
        self._t = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._advancer_armed = False
        self._quiet = 0

    # -- time --------------------------------------------------------------------------------
    def now(self) -> float:
        if self.jump:
            return self._t
        return self._start + self._offset + (time.monotonic() - self._real0) * self.speed

    def _real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed

    def advance(self, dt: float) -> None:
        """Move time forward by ``dt`` seconds (sleepers whose deadline passed wake up)."""
        if dt < 0:
            raise ValueError("time cannot go backwards")
        if self.jump:
            self._t += dt
            self._wake_due()
        else:
            self._offset += dt

    # -- waiting -----------------------------------------------------------------------------
    async def sleep_until(self, t: float) -> None:
        if not self.jump:
            await super().sleep_until(t)
            return
        if t <= self._t:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (t, next(self._seq), fut))
        self._arm(loop)
        await fut

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._advancer_armed:
            self._advancer_armed = True
            self._quiet = 0
            loop.call_soon(self._advance_when_idle, loop)

    def _advance_when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        # Drop sleepers whose task was cancelled meanwhile.
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            self._advancer_armed = False
            return
        ready: Any = getattr(loop, "_ready", None)  # CPython's queue of runnable callbacks
        if ready is not None and len(ready) > 0:
            self._quiet = 0
        else:
            self._quiet += 1
        # A few consecutive idle loop iterations: every task is waiting; jump to the next deadline.
        if self._quiet >= 3:
            self._quiet = 0
            self._t = max(self._t, self._sleepers[0][0])
            self._wake_due()
        loop.call_soon(self._advance_when_idle, loop)

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._t:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
