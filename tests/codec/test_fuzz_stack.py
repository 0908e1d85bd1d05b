"""Fuzz: any bytes through decode / peek_header give a dict or a DecodeError, never another exception.

Example counts come from the hypothesis profile (HYPOTHESIS_PROFILE=fuzz for the long run)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omshub.codec import (
    DecodeError,
    FormatCache,
    KeyRing,
    decode,
    encode_telegram,
    parse_hex,
    peek_address,
    peek_header,
)
from omshub.codec.frame import crc16

from ._stack import HEAT_RECORDS, KAM, KEY, RADIO, WATER_RECORDS, load_vectors

RING = KeyRing(KEY)


def _check(raw: bytes, **kw) -> None:
    try:
        result = decode(raw, **kw)
    except DecodeError as exc:
        assert exc.code and exc.message
        if exc.partial is not None:
            assert isinstance(exc.partial, dict)
        return
    assert isinstance(result, dict) and isinstance(result["records"], list)


def _peek(raw: bytes) -> None:
    fast = peek_address(raw)
    assert fast is None or (len(fast[0]) == 3 and len(fast[1]) == 8)
    try:
        head = peek_header(raw)
    except DecodeError:
        return
    assert isinstance(head, dict)
    if fast is not None and head.get("id") is not None:  # the same link address, CRCs or not
        assert fast == (head["manufacturer"], head["id"])


def _seeds() -> list[bytes]:
    seeds = [
        encode_telegram(KAM, HEAT_RECORDS, mode=5, key=KEY),
        encode_telegram(KAM, HEAT_RECORDS, mode=7, key=KEY, ell="8C"),
        encode_telegram(KAM, WATER_RECORDS, tpl="none", ell="8D", key=KEY),
        encode_telegram(KAM, HEAT_RECORDS, tpl="none", compact=True),
        encode_telegram(KAM, HEAT_RECORDS, tpl="long", transmitter=RADIO, mode=5, key=KEY, frame_format="A"),
        encode_telegram(KAM, WATER_RECORDS, frame_format="B"),
        encode_telegram(KAM, WATER_RECORDS, tpl="long", frame_format="mbus"),
    ]
    for item in load_vectors():
        seeds.append(parse_hex(item["telegram"]))
    return seeds


SEEDS = _seeds()
LEARNED = FormatCache()
decode(encode_telegram(KAM, HEAT_RECORDS, tpl="none"), formats=LEARNED)


@given(st.binary(max_size=300))
def test_random_bytes(raw):
    _check(raw)
    _check(raw, key=KEY, formats=FormatCache())
    _peek(raw)


@given(
    st.binary(min_size=10, max_size=250),
    st.sampled_from([0x44, 0x46, 0x08]),
    st.sampled_from([0x7A, 0x72, 0x78, 0x79, 0x7B, 0x73, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x8A, 0xA0]),
)
def test_random_payload_with_plausible_header(body, c_field, ci):
    frame = bytes([len(body) + 11, c_field]) + bytes.fromhex("2D2C78563412") + b"\x1b\x04" + bytes([ci]) + body
    frame = bytes([len(frame) - 1]) + frame[1:]
    _check(frame)
    _check(frame, keys=RING, formats=LEARNED)
    _peek(frame)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SEEDS))), st.data())
def test_mutated_valid_telegrams(index, data):
    raw = bytearray(SEEDS[index])
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        action = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        pos = data.draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))
        if action == "flip" and raw:
            raw[pos] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        elif action == "set" and raw:
            raw[pos] = data.draw(st.integers(min_value=0, max_value=255))
        elif action == "cut":
            del raw[pos:]
        else:
            raw.insert(pos, data.draw(st.integers(min_value=0, max_value=255)))
    if data.draw(st.booleans()) and raw:
        raw[0] = len(raw) - 1 if len(raw) <= 256 else raw[0]
    _check(bytes(raw))
    _check(bytes(raw), keys=RING, formats=LEARNED)
    _peek(bytes(raw))


@given(st.binary(min_size=12, max_size=120))
def test_format_b_looking_frames(body):
    frame = bytes([len(body) + 1]) + body
    frame = frame + crc16(frame).to_bytes(2, "big")
    frame = bytes([len(frame) - 1]) + frame[1:]
    _check(frame)
    _check(frame, key=KEY, formats=FormatCache())


@given(st.text(max_size=200))
def test_parse_hex_any_text(text):
    try:
        assert isinstance(parse_hex(text), bytes)
    except DecodeError as exc:
        assert exc.code in ("invalid_hex", "too_long")
