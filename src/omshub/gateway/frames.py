"""What every radio source delivers and raises: the received frame, the source error, and the
listen-window helper for sources whose reader thread fills a queue. Kept apart from
:mod:`omshub.gateway.sources` (the registry) so the receivers (``dongles``) and sources registered
from outside the gateway (the simulator) import it without importing the registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

MAX_QUEUE = 10_000  # frames buffered from a live pipe before the oldest are dropped


@dataclass(slots=True)
class ReceivedFrame:
    raw: bytes  # the wM-Bus frame from its L-field, as the receiver delivered it
    rx_time: float  # Unix seconds (gateway clock)
    rssi: int | None  # dBm, None when unknown
    link_mode: str  # "T1", "C1", ... or "unknown"


class SourceError(Exception):
    """A radio source cannot be opened or configured (message says which and why)."""


@runtime_checkable
class RadioSource(Protocol):
    def frames(self) -> AsyncGenerator[ReceivedFrame, None]: ...
    async def set_link_modes(self, modes: list[str]) -> None: ...
    async def close(self) -> None: ...


async def listen(source: Any, queue: asyncio.Queue[ReceivedFrame]) -> AsyncGenerator[ReceivedFrame, None]:
    """A listen window of a source whose reader thread fills `queue`: what was queued before the
    window is stale and dropped; `source._listening` tells the reader thread to keep what it
    reads (outside windows it discards)."""
    while not queue.empty():
        queue.get_nowait()
    source._listening = True
    try:
        while True:
            yield await queue.get()
    finally:
        source._listening = False
