"""Fuzzing what operators upload: key CSV, meter lists and the meter CSV import. Any input gives
a result or a clear error (KeyStoreError / a 4xx body naming the line), never a traceback or a 500,
and a key's value never appears in an error message.
Example counts come from the hypothesis profile (HYPOTHESIS_PROFILE=fuzz for the long run)."""

from __future__ import annotations

import re

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from omshub.cloud.store.keystore import KeyStoreError, parse_key_csv, parse_meter_list

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
# cells right and wrong: ids, keys, manufacturer codes, CSV syntax, other text
_cell = st.one_of(
    st.from_regex(r"[0-9A-Fa-f]{8}", fullmatch=True),
    st.from_regex(r"[0-9A-Fa-f]{32}", fullmatch=True),
    st.sampled_from(["KAM", "kam", "DME", "", "ÄÖÜ", '"', '""', "a,b", "\r", "x" * 40]),
    st.text(max_size=40),
)
_line = st.lists(_cell, min_size=0, max_size=6).map(",".join)
_id = st.from_regex(r"[0-9A-Fa-f]{8}", fullmatch=True)
_key = st.from_regex(r"[0-9A-Fa-f]{32}", fullmatch=True)
_good_row = st.one_of(
    st.tuples(_id, _key).map(",".join), st.tuples(st.sampled_from(["KAM", "dme", ""]), _id, _key).map(",".join)
)
_csv = st.one_of(
    st.tuples(
        st.sampled_from(["id,key", "manufacturer,id,key", "key,id", "id;key", "", "ID,KEY,extra"]),
        st.lists(st.one_of(_good_row, _good_row, _line), max_size=12),
    ).map(lambda t: "\n".join([t[0], *t[1]])),
    st.text(max_size=400),
)


@given(_csv)
def test_key_csv_gives_entries_or_an_error_that_shows_no_key(text):
    try:
        entries = parse_key_csv(text)
    except KeyStoreError as exc:
        message = str(exc)
        assert message
        assert not _HEX32.search(message), message  # a key-like value is never echoed
        event("refused")
        return
    event("parsed" if entries else "parsed, no keys")
    for e in entries:
        assert re.fullmatch(r"[0-9A-F]{8}", e.meter_id) and len(e.key) == 16
        assert e.manufacturer is None or re.fullmatch(r"[A-Z]{3}", e.manufacturer)
        assert e.key.hex() not in repr(e) and e.key.hex().upper() not in repr(e)


@given(st.one_of(st.lists(_cell, max_size=8).map(",".join), st.lists(st.one_of(_cell, st.integers()), max_size=8)))
def test_meter_lists_give_meters_or_an_error(value):
    try:
        meters = parse_meter_list(value)
    except KeyStoreError as exc:
        assert str(exc)
        return
    assert meters and all(
        re.fullmatch(r"[0-9A-F]{8}", mid) and (man is None or re.fullmatch(r"[A-Z]{3}", man)) for man, mid in meters
    )


_meter_csv = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "manufacturer,id,device_type",
                "manufacturer,id,device_type,gateway,metering_point,address,customer_ref,installed_at",
                "id,manufacturer",
                "",
            ]
        ),
        st.lists(
            st.one_of(
                st.tuples(
                    st.sampled_from(["KAM", "DME", "kam", "XX"]),
                    _id,
                    st.sampled_from(["heat", "water", "gas", "unknown-type"]),
                ).map(",".join),
                st.lists(
                    st.one_of(_cell, st.sampled_from(["heat", "water", "2026-01-01T00:00:00Z", "2026-01-01", "MP-1"])),
                    max_size=8,
                ).map(",".join),
            ),
            max_size=8,
        ),
    ).map(lambda t: "\n".join([t[0], *t[1]]).encode()),
    st.binary(max_size=300),
)


@pytest.fixture(scope="module")
def operator_headers(module_hub):
    return {**module_hub.headers(module_hub.tenant(), "operator"), "Content-Type": "text/csv"}


@given(body=_meter_csv)
def test_meter_csv_import_answers_200_or_a_4xx_naming_the_problem(client, operator_headers, body):
    r = client.post("/api/v1/meters/import", content=body, headers=operator_headers)
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
    event(f"HTTP {r.status_code}")
    if r.status_code != 200:
        error = r.json()["error"]
        assert error["code"] and error["message"]
