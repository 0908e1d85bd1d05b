"""The serial sources against emulated sticks on a pseudo-terminal (pyserial opens the pty)."""

import asyncio
import os

import pytest

from omshub.gateway.clock import Clock
from omshub.gateway.dongles import amber_rssi_dbm, im871a_rssi_dbm, open_dongle
from omshub.gateway.frames import SourceError
from tests.gateway.helpers import frame
from tests.gateway.stick_emulator import StickEmulator

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")

FRAMES = [frame(f"{i:08d}", access=i) for i in range(5)]


async def _collect(src, emu, payload: bytes, n: int) -> list:
    it = src.frames()
    first = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0.1)  # the iterator is open: the "radio" is on
    for k in range(0, len(payload), 7):  # dribble the bytes like a UART would
        emu.write(payload[k : k + 7])
    got = [await asyncio.wait_for(first, 5)]
    while len(got) < n:
        got.append(await asyncio.wait_for(it.__anext__(), 5))
    await it.aclose()
    return got


@pytest.mark.parametrize("fcs", [True, False])
def test_im871a_on_pty(fcs):
    emu = StickEmulator("im871a", fcs=fcs)

    async def main():
        src = open_dongle("im871a", emu.path, Clock(), response_timeout=1.0)
        try:
            await src.set_link_modes(["T1", "C1"])
            assert emu.link_mode == 0x0A
            await src.set_link_modes(["T1"])
            assert emu.link_mode == 0x03
            good = [emu.telegram(f, 0x90) for f in FRAMES]
            partial = emu.telegram(FRAMES[0])[:17]
            corrupt = bytearray(emu.telegram(FRAMES[1]))
            corrupt[20] ^= 0x55
            stream = b"\x00\xa5junk" + good[0] + partial + good[1] + b"\xa5\x42\x03" + good[2]
            if fcs:
                stream += bytes(corrupt)
            stream += good[3] + b"\xa5" + good[4]
            got = await _collect(src, emu, stream, 5)
            return got
        finally:
            await src.close()

    try:
        got = asyncio.run(main())
    finally:
        emu.close()
    assert [g.raw for g in got] == FRAMES
    assert all(g.rssi == im871a_rssi_dbm(0x90) and g.link_mode == "T1" for g in got)


def test_amber_on_pty_configures_command_mode_and_rssi():
    emu = StickEmulator("amb8465")

    async def main():
        src = open_dongle("amb8465", emu.path, Clock(), response_timeout=1.0)
        try:
            await src.set_link_modes(["C1", "T1"])
            assert emu.link_mode == 0x09
            assert emu.active == {0x05: 1, 0x45: 1}  # parameters written and the stick reset
            good = [emu.telegram(f, 0x3C) for f in FRAMES]
            stream = b"\xff\x03\x30" + good[0] + good[1][:9] + good[1] + b"\xff" + good[2] + good[3] + good[4]
            return await _collect(src, emu, stream, 5)
        finally:
            await src.close()

    try:
        got = asyncio.run(main())
    finally:
        emu.close()
    assert [g.raw for g in got] == FRAMES
    assert {g.rssi for g in got} == {amber_rssi_dbm(0x3C)} == {-44}


def test_frames_outside_a_window_are_discarded():
    emu = StickEmulator("im871a")

    async def main():
        src = open_dongle("im871a", emu.path, Clock(), response_timeout=1.0)
        try:
            await src.set_link_modes(["T1"])
            emu.write(emu.telegram(FRAMES[0]))  # radio "off": no frames() iterator open
            await asyncio.sleep(0.3)
            got = await _collect(src, emu, emu.telegram(FRAMES[1]), 1)
            return got, src.stats["discarded"]
        finally:
            await src.close()

    try:
        got, discarded = asyncio.run(main())
    finally:
        emu.close()
    assert [g.raw for g in got] == [FRAMES[1]] and discarded == 1


def test_silent_stick_is_a_clear_error():
    emu = StickEmulator("im871a")
    emu.mute = True

    async def main():
        src = open_dongle("im871a", emu.path, Clock(), response_timeout=0.2)
        try:
            await src.set_link_modes(["T1"])
        finally:
            await src.close()

    try:
        with pytest.raises(SourceError, match="no answer to PING_REQ"):
            asyncio.run(main())
    finally:
        emu.close()


def test_missing_device():
    with pytest.raises(SourceError, match="cannot open /dev/nonexistent-stick"):
        open_dongle("amb8465", "/dev/nonexistent-stick", Clock())
