"""Radio sources: where the gateway's telegrams come from.

A radio source is any object with the :class:`RadioSource` protocol. The collector calls
``set_link_modes`` before each listen window, then iterates ``frames()`` until the window ends and
closes that iterator (``aclose()``, possibly cancelling a pending ``__anext__``). The next window
calls ``frames()`` again, so a source must allow that. Frames a source receives while no
``frames()`` iterator is open are discarded (the gateway's radio is "off" between windows).

Sources here: hex lines (``hexfile:PATH``), rtl-wmbus output (``rtlwmbus:PATH``), both from a
regular file (replayed) or a pipe/FIFO/``-`` (stdin, read continuously); the serial receiver sticks
live in :mod:`omshub.gateway.dongles`; the simulator's source comes from
``omshub.sim.radio.source_from_spec``. :func:`open_source` turns a spec string into a source.

**Hex line format** (``hexfile:``): one telegram a line, columns separated by ``;`` (or a tab)::

    HEX[;RSSI[;MODE]]        e.g.  2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493B2A8B013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A;-71;T1

HEX is the frame starting with its L-field (CRCs present or not; spaces, ``_``, ``|`` and a ``0x``
prefix are ignored); RSSI is dBm (empty = unknown); MODE a link mode name (``T1``, ``C1``, ...;
empty = unknown). Empty lines and lines starting with ``#`` are skipped; malformed lines are
counted in ``stats["bad_lines"]`` and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .clock import Clock
from .config import LINK_MODE_CODES

log = logging.getLogger(__name__)

MAX_LINE = 4096          # characters; a frame is at most 512 bytes = 1024 hex digits
MAX_QUEUE = 10_000       # frames buffered from a live pipe before the oldest are dropped


@dataclass(slots=True)
class ReceivedFrame:
    raw: bytes            # the wM-Bus frame from its L-field, as the receiver delivered it
    rx_time: float        # Unix seconds (gateway clock)
    rssi: int | None      # dBm, None when unknown
    link_mode: str        # "T1", "C1", ... or "unknown"


async def listen(source, queue: asyncio.Queue) -> AsyncIterator[ReceivedFrame]:
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


@runtime_checkable
class RadioSource(Protocol):
    def frames(self) -> AsyncIterator[ReceivedFrame]: ...
    async def set_link_modes(self, modes: list[str]) -> None: ...
    async def close(self) -> None: ...


class SourceError(Exception):
    """A radio source cannot be opened or configured (message says which and why)."""


# --------------------------------------------------------------------------- line parsers
_HEX_CLEAN = re.compile(r"[\s_|]")


def _hex_bytes(text: str) -> bytes:
    text = _HEX_CLEAN.sub("", text)
    if text[:2].lower() == "0x":
        text = text[2:]
    if len(text) % 2:
        raise ValueError("odd number of hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("not hex") from None


def _mode_name(text: str) -> str:
    text = text.strip()
    if not text:
        return "unknown"
    up = text.upper()
    if up in LINK_MODE_CODES:
        return up
    raise ValueError(f"unknown link mode {text!r}")


def parse_hex_line(line: str) -> tuple[bytes, int | None, str] | None:
    """One hex line -> (frame, rssi dBm or None, mode name); None for blank/comment lines.

    Raises ValueError with the reason for a malformed line.
    """
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if len(line) > MAX_LINE:
        raise ValueError(f"line longer than {MAX_LINE} characters")
    cols = re.split(r"[;\t]", line)
    if len(cols) > 3:
        raise ValueError("more than 3 columns (HEX;RSSI;MODE)")
    raw = _hex_bytes(cols[0])
    rssi: int | None = None
    if len(cols) > 1 and cols[1].strip():
        try:
            rssi = int(cols[1])
        except ValueError:
            raise ValueError(f"RSSI {cols[1].strip()!r} is not an integer dBm") from None
        if not -150 <= rssi <= 20:
            raise ValueError(f"RSSI {rssi} dBm out of range -150..20")
    mode = _mode_name(cols[2]) if len(cols) > 2 else "unknown"
    return raw, rssi, mode


# rtl_wmbus: MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_ID;0xHEX[;...]
# (with -v the decoder algorithm name is prefixed to MODE, hence the search for the mode).
_RTL = re.compile(r"(?:^|[^A-Za-z0-9])([TCS]1);([01]);([01]);[^;]*;[^;]*;[^;]*;[^;]*;(0x[0-9A-Fa-f]+)")


class RtlLineRejected(ValueError):
    """An rtl_wmbus line that is a frame but failed the receiver's CRC/3-of-6 checks."""


def parse_rtlwmbus_line(line: str) -> tuple[bytes, int | None, str] | None:
    """One rtl_wmbus output line -> (frame, None, mode); None for diagnostics lines.

    Raises RtlLineRejected for frames whose CRC_OK or 3OUTOF6_OK flag is 0, ValueError for
    malformed frame lines. PACKET_RSSI is not dBm, so the RSSI is reported unknown.
    """
    line = line.strip()
    if len(line) > MAX_LINE:
        raise ValueError(f"line longer than {MAX_LINE} characters")
    m = _RTL.search(line)
    if m is None:
        if re.match(r"^\W*[TCS]1;", line):
            raise ValueError("frame line with missing fields")
        return None
    mode, crc_ok, coding_ok, hex_text = m.groups()
    if crc_ok != "1" or coding_ok != "1":
        raise RtlLineRejected(f"{mode} frame flagged CRC_OK={crc_ok} 3OUTOF6_OK={coding_ok}")
    return _hex_bytes(hex_text), None, mode


# --------------------------------------------------------------------------- line sources
class LineSource:
    """Frames from text lines: a regular file is replayed (read while a window is open); a pipe,
    FIFO, character device or ``-`` (stdin) is read continuously by a thread."""

    kind = "lines"

    def __init__(self, path: str, parse: Callable[[str], tuple[bytes, int | None, str] | None],
                 clock: Clock, name: str) -> None:
        self.path = path
        self.name = name
        self._parse = parse
        self._clock = clock
        self.stats = {"frames": 0, "bad_lines": 0, "rejected": 0, "discarded": 0}
        self._live = path == "-"
        if not self._live:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise SourceError(f"{name}: cannot open {path}: {exc.strerror}") from None
            self._live = not stat.S_ISREG(st.st_mode)
        self._file = None
        self._lineno = 0
        self._queue: asyncio.Queue[ReceivedFrame] | None = None
        self._listening = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def set_link_modes(self, modes: list[str]) -> None:
        # A file or pipe has no receiver to configure; the modes come with each line.
        return None

    def _to_frame(self, line: str) -> ReceivedFrame | None:
        self._lineno += 1
        try:
            parsed = self._parse(line)
        except RtlLineRejected as exc:
            self.stats["rejected"] += 1
            log.debug("%s line %d: %s", self.name, self._lineno, exc)
            return None
        except ValueError as exc:
            self.stats["bad_lines"] += 1
            log.warning("%s %s line %d: %s", self.name, self.path, self._lineno, exc)
            return None
        if parsed is None:
            return None
        raw, rssi, mode = parsed
        self.stats["frames"] += 1
        return ReceivedFrame(raw=raw, rx_time=self._clock.now(), rssi=rssi, link_mode=mode)

    async def frames(self) -> AsyncIterator[ReceivedFrame]:
        if self._closed:
            raise SourceError(f"{self.name}: source is closed")
        if self._live:
            async for f in self._live_frames():
                yield f
            return
        if self._file is None:
            try:
                self._file = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
            except OSError as exc:
                raise SourceError(f"{self.name}: cannot open {self.path}: {exc.strerror}") from None
        while True:
            line = self._file.readline(MAX_LINE + 1)
            if not line:
                # End of file: follow it like `tail -f` (a replay simply stays silent).
                await asyncio.sleep(0.5)
                continue
            frame = self._to_frame(line)
            if frame is not None:
                yield frame
            else:
                await asyncio.sleep(0)

    async def _live_frames(self) -> AsyncIterator[ReceivedFrame]:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._thread = threading.Thread(target=self._reader, name=f"{self.name}-reader", daemon=True)
            self._thread.start()
        assert self._queue is not None
        async with aclosing(listen(self, self._queue)) as window:  # closed with this generator
            async for frame in window:
                yield frame

    def _reader(self) -> None:
        import sys
        stream = sys.stdin if self.path == "-" else open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            for line in stream:
                if self._closed:
                    break
                frame = self._to_frame(line[: MAX_LINE + 1])
                if frame is not None and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._deliver, frame)
        except (OSError, ValueError) as exc:
            log.error("%s: reading %s failed: %s", self.name, self.path, exc)
        finally:
            if stream is not sys.stdin:
                stream.close()

    def _deliver(self, frame: ReceivedFrame) -> None:
        if not self._listening or self._queue is None:
            self.stats["discarded"] += 1
            return
        if self._queue.qsize() >= MAX_QUEUE:
            self._queue.get_nowait()
            self.stats["discarded"] += 1
        self._queue.put_nowait(frame)

    async def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None


def hexfile_source(path: str, clock: Clock) -> LineSource:
    return LineSource(path, parse_hex_line, clock, "hexfile")


def rtlwmbus_source(path: str, clock: Clock) -> LineSource:
    return LineSource(path, parse_rtlwmbus_line, clock, "rtlwmbus")


SOURCE_KINDS = ("hexfile", "rtlwmbus", "im871a", "amb8465", "sim")


def open_source(spec: str, clock: Clock, gateway_serial: str) -> RadioSource:
    """A radio source from its spec: ``hexfile:PATH``, ``rtlwmbus:PATH|-``, ``im871a:DEVICE``,
    ``amb8465:DEVICE``, ``sim:FLEET.toml``. Raises SourceError for a bad spec."""
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise SourceError(f"radio source {spec!r} must look like KIND:ARGUMENT, KIND one of "
                          f"{', '.join(SOURCE_KINDS)}")
    if kind == "hexfile":
        return hexfile_source(arg, clock)
    if kind == "rtlwmbus":
        return rtlwmbus_source(arg, clock)
    if kind in ("im871a", "amb8465"):
        from .dongles import open_dongle
        return open_dongle(kind, arg, clock)
    if kind == "sim":
        if not Path(arg).is_file():
            raise SourceError(f"sim: fleet file {arg} not found")
        try:
            from omshub.sim.radio import source_from_spec
        except ImportError as exc:
            raise SourceError(f"sim: the simulator is not available ({exc})") from None
        return source_from_spec(spec, clock, gateway_serial)
    raise SourceError(f"unknown radio source kind {kind!r} in {spec!r}; use one of {', '.join(SOURCE_KINDS)}")
