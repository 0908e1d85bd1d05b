"""Nothing is dropped in silence (issue 9, item 5): every byte of the application layer ends up in
a record, in an ``undecoded`` record (docs/formats.md §1.2) or in a decode error; wired M-Bus
replies the record grammar does not cover (old CI 72 signatures, CI 73 fixed data structure,
the CI 70 application error) are recognised; dates sent as LVAR binary numbers decode."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from omshub.codec import DecodeError, apl, decode, encode_telegram, peek_header
from omshub.codec.encode import wired_frame
from omshub.codec.link import manufacturer_value

from ._stack import KEY, record, same_records

# no driver knows this manufacturer: what comes out is the generic decoder's alone
METER = {"manufacturer": "XYZ", "id": "12345678", "version": 1, "device_type_code": 0x1B}
ROOM = [record("external_temperature", "°C", 21.5), record("relative_humidity", "%", 45.0)]


def _wired(apl_bytes: bytes, cfg: bytes = b"\x00\x00", ci: int = 0x72) -> bytes:
    """A wired long frame with a long TPL header (ID M V T ACC STS CFG) by hand."""
    header = bytes.fromhex("78563412") + manufacturer_value("XYZ").to_bytes(2, "little") + bytes((1, 0x1B, 7, 0)) + cfg
    return wired_frame(0x08, 1, bytes((ci,)) + header + apl_bytes)


# ------------------------------------------------------------------ records the grammar cannot place


def test_plain_text_vif_before_its_vifes_is_not_dropped():
    # a wired room-climate meter: temperature, then humidity with a plain-text unit "%RH" whose
    # text comes before the VIFE (the older reading; EN 13757-3/exmbus put it after the VIFEs)
    temperature = bytes.fromhex("02656608")
    humidity = bytes.fromhex("02FC0348522574E803")
    result = decode(_wired(temperature + humidity))
    first, tail = result["records"]
    assert first["quantity"] == "external_temperature" and first["value"] == 21.5
    assert tail["quantity"] == "undecoded" and tail["value"] == humidity.hex()
    assert tail["reason"] == "truncated" and "plain-text" in tail["message"]
    assert tail["storage"] == 0 and tail["function"] == "instantaneous" and tail["dif_vif"] == ""


def test_plain_text_vif_with_vifes_decodes():
    humidity = bytes.fromhex("02FC7403485225E803")  # VIFE 74 (x0.01), then the text
    (rec,) = decode(_wired(humidity))["records"]
    assert rec["quantity"] == "custom" and rec["unit_text"] == "%RH" and rec["value"] == 10.0


@pytest.mark.parametrize(
    "tail,reason,dif_vif",
    [
        ("0265E8", "truncated", "0265"),  # data cut short
        ("8480808080808080808080800106", "too_many_extensions", ""),  # 11 DIFEs
        ("0DFD0CF7AABB", "reserved_lvar", "0dfd0c"),  # LVAR F7 has no length
        ("0DFD0CC5AABB", "truncated", "0dfd0c"),  # LVAR announces 5 bytes
        ("3F0102", "reserved_dif", ""),  # special DIF 3F
        ("7F", "reserved_dif", ""),  # global readout request
        ("02FB", "truncated", ""),  # FB without its code
    ],
)
def test_undecoded_tail_keeps_records_before_it(tail, reason, dif_vif):
    known = apl.encode_records(ROOM)
    result = decode(_wired(known + bytes.fromhex(tail)))
    *kept, last = result["records"]
    assert same_records(kept, ROOM)
    assert last == {
        "quantity": "undecoded",
        "unit": "",
        "value": tail.lower(),
        "storage": last["storage"],
        "tariff": last["tariff"],
        "subunit": last["subunit"],
        "function": last["function"],
        "dif_vif": dif_vif,
        "reason": reason,
        "message": last["message"],
    }
    assert last["message"] and result["frame"]["unparsed"] == tail.upper()


def test_undecoded_record_takes_storage_from_its_dif():
    known = apl.encode_records(ROOM)
    result = decode(_wired(known + bytes.fromhex("C411060102")))  # storage 3, tariff 1, cut short
    last = result["records"][-1]
    assert (last["storage"], last["tariff"], last["subunit"], last["function"]) == (3, 1, 0, "instantaneous")
    assert last["dif_vif"] == "c41106"


def test_undecoded_tail_in_the_encrypted_part_keeps_the_records():
    # mode 5: 2F2F and more than 16 bytes of good records, then a record nobody can delimit
    records = ROOM + [record("energy", "kWh", 1234.0), record("volume", "m3", 12.5)]
    body = apl.encode_records(records) + bytes.fromhex("0DFD0CF8")
    frame = encode_telegram(METER, [], apl=body, mode=5, key=KEY)
    result = decode(frame, key=KEY)
    *kept, last = result["records"]
    assert same_records(kept, records) and result["security"]["decrypted"]
    # the undecoded record runs to the end of the APL: its own bytes and the encryption padding
    assert last["reason"] == "reserved_lvar" and last["value"].startswith("0dfd0cf8")
    assert set(bytes.fromhex(last["value"])[4:]) <= {0x2F}
    # a wrong key is still a wrong key
    with pytest.raises(DecodeError) as err:
        decode(frame, key=bytes(16))
    assert err.value.code == "wrong_key"


def test_record_grammar_error_at_the_start_is_still_an_error():
    with pytest.raises(DecodeError) as err:
        decode(_wired(bytes.fromhex("0DFD0CF7AABB")))
    assert err.value.code == "invalid_record"


def test_third_extension_table_code_is_not_read_as_a_record_error():
    # VIF EF (reserved third table): its next byte is a code of that table, not VIFE 01 "too many DIFEs"
    ((rec,), _) = apl.decode_records(bytes.fromhex("04EF0101020304"))
    assert rec["quantity"] == "unknown" and "record_error" not in rec and "error_value" not in rec
    assert rec["value"] == 0x04030201 and rec["raw"] == "01020304"


@pytest.mark.parametrize(
    "data,raw", [("046C32371F15", "32371f15"), ("046C00001F15", None), ("0D6CE432371F15", "32371f15")]
)
def test_date_vif_with_a_time_of_day_keeps_it(data, raw):
    # type F under VIF 6C (date): the date is the value; a time of day other than 00:00 stays as raw
    for _ in range(3):  # general decoder, then the layout memo
        ((rec,), _) = apl.decode_records(bytes.fromhex("2F" + data))
        assert rec["value"] == "2008-05-31" and rec.get("raw") == raw


def test_record_error_on_an_lvar_keeps_its_data_as_raw():
    # VIFE 15 (no data available) on an LVAR text: raw is the data, as for every other LVAR, so
    # the record re-encodes to the same record (the length byte used to be taken into raw)
    data = bytes.fromhex("0D931503616263")
    ((rec,), _) = apl.decode_records(data)
    assert rec["error_value"] and rec["raw"] == "616263"
    assert apl.decode_records(apl.encode_records([rec]))[0][0]["raw"] == "616263"


def test_unknown_vif_keeps_its_raw_bytes():
    for data in ("04FB3801020304", "0CFB3812345678"):
        ((rec,), _) = apl.decode_records(bytes.fromhex(data))
        assert rec["quantity"] == "unknown" and rec["raw"] == data[6:].lower()


def test_undecoded_record_round_trips_through_the_encoder():
    known = apl.encode_records(ROOM)
    body = known + bytes.fromhex("0DFD0CF7AABB")
    records = decode(_wired(body))["records"]
    assert apl.encode_records(records) == body


# ------------------------------------------------------------------ wired CI 72 signature, CI 73, CI 70


def test_wired_signature_that_is_no_security_mode_decodes_unencrypted():
    body = apl.encode_records(ROOM)
    for cfg in ("0016", "FFFF", "1234", "000B"):  # modes 22, 31, 18, 11: reserved
        result = decode(_wired(body, bytes.fromhex(cfg)))
        assert same_records(result["records"], ROOM), cfg
        assert result["security"]["mode"] == 0 and not result["security"]["encrypted"]
        assert result["frame"]["signature"] == cfg
        assert result["meter"]["id"] == "12345678" and result["access_number"] == 7


def test_wireless_reserved_security_mode_stays_unsupported():
    frame = bytearray(encode_telegram(METER, ROOM))
    frame[14] = 0x16  # CFG high byte: mode 22 (wireless: e.g. a manufacturer's scrambling)
    with pytest.raises(DecodeError) as err:
        decode(bytes(frame))
    assert err.value.code == "unsupported_security_mode"


@pytest.mark.parametrize("cfg", ["000D", "0004", "0001", "000F", "0008"])
def test_wired_assigned_security_modes_are_not_read_as_plain(cfg):
    with pytest.raises(DecodeError) as err:
        decode(_wired(apl.encode_records(ROOM), bytes.fromhex(cfg)))
    assert err.value.code == "unsupported_security_mode"


def test_encrypted_wired_frame_still_needs_its_key():
    frame = encode_telegram(METER, ROOM, mode=5, key=KEY, tpl="long", frame_format="mbus")
    with pytest.raises(DecodeError) as err:
        decode(frame)
    assert err.value.code == "no_key"
    result = decode(frame, key=KEY)
    assert same_records(result["records"], ROOM) and result["security"]["decrypted"]
    assert "signature" not in result["frame"]


def test_wired_fixed_data_structure():
    body = bytes.fromhex("7378563412051C85131027000099990000")
    frame = wired_frame(0x08, 1, body)
    result = decode(frame)
    assert result["meter"]["id"] == "12345678" and result["access_number"] == 5
    assert result["status"] == {"code": 0x1C, "flags": ["power_low", "permanent_error", "temporary_error"]}
    assert result["frame"]["ci"] == "73" and result["frame"]["fixed_structure"] is True
    (rec,) = result["records"]
    assert rec["quantity"] == "undecoded" and rec["reason"] == "fixed_data_structure"
    assert rec["value"] == "85131027000099990000" and "CI 73" in rec["message"]
    assert peek_header(frame)["id"] == "12345678"


def test_wired_ci73_compact_frame_is_still_a_compact_frame():
    frame = encode_telegram(METER, ROOM, tpl="long", compact=True, frame_format="mbus")
    with pytest.raises(DecodeError) as err:
        decode(frame)  # no format learned: the compact frame is recognised as such
    assert err.value.code == "unknown_format"


@pytest.mark.parametrize(
    "code,meaning",
    [
        (0, "unspecified_error"),
        (1, "unimplemented_ci"),
        (8, "application_busy"),
        (9, "too_many_readouts"),
        (7, "reserved"),
        (200, "reserved"),
    ],
)
def test_wired_application_error_reply(code, meaning):
    frame = wired_frame(0x08, 1, bytes((0x70, code)))  # L = 4: C A CI error
    assert len(frame) == 10 and frame[1] == 4
    result = decode(frame)
    assert result["application_error"]["code"] == code
    assert result["application_error"]["meaning"] == meaning and result["application_error"]["message"]
    assert result["records"] == [] and result["frame"]["ci"] == "70"


def test_application_error_reply_with_a_long_header():
    header = bytes.fromhex("78563412") + manufacturer_value("XYZ").to_bytes(2, "little") + bytes((1, 0x1B, 3, 2, 0, 0))
    result = decode(wired_frame(0x08, 1, bytes((0x6F,)) + header + b"\x08"))
    assert result["application_error"]["meaning"] == "application_busy"
    assert result["meter"]["id"] == "12345678" and result["status"]["code"] == 2


def test_data_records_are_no_application_error():
    result = decode(_wired(apl.encode_records(ROOM)))
    assert "application_error" not in result


# ------------------------------------------------------------------ dates as LVAR binary numbers


@pytest.mark.parametrize(
    "data,quantity,value",
    [
        ("0D6CE2FE04", "date", "2007-04-30"),  # type G under VIF 6C
        ("0D6CE400001F15", "date", "2008-05-31"),  # type F under VIF 6C (date part)
        ("0D6DE432371F15", "datetime", "2008-05-31T23:50"),  # type F
        ("0D6DE618260AEB2500", "datetime", "2023-05-11T10:38:24"),  # type I
        ("0D6DE21F3C", "date", "2024-12-31"),  # type G under VIF 6D
        ("0D6DE31E0F0C", "time", "12:15:30"),  # type J
        ("0DFD30E432371F15", "tariff_start", "2008-05-31T23:50"),  # FD 30: date/time of a tariff
    ],
)
def test_date_vif_with_lvar_binary_number(data, quantity, value):
    ((rec,), _) = apl.decode_records(bytes.fromhex(data))
    assert rec["quantity"] == quantity and rec["value"] == value and "raw" not in rec


@pytest.mark.parametrize("data", ["0D6DE5AABBCCDDEE", "0D6DC412345678", "0D6D0432371F15"])
def test_date_vif_with_other_lvar_stays_raw(data):
    ((rec,), _) = apl.decode_records(bytes.fromhex(data))
    assert rec["value"] is None and rec["raw"] == data[6:].lower()


def test_lvar_dates_through_the_layout_memo():
    data = bytes.fromhex("2F2F0D6DE432371F150D6DE31E0F0C04130A0000000D6CE2FE04")
    saved = apl.LAYOUTS.compile_after
    apl.LAYOUTS.compile_after = 2
    try:
        general = apl.decode_general(data, 0, len(data))
        for _ in range(4):  # noted, learned, used (general decoder), compiled
            assert apl.decode_records(data) == general
    finally:
        apl.LAYOUTS.compile_after = saved
    assert [r["quantity"] for r in general[0]] == ["datetime", "time", "volume", "date"]
    again = apl.decode_records(apl.encode_records(general[0]))[0]
    assert [r["value"] for r in again] == [r["value"] for r in general[0]]


def test_lvar_dst_date_takes_the_general_path():
    data = bytes.fromhex("0D6DE432B71F15")  # summer-time flag set
    for _ in range(3):
        ((rec,), _) = apl.decode_records(data)
        assert rec["value"] == "2008-05-31T23:50" and rec["dst"] is True


# ------------------------------------------------------------------ property: appended unknown records

_SIZES = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, None, 6, None)


def _lvar_size(lv: int) -> int | None:
    if lv < 0xC0:
        return lv
    if lv <= 0xC9 or 0xD0 <= lv <= 0xD9:
        return lv & 0x0F
    if 0xE0 <= lv <= 0xEF:
        return lv - 0xE0
    if 0xF0 <= lv <= 0xF4:
        return 4 * (lv - 0xEC)
    return {0xF5: 48, 0xF6: 64}.get(lv)


def _walk(apl_bytes: bytes, i: int) -> tuple[list[tuple[int, int]], tuple[str, int] | None]:
    """The record grammar of EN 13757-3 (docs/protocol.md §8), written out here independently of
    the decoder: the (start, header end) of each record from ``i`` on, and how the walk ends:
    ("mdata", offset of 0F/1F), ("error", offset of the record that cannot be delimited), or None.
    Up to 10 DIFEs and, after the VIF, 11 extension bytes (an FB/FD code and 10 VIFEs)."""
    n = len(apl_bytes)
    records = []
    while i < n:
        dif = apl_bytes[i]
        if dif == 0x2F:
            i += 1
            continue
        if dif in (0x0F, 0x1F):
            return records, ("mdata", i)
        if dif & 0x0F == 0x0F:
            return records, ("error", i)
        j, count, ext = i + 1, 0, dif & 0x80
        while ext:
            if j >= n or count == 10:
                return records, ("error", i)
            ext, j, count = apl_bytes[j] & 0x80, j + 1, count + 1
        if j >= n:
            return records, ("error", i)
        vif = apl_bytes[j]
        j, count, ext = j + 1, 0, vif & 0x80
        while ext:
            if j >= n or count == 11:
                return records, ("error", i)
            ext, j, count = apl_bytes[j] & 0x80, j + 1, count + 1
        if vif & 0x7F == 0x7C:  # plain-text unit: length and text after the VIFEs
            if j >= n or j + 1 + apl_bytes[j] > n:
                return records, ("error", i)
            j += 1 + apl_bytes[j]
        size = _SIZES[dif & 0x0F]
        e = j + size if size is not None else None
        if size is None:  # LVAR
            lv_size = _lvar_size(apl_bytes[j]) if j < n else None
            if lv_size is None:
                return records, ("error", i)
            e = j + 1 + lv_size
        if e > n:
            return records, ("error", i)
        records.append((i, j))
        i = e
    return records, None


@st.composite
def unknown_record(draw) -> bytes:
    """One well-formed record the decoder has no meaning for, or only a partial one: random
    DIF/DIFE, VIFs from reserved codes, the FB/FD/EF tables, manufacturer-specific (7F/FF), plain
    text, random VIFE chains (incl. 7C/7F), data of the length the DIF gives."""
    dfield = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 9, 0xA, 0xB, 0xC, 0xD, 0xE]))
    difes = draw(st.lists(st.integers(0, 0x7F), max_size=3))
    dif = dfield | draw(st.integers(0, 7)) << 4 | (0x80 if difes else 0)
    header = bytes([dif] + [b | 0x80 for b in difes[:-1]] + difes[-1:])
    kind = draw(st.sampled_from(["primary", "table", "manufacturer", "text"]))
    vifes = draw(st.lists(st.integers(0, 0x7F), max_size=4))
    if kind == "table":
        base = [draw(st.sampled_from([0xFB, 0xFD, 0xEF])), draw(st.integers(0, 0x7F))]
    elif kind == "manufacturer":
        base = [0x7F]
    elif kind == "text":
        base = [0x7C]
    else:
        base = [draw(st.sampled_from([0x6F, 0x7E, 0x6E, 0x79, draw(st.integers(0, 0x7B))]))]
    chain = base + vifes
    header += bytes([b | 0x80 for b in chain[:-1]] + [chain[-1] & 0x7F])
    if kind == "text":
        text = draw(st.binary(max_size=6))
        header += bytes([len(text)]) + text
    if dfield == 0xD:
        lv = draw(st.sampled_from([draw(st.integers(0, 12)), 0xC2, 0xD1, 0xE2, 0xE3, 0xE4, 0xE6, 0xE9]))
        return header + bytes([lv]) + draw(st.binary(min_size=_lvar_size(lv), max_size=_lvar_size(lv)))
    size = _SIZES[dfield]
    return header + draw(st.binary(min_size=size, max_size=size))


KNOWN = st.lists(
    st.sampled_from(
        [
            record("energy", "kWh", 1234.0),
            record("volume", "m3", 12.345),
            record("flow_temperature", "°C", 55.5),
            record("external_temperature", "°C", 21.25),
            record("energy", "kWh", 1000.0, storage=1),
            record("date", "", "2025-12-31", storage=1),
            record("error_flags", "", 0),
        ]
    ),
    min_size=5,
    max_size=7,
)


@settings(
    max_examples=max(300, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # the long fuzz profile runs it longer
@given(
    KNOWN,
    st.lists(st.one_of(unknown_record(), st.just(b"\x2f")), max_size=5),
    st.one_of(
        st.binary(max_size=12), st.tuples(st.sampled_from([b"\x0f", b"\x1f"]), st.binary(max_size=8)).map(b"".join)
    ),
    st.sampled_from(["wireless", "wireless-long", "wired", "mode5", "wired-mode5"]),
)
def test_appended_unknown_records_are_all_accounted_for(known, unknown, trailing, kind):
    """Known records, then records the decoder has no meaning for, fillers and any bytes: the
    known records all come out, each appended record comes out as one record with its header,
    and whatever the grammar cannot delimit is one undecoded record (or manufacturer data after
    0F/1F). (Encrypted payloads: at least 16 bytes of plaintext parse before anything unknown;
    a record error earlier than that is what a wrong key looks like, and is reported so.)"""
    body_known = apl.encode_records(known)
    assert len(body_known) >= 14
    appended = b"".join(unknown) + trailing
    body = body_known + appended
    mode = 5 if "mode5" in kind else 0
    options = {
        "tpl": "long" if "long" in kind or "wired" in kind else "short",
        "frame_format": "mbus" if "wired" in kind else "A",
    }
    try:
        frame = encode_telegram(METER, [], apl=body, mode=mode, key=KEY if mode else None, **options)
    except DecodeError:
        return  # too long for one frame
    # the APL as the decoder sees it: mode 5 adds 2F2F in front and 2F padding behind
    plain = body
    if mode:
        plain = b"\x2f\x2f" + body
        plain += b"\x2f" * (-len(plain) % 16)
    start = (2 if mode else 0) + len(body_known)
    result = decode(frame, key=KEY)

    records = [r for r in result["records"] if not r.get("derived_from")]
    assert same_records(records[: len(known)], known)  # every known record is still there
    rest = records[len(known) :]
    walked, end = _walk(plain, start)
    event(f"{kind}: {end[0] if end else 'clean'}")
    for (i, j), rec in zip(walked, rest, strict=False):  # each appended record: one record, the same header
        assert rec["dif_vif"] == plain[i:j].hex(), (plain.hex(), i, rec)
        assert rec["quantity"] != "undecoded"
    rest = rest[len(walked) :]
    if end is None:
        assert rest == [] and result["manufacturer_data"] is None
    elif end[0] == "mdata":
        assert rest == [] and result["manufacturer_data"] == plain[end[1] + 1 :].hex()
    else:  # the bytes from the record the grammar cannot delimit: one undecoded record
        (tail,) = rest
        assert tail["quantity"] == "undecoded" and tail["value"] == plain[end[1] :].hex()
        assert tail["reason"] and tail["message"]
