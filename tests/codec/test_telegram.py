"""The decode pipeline on encoder-built telegrams: output shape, keys, errors, plaintext copies."""

import pytest

from omshub.codec import (
    DecodeError,
    FormatCache,
    KeyRing,
    decode,
    decode_hex,
    encode_telegram,
    parse_hex,
    peek_address,
    peek_header,
)
from omshub.codec.frame import crc16

from ._stack import HEAT_RECORDS, KAM, KEY, OTHER_KEY, RADIO, SMALL_RECORDS, same_records


def test_output_shape_and_key_order():
    result = decode(encode_telegram(KAM, HEAT_RECORDS, mode=5, key=KEY, access_number=12, status=0x04), key=KEY)
    assert list(result) == [
        "meter",
        "transmitter",
        "access_number",
        "status",
        "security",
        "frame",
        "records",
        "fields",
        "manufacturer_data",
    ]
    assert result["meter"] == {
        "manufacturer": "KAM",
        "id": "12345678",
        "version": 27,
        "device_type": "heat",
        "device_type_code": 4,
    }
    assert result["transmitter"] is None and result["access_number"] == 12
    assert result["status"] == {"code": 4, "flags": ["power_low"]}
    assert result["security"] == {
        "mode": 5,
        "encrypted": True,
        "decrypted": True,
        "authenticated": False,
        "decrypted_before_receipt": False,
    }
    assert result["frame"] == {"kind": "wmbus", "format": None, "c_field": "44", "ci": "7A", "ell": None, "afl": None}
    assert isinstance(result["fields"], dict)
    import orjson

    assert orjson.loads(orjson.dumps(result)) == result


def test_keys_callable_gets_meter_address_not_transmitter():
    calls = []

    def lookup(manufacturer, meter_id):
        calls.append((manufacturer, meter_id))
        return KEY if (manufacturer, meter_id) == ("KAM", "12345678") else None

    frame = encode_telegram(KAM, HEAT_RECORDS, mode=5, key=KEY, tpl="long", transmitter=RADIO)
    result = decode(frame, keys=lookup)
    assert calls == [("KAM", "12345678")]
    assert result["meter"]["id"] == "12345678" and result["transmitter"]["id"] == "44002802"


def test_ell_key_bound_to_link_address():
    calls = []

    def lookup(manufacturer, meter_id):
        calls.append(meter_id)
        return KEY

    frame = encode_telegram(KAM, HEAT_RECORDS, tpl="none", ell="8D", key=KEY)
    result = decode(frame, keys=lookup)
    assert calls == ["12345678"]
    assert result["frame"]["ell"]["encrypted"] is True and result["security"]["decrypted"]
    assert result["access_number"] == 0 and result["status"] is None


def test_keyring_and_fallback_key():
    ring = KeyRing.from_csv("id,key,manufacturer\n12345678," + KEY.hex() + ",KAM\n")
    frame = encode_telegram(KAM, SMALL_RECORDS, mode=5, key=KEY)
    assert decode(frame, keys=ring)["security"]["decrypted"]
    assert decode(frame, keys=KeyRing(), key=KEY)["security"]["decrypted"]
    with pytest.raises(DecodeError) as err:
        decode(frame, keys=KeyRing())
    assert err.value.code == "no_key"


@pytest.mark.parametrize("mode,ell,tpl", [(5, None, "short"), (7, None, "short"), (0, "8D", "none"), (7, "8D", "long")])
def test_wrong_key_reported(mode, ell, tpl):
    frame = encode_telegram(KAM, HEAT_RECORDS, mode=mode, ell=ell, tpl=tpl, key=KEY)
    with pytest.raises(DecodeError) as err:
        decode(frame, key=OTHER_KEY)
    assert err.value.code == "wrong_key"
    assert err.value.partial["meter"]["id"] == "12345678"
    if mode == 7 and ell is None:
        assert "MAC" in err.value.message
    if ell == "8D":
        assert "CRC" in err.value.message


def test_mode7_tampered_tail_fails_mac():
    frame = bytearray(encode_telegram(KAM, HEAT_RECORDS, mode=7, key=KEY))
    frame[-1] ^= 1
    with pytest.raises(DecodeError) as err:
        decode(bytes(frame), key=KEY)
    assert err.value.code == "wrong_key" and "MAC" in err.value.message


def _plaintext_copy(records, mode=5):
    """A telegram whose CFG says mode 5 but whose payload is the plaintext (as decrypted replays are)."""
    from omshub.codec import apl

    body = b"\x2f\x2f" + apl.encode_records(records)
    body += b"\x2f" * (-len(body) % 16)
    frame = bytearray(encode_telegram(KAM, records, apl=body))
    cfg = (mode << 8) | (len(body) // 16) << 4
    frame[13:15] = cfg.to_bytes(2, "little")
    return bytes(frame)


@pytest.mark.parametrize("key", [None, KEY])
def test_decrypted_before_receipt(key):
    result = decode(_plaintext_copy(HEAT_RECORDS), key=key)
    assert result["security"] == {
        "mode": 5,
        "encrypted": True,
        "decrypted": False,
        "authenticated": False,
        "decrypted_before_receipt": True,
    }
    assert same_records(result["records"], HEAT_RECORDS)


def test_unknown_ci_has_partial():
    frame = encode_telegram(KAM, [], apl=b"")
    frame = frame[:10] + b"\x10\x01\x02\x03"
    frame = bytes([len(frame) - 1]) + frame[1:]
    with pytest.raises(DecodeError) as err:
        decode(frame)
    assert err.value.code == "unknown_ci" and err.value.partial["meter"]["id"] == "12345678"


def test_compact_uses_and_needs_learned_format():
    formats = FormatCache()
    compact = encode_telegram(KAM, HEAT_RECORDS, tpl="none", compact=True)
    with pytest.raises(DecodeError) as err:
        decode(compact, formats=formats)
    assert err.value.code == "unknown_format" and err.value.partial["meter"]["id"] == "12345678"
    decode(encode_telegram(KAM, HEAT_RECORDS, tpl="none"), formats=formats)
    assert len(formats) == 1
    assert same_records(decode(compact, formats=formats)["records"], HEAT_RECORDS)
    # another meter does not share the format
    other = dict(KAM, id="87654321")
    with pytest.raises(DecodeError):
        decode(encode_telegram(other, HEAT_RECORDS, tpl="none", compact=True), formats=formats)


def test_learned_format_equals_compact_format_of():
    from omshub.codec import apl, compact

    formats = FormatCache()
    decode(encode_telegram(KAM, HEAT_RECORDS, manufacturer_data=b"\x01\x02"), formats=formats)
    ((_, fmt),) = formats.items()
    full = apl.encode_records(HEAT_RECORDS) + b"\x0f\x01\x02"
    assert fmt == compact.format_of(full)


def test_format_b_false_positive_falls_back_to_plain():
    # a CRC-less frame whose last two bytes happen to be a valid format-B CRC
    from omshub.codec import apl

    head = encode_telegram(KAM, [], tpl="none", apl=apl.encode_records(SMALL_RECORDS) + b"\x02\xfd\x17")
    head = bytes([len(head) + 1]) + head[1:]
    frame = head + crc16(head).to_bytes(2, "big")
    result = decode(frame)
    assert result["frame"]["format"] is None and "unparsed" not in result["frame"]
    assert result["records"][-1]["quantity"] == "error_flags"


def test_truncated_plain_tail_keeps_records():
    frame = encode_telegram(KAM, HEAT_RECORDS, tpl="none")
    result = decode(frame[:-1])  # last record cut short (L now larger than the bytes present)
    *kept, tail = result["records"]
    assert same_records(kept, HEAT_RECORDS[:-1])
    # the cut record's bytes are not dropped: an undecoded record holds them, with the reason
    assert tail["quantity"] == "undecoded" and tail["reason"] == "truncated"
    assert tail["value"].upper() == result["frame"]["unparsed"]
    assert frame[:-1].hex().endswith(tail["value"])


def test_parse_hex_and_decode_hex():
    assert parse_hex("2e 44_93|15") == bytes.fromhex("2E449315")
    for bad in ("2e4", "zz", 5):
        with pytest.raises(DecodeError) as err:
            parse_hex(bad)
        assert err.value.code == "invalid_hex"
    with pytest.raises(DecodeError) as err:
        parse_hex("00" * 5000)
    assert err.value.code == "too_long"
    frame = encode_telegram(KAM, SMALL_RECORDS)
    assert decode_hex(frame.hex().upper())["records"][0]["value"] == 165.0


def test_parse_hex_stray_digit_after_the_frame():
    # a log cut in the middle of a receiver byte after the L-counted message: the digit is dropped
    frame = encode_telegram(KAM, SMALL_RECORDS)
    assert parse_hex(frame.hex() + "2") == frame
    assert parse_hex(frame.hex() + "c4" + "2") == frame + b"\xc4"
    assert decode_hex(frame.hex() + "2")["records"][0]["value"] == 165.0
    # a digit missing inside the message (or a wired frame) stays an error, with where
    for bad in (frame.hex()[:-1], "68" + frame.hex()[2:] + "2", "1044" + "00" * 9 + "2"):
        with pytest.raises(DecodeError) as err:
            parse_hex(bad)
        assert err.value.code == "invalid_hex" and "odd number" in err.value.message


def test_peek_header():
    frame = encode_telegram(KAM, SMALL_RECORDS, mode=5, key=KEY, frame_format="A")
    assert peek_header(frame) == {
        "manufacturer": "KAM",
        "id": "12345678",
        "version": 27,
        "device_type_code": 4,
        "c_field": 0x44,
        "ci": 0x7A,
        "crc": "A",
    }
    with pytest.raises(DecodeError):
        peek_header(b"\x01\x02")


@pytest.mark.parametrize("frame_format", ["A", "B", None])
def test_peek_address_is_the_link_address_in_every_wireless_format(frame_format):
    kw = {"frame_format": frame_format} if frame_format else {}
    frame = encode_telegram(KAM, SMALL_RECORDS, mode=5, key=KEY, **kw)
    head = peek_header(frame)
    assert peek_address(frame) == (head["manufacturer"], head["id"]) == ("KAM", "12345678")


def test_peek_address_leaves_wired_and_odd_frames_to_peek_header():
    wired = encode_telegram(KAM, SMALL_RECORDS, tpl="long", frame_format="mbus", primary_address=5)
    assert peek_address(wired) is None and peek_header(wired)["id"] == "12345678"
    assert peek_address(b"\x09" + bytes(12)) is None  # L-field too small for a wireless header
    assert peek_address(b"\x2e\x44") is None and peek_address("2E44") is None  # type: ignore[arg-type]


def test_non_bytes_rejected():
    with pytest.raises(DecodeError):
        decode("2E44")  # type: ignore[arg-type]


def test_keyring_csv_errors():
    with pytest.raises(ValueError, match="line 2"):
        KeyRing.from_csv("id,key\n12345678,nothex\n")
    with pytest.raises(ValueError, match="header"):
        KeyRing.from_csv("meter,secret\n1,2\n")
    with pytest.raises(ValueError, match="line 3"):
        KeyRing.from_csv("id,key,manufacturer\n1," + KEY.hex() + ",KAM\n2," + KEY.hex() + ",K4M\n")
    ring = KeyRing.from_csv("# keys\nid,key\n\n12345678," + KEY.hex() + "\n")
    assert ring("XYZ", "12345678") == KEY and ring("XYZ", "1") is None


def test_plain_frame_whose_records_end_at_the_frame_end_needs_no_format_b_check(monkeypatch):
    # the B reading would cut the last record short, so its CRC is not even computed
    from omshub.codec import frame as frame_module

    frame = encode_telegram(KAM, HEAT_RECORDS)
    calls = []
    real = frame_module.try_format_b
    monkeypatch.setattr(frame_module, "try_format_b", lambda raw: calls.append(raw) or real(raw))
    result = decode(frame)
    assert calls == [] and same_records(result["records"], HEAT_RECORDS)
    # with manufacturer data at the end (or 2F fillers) the B reading could hold: it is checked
    decode(encode_telegram(KAM, HEAT_RECORDS, manufacturer_data=b"\x01\x02\x03"))
    assert len(calls) == 1
    # a real format-B frame of the same telegram is still read as B
    from omshub.codec.encode import add_format_b

    assert decode(add_format_b(frame))["frame"]["format"] == "B"


_RECORD_HEADS = ["0406", "02fd17", "426c", "0b2d", "01fd0c", "2f", "0c13", "8440fd48", "0f", "00fd0b", "0d78"]


def _apl_strategy():
    from hypothesis import strategies as st

    def chunk(head):
        size = {
            "0406": 4,
            "02fd17": 2,
            "426c": 2,
            "0b2d": 3,
            "01fd0c": 1,
            "2f": 0,
            "0c13": 4,
            "8440fd48": 4,
            "0f": 0,
            "00fd0b": 0,
            "0d78": None,
        }[head]
        if size is None:  # LVAR: length byte + text
            return st.binary(max_size=6).map(lambda b: bytes.fromhex(head) + bytes([len(b)]) + b)
        return st.binary(min_size=size, max_size=size).map(lambda b: bytes.fromhex(head) + b)

    return st.lists(st.sampled_from(_RECORD_HEADS).flatmap(chunk), min_size=1, max_size=12).map(b"".join)


def test_format_b_shortcut_only_when_the_b_reading_fails():
    from hypothesis import given, settings

    from omshub.codec import frame as frame_module
    from omshub.codec import telegram

    @settings(max_examples=300, deadline=None)
    @given(_apl_strategy())
    def check(apl_bytes):
        head = bytes.fromhex("442d2c785634121b04") + bytes.fromhex("7a") + bytes(4)
        frame = bytes([len(head) + len(apl_bytes)]) + head + apl_bytes
        proof: list = []
        try:
            telegram._decode(frame_module.recover(frame, detect_b=False), None, None, None, proof)
        except DecodeError:
            return
        if not proof or len(frame) < 13:
            return
        # the B reading, CRC aside: the same bytes without the last two
        b_frame = frame_module.Frame(bytes([frame[0] - 2]) + frame[1:-2], len(frame) - 2, "B")
        try:
            b_result = telegram._decode(b_frame, None, None, None, None)
        except DecodeError:
            return
        assert "unparsed" in b_result["frame"]

    check()


def test_more_records_follow_is_reported_for_dif_1f_only():
    from omshub.codec import apl, decode, encode_telegram

    meter = {"manufacturer": "KAM", "id": "12345678", "version": 1, "device_type_code": 4}
    recs = [
        {
            "quantity": "energy",
            "unit": "kWh",
            "value": 165.0,
            "storage": 0,
            "tariff": 0,
            "subunit": 0,
            "function": "instantaneous",
        }
    ]
    body = apl.encode_records(recs)
    more = decode(encode_telegram(meter, recs, apl=body + b"\x1f\x01\x02"))
    last = decode(encode_telegram(meter, recs, apl=body + b"\x0f\x01\x02"))
    assert more["frame"].get("more_records_follow") is True and more["manufacturer_data"] == "0102"
    assert "more_records_follow" not in last["frame"] and last["manufacturer_data"] == "0102"
    assert more["records"][0]["value"] == 165.0
