"""Every simulated telegram decodes with its meter's key to exactly the records the meter holds."""

from __future__ import annotations

import pytest

from omshub.codec import DecodeError, FormatCache, apl, decode, encode_telegram, peek_header
from omshub.sim.meters import encode_transmission
from omshub.sim.template import apl_bytes


def _same(decoded: list[dict], expected: list[dict]) -> None:
    assert len(decoded) == len(expected)
    for got, want in zip(decoded, expected, strict=False):
        for key in ("quantity", "unit", "storage", "tariff", "subunit", "function", "dif_vif"):
            assert got[key] == want[key], (key, got, want)
        if isinstance(want["value"], float):
            assert got["value"] == pytest.approx(want["value"], abs=1e-9)
        else:
            assert got["value"] == want["value"]


def test_every_meter_kind_and_security_round_trips(fleet, winter):
    formats = FormatCache()
    kinds = set()
    for m in fleet.all_meters():
        first = m.first_index_at_or_after(winter)
        if m.compact_every:
            first += -first % m.compact_every  # a receiver learns the format from a full frame first
        for index in range(first, first + 10):
            t = m.transmission_time(index)
            frame = encode_transmission(m, index, t)
            telegram = decode(frame, key=m.key, formats=formats)
            records, status = m.records(t)
            _same(telegram["records"], records)
            assert telegram["meter"]["id"] == m.id and telegram["meter"]["manufacturer"] == m.manufacturer
            assert telegram["meter"]["device_type_code"] == m.device_type_code
            if m.security != "ell":
                assert telegram["access_number"] == m.access_number(index)
                assert telegram["status"]["code"] == status
            assert telegram["security"]["decrypted"] is True
            kinds.add((m.kind, m.security, m.is_compact(index), m.frame_format))
    assert {k[1] for k in kinds} == {"5", "7", "ell"}
    assert any(k[2] for k in kinds) and {k[3] for k in kinds} == {None, "A", "B"}


def test_wrong_key_does_not_decode(fleet, winter):
    m = fleet.meters[5]
    frame = encode_transmission(m, m.first_index_at_or_after(winter))
    with pytest.raises(DecodeError) as err:
        decode(frame, key=bytes(16))
    assert err.value.code in ("wrong_key", "mac_error")


def test_fast_record_packing_equals_the_codec(fleet, winter):
    for m in fleet.all_meters():
        for k in range(3):
            t = winter + k * 40_000
            head, today, _ = m.current_records(t)
            records = head + m.stored_records(today)
            assert apl_bytes(head, False, lambda: m.stored_records(today), m.stored_key(today)) == apl.encode_records(
                records
            )
            fast = encode_transmission(m, 8, t)
            slow = encode_telegram(
                m.address_dict(),
                records,
                key=m.key,
                access_number=m.access_number(8),
                status=m.records(t)[1],
                compact=m.is_compact(8),
                frame_format=m.frame_format,
                **(
                    {"mode": 0, "ell": "8D", "tpl": "none"}
                    if m.security == "ell"
                    else {
                        "mode": int(m.security),
                        "tpl": m.tpl,
                        **({"message_counter": m.access0 + 8} if m.security == "7" else {}),
                    }
                ),
            )
            assert fast == slow


def test_link_layer_header_names_the_meter(fleet, winter):
    for m in fleet.meters:
        head = peek_header(encode_transmission(m, m.first_index_at_or_after(winter)))
        assert (head["manufacturer"], head["id"], head["version"]) == (m.manufacturer, m.id, m.version)
        assert head["crc"] == m.frame_format
