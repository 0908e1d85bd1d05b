"""Filters on the link-layer header, and the cron/time-zone/spread schedule."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from omshub.gateway.collector import counts_as_full
from omshub.gateway.filters import Header, TelegramFilter, read_header
from omshub.gateway.schedule import Schedule, next_fire, prev_fire
from omshub.protocol.config import Filters, GatewayConfig, spread_offset
from tests.gateway.helpers import frame

KAM1 = frame("11111111")
KAM2 = frame("22222222")
TCH_HCA = frame("33333333", manufacturer="TCH", device_type=8)
COMPACT = frame("11111111", compact=True)


def f(**kw):
    return TelegramFilter(Filters(**kw))


def test_header():
    h = read_header(TCH_HCA)
    assert (h.manufacturer, h.id, h.device_type, h.ci) == ("TCH", "33333333", 8, 0x7A)


def test_default_keeps_everything_but_broken_frames():
    flt = f()
    assert all(flt.check(x)[1] is None for x in (KAM1, KAM2, TCH_HCA, COMPACT))
    assert flt.check(b"\x05\x44\x2d\x2c\x00\x00")[1] == "frame_size"
    assert flt.check(bytes([12]) + bytes(12))[1] == "invalid_header"  # manufacturer "@@@"
    assert flt.check(KAM1[:-3])[1] == "invalid_header"  # truncated
    assert flt.check(KAM1 + b"\x89")[1] is None  # trailing RSSI byte
    assert flt.check(bytes(600))[1] == "frame_size"
    assert dict(flt.dropped) == {"frame_size": 2, "invalid_header": 2}


def test_whitelist():
    flt = f(
        mode="whitelist", meters=[{"manufacturer": "KAM", "id": "11111111"}, {"id": "33333333"}], device_types=[4, 8]
    )
    assert flt.check(KAM1)[1] is None and flt.check(TCH_HCA)[1] is None
    assert flt.check(KAM2)[1] == "meter_not_listed"
    assert not flt.expected_heard({("KAM", "11111111")})
    assert flt.expected_heard({("KAM", "11111111"), ("TCH", "33333333")})
    flt2 = f(mode="whitelist", manufacturers=["KAM"], ci=["7b"])
    assert flt2.check(COMPACT)[1] is None
    assert flt2.check(KAM1)[1] == "ci" and flt2.check(TCH_HCA)[1] == "manufacturer"
    assert f(mode="whitelist", meters=[{"manufacturer": "TCH", "id": "11111111"}]).check(KAM1)[1] == "meter_not_listed"


def test_blacklist():
    flt = f(mode="blacklist", meters=[{"id": "22222222"}], manufacturers=["TCH"])
    assert flt.check(KAM1)[1] is None
    assert flt.check(KAM2)[1] == "meter_blacklisted"
    assert flt.check(TCH_HCA)[1] == "manufacturer"
    assert f(mode="blacklist", device_types=[4]).check(KAM1)[1] == "device_type"
    assert not flt.expected  # a blacklist never ends a window early


def ts(y, mo, d, h=0, mi=0, s=0, tz="UTC"):
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(tz)).timestamp()


def test_cron_with_seconds_and_time_zone():
    t = ts(2026, 7, 1, 12)
    assert next_fire("30 15 2 * * *", "Europe/Berlin", t) == ts(2026, 7, 2, 2, 15, 30, "Europe/Berlin")
    assert next_fire("*/20 * * * * *", "UTC", t + 1) == t + 20
    assert next_fire("*/20 * * * * *", "UTC", t) == t
    assert prev_fire("*/20 * * * * *", "UTC", t + 19.5) == t
    # the schedule follows the zone's daylight-saving change: 02:00 local is 01:00 UTC in winter
    assert datetime.fromtimestamp(next_fire("0 0 2 * * *", "Europe/Berlin", ts(2026, 1, 1)), UTC).hour == 1
    assert datetime.fromtimestamp(next_fire("0 0 2 * * *", "Europe/Berlin", ts(2026, 6, 1)), UTC).hour == 0


def test_spread_is_stable_and_spreads():
    offsets = {spread_offset(f"GW-{i}", 1800) for i in range(200)}
    assert len(offsets) > 150 and all(0 <= o < 1800 for o in offsets)
    assert spread_offset("GW-7", 1800) == spread_offset("GW-7", 1800)
    cfg = GatewayConfig(spread_s=1800)
    s = Schedule(cfg, "GW-7")
    t = ts(2026, 3, 1)
    w = s.next_window(t)
    assert w.start == ts(2026, 3, 1, 2) + s.offset and w.end == w.start + 900
    assert s.next_upload(t) == ts(2026, 3, 1, 3, 30) + s.offset


def test_windows_open_now_done_and_several():
    cfg = GatewayConfig(
        collection=[
            {"cron": "0 0 2 * * *", "duration_s": 900},
            {"cron": "0 0 14 * * *", "duration_s": 600, "link_modes": ["S1"]},
        ],
        spread_s=0,
    )
    s = Schedule(cfg, "GW")
    inside = ts(2026, 3, 1, 2, 5)
    w = s.next_window(inside)
    assert (w.index, w.start) == (0, ts(2026, 3, 1, 2))  # joined while open (restart)
    w2 = s.next_window(inside, done={0: w.start})
    assert (w2.index, w2.start) == (1, ts(2026, 3, 1, 14))
    w3 = s.next_window(ts(2026, 3, 1, 14, 10), done={0: w.start, 1: w2.start})
    assert (w3.index, w3.start) == (0, ts(2026, 3, 2, 2))


# -- what counts as "heard" for ending a listen window early -------------------------------------


def test_compact_frames_alone_do_not_count_as_heard():

    plain = Header("KAM", "12345678", 1, 4, 0x7A)
    compact = Header("KAM", "12345678", 1, 4, 0x79)
    ell_encrypted = Header("KAM", "12345678", 1, 4, 0x8D)
    assert counts_as_full(plain, {"7A/3"})
    assert not counts_as_full(compact, {"79/2"})
    # encrypted ELL hides the transport CI: only both length classes prove a full frame was heard
    assert not counts_as_full(ell_encrypted, {"8D/2"})
    assert counts_as_full(ell_encrypted, {"8D/2", "8D/3"})
