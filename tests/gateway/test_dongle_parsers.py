"""The receiver-stick byte-stream parsers: known captures, and resynchronisation properties.

Examples per property follow the hypothesis profile (dev 100, ci 300, fuzz 100,000).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.gateway.dongles import (
    Amb8465Parser,
    Im871aParser,
    amb8465_link_mode,
    amber_encode,
    amber_rssi_dbm,
    crc_x25,
    hci_encode,
    im871a_link_mode,
    im871a_rssi_dbm,
    im871a_set_config,
    xor_checksum,
)
from omshub.gateway.frames import SourceError

# docs/gateway.md, "Radio sources": a real OmniPower capture (control 0x8 = FCS, endpoint 2)
IM871A_CAPTURE = bytes.fromhex(
    "A5820327442D2C5768663230028D208E11DE0320188851BDC4B72DD3C2954A341BE369E9089B4EB3858169494E"
)
# §10.2: the multical21 vector in command mode with RSSI 0x3C
AMB_CAPTURE = bytes.fromhex(
    "FF032B442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC243C15"
)


def test_checksums():
    assert crc_x25(b"123456789") == 0x906E
    assert xor_checksum(bytes.fromhex("FF0A020080")) == 0x77
    assert xor_checksum(bytes.fromhex("FF0B00")) == 0xF4
    assert amber_encode(0x06, b"\x0b") == bytes.fromhex("FF06010BF3")
    assert amber_encode(0x04, b"\x09") == bytes.fromhex("FF040109F3")


def test_im871a_capture():
    msgs = Im871aParser().feed(IM871A_CAPTURE)
    assert len(msgs) == 1 and msgs[0].is_telegram
    f = msgs[0].frame()
    assert f[0] == 0x27 == len(f) - 1 and f[1] == 0x44 and f[2:4] == bytes.fromhex("2D2C")


def test_im871a_rssi_timestamp_and_without_fcs():
    frame = bytes.fromhex("1E442D2C7856341201047A03001005767558D5A77F6E5F2261EBD2FACDAFD7")
    for fcs in (True, False):
        raw = hci_encode(2, 3, frame[1:], rssi=0xB4, timestamp=0x01020304, fcs=fcs)
        (m,) = Im871aParser().feed(raw)
        assert m.frame() == frame and m.rssi_raw == 0xB4 and m.timestamp == 0x01020304
    assert im871a_rssi_dbm(0xB4) == -31 and im871a_rssi_dbm(255) == 0


def test_amber_capture():
    (m,) = Amb8465Parser(rssi=True).feed(AMB_CAPTURE)
    assert m.is_telegram and m.frame[0] == 0x2A == len(m.frame) - 1 and amber_rssi_dbm(m.rssi_raw) == -44
    assert amber_rssi_dbm(200) == -102


def test_byte_by_byte_and_responses():
    p = Im871aParser()
    out = []
    stream = hci_encode(1, 0x04, b"\x00") + IM871A_CAPTURE + hci_encode(1, 0x02)
    for b in stream:
        out += p.feed(bytes([b]))
    assert [(m.endpoint, m.msgid) for m in out] == [(1, 4), (2, 3), (1, 2)]


def test_link_mode_bytes():
    assert im871a_link_mode(["T1", "C1"]) == 0x0A and im871a_link_mode(["T1"]) == 0x03
    assert amb8465_link_mode(["C1", "T1"]) == 0x09 and amb8465_link_mode(["S1"]) == 0x03
    with pytest.raises(SourceError):
        amb8465_link_mode(["S1", "T1"])
    with pytest.raises(SourceError):
        im871a_link_mode(["N"])
    # wmbusmeters' example, plus our FCS: A5 81 03 07 00 03 00 03 30 01 01 <FCS>
    assert im871a_set_config(0x03)[:11] == bytes.fromhex("A5810307000300033001 01".replace(" ", ""))


# ------------------------------------------------------------------ resynchronisation property
@st.composite
def wmbus_frames(draw):
    length = draw(st.integers(10, 120))
    letters = draw(st.tuples(*[st.integers(1, 26)] * 3))
    m = letters[0] << 10 | letters[1] << 5 | letters[2]
    c = draw(st.sampled_from([0x44, 0x46, 0x08]))
    return bytes([length, c]) + m.to_bytes(2, "little") + draw(st.binary(min_size=length - 3, max_size=length - 3))


items = st.one_of(
    st.tuples(st.just("good"), wmbus_frames(), st.integers(0, 255)),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("sync_garbage"), st.binary(min_size=0, max_size=30)),
    st.tuples(st.just("partial"), wmbus_frames(), st.integers(0, 255), st.integers(1, 200)),
    st.tuples(st.just("corrupt"), wmbus_frames(), st.integers(0, 255), st.integers(0, 500), st.integers(1, 255)),
)


def _stream(encode, sync: bytes, seq, corrupt_ok: bool):
    good, data = [], b""
    for it in seq:
        if it[0] == "good":
            good.append(it[1])
            data += encode(it[1], it[2])
        elif it[0] == "garbage":
            data += it[1]
        elif it[0] == "sync_garbage":
            data += sync + it[1]
        elif it[0] == "partial":
            enc = encode(it[1], it[2])
            data += enc[: min(it[3], len(enc) - 1)]
        elif corrupt_ok:
            enc = bytearray(encode(it[1], it[2]))
            enc[it[3] % len(enc)] ^= it[4]
            data += bytes(enc)
    return good, data


def _feed(parser, data, cuts):
    out, pos = [], 0
    for c in sorted(cuts):
        out += parser.feed(data[pos:c])
        pos = c
    out += parser.feed(data[pos:])
    out += parser.flush()
    return out


def _is_subsequence(needles, hay):
    it = iter(hay)
    return all(any(n == h for h in it) for n in needles)


def _im871a_encoder(fcs: bool):
    return lambda frame, rssi: hci_encode(2, 3, frame[1:], rssi=rssi, fcs=fcs)


def _amber_encoder(frame, rssi):
    # FF 03 (L+1) C ... RSSI CS: LEN counts the RSSI byte
    return amber_encode(0x03, frame[1:] + bytes([rssi]))


@given(st.lists(items, max_size=25), st.lists(st.integers(0, 5000), max_size=8))
def test_im871a_resync_with_fcs(seq, cuts):
    good, data = _stream(_im871a_encoder(True), b"\xa5", seq, corrupt_ok=True)
    out = [m.frame() for m in _feed(Im871aParser(), data, cuts) if m.is_telegram]
    assert _is_subsequence(good, out)


@given(st.lists(items, max_size=25), st.lists(st.integers(0, 5000), max_size=8))
def test_im871a_resync_without_fcs(seq, cuts):
    good, data = _stream(_im871a_encoder(False), b"\xa5", seq, corrupt_ok=False)
    out = [m.frame() for m in _feed(Im871aParser(), data, cuts) if m.is_telegram]
    assert _is_subsequence(good, out)


@given(st.lists(items, max_size=25), st.lists(st.integers(0, 5000), max_size=8))
def test_amber_resync(seq, cuts):
    good, data = _stream(_amber_encoder, b"\xff\x03", seq, corrupt_ok=True)
    out = [m.frame for m in _feed(Amb8465Parser(rssi=True), data, cuts) if m.is_telegram]
    assert _is_subsequence(good, out)


def test_garbage_only_is_bounded():
    p = Im871aParser()
    for _ in range(100):
        p.feed(b"\xa5\x42\x03\xff" + bytes(200))
    assert p.buffered <= 4096
