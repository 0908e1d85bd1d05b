import pytest

from omshub.codec import DecodeError
from omshub.codec.afl import mac_input, parse
from omshub.codec.frame import recover
from omshub.codec.security import KeyContext, cmac, kdf

from ._stack import vector


def test_profile_b_afl_and_mac():
    item = vector("oms-annexN-profileB-integrated-radio")
    fr = recover(bytes.fromhex(item["telegram"]))
    data = fr.data
    pos = 13  # after the ELL 8C
    assert data[pos] == 0x90
    afl = parse(data, pos, fr.end)
    assert (afl.fcl, afl.mcl, afl.mcr) == (0x2C00, 0x25, 0x0AB3)
    assert afl.mac.hex().upper() == "21924D4F2FB66E01"
    assert data[afl.next] == 0x7A
    master = KeyContext(bytes.fromhex(item["key"]))
    kmac = kdf(master, 1, afl.mcr_bytes, data[4:8])
    assert kmac.hex().upper() == "C9CD19FF5A9AAD5A6BBDA13BD2C4C7AD"
    message = mac_input(afl, data, afl.next, fr.end)
    assert message[:5].hex().upper() == "25B30A0000"
    assert cmac(kmac, message)[:8] == afl.mac
    assert afl.to_dict(True)["mac"] == "21924D4F2FB66E01"


def test_afl_errors():
    base = bytes(10)
    with pytest.raises(DecodeError) as err:
        parse(base + bytes.fromhex("900F002C25"), 10, 15)
    assert err.value.code == "too_short"
    # AFLL disagreeing with the FCL fields
    data = base + bytes.fromhex("9004002C25B30A0000") + bytes(20)
    with pytest.raises(DecodeError) as err:
        parse(data, 10, len(data))
    assert err.value.code in ("too_short", "invalid_frame") and err.value.layer == "afl"
    # fragmented
    data = base + bytes.fromhex("9002014C") + bytes(20)
    with pytest.raises(DecodeError) as err:
        parse(data, 10, len(data))
    assert err.value.code == "invalid_frame" and "fragment" in err.value.message
    # GMAC authentication type
    data = base + bytes.fromhex("9007002C28B30A0000") + bytes(30)
    with pytest.raises(DecodeError) as err:
        parse(data, 10, len(data))
    assert err.value.code == "unsupported_security_mode"
