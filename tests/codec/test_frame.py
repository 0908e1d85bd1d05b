import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.codec import DecodeError, encode_telegram
from omshub.codec.encode import add_format_a, add_format_b, wired_frame
from omshub.codec.frame import crc16, format_a_length, recover

from ._stack import vector


def test_crc_check_values():
    assert crc16(b"123456789") == 0xC2B7
    assert crc16(bytes.fromhex("EE449ACE010000802307")) == 0xAABC
    assert crc16(bytes.fromhex("01FD1F01")) == 0xCC22
    assert crc16(b"xx123456789yy", 2, 11) == 0xC2B7


def test_format_a_vector_blocks():
    item = vector("oms-annexN-N2.1-profileA")
    fr = recover(bytes.fromhex(item["telegram"]))
    assert fr.crc == "A" and fr.kind == "wmbus"
    assert fr.data.hex().upper() == item["frame_no_crc"]
    assert fr.end == len(fr.data)


def test_format_a_corrupted_block_names_block():
    raw = bytearray.fromhex(vector("oms-annexN-N2.1-profileA")["telegram"])
    raw[20] ^= 0x01  # inside block 2
    with pytest.raises(DecodeError) as err:
        recover(bytes(raw))
    assert err.value.code == "crc_error" and "block 2" in err.value.message


def test_format_b_vectors():
    for vid in ("frame-format-B-unencrypted", "wmbusmeters-sensostar-frameB-mode7"):
        item = vector(vid)
        fr = recover(bytes.fromhex(item["telegram"]))
        assert fr.crc == "B"
        assert fr.data.hex().upper()[2:] == item["frame_no_crc"].upper()[2:]
        assert fr.data[0] == len(fr.data) - 1


def test_format_b_second_block_crc_error():
    raw = bytearray.fromhex(vector("wmbusmeters-sensostar-frameB-mode7")["telegram"])
    raw[150] ^= 0xFF
    with pytest.raises(DecodeError) as err:
        recover(bytes(raw))
    assert err.value.code == "crc_error" and "block 3" in err.value.message


def test_wired_long_frame_and_checksum():
    item = vector("oms-annexN-N2.2-wired-mbus-mode0")
    raw = bytes.fromhex(item["telegram"])
    fr = recover(raw)
    assert fr.kind == "mbus" and fr.data == raw[4:-2]
    bad = bytearray(raw)
    bad[-2] ^= 1
    with pytest.raises(DecodeError) as err:
        recover(bytes(bad))
    assert err.value.code == "crc_error"


def test_trailing_and_short_frames():
    item = vector("jmbus-kamstrup-ELL8D")
    raw = bytes.fromhex(item["telegram"])
    fr = recover(raw)
    assert fr.crc is None and fr.end == raw[0] + 1 and len(fr.data) == len(raw)
    short = vector("wmbusmeters-history-dme-sharky775-heat")
    raw = bytes.fromhex(short["telegram"])
    assert recover(raw).end == len(raw)


def _plain_frame() -> bytes:
    records = [
        {
            "quantity": "energy",
            "unit": "kWh",
            "value": 1234.0,
            "storage": 0,
            "tariff": 0,
            "subunit": 0,
            "function": "instantaneous",
        }
    ] * 4
    return encode_telegram({"manufacturer": "KAM", "id": "12345678", "version": 1, "device_type_code": 4}, records)


def test_a_format_a_frame_damaged_in_block_1_is_a_crc_error():
    a = bytearray(add_format_a(_plain_frame()))
    a[5] ^= 0x10  # the meter id: block 1's CRC no longer fits, so the layout alone says format A
    with pytest.raises(DecodeError) as err:
        recover(bytes(a))
    assert err.value.code == "crc_error" and "block 1" in err.value.message


def test_a_format_a_frame_cut_short_is_a_length_mismatch():
    a = add_format_a(_plain_frame())
    for keep in (12, 30, len(a) - 1):
        with pytest.raises(DecodeError) as err:
            recover(a[:keep])
        assert err.value.code == "length_mismatch" and "cut short" in err.value.message


def test_more_trailing_bytes_than_a_receiver_appends():
    plain = _plain_frame()
    assert recover(plain + bytes(4)).end == len(plain)  # RSSI, LQI, a dongle CRC: taken as metadata
    with pytest.raises(DecodeError) as err:
        recover(plain + bytes(5))
    assert err.value.code == "length_mismatch" and "a damaged L-field" in err.value.message


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"", "too_short"),
        (bytes(10), "too_short"),
        (bytes(2000), "too_long"),
        (bytes([5]) + bytes(20), "length_mismatch"),
    ],
)
def test_bad_frames(raw, code):
    with pytest.raises(DecodeError) as err:
        recover(raw)
    assert err.value.code == code and err.value.layer == "frame"


def test_wired_errors():
    body = bytes([0x08, 0x01, 0x72]) + bytes(12)
    good = wired_frame(0x08, 1, body[2:])
    assert recover(good).data == body
    with pytest.raises(DecodeError) as err:
        recover(good[:-3] + good[-2:])
    assert err.value.code in ("length_mismatch", "crc_error", "invalid_frame")


@given(st.binary(min_size=10, max_size=245))
def test_format_a_and_b_round_trip(body):
    frame = bytes([len(body)]) + body
    a = add_format_a(frame)
    assert len(a) == format_a_length(frame[0])
    fr = recover(a)
    assert fr.crc == "A" and fr.data == frame
    b = add_format_b(frame)
    fr = recover(b)
    assert fr.crc == "B" and fr.data == frame
