"""Hex-line and rtl_wmbus sources, and source specs."""

import asyncio
import os
from contextlib import aclosing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.gateway.clock import Clock, SimClock
from omshub.gateway.frames import SourceError, listen
from omshub.gateway.sources import RtlLineRejected, open_source, parse_hex_line, parse_rtlwmbus_line
from omshub.sim import radio as _sim_radio  # noqa: F401 - registers the "sim:" source

F1 = "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493B2A8B013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A"


def test_hex_lines():
    assert parse_hex_line("  # comment") is None and parse_hex_line("") is None
    assert parse_hex_line(F1) == (bytes.fromhex(F1), None, "unknown")
    assert parse_hex_line(f"0x{F1};-71;T1") == (bytes.fromhex(F1), -71, "T1")
    assert parse_hex_line("2E 44 93_15|78;;c1")[1:] == (None, "C1")
    assert parse_hex_line(f"{F1}\t-80")[1] == -80
    for bad, why in [
        ("2E4", "odd"),
        ("ZZ", "not hex"),
        (f"{F1};loud", "RSSI"),
        (f"{F1};-71;X9", "link mode"),
        (f"{F1};-500", "out of range"),
        ("1;2;3;4", "columns"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_hex_line(bad)


def test_rtlwmbus_lines():
    line = "C1;1;1;2020-01-23 10:25:13.000;97;148;76348799;0x2A442D2C998734761B168D2091D37CAC"
    raw, rssi, mode = parse_rtlwmbus_line(line)
    assert raw[:2] == bytes.fromhex("2A44") and rssi is None and mode == "C1"
    assert parse_rtlwmbus_line("rtl_wmbus: exiting") is None
    assert parse_rtlwmbus_line("[t1 algorithm] T1;1;1;2019-04-03 19:00:42.000;97;148;88888888;0x6e44;0x00")[2] == "T1"
    with pytest.raises(RtlLineRejected):
        parse_rtlwmbus_line("T1;1;0;2019-04-03 19:00:42.000;97;148;88888888;0x6e4401")
    with pytest.raises(ValueError):
        parse_rtlwmbus_line("T1;1;1;x")


def _read(src, clock, until):
    async def main():
        got = []
        it = src.frames()
        while True:
            ok, f = await clock.run_until(it.__anext__(), until)
            if not ok:
                break
            got.append(f)
        await it.aclose()
        return got

    return asyncio.run(main())


def test_hexfile_replay_and_bad_lines(tmp_path, caplog):
    p = tmp_path / "t.hex"
    p.write_text(f"# capture\n{F1};-70;T1\nnot hex\n\n{F1};;C1\n")
    clock = SimClock(1000.0, 0)
    src = open_source(f"hexfile:{p}", clock, "GW")
    got = _read(src, clock, 1010.0)
    assert [(f.rssi, f.link_mode, f.rx_time) for f in got] == [(-70, "T1", 1000.0), (None, "C1", 1000.0)]
    assert src.stats["bad_lines"] == 1 and "line 3" in caplog.text
    assert _read(src, clock, 1020.0) == []  # replay done; the next window hears nothing
    asyncio.run(src.close())


def test_rtlwmbus_from_fifo(tmp_path):
    fifo = tmp_path / "rtl.fifo"
    os.mkfifo(fifo)
    lines = [
        f"T1;1;1;2019-04-03 19:00:42.000;97;148;12345678;0x{F1}",
        f"T1;1;0;2019-04-03 19:00:42.000;97;148;12345678;0x{F1}",
        "rtl_wmbus: exiting",
    ]

    async def main():
        src = open_source(f"rtlwmbus:{fifo}", Clock(), "GW")
        it = src.frames()
        first = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0.05)

        def writer():
            with open(fifo, "w") as f:
                f.write("\n".join(lines) + "\n")

        await asyncio.to_thread(writer)
        f = await asyncio.wait_for(first, 5)
        await asyncio.sleep(0.1)
        await it.aclose()
        await src.close()
        return f, src.stats

    f, stats = asyncio.run(main())
    assert f.raw == bytes.fromhex(F1) and f.link_mode == "T1"
    assert stats["rejected"] == 1 and stats["frames"] == 1


def test_bad_specs():
    clock = SimClock(0, 0)
    for spec, why in [
        ("nocolon", "KIND:ARGUMENT"),
        ("usb:/dev/x", "unknown radio source kind"),
        ("hexfile:/does/not/exist", "cannot open"),
        ("sim:/no/fleet.toml", "not found"),
    ]:
        with pytest.raises(SourceError, match=why):
            open_source(spec, clock, "GW")


@given(st.text(max_size=300))
def test_line_parsers_never_crash(text):
    for parse in (parse_hex_line, parse_rtlwmbus_line):
        try:
            r = parse(text)
        except ValueError:
            continue
        assert r is None or (isinstance(r[0], bytes) and r[2])


def test_a_listen_window_drops_stale_frames_and_ends_with_its_reader():
    """What a reader thread queued before the window is dropped; when the source's window
    generator is closed, the reader is told at once that nobody listens."""

    class Source:
        _listening = False

    async def main():
        source, queue = Source(), asyncio.Queue()
        queue.put_nowait("stale")

        async def window():
            async with aclosing(listen(source, queue)) as frames:
                async for frame in frames:
                    yield frame

        frames = window()
        first = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)
        assert source._listening and queue.empty()
        queue.put_nowait("fresh")
        assert await first == "fresh"
        await frames.aclose()
        assert source._listening is False

    asyncio.run(main())
