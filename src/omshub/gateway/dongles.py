"""Receiver sticks on a serial port: IMST iM871A (WMBus HCI) and Amber AMB8465 (command mode).

The byte-stream parsers are sans-IO: ``feed(bytes) -> list[message]`` and ``flush()`` (the line
went idle: decide about what is buffered). They resynchronise after garbage, partial frames and
bad checksums without losing the next good frame:

* a candidate message starts at a sync byte (``A5`` / ``FF``) whose header is plausible (known
  endpoint/command, and for received telegrams a known C-field and manufacturer code);
* a complete candidate must pass its checksum (iM871A CRC-16/X-25 when the FCS flag is set; Amber
  XOR) — otherwise the scanner moves one byte on and tries the next sync byte;
* a candidate is also refused when a complete, valid received telegram starts *inside* it: that is
  how a truncated frame followed by a good one is told apart from one long frame (the truncated
  one's length field swallows the start of the good one). Only telegrams count there: their
  headers are specific enough (sync, endpoint/command, C-field, manufacturer code) that one will
  not appear by chance inside another telegram's encrypted payload;
* the buffer is bounded.

``DongleSource`` drives a stick through pyserial: a reader thread feeds the parser, the asyncio
side sends configuration commands and waits for their responses (docs/gateway.md, "Radio sources").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

import serial

from omshub.gateway.clock import Clock
from omshub.gateway.frames import MAX_QUEUE, ReceivedFrame, SourceError, listen

log = logging.getLogger(__name__)

MAX_BUFFER = 4096
IDLE_FLUSH_S = 0.25  # serial line silent this long: decide about what is buffered
_NEED_MORE = object()

# C-fields a receiver may deliver (docs/protocol.md §3)
C_FIELDS = frozenset(
    {
        0x44,
        0x46,
        0x47,
        0x48,
        0x08,
        0x18,
        0x28,
        0x38,
        0x00,
        0x10,
        0x20,
        0x30,
        0x06,
        0x40,
        0x53,
        0x73,
        0x43,
        0x55,
        0x5A,
        0x7A,
        0x5B,
        0x7B,
    }
)


def plausible_manufacturer(lo: int, hi: int) -> bool:
    m = lo | hi << 8
    return all(1 <= (m >> s) & 0x1F <= 26 for s in (10, 5, 0))


def crc_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 (reflected 0x1021, init and final XOR 0xFFFF): the iM871A HCI FCS."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def xor_checksum(data: bytes | bytearray) -> int:
    cs = 0
    for b in data:
        cs ^= b
    return cs


class _Scanner(ABC):
    """Resynchronising message scanner; subclasses define ``sync`` and ``_try``."""

    sync = 0

    def __init__(self) -> None:
        self._buf = bytearray()
        self.stats = {"messages": 0, "garbage_bytes": 0, "checksum_errors": 0}

    @abstractmethod
    def _try(self, buf: bytearray, i: int) -> Any:
        """(end, message) for a complete valid message at ``i``; _NEED_MORE when what is there is
        plausible but incomplete; None when no message starts at ``i``."""

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out = self._scan(final=False)
        if len(self._buf) > MAX_BUFFER:  # never true for a real stream; bounds memory on junk
            self.stats["garbage_bytes"] += len(self._buf) - MAX_BUFFER
            del self._buf[: len(self._buf) - MAX_BUFFER]
        return out

    def flush(self) -> list[Any]:
        """The line is idle: emit what can be decided, discard incomplete rests."""
        out = self._scan(final=True)
        self.stats["garbage_bytes"] += len(self._buf)
        self._buf.clear()
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _nested(self, buf: bytearray, i: int, end: int, final: bool) -> Any:
        j = buf.find(self.sync, i + 1, end)
        while j >= 0:
            r = self._try(buf, j)
            if r is _NEED_MORE and not final:
                return _NEED_MORE
            if isinstance(r, tuple) and r[1].is_telegram:
                return True
            j = buf.find(self.sync, j + 1, end)
        return False

    def _scan(self, final: bool) -> list[Any]:
        buf = self._buf
        out: list[Any] = []
        pos = 0
        while pos < len(buf):
            i = buf.find(self.sync, pos)
            if i < 0:
                self.stats["garbage_bytes"] += len(buf) - pos
                pos = len(buf)
                break
            self.stats["garbage_bytes"] += i - pos
            r = self._try(buf, i)
            if r is _NEED_MORE:
                if not final:
                    pos = i
                    break
                r = None
            if r is None:
                self.stats["garbage_bytes"] += 1
                pos = i + 1
                continue
            end, msg = r
            nested = self._nested(buf, i, end, final)
            if nested is _NEED_MORE:
                pos = i
                break
            if nested:
                self.stats["garbage_bytes"] += 1
                pos = i + 1
                continue
            out.append(msg)
            self.stats["messages"] += 1
            pos = end
        del buf[:pos]
        return out


# =============================================================================== IMST iM871A
EP_DEVMGMT, EP_RADIOLINK, EP_RADIOLINKTEST, EP_HWTEST = 1, 2, 3, 4
# Messages the stick sends (responses have even ids; 0x27 AES_DEC_ERROR_IND, 0x03 WMBUSMSG_IND)
_STICK_MSGIDS = {
    EP_DEVMGMT: frozenset(range(0x02, 0x29, 2)) | {0x27},
    EP_RADIOLINK: frozenset({2, 3, 5}),
    EP_RADIOLINKTEST: frozenset({2, 4, 7}),
    EP_HWTEST: frozenset({2}),
}
# Messages the host sends (requests: odd ids) — for stick emulators
_HOST_MSGIDS = {
    EP_DEVMGMT: frozenset(range(0x01, 0x28, 2)),
    EP_RADIOLINK: frozenset({1, 4}),
    EP_RADIOLINKTEST: frozenset({1, 3}),
    EP_HWTEST: frozenset({1}),
}
MSG_WMBUS_IND = 0x03
CTRL_TIMESTAMP, CTRL_RSSI, CTRL_FCS = 0x2, 0x4, 0x8

IM871A_LINK_MODES = {"S": 0x00, "T": 0x03, "C": 0x06, "CT": 0x0A}


@dataclass(slots=True)
class HciMessage:
    endpoint: int
    msgid: int
    payload: bytes
    timestamp: int | None = None
    rssi_raw: int | None = None

    @property
    def is_telegram(self) -> bool:
        return self.endpoint == EP_RADIOLINK and self.msgid == MSG_WMBUS_IND

    def frame(self) -> bytes:
        """The wM-Bus frame: the HCI length byte doubles as the L-field."""
        return bytes([len(self.payload)]) + self.payload


def im871a_rssi_dbm(raw: int) -> int:
    """HCI spec chart (ioBroker/jmbus): dBm ~ 0.5333 * raw - 126.7, capped at 0."""
    return min(0, round(0.5333 * raw - 126.7))


def hci_encode(
    endpoint: int,
    msgid: int,
    payload: bytes = b"",
    *,
    rssi: int | None = None,
    timestamp: int | None = None,
    fcs: bool = True,
) -> bytes:
    """An HCI frame (host commands and, for emulators, stick messages)."""
    if len(payload) > 255:
        raise ValueError("HCI payload longer than 255 bytes")
    ctrl = (
        (CTRL_TIMESTAMP if timestamp is not None else 0)
        | (CTRL_RSSI if rssi is not None else 0)
        | (CTRL_FCS if fcs else 0)
    )
    body = bytes([ctrl << 4 | endpoint, msgid, len(payload)]) + payload
    if timestamp is not None:
        body += timestamp.to_bytes(4, "little")
    if rssi is not None:
        body += bytes([rssi])
    if fcs:
        body += crc_x25(body).to_bytes(2, "little")
    return b"\xa5" + body


class Im871aParser(_Scanner):
    """HCI stream from the stick (or, with ``from_host=True``, the host's requests)."""

    sync = 0xA5

    def __init__(self, from_host: bool = False) -> None:
        super().__init__()
        self._msgids = _HOST_MSGIDS if from_host else _STICK_MSGIDS

    def _try(self, buf: bytearray, i: int) -> Any:
        n = len(buf) - i
        if n < 2:
            return _NEED_MORE
        ctrl, ep = buf[i + 1] >> 4, buf[i + 1] & 0x0F
        if ctrl & 0x1 or ep not in self._msgids:
            return None
        if n < 3:
            return _NEED_MORE
        msgid = buf[i + 2]
        if msgid not in self._msgids[ep]:
            return None
        if n < 4:
            return _NEED_MORE
        ln = buf[i + 3]
        telegram = ep == EP_RADIOLINK and msgid == MSG_WMBUS_IND
        if telegram:
            if ln < 10:
                return None
            if n > 4 and buf[i + 4] not in C_FIELDS:
                return None
            if n > 6 and not plausible_manufacturer(buf[i + 5], buf[i + 6]):
                return None
        elif ln > 64:  # management responses are short
            return None
        total = (
            4
            + ln
            + (4 if ctrl & CTRL_TIMESTAMP else 0)
            + (1 if ctrl & CTRL_RSSI else 0)
            + (2 if ctrl & CTRL_FCS else 0)
        )
        if n < total:
            return _NEED_MORE
        end = i + total
        if ctrl & CTRL_FCS and crc_x25(buf[i + 1 : end - 2]) != buf[end - 2] | buf[end - 1] << 8:
            self.stats["checksum_errors"] += 1
            return None
        p = i + 4 + ln
        ts = rssi = None
        if ctrl & CTRL_TIMESTAMP:
            ts = int.from_bytes(buf[p : p + 4], "little")
            p += 4
        if ctrl & CTRL_RSSI:
            rssi = buf[p]
        return end, HciMessage(ep, msgid, bytes(buf[i + 4 : i + 4 + ln]), ts, rssi)


def im871a_link_mode(modes: list[str]) -> int:
    return IM871A_LINK_MODES[_mode_family(modes, "iM871A", IM871A_LINK_MODES)]


def im871a_set_config(link_mode: int) -> bytes:
    """SET_CONFIG_REQ (RAM only): device mode other, link mode, RSSI and timestamp attached."""
    payload = bytes([0x00, 0x03, 0x00, link_mode, 0x30, 0x01, 0x01])
    return hci_encode(EP_DEVMGMT, 0x03, payload)


# ============================================================================= Amber AMB8465
AMB_DATA_IND = 0x03
_AMB_REQUESTS = frozenset(
    {0x00, 0x02, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0x11, 0x30, 0x31, 0x50, 0x51, 0x52}
)
_AMB_RESPONSES = frozenset(0x80 | c for c in _AMB_REQUESTS)
AMB8465_LINK_MODES = {"S": 0x03, "T": 0x08, "C": 0x0E, "CT": 0x09}
AMB_PARAM_CMD_OUT, AMB_PARAM_RSSI = 0x05, 0x45


@dataclass(slots=True)
class AmberMessage:
    cmd: int
    payload: bytes
    rssi_raw: int | None = None
    frame: bytes | None = None  # for CMD_DATA_IND: the wM-Bus frame from its L-field

    @property
    def is_telegram(self) -> bool:
        return self.cmd == AMB_DATA_IND


def _is_param(addr: int, m: AmberMessage) -> bool:
    """The stick's answer to CMD_GET_REQ for parameter ``addr``."""
    return m.cmd == 0x8A and m.payload[:1] == bytes([addr])


def amber_rssi_dbm(raw: int) -> int:
    return (raw - 256) // 2 - 74 if raw >= 128 else raw // 2 - 74


def amber_encode(cmd: int, payload: bytes = b"") -> bytes:
    if len(payload) > 255:
        raise ValueError("Amber payload longer than 255 bytes")
    body = bytes([0xFF, cmd, len(payload)]) + payload
    return body + bytes([xor_checksum(body)])


class Amb8465Parser(_Scanner):
    """Command-mode stream: ``FF CMD LEN payload CS``; ``rssi`` says whether the stick appends the
    RSSI byte to received telegrams (then LEN = L + 1)."""

    sync = 0xFF

    def __init__(self, rssi: bool = True, from_host: bool = False) -> None:
        super().__init__()
        self.rssi = rssi
        self._cmds = _AMB_REQUESTS if from_host else _AMB_RESPONSES | {AMB_DATA_IND}

    def _try(self, buf: bytearray, i: int) -> Any:
        n = len(buf) - i
        if n < 2:
            return _NEED_MORE
        cmd = buf[i + 1]
        if cmd not in self._cmds:
            return None
        if n < 3:
            return _NEED_MORE
        ln = buf[i + 2]
        if cmd == AMB_DATA_IND:
            if ln < 10 + self.rssi:
                return None
            if n > 3 and buf[i + 3] not in C_FIELDS:
                return None
            if n > 5 and not plausible_manufacturer(buf[i + 4], buf[i + 5]):
                return None
        elif ln > 64:
            return None
        end = i + 3 + ln + 1
        if len(buf) < end:
            return _NEED_MORE
        if xor_checksum(buf[i : end - 1]) != buf[end - 1]:
            self.stats["checksum_errors"] += 1
            return None
        payload = bytes(buf[i + 3 : end - 1])
        if cmd != AMB_DATA_IND:
            return end, AmberMessage(cmd, payload)
        if self.rssi:
            return end, AmberMessage(cmd, payload, payload[-1], bytes([ln - 1]) + payload[:-1])
        return end, AmberMessage(cmd, payload, None, bytes([ln]) + payload)


def amb8465_link_mode(modes: list[str]) -> int:
    return AMB8465_LINK_MODES[_mode_family(modes, "AMB8465", AMB8465_LINK_MODES)]


def _mode_family(modes: list[str], stick: str, table: dict[str, int]) -> str:
    # A collector listens: T1/T2 both mean "receive mode T", likewise C and S.
    fam = "".join(sorted({m[0] for m in modes if m}, key="CSTN".index)) if modes else ""
    if "N" in fam or fam not in table:
        raise SourceError(
            f"the {stick} cannot listen to {'+'.join(modes) or 'no mode'} at once; it supports S, T, C or C+T"
        )
    return fam


# ============================================================================ the serial source
class DongleSource:
    """A receiver stick on a serial port (pyserial), as a RadioSource."""

    def __init__(self, kind: str, port: Any, clock: Clock, *, response_timeout: float = 2.0) -> None:
        if kind not in ("im871a", "amb8465"):
            raise SourceError(f"unknown stick {kind!r}")
        self.kind = kind
        self.port = port
        self.clock = clock
        self.response_timeout = response_timeout
        self.parser: _Scanner = Im871aParser() if kind == "im871a" else Amb8465Parser(rssi=True)
        self.stats = {"frames": 0, "discarded": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[ReceivedFrame] | None = None
        self._listening = False
        self._waiter: tuple[Callable[[Any], bool], asyncio.Future[Any]] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = False
        self._mode_name = "unknown"
        self._lock: asyncio.Lock | None = None

    # -- reader thread ---------------------------------------------------------------------------
    def _start_reader(self) -> None:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._lock = asyncio.Lock()
            self._thread = threading.Thread(target=self._read_loop, name=f"{self.kind}-reader", daemon=True)
            self._thread.start()

    def _read_loop(self) -> None:
        idle = 0.0
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except Exception as exc:  # pyserial raises SerialException/OSError/TypeError on unplug
                if not self._stop.is_set():
                    log.error("%s: reading %s failed: %s", self.kind, getattr(self.port, "port", "?"), exc)
                return
            if data:
                idle = 0.0
                msgs = self.parser.feed(data)
            else:
                # Only a line idle for a while ends a frame for sure (USB serial adapters deliver
                # frames in chunks a few ms apart).
                idle += time.monotonic() - t0
                msgs = self.parser.flush() if idle >= IDLE_FLUSH_S and self.parser.buffered else []
            if msgs and self._loop is not None:
                self._loop.call_soon_threadsafe(self._dispatch, msgs)

    def _dispatch(self, msgs: list[Any]) -> None:
        for m in msgs:
            if m.is_telegram:
                self._deliver(m)
            elif self._waiter is not None and self._waiter[0](m) and not self._waiter[1].done():
                self._waiter[1].set_result(m)
            else:
                log.debug("%s: unsolicited message %s", self.kind, m)

    def _deliver(self, m: Any) -> None:
        if isinstance(m, HciMessage):
            raw, rssi = m.frame(), (im871a_rssi_dbm(m.rssi_raw) if m.rssi_raw is not None else None)
        else:
            raw, rssi = m.frame, (amber_rssi_dbm(m.rssi_raw) if m.rssi_raw is not None else None)
        if not self._listening or self._queue is None:
            self.stats["discarded"] += 1
            return
        if self._queue.qsize() >= MAX_QUEUE:
            self._queue.get_nowait()
            self.stats["discarded"] += 1
        self.stats["frames"] += 1
        self._queue.put_nowait(ReceivedFrame(raw, self.clock.now(), rssi, self._mode_name))

    # -- commands --------------------------------------------------------------------------------
    async def _request(self, data: bytes, expect: Callable[[Any], bool], what: str, tries: int = 3) -> Any:
        self._start_reader()
        assert self._lock is not None and self._loop is not None
        async with self._lock:
            for attempt in range(tries):
                fut: asyncio.Future[Any] = self._loop.create_future()
                self._waiter = (expect, fut)
                try:
                    await asyncio.to_thread(self._write, data)
                    return await asyncio.wait_for(fut, self.response_timeout)
                except TimeoutError:
                    log.warning("%s: no answer to %s (attempt %d/%d)", self.kind, what, attempt + 1, tries)
                finally:
                    self._waiter = None
        raise SourceError(f"{self.kind} on {getattr(self.port, 'port', '?')}: no answer to {what}")

    def _write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    async def _start(self) -> None:
        if self._started:
            return
        if self.kind == "im871a":
            await self._request(
                hci_encode(EP_DEVMGMT, 0x01), lambda m: m.endpoint == EP_DEVMGMT and m.msgid == 0x02, "PING_REQ"
            )
        else:
            # Make the stick frame received telegrams (FF 03 ...) and append the RSSI; both are
            # non-volatile parameters, so write them only when needed and reset the stick after.
            changed = False
            for addr, name in ((AMB_PARAM_CMD_OUT, "UART_CMD_Out_Enable"), (AMB_PARAM_RSSI, "RSSI_Enable")):
                m = await self._request(
                    amber_encode(0x0A, bytes([addr, 1])), partial(_is_param, addr), f"CMD_GET_REQ {name}"
                )
                if m.payload[2:3] != b"\x01":
                    await self._request(
                        amber_encode(0x09, bytes([addr, 1, 1])), lambda m: m.cmd == 0x89, f"CMD_SET_REQ {name}"
                    )
                    changed = True
            if changed:
                await self._request(amber_encode(0x05), lambda m: m.cmd == 0x85, "CMD_RESET_REQ")
        self._started = True

    async def set_link_modes(self, modes: list[str]) -> None:
        await self._start()
        if self.kind == "im871a":
            mode = im871a_link_mode(modes)
            m = await self._request(
                im871a_set_config(mode), lambda m: m.endpoint == EP_DEVMGMT and m.msgid == 0x04, "SET_CONFIG_REQ"
            )
            status = m.payload[:1]
        else:
            mode = amb8465_link_mode(modes)
            m = await self._request(amber_encode(0x04, bytes([mode])), lambda m: m.cmd == 0x84, "CMD_SET_MODE_REQ")
            status = m.payload[:1]
        if status != b"\x00":
            raise SourceError(f"{self.kind}: link mode {'+'.join(modes)} refused (status {status.hex()})")
        self._mode_name = modes[0] if len(modes) == 1 else "unknown"

    async def frames(self) -> AsyncGenerator[ReceivedFrame, None]:
        await self._start()
        assert self._queue is not None
        async with aclosing(listen(self, self._queue)) as window:  # closed with this generator
            async for frame in window:
                yield frame

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)
        try:
            self.port.close()
        except Exception as exc:  # closing a vanished device
            log.debug("%s: close: %s", self.kind, exc)


def open_dongle(kind: str, device: str, clock: Clock, **kw: Any) -> DongleSource:
    baud = 57600 if kind == "im871a" else 9600
    try:
        port = serial.Serial(device, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise SourceError(f"{kind}: cannot open {device}: {exc}") from None
    return DongleSource(kind, port, clock, **kw)
