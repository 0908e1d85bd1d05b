"""Emulated receiver sticks on a pseudo-terminal: answer configuration commands, emit telegrams."""

from __future__ import annotations

import os
import select
import threading
import tty

from omshub.gateway.dongles import Amb8465Parser, Im871aParser, amber_encode, hci_encode


class StickEmulator:
    def __init__(self, kind: str, fcs: bool = True) -> None:
        self.kind = kind
        self.fcs = fcs
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.parser = Im871aParser(from_host=True) if kind == "im871a" else Amb8465Parser(from_host=True)
        self.requests: list = []
        self.link_mode: int | None = None
        self.params = {0x05: 0, 0x45: 0}  # Amber non-volatile parameters (as stored)
        self.active = dict(self.params)  # ... and as in effect (until the next reset)
        self.mute = False  # when True, don't answer commands
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for msg in self.parser.feed(data):
                self.requests.append(msg)
                if not self.mute:
                    self._answer(msg)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def _answer(self, m) -> None:
        if self.kind == "im871a":
            if (m.endpoint, m.msgid) == (1, 0x01):
                self.write(hci_encode(1, 0x02, fcs=self.fcs))
            elif (m.endpoint, m.msgid) == (1, 0x03):
                # NVM flag, IIFlag1 (0x01 device mode, 0x02 link mode), ...
                flags, p = m.payload[1], 2
                if flags & 0x01:
                    p += 1
                if flags & 0x02:
                    self.link_mode = m.payload[p]
                self.write(hci_encode(1, 0x04, b"\x00", fcs=self.fcs))
            return
        if m.cmd == 0x0A:
            addr, n = m.payload[0], m.payload[1]
            self.write(amber_encode(0x8A, bytes([addr, n, self.params.get(addr, 0)])))
        elif m.cmd == 0x09:
            self.params[m.payload[0]] = m.payload[2]
            self.write(amber_encode(0x89, b"\x00"))
        elif m.cmd == 0x05:
            self.active = dict(self.params)
            self.write(amber_encode(0x85, b"\x00"))
        elif m.cmd == 0x04:
            self.link_mode = m.payload[0]
            self.write(amber_encode(0x84, b"\x00"))

    def telegram(self, frame: bytes, rssi_raw: int = 0x60) -> bytes:
        """The bytes the stick sends for a received frame (L-field first, CRCs stripped)."""
        if self.kind == "im871a":
            return hci_encode(2, 3, frame[1:], rssi=rssi_raw, timestamp=0x12345678, fcs=self.fcs)
        if not self.active[0x05]:
            return frame + (bytes([rssi_raw]) if self.active[0x45] else b"")  # transparent mode
        if self.active[0x45]:
            return amber_encode(0x03, frame[1:] + bytes([rssi_raw]))
        return amber_encode(0x03, frame[1:])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)
