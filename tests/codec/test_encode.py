"""Round trips: decode(encode_telegram(...)) reproduces the records for every option combination."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from omshub.codec import DecodeError, FormatCache, decode, encode_telegram, peek_header
from omshub.codec.frame import crc16, recover

from ._stack import HEAT_RECORDS, KAM, KEY, RADIO, RECORD_SETS, same_records

options = st.fixed_dictionaries(
    {
        "mode": st.sampled_from([0, 5, 7]),
        "tpl": st.sampled_from(["short", "long", "none"]),
        "ell": st.sampled_from([None, "8C", "8D"]),
        "radio": st.booleans(),
        "compact": st.booleans(),
        "frame_format": st.sampled_from([None, "A", "B"]),
        "access_number": st.integers(min_value=0, max_value=255),
        "status": st.integers(min_value=0, max_value=255),
        "records": st.sampled_from(range(len(RECORD_SETS))),
    }
)


def _valid(o) -> bool:
    if o["mode"] and o["tpl"] == "none":
        return False
    return not (o["radio"] and o["tpl"] != "long")


@given(options)
def test_round_trip_every_combination(o):
    assume(_valid(o))
    records = RECORD_SETS[o["records"]]
    key = KEY if (o["mode"] or o["ell"] == "8D") else None
    common = {
        "mode": o["mode"],
        "key": key,
        "tpl": o["tpl"],
        "ell": o["ell"],
        "frame_format": o["frame_format"],
        "transmitter": RADIO if o["radio"] else None,
        "access_number": o["access_number"],
        "status": o["status"],
    }
    formats = FormatCache()
    full = encode_telegram(KAM, records, **common)
    result = decode(full, key=key, formats=formats)
    assert same_records(result["records"], records)
    assert result["meter"]["id"] == KAM["id"] and result["meter"]["manufacturer"] == "KAM"
    assert result["frame"]["format"] == o["frame_format"]
    assert result["transmitter"] == (
        None
        if not o["radio"]
        else {
            "manufacturer": "ZRI",
            "id": "44002802",
            "version": 1,
            "device_type": "radio_converter_meter",
            "device_type_code": 0x37,
        }
    )
    security = result["security"]
    assert security["mode"] == o["mode"]
    assert security["decrypted"] == bool(key)
    assert security["authenticated"] == (o["mode"] == 7)
    if o["tpl"] != "none":
        assert result["access_number"] == o["access_number"]
        assert result["status"]["code"] == o["status"]
    if o["compact"]:
        short = encode_telegram(KAM, records, compact=True, **common)
        again = decode(short, key=key, formats=formats)
        assert same_records(again["records"], records)
        with pytest.raises(DecodeError) as err:
            decode(short, key=key, formats=FormatCache())
        assert err.value.code == "unknown_format"


def test_wired_long_frame_round_trip():
    frame = encode_telegram(KAM, HEAT_RECORDS, tpl="long", frame_format="mbus", primary_address=5)
    assert frame[0] == 0x68 and frame[-1] == 0x16
    result = decode(frame)
    assert result["frame"]["kind"] == "mbus" and result["meter"]["id"] == "12345678"
    assert same_records(result["records"], HEAT_RECORDS)
    assert peek_header(frame)["id"] == "12345678"


def test_layout_details():
    frame = encode_telegram(KAM, HEAT_RECORDS, mode=7, key=KEY, ell="8C", access_number=0x75, message_counter=0x0AB3)
    assert frame[10:13] == bytes.fromhex("8C2075")
    assert frame[13:18] == bytes.fromhex("900F002C25")
    assert frame[18:22] == bytes.fromhex("B30A0000")
    assert frame[30:32] == bytes.fromhex("7A75")
    cfg = int.from_bytes(frame[33:35], "little")
    assert (cfg >> 8) & 0x1F == 7 and frame[35] == 0x10
    assert (len(frame) - 36) == 16 * ((cfg >> 4) & 0xF)
    fr = recover(encode_telegram(KAM, HEAT_RECORDS, frame_format="B"))
    assert fr.crc == "B"
    ell = encode_telegram(KAM, HEAT_RECORDS, tpl="none", ell="8D", key=KEY)
    assert ell[10] == 0x8D and (int.from_bytes(ell[13:17], "little") >> 29) == 1


def test_compact_header_carries_signature_and_full_crc():
    from omshub.codec import apl, compact

    frame = encode_telegram(KAM, HEAT_RECORDS, tpl="none", compact=True)
    fmt, _ = compact.encode_compact(HEAT_RECORDS)
    assert frame[10] == 0x79
    assert int.from_bytes(frame[11:13], "little") == compact.format_signature(fmt)
    assert int.from_bytes(frame[13:15], "little") == crc16(apl.encode_records(HEAT_RECORDS))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": 5},
        {"mode": 3, "key": KEY},
        {"tpl": "none", "mode": 5, "key": KEY},
        {"transmitter": RADIO},
        {"tpl": "medium"},
        {"ell": "8F"},
        {"frame_format": "C"},
        {"access_number": 300},
    ],
)
def test_encoder_rejects_bad_options(kwargs):
    with pytest.raises(DecodeError):
        encode_telegram(KAM, HEAT_RECORDS, **kwargs)


def test_encoder_rejects_oversize():
    with pytest.raises(DecodeError) as err:
        encode_telegram(KAM, HEAT_RECORDS * 6, mode=5, key=KEY)
    assert err.value.code == "too_long"
