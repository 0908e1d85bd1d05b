"""Compact frames (docs/protocol.md §9): format, signature, full-frame CRC, decode and encode."""

from __future__ import annotations

import json

import pytest

from omshub.codec import apl, compact
from omshub.codec.errors import DecodeError

# Kamstrup multical21 full frame records (docs/protocol.md §9, verified)
FULL = bytes.fromhex("02FF207100041308190000441308190000615B7F616713")
FORMAT = bytes.fromhex("02FF2004134413615B6167")


def test_crc16_check_values():
    assert compact.crc16(b"123456789") == 0xC2B7
    assert compact.crc16(bytes.fromhex("EE449ACE010000802307")) == 0xAABC
    assert compact.crc16(bytes.fromhex("01FD1F01")) == 0xCC22


def test_format_signature_and_full_crc_of_the_multical21_example():
    assert compact.format_of(FULL) == FORMAT
    assert compact.format_signature(FORMAT) == 0xA8ED
    assert compact.full_frame_crc(FULL) == 0xB66A


def test_format_skips_fillers_and_keeps_closing_manufacturer_dif():
    data = bytes.fromhex("2F2F0413010000002F02FD1700000FAABB")
    assert compact.format_of(data) == bytes.fromhex("041302FD170F")
    assert compact.format_of(data, 2, 8) == bytes.fromhex("0413")


def test_decode_compact_round_trip():
    values = bytes.fromhex("710008190000081900007F13")
    records, mdata = compact.decode_compact(FORMAT, b"\x00\x00" + values, 2, full_crc=0xB66A)
    assert (records, mdata) == apl.decode_records(FULL)
    assert compact.rebuild_full(FORMAT, values) == FULL


def test_decode_compact_wrong_crc_is_unknown_format():
    values = bytes.fromhex("710008190000081900007F13")
    with pytest.raises(DecodeError) as info:
        compact.decode_compact(FORMAT, values, full_crc=0x1234)
    assert info.value.code == "unknown_format" and "B66A" in str(info.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ("7100081900000819", "needs"),  # too short
        ("710008190000081900007F13AA", "beyond"),  # surplus
    ],
)
def test_decode_compact_length_errors(values, message):
    with pytest.raises(DecodeError) as info:
        compact.decode_compact(FORMAT, bytes.fromhex(values))
    assert info.value.code == "invalid_record" and message in str(info.value)


def test_trailing_fillers_in_compact_data_are_ignored():
    values = bytes.fromhex("710008190000081900007F132F2F2F")
    records, _ = compact.decode_compact(FORMAT, values, full_crc=0xB66A)
    assert len(records) == 5


def test_lvar_and_manufacturer_data_in_compact_frames():
    full = bytes.fromhex("0D78034142430413010000000FAABB")
    fmt = compact.format_of(full)
    assert fmt == bytes.fromhex("0D7804130F")
    values = bytes.fromhex("0341424301000000AABB")
    assert compact.rebuild_full(fmt, values) == full
    assert compact.decode_compact(fmt, values) == apl.decode_records(full)


def test_encode_compact():
    records, _ = apl.decode_records(FULL)
    fmt, values = compact.encode_compact(records)
    assert fmt == FORMAT
    assert values == bytes.fromhex("710008190000081900007F13")
    assert compact.format_signature(fmt) == 0xA8ED


def _vectors(shared_vectors):
    return {v["id"]: v for v in json.loads((shared_vectors / "oms-vectors.json").read_text())}


def test_omnipower_compact_frames_against_their_full_frame(shared_vectors):
    vectors = _vectors(shared_vectors)
    full_plain = bytes.fromhex(vectors["omnipower-ELL8D-2"]["plaintext_hex"])
    assert full_plain[2] == 0x78
    fmt = compact.format_of(full_plain, 3)
    for vid in ("omnipower-ELL8D-1", "omnipower-ELL8D-4", "omnipower-ELL8D-5"):
        plain = bytes.fromhex(vectors[vid]["plaintext_hex"])
        assert plain[2] == 0x79
        signature = int.from_bytes(plain[3:5], "little")
        full_crc = int.from_bytes(plain[5:7], "little")
        assert signature == compact.format_signature(fmt) == 0x8C13
        records, _ = compact.decode_compact(fmt, plain, 7, full_crc=full_crc)
        assert [r["quantity"] for r in records] == ["energy", "energy", "power", "power"]
        assert records[1]["qualifiers"] == ["backward"]
    records, _ = compact.decode_compact(fmt, bytes.fromhex(vectors["omnipower-ELL8D-1"]["plaintext_hex"]), 7)
    assert records[0]["value"] == 2.15


def test_multical21_compact_frame(shared_vectors):
    vectors = _vectors(shared_vectors)
    full_plain = bytes.fromhex(vectors["wmbusmeters-multical21-ELL8D"]["plaintext_hex"])
    fmt = compact.format_of(full_plain, 3)
    plain = bytes.fromhex(vectors["wmbusmeters-issue1024-multical21-compact"]["plaintext_hex"])
    assert int.from_bytes(plain[3:5], "little") == compact.format_signature(fmt)
    records, _ = compact.decode_compact(fmt, plain, 7, full_crc=int.from_bytes(plain[5:7], "little"))
    assert records[1]["quantity"] == "volume" and records[1]["value"] == 163.712


def test_decode_compact_end_bound():
    fmt, values = compact.encode_compact(
        [
            {
                "quantity": "volume",
                "unit": "m3",
                "value": 1.5,
                "storage": 0,
                "tariff": 0,
                "subunit": 0,
                "function": "instantaneous",
            }
        ]
    )
    framed = b"\x00" + values + b"\xaa\xbb"  # bytes around the compact data (e.g. a frame's CRC)
    assert compact.decode_compact(fmt, framed, 1, end=len(framed) - 2) == compact.decode_compact(fmt, values)
