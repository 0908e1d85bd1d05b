from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from pathlib import Path

import pytest

from omshub.codec import DecodeError, decode
from omshub.codec.encode import add_format_a
from omshub.gateway.clock import SimClock
from omshub.gateway.frames import RadioSource, ReceivedFrame, SourceError
from omshub.gateway.sources import open_source
from omshub.sim.fleet import FleetError, parse_fleet
from omshub.sim.radio import SimRadio, iter_events, iter_transmissions, link_table, source_from_spec
from tests.sim.conftest import MIXED_FLEET

HOUR = 3600.0


@pytest.fixture(scope="module")
def hour_of_events(fleet, winter):
    return list(iter_events(fleet, winter, winter + HOUR))


def test_generation_is_deterministic(fleet, winter):
    again = parse_fleet(MIXED_FLEET)
    a = [(g, f.raw, f.rx_time, f.rssi) for g, f in iter_transmissions(fleet, winter, winter + 300)]
    b = [(g, f.raw, f.rx_time, f.rssi) for g, f in iter_transmissions(again, winter, winter + 300)]
    assert a == b and len(a) > 50
    other = parse_fleet(MIXED_FLEET.replace("seed = 7", "seed = 8"))
    c = [(g, f.raw) for g, f in iter_transmissions(other, winter, winter + 300)]
    assert [x[:2] for x in a] != c


def test_windows_are_independent_of_where_generation_starts(fleet, winter):
    whole = [(g, f.raw) for g, f in iter_transmissions(fleet, winter, winter + 600)]
    parts = [(g, f.raw) for g, f in iter_transmissions(fleet, winter, winter + 300)]
    parts += [(g, f.raw) for g, f in iter_transmissions(fleet, winter + 300, winter + 600)]
    assert whole == parts


def test_frames_are_received_frames_in_time_order(fleet, winter):
    times = []
    for serial, frame in iter_transmissions(fleet, winter, winter + 600):
        assert isinstance(frame, ReceivedFrame) and serial in fleet.gateways
        assert -150 <= frame.rssi <= 20 and frame.link_mode in ("T1", "C1")
        times.append(frame.rx_time)
    assert all(b >= a - 2.0 for a, b in zip(times, times[1:], strict=False))  # repeats may lag their original by < 2 s


def test_far_meters_are_heard_less(fleet, winter, hour_of_events):
    table = link_table(fleet)
    sent, heard = defaultdict(int), defaultdict(int)
    for tx in hour_of_events:
        for link in table.links[tx.meter.uid]:
            sent[(tx.meter.uid, link.gateway)] += 1
        for rec in tx.receptions:
            if not rec.repeat:
                heard[(tx.meter.uid, rec.gateway)] += 1
    near, far = [], []
    for (uid, serial), n in sent.items():
        meter = next(m for m in fleet.all_meters() if m.uid == uid)
        ratio = heard[(uid, serial)] / n
        d = math.dist(meter.position, fleet.gateways[serial].position)
        (near if d < 15 else far if d > 60 else []).append(ratio)
    assert near and far
    assert sum(near) / len(near) > 0.9
    assert sum(far) / len(far) < sum(near) / len(near) - 0.3


def test_gateways_hear_neighbours_and_foreign_meters(fleet, hour_of_events):
    own_a = {m.uid for m in fleet.meters_of("GW-A")}
    heard_at_a = {tx.meter.uid for tx in hour_of_events for r in tx.receptions if r.gateway == "GW-A"}
    foreign = {m.uid for m in fleet.foreign}
    assert heard_at_a & foreign  # meters in nobody's list
    assert heard_at_a - own_a - foreign  # another gateway's meters
    assert own_a <= heard_at_a


def test_corrupted_frames_carry_their_crcs_and_fail_to_decode(fleet, hour_of_events):
    keys = {(m.manufacturer, m.id): m.key for m in fleet.all_meters()}
    corrupted = [(tx, r) for tx in hour_of_events for r in tx.receptions if r.corrupted]
    assert {r.corrupted for _, r in corrupted} == {"bitflip", "truncated"}
    rejected, decoded = 0, []
    for tx, rec in corrupted:
        on_air = tx.frame if tx.meter.frame_format else add_format_a(tx.frame)
        assert rec.raw != on_air, "a damaged frame must really differ (two flips of one bit undo each other)"
        if rec.corrupted == "bitflip":
            assert len(rec.raw) == len(on_air), "a damaged frame arrives with its block CRCs"
        try:  # anything but a DecodeError escaping the codec fails the test
            result = decode(rec.raw, keys=lambda man, ident: keys.get((man, ident)))
        except DecodeError:
            rejected += tx.meter.frame_format != "B"
            continue
        # a frame whose every block CRC verified cannot be a damaged one
        assert result["frame"]["format"] is None, f"damaged frame passed its CRCs: {rec.raw.hex()}"
        # (format B has L + 1 bytes like a CRC-less frame: when its CRC fails, the CRC-less reading can
        # still fit, the last two bytes ending in an undecoded record; so only A is counted)
        if tx.meter.frame_format != "B":
            decoded.append(rec.raw.hex())
    # format A (block CRCs) finds nearly every damage; what still decodes is a frame cut short
    # exactly where a CRC-less one would end (L + 1 bytes are read as CRC-less without a CRC check)
    with_a = sum(1 for tx, _ in corrupted if tx.meter.frame_format != "B")
    assert with_a and rejected >= 0.95 * with_a, decoded


def test_repeated_transmissions_are_delivered_twice(hour_of_events):
    repeats = [(tx, r) for tx in hour_of_events for r in tx.receptions if r.repeat]
    assert repeats
    for tx, rec in repeats:
        first = [r for r in tx.receptions if r.gateway == rec.gateway and not r.repeat]
        assert first and rec.raw == tx.frame and rec.rx_time > first[0].rx_time


def test_unknown_gateway_is_a_clear_error(fleet, winter):
    with pytest.raises(FleetError, match="no gateway 'nope'"):
        list(iter_transmissions(fleet, winter, winter + 10, gateways=["nope"]))
    with pytest.raises(FleetError, match="no gateway"):
        SimRadio(fleet, "nope", SimClock(winter))


def _collect(radio: SimRadio, clock: SimClock, until: float, modes=None) -> list[ReceivedFrame]:
    async def main():
        if modes:
            await radio.set_link_modes(modes)
        out = []
        agen = radio.frames()
        try:
            async for frame in agen:
                if frame.rx_time >= until:
                    break
                out.append(frame)
        finally:
            await agen.aclose()
        return out

    return asyncio.run(main())


def test_sim_radio_follows_a_jump_clock(fleet, winter):
    clock = SimClock(winter, 0)
    radio = SimRadio(fleet, "GW-A", clock)
    assert isinstance(radio, RadioSource)
    frames = _collect(radio, clock, winter + 900)
    expected = [f for g, f in iter_transmissions(fleet, winter, winter + 900, gateways=["GW-A"])]
    assert [f.raw for f in frames] == [f.raw for f in sorted(expected, key=lambda f: f.rx_time)]
    assert clock.now() >= winter + 890  # time jumped, no real waiting
    # a second listen window continues from the clock's time
    later = _collect(radio, clock, clock.now() + 300, modes=["T1"])
    assert later and all(f.link_mode == "T1" for f in later) and later[0].rx_time >= winter + 890


def test_sim_radio_runs_accelerated_time(fleet, winter):
    clock = SimClock(winter, 600.0)  # 10 simulated minutes per real second
    frames = _collect(SimRadio(fleet, "GW-B", clock), clock, winter + 120)
    assert frames and clock.now() >= winter + 100


def test_source_from_spec(tmp_path: Path, winter):
    path = tmp_path / "fleet.toml"
    path.write_text(MIXED_FLEET)
    radio = source_from_spec(f"sim:{path}", SimClock(winter, 0), "GW-B")
    assert isinstance(radio, SimRadio) and radio.serial == "GW-B"
    with pytest.raises(SourceError, match="not found"):
        source_from_spec(f"sim:{tmp_path / 'missing.toml'}", SimClock(winter, 0), "GW-B")
    with pytest.raises(SourceError, match="no gateway"):
        source_from_spec(f"sim:{path}", SimClock(winter, 0), "GW-X")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sites]]\nname = 1\n")
    with pytest.raises(SourceError, match="sites"):
        source_from_spec(f"sim:{bad}", SimClock(winter, 0), "GW-B")


def test_gateway_open_source_builds_the_sim_radio(tmp_path: Path, winter):
    path = tmp_path / "fleet.toml"
    path.write_text(MIXED_FLEET)
    radio = open_source(f"sim:{path}", SimClock(winter, 0), "GW-A")
    assert isinstance(radio, SimRadio)
    frames = _collect(radio, radio.clock, winter + 60)
    assert frames and all(winter <= f.rx_time < winter + 60 for f in frames)
