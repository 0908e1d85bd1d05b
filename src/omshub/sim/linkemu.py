"""Link emulation for tests and benchmarks: the narrow, unreliable NB-IoT uplink.

Two levels:

* ``EmulatedLink(inner, ...)`` wraps any ``UplinkTransport`` and injects, in the time of a given
  ``omshub.gateway.clock.Clock`` (a ``SimClock`` makes a day-long outage or a minute-long timeout
  cost no real time): latency, seeded random loss of the request or of the answer, outage
  windows (hours or days), a payload size limit (``PayloadTooLarge``), and a head-end that
  answers slowly or not at all. Every failure
  surfaces as ``TransportError``, exactly what a real transport raises, so the agent's retry path
  is exercised as in the field. A lost *answer* means the head-end did store the batch — the
  retry must then be acknowledged as a duplicate.
* ``UdpProxy`` / ``TcpProxy``: real sockets between a transport and its server that count the
  payload bytes both ways (the benchmark's "bytes on the wire") and can drop datagrams or cut
  the link for socket-level tests.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from omshub.gateway.clock import Clock
from omshub.protocol.envelope import PayloadTooLarge, TransportError


@dataclass
class LinkStats:
    attempts: int = 0  # send() calls
    delivered: int = 0  # requests that reached the head-end
    answered: int = 0  # answers that reached the gateway
    lost_requests: int = 0
    lost_answers: int = 0
    outage: int = 0  # refused because the link was down
    too_large: int = 0  # refused by the payload limit
    unanswered: int = 0  # head-end silent or answering after the timeout
    bytes_up: int = 0  # payload bytes handed to the head-end
    bytes_down: int = 0  # payload bytes returned to the gateway


def _check_outages(outages) -> list[tuple[float, float]]:
    windows = []
    for i, window in enumerate(outages):
        try:
            start, end = (float(x) for x in window)
        except (TypeError, ValueError):
            raise ValueError(f"outage {i} must be a (start, end) pair of seconds, got {window!r}") from None
        if end <= start:
            raise ValueError(f"outage {i} ends ({end}) before it starts ({start})")
        windows.append((start, end))
    return sorted(windows)


class EmulatedLink:
    """An ``UplinkTransport`` that delivers through ``inner`` the way a bad link would.

    latency_s        one-way delay, applied to the request and to the answer
    loss             probability that the request is lost, and (independently) that the answer is
    outages          (start, end) windows in clock seconds during which nothing gets through
    max_payload      largest body the link takes (None: no limit); larger raises PayloadTooLarge
    response_delay_s time the head-end takes to answer
    silent           the head-end never answers (the request is not processed)
    timeout_s        how long the gateway waits for an answer before giving up
    """

    def __init__(
        self,
        inner,
        *,
        latency_s: float = 0.0,
        loss: float = 0.0,
        outages=(),
        max_payload: int | None = None,
        clock: Clock | None = None,
        seed: int = 0,
        response_delay_s: float = 0.0,
        silent: bool = False,
        timeout_s: float = 60.0,
    ):
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be a probability in [0, 1], got {loss}")
        if latency_s < 0 or response_delay_s < 0:
            raise ValueError("latency_s and response_delay_s must not be negative")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_payload is not None and max_payload < 1:
            raise ValueError(f"max_payload must be at least 1 byte, got {max_payload}")
        self.inner = inner
        self.latency_s = latency_s
        self.loss = loss
        self.outages = _check_outages(outages)
        self.max_payload = max_payload
        self.clock = clock or Clock()
        self.response_delay_s = response_delay_s
        self.silent = silent
        self.timeout_s = timeout_s
        self.stats = LinkStats()
        self._rng = random.Random(seed)

    @property
    def name(self) -> str:
        return getattr(self.inner, "name", "emulated")

    @property
    def cred_in_envelope(self) -> bool:
        return getattr(self.inner, "cred_in_envelope", False)

    def outage_at(self, t: float) -> tuple[float, float] | None:
        for start, end in self.outages:
            if start <= t < end:
                return start, end
        return None

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self.clock.sleep(seconds)  # in the clock's time: a SimClock makes days cheap

    async def _time_out(self, waited: float, why: str):
        """Wait out the rest of the gateway's timeout, then fail as a real transport would."""
        await self._sleep(self.timeout_s - waited)
        raise TransportError(f"{self.name}: no answer within {self.timeout_s:g} s ({why})")

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        self.stats.attempts += 1
        down = self.outage_at(self.clock.now())
        if down is not None:
            self.stats.outage += 1
            raise TransportError(
                f"{self.name}: link down (outage {down[0]:.0f}..{down[1]:.0f}, now {self.clock.now():.0f})"
            )
        if self.max_payload is not None and len(body) > self.max_payload:
            self.stats.too_large += 1
            raise PayloadTooLarge(
                f"{self.name}: payload of {len(body)} bytes exceeds the link's limit of {self.max_payload} bytes"
            )
        await self._sleep(self.latency_s)
        if self._rng.random() < self.loss:
            self.stats.lost_requests += 1
            await self._time_out(self.latency_s, "request lost")
        if self.silent:
            self.stats.unanswered += 1
            await self._time_out(self.latency_s, "head-end silent")
        self.stats.delivered += 1
        self.stats.bytes_up += len(body)
        answer = await self.inner.send(body, content_type)  # the head-end has stored it now
        waited = 2 * self.latency_s + self.response_delay_s
        if waited > self.timeout_s:
            self.stats.unanswered += 1
            await self._time_out(self.latency_s, f"head-end answers after {waited:g} s")
        await self._sleep(self.latency_s + self.response_delay_s)
        if self._rng.random() < self.loss or self.outage_at(self.clock.now()) is not None:
            self.stats.lost_answers += 1
            await self._time_out(waited, "answer lost")
        self.stats.answered += 1
        self.stats.bytes_down += len(answer)
        return answer

    async def close(self) -> None:
        await self.inner.close()


# --- socket-level proxies ------------------------------------------------------------------


@dataclass
class WireStats:
    bytes_up: int = 0  # client -> server payload bytes (UDP payloads / TCP stream bytes)
    bytes_down: int = 0
    packets_up: int = 0  # datagrams (UDP) or reads (TCP)
    packets_down: int = 0
    dropped: int = 0
    connections: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.bytes_up + self.bytes_down

    def reset(self) -> None:
        vars(self).update(vars(type(self)()))


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy, client_addr):
        self.proxy = proxy
        self.client_addr = client_addr
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.proxy._forward_down(data, self.client_addr)

    def error_received(self, exc):
        self.proxy.stats.errors.append(str(exc))


class _ListenProtocol(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy):
        self.proxy = proxy

    def datagram_received(self, data, addr):
        self.proxy._forward_up(data, addr)

    def error_received(self, exc):
        self.proxy.stats.errors.append(str(exc))


class UdpProxy:
    """UDP relay ``listen -> target`` that counts payload bytes and can drop datagrams.

    ``loss`` drops each datagram (either way) with that probability (seeded); ``down = True``
    drops everything (an outage)."""

    def __init__(
        self, target: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0, loss: float = 0.0, seed: int = 0
    ):
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be a probability in [0, 1], got {loss}")
        self.target = target
        self.host, self.port = host, port
        self.loss = loss
        self.down = False
        self.stats = WireStats()
        self._rng = random.Random(seed)
        self._listen: asyncio.DatagramTransport | None = None
        self._upstreams: dict[tuple, _UpstreamProtocol] = {}
        self._pending: dict[tuple, list[bytes]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._listen, _ = await loop.create_datagram_endpoint(
            lambda: _ListenProtocol(self), local_addr=(self.host, self.port)
        )
        self.port = self._listen.get_extra_info("sockname")[1]

    def _drop(self) -> bool:
        if self.down or (self.loss and self._rng.random() < self.loss):
            self.stats.dropped += 1
            return True
        return False

    def _forward_up(self, data: bytes, client_addr) -> None:
        if self._drop():
            return
        self.stats.bytes_up += len(data)
        self.stats.packets_up += 1
        upstream = self._upstreams.get(client_addr)
        if upstream is not None and upstream.transport is not None:
            upstream.transport.sendto(data)
            return
        if client_addr in self._pending:  # upstream socket still opening
            self._pending[client_addr].append(data)
            return
        self._pending[client_addr] = [data]
        asyncio.get_running_loop().create_task(self._open_upstream(client_addr))

    async def _open_upstream(self, client_addr) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _UpstreamProtocol(self, client_addr), remote_addr=self.target
            )
        except OSError as exc:
            self.stats.errors.append(f"upstream {self.target}: {exc}")
            self._pending.pop(client_addr, None)
            return
        self._upstreams[client_addr] = protocol
        for data in self._pending.pop(client_addr, []):
            transport.sendto(data)

    def _forward_down(self, data: bytes, client_addr) -> None:
        if self._drop() or self._listen is None:
            return
        self.stats.bytes_down += len(data)
        self.stats.packets_down += 1
        self._listen.sendto(data, client_addr)

    async def stop(self) -> None:
        for upstream in self._upstreams.values():
            if upstream.transport is not None:
                upstream.transport.close()
        self._upstreams.clear()
        if self._listen is not None:
            self._listen.close()
            self._listen = None


class TcpProxy:
    """TCP relay ``listen -> target`` that counts stream bytes; ``down = True`` refuses new
    connections and cuts open ones (an outage)."""

    def __init__(self, target: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.target = target
        self.host, self.port = host, port
        self.stats = WireStats()
        self._down = False
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = value
        if value:
            for writer in list(self._writers):
                writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._down:
            client_w.close()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError as exc:
            self.stats.errors.append(f"upstream {self.target}: {exc}")
            client_w.close()
            return
        self.stats.connections += 1
        self._writers.update((client_w, server_w))
        up = asyncio.create_task(self._pipe(client_r, server_w, "up"))
        down = asyncio.create_task(self._pipe(server_r, client_w, "down"))
        self._tasks.update((up, down))
        try:
            # Each direction ends at its EOF (passed on as a half-close), so a reply still in
            # flight after the client finished sending is delivered whole.
            await asyncio.wait((up, down))
        finally:
            for task in (up, down):
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()
                self._writers.discard(writer)
            self._tasks.difference_update((up, down))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        try:
            while chunk := await reader.read(65536):
                if way == "up":
                    self.stats.bytes_up += len(chunk)
                    self.stats.packets_up += 1
                else:
                    self.stats.bytes_down += len(chunk)
                    self.stats.packets_down += 1
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if writer.can_write_eof():
                try:
                    writer.write_eof()
                except (ConnectionError, OSError):
                    pass

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.down = True
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None
