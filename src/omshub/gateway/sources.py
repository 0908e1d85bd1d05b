"""Radio sources: where the gateway's telegrams come from.

A radio source is any object with the :class:`RadioSource` protocol. The collector calls
``set_link_modes`` before each listen window, then iterates ``frames()`` until the window ends and
closes that iterator (``aclose()``, possibly cancelling a pending ``__anext__``). The next window
calls ``frames()`` again, so a source must allow that. Frames a source receives while no
``frames()`` iterator is open are discarded (the gateway's radio is "off" between windows).

Sources here: hex lines (``hexfile:PATH``), rtl-wmbus output (``rtlwmbus:PATH``), both from a
regular file (replayed) or a pipe/FIFO/``-`` (stdin, read continuously); the serial receiver sticks
live in :mod:`omshub.gateway.dongles`; other kinds register themselves with
:func:`register_source` (the simulator registers ``sim:`` when its radio module is imported).
:func:`open_source` turns a spec string into a source.

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
import sys
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import IO

from omshub.gateway.clock import Clock
from omshub.gateway.dongles import open_dongle
from omshub.gateway.frames import MAX_QUEUE, RadioSource, ReceivedFrame, SourceError, listen
from omshub.protocol.topics import LINK_MODE_CODES

log = logging.getLogger(__name__)

MAX_LINE = 4096  # characters; a frame is at most 512 bytes = 1024 hex digits

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

    def __init__(
        self, path: str, parse: Callable[[str], tuple[bytes, int | None, str] | None], clock: Clock, name: str
    ) -> None:
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
        self._file: IO[str] | None = None
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

    async def frames(self) -> AsyncGenerator[ReceivedFrame, None]:
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

    async def _live_frames(self) -> AsyncGenerator[ReceivedFrame, None]:
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


#: Makes a source from the spec's argument (after ``KIND:``), the gateway clock and its serial.
SourceFactory = Callable[[str, Clock, str], RadioSource]
_FACTORIES: dict[str, SourceFactory] = {}


def register_source(kind: str, factory: SourceFactory) -> None:
    """Make ``KIND:ARGUMENT`` specs open sources through ``factory(argument, clock, serial)``."""
    _FACTORIES[kind] = factory


def source_kinds() -> list[str]:
    return list(_FACTORIES)


def open_source(spec: str, clock: Clock, gateway_serial: str) -> RadioSource:
    """A radio source from its spec: ``hexfile:PATH``, ``rtlwmbus:PATH|-``, ``im871a:DEVICE``,
    ``amb8465:DEVICE``, or a registered kind (``sim:FLEET.toml`` once the simulator is imported).
    Raises SourceError for a bad spec."""
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise SourceError(f"radio source {spec!r} must look like KIND:ARGUMENT, KIND one of {', '.join(_FACTORIES)}")
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise SourceError(f"unknown radio source kind {kind!r} in {spec!r}; use one of {', '.join(_FACTORIES)}")
    return factory(arg, clock, gateway_serial)


register_source("hexfile", lambda arg, clock, _serial: hexfile_source(arg, clock))
register_source("rtlwmbus", lambda arg, clock, _serial: rtlwmbus_source(arg, clock))
register_source("im871a", lambda arg, clock, _serial: open_dongle("im871a", arg, clock))
register_source("amb8465", lambda arg, clock, _serial: open_dongle("amb8465", arg, clock))
