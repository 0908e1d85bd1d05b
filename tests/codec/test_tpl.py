import pytest

from omshub.codec import DecodeError
from omshub.codec.tpl import CI_TABLE, STATUS_FLAGS, parse, status_dict


def test_short_header_mode5():
    data = bytes(10) + bytes.fromhex("7A2A0020255923C95AAA26D1B2E7")
    t = parse(data, 10, len(data))
    assert (t.header, t.content, t.acc, t.sts, t.cfg, t.mode, t.blocks, t.payload) == (
        "short",
        "full",
        0x2A,
        0,
        0x2520,
        5,
        2,
        15,
    )


def test_long_header():
    data = bytes(10) + bytes.fromhex("7232597049496A010735002025") + bytes(32)
    t = parse(data, 10, len(data))
    assert t.address == 11 and t.acc == 0x35 and t.mode == 5 and t.blocks == 2 and t.payload == 23


def test_mode7_and_mode10_extensions():
    data = bytes(10) + bytes.fromhex("7A7500200710") + bytes(32)
    t = parse(data, 10, len(data))
    assert t.mode == 7 and t.blocks == 2 and t.cfg_ext == b"\x10" and t.payload == 16
    data = bytes(10) + bytes.fromhex("7A3010FF2A10018C570E00") + bytes(16)
    t = parse(data, 10, len(data))
    assert t.mode == 10 and t.counter == bytes.fromhex("8C570E00") and t.payload == 21


def test_no_header_and_compact():
    for ci, content in ((0x78, "full"), (0x79, "compact"), (0x7B, "compact"), (0x73, "compact"), (0x8A, "none")):
        assert CI_TABLE[ci][1] == content
    t = parse(bytes(10) + b"\x78\x0c\x13", 10, 13)
    assert t.acc is None and t.payload == 11 and t.mode == 0


def test_errors():
    with pytest.raises(DecodeError) as err:
        parse(bytes(10) + b"\x7a\x01", 10, 12)
    assert err.value.code == "too_short"
    with pytest.raises(DecodeError) as err:
        parse(bytes(10) + b"\x10" + bytes(10), 10, 21)
    assert err.value.code == "unknown_ci" and "10" in err.value.message


def test_status_flags():
    assert status_dict(0) == {"code": 0, "flags": []}
    assert status_dict(0x04)["flags"] == ["power_low"]
    assert status_dict(0x0B)["flags"] == ["abnormal_condition", "permanent_error"]
    assert status_dict(0x12)["flags"] == ["application_error", "temporary_error"]
    assert "manufacturer_7" in STATUS_FLAGS[0x80]
