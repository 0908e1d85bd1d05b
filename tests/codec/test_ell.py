import pytest

from omshub.codec import DecodeError
from omshub.codec.ell import check_payload_crc, counter_block, parse
from omshub.codec.frame import crc16, recover
from omshub.codec.security import KeyContext, ctr_xcrypt

from ._stack import vector


def test_parse_8c():
    data = bytes.fromhex("1444AE0C7856341201078C20D07A")
    ell = parse(data, 10, len(data))
    assert (ell.ci, ell.cc, ell.acc, ell.payload, ell.sn, ell.encrypted) == (0x8C, 0x20, 0xD0, 13, None, False)
    assert ell.to_dict() == {"ci": "8C", "cc": 0x20, "access_number": 0xD0}


def test_parse_8e_second_address():
    data = bytes.fromhex("000800000000000000008E80753A63665544330A3190")
    ell = parse(data, 10, len(data))
    assert ell.payload == 21
    assert ell.to_dict()["address2"]["manufacturer"] == "XYZ"
    assert ell.to_dict()["address2"]["id"] == "33445566"


def test_multical21_ctr_vector():
    item = vector("wmbusmeters-multical21-ELL8D")
    fr = recover(bytes.fromhex(item["telegram"]))
    ell = parse(fr.data, 10, fr.end)
    assert ell.encrypted and ell.ci == 0x8D
    icb = counter_block(fr.data, ell)
    assert icb.hex().upper() == item["checks"]["icb"].upper()
    plain = ctr_xcrypt(KeyContext(bytes.fromhex(item["key"])), icb, fr.data[ell.payload : fr.end])
    assert plain.hex().upper() == item["plaintext_hex"].upper()
    assert check_payload_crc(plain)
    assert not check_payload_crc(bytes([plain[0] ^ 1]) + plain[1:])


def test_truncated_and_unsupported():
    data = bytes.fromhex("1444AE0C7856341201078D2091")
    with pytest.raises(DecodeError) as err:
        parse(data, 10, len(data))
    assert err.value.code == "too_short" and err.value.layer == "ell"
    sn_enc2 = (2 << 29).to_bytes(4, "little")
    data = bytes.fromhex("1444AE0C7856341201078D2091") + sn_enc2 + bytes(4)
    with pytest.raises(DecodeError) as err:
        parse(data, 10, len(data))
    assert err.value.code == "unsupported_security_mode"


def test_payload_crc_lsb_first():
    body = bytes.fromhex("7802FF20")
    crc = crc16(body)
    assert check_payload_crc(crc.to_bytes(2, "little") + body)
    assert not check_payload_crc(crc.to_bytes(2, "big") + body) or crc >> 8 == crc & 0xFF
