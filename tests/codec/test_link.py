import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.codec import DecodeError
from omshub.codec.link import (
    DEVICE_TYPE_NAMES,
    address,
    address_long,
    id_bytes,
    manufacturer_code,
    manufacturer_value,
    meter_id,
)


@pytest.mark.parametrize(
    "raw,code",
    [
        ("9315", "ELS"),
        ("2D2C", "KAM"),
        ("C514", "EFE"),
        ("6850", "TCH"),
        ("496A", "ZRI"),
        ("A511", "DME"),
        ("B409", "BMT"),
        ("0106", "APA"),
    ],
)
def test_manufacturer_codes(raw, code):
    value = int.from_bytes(bytes.fromhex(raw), "little")
    assert manufacturer_code(value) == code
    assert manufacturer_value(code) == value


def test_manufacturer_bit15_ignored():
    assert manufacturer_code(0x2C2D | 0x8000) == "KAM"


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3))
def test_manufacturer_round_trip(code):
    assert manufacturer_code(manufacturer_value(code)) == code


def test_bad_manufacturer():
    with pytest.raises(DecodeError):
        manufacturer_value("K1")


def test_address_dll_and_long():
    data = bytes.fromhex("2E4493157856341233037A")
    assert address(data, 2, 4) == {
        "manufacturer": "ELS",
        "id": "12345678",
        "version": 0x33,
        "device_type": "gas",
        "device_type_code": 3,
    }
    long_header = bytes.fromhex("7232597049496A0107")
    assert address_long(long_header, 1) == {
        "manufacturer": "ZRI",
        "id": "49705932",
        "version": 1,
        "device_type": "water",
        "device_type_code": 7,
    }


def test_non_bcd_id_kept():
    assert meter_id(bytes.fromhex("0AFB3412"), 0) == "1234FB0A"
    assert id_bytes("1234FB0A") == bytes.fromhex("0AFB3412")
    with pytest.raises(DecodeError):
        id_bytes("123")


def test_device_type_names():
    assert DEVICE_TYPE_NAMES[0x04] == "heat"
    assert DEVICE_TYPE_NAMES[0x07] == "water"
    assert DEVICE_TYPE_NAMES[0x06] == "warm_water"
    assert DEVICE_TYPE_NAMES[0x03] == "gas"
    assert DEVICE_TYPE_NAMES[0x02] == "electricity"
    assert DEVICE_TYPE_NAMES[0x08] == "heat_cost_allocator"
    assert DEVICE_TYPE_NAMES[0x0A] == "cooling"
    assert DEVICE_TYPE_NAMES[0x0D] == "heat_cooling"
    assert DEVICE_TYPE_NAMES[0x0C] == "heat" and DEVICE_TYPE_NAMES[0x0B] == "cooling"
    assert DEVICE_TYPE_NAMES[0x37] == "radio_converter_meter"
    assert DEVICE_TYPE_NAMES[0x43] == "manufacturer_specific"
    assert DEVICE_TYPE_NAMES[0x11] == "reserved"
    assert len(DEVICE_TYPE_NAMES) == 256
