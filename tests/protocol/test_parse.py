"""Parsing the uplink envelope (docs/formats.md §2) without a head-end: what the gateway builds
parses back to the same telegrams, in CBOR and in JSON; every way an uplink is refused as a whole
(UplinkRejected with status and code) and every way a single telegram is refused (listed in
`rejected`); and on arbitrary bytes the parser raises nothing but UplinkRejected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import cbor2
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.protocol.envelope import (
    MAX_BODY,
    MAX_TELEGRAMS,
    Entry,
    UplinkRejected,
    build_envelope,
    content_hash,
    parse_body,
    parse_uplink,
)
from omshub.protocol.topics import LINK_MODE_BY_CODE, LINK_MODE_CODES, LINK_MODES

CBOR, JSON = "application/cbor", "application/json"
FRAME = bytes.fromhex("2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493B2A8B013EC4A6F6D3529B520EDFF0EA6D")


@dataclass
class Tel:
    raw: bytes
    rx_time: float
    rssi: int | None
    link_mode: str


TELEGRAMS = [
    Tel(FRAME, 1_750_000_000.9, -71, "T1"),
    Tel(FRAME[:20], 1_750_000_030, None, "C1"),
    Tel(bytes(range(200)), 1_750_000_100, -120, "unknown"),
    Tel(FRAME + b"\x00" * 400, 1_750_000_100, 5, "N"),
]


def _cbor(env: dict) -> bytes:
    return cbor2.dumps(env)


def _env(**extra) -> dict:
    return {"v": 1, "gw": "GW-1", "seq": 3, "cfg": 0, "cred": "secret", **extra}


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("encoding", ["cbor", "json"])
def test_build_then_parse_gives_the_telegrams_back(encoding):
    body = build_envelope(
        serial="GW-1",
        seq=7,
        cfg=2,
        telegrams=TELEGRAMS,
        status={"spool": 4, "firmware": "x"},
        cfg_error={"version": 3, "message": "bad"},
        cred="c-1",
        encoding=encoding,
    )
    up = parse_uplink(body, f"application/{encoding}")
    assert (up.serial, up.seq, up.cfg, up.credential, up.has_cred) == ("GW-1", 7, 2, "c-1", True)
    assert up.cfg_error == {"version": 3, "message": "bad"} and up.status == {"spool": 4, "firmware": "x"}
    assert up.rejected == []
    assert up.entries == [Entry(i, t.raw, int(t.rx_time), t.link_mode, t.rssi) for i, t in enumerate(TELEGRAMS)]
    assert up.entries[0].frame == FRAME and up.entries[0].position == 0


def test_cbor_and_json_forms_of_one_batch_are_the_same_uplink():
    hashes = set()
    for encoding in ("cbor", "json"):
        up = parse_uplink(
            build_envelope(serial="GW-1", seq=1, cfg=0, telegrams=TELEGRAMS[:2], encoding=encoding),
            f"application/{encoding}",
            credential="bearer",
        )
        assert up.credential == "bearer" and not up.has_cred
        hashes.add(content_hash(up.entries, up.rejected))
    assert len(hashes) == 1


def test_transport_credential_wins_and_status_only_uplink():
    up = parse_uplink(build_envelope(serial="GW-1", seq=9, cfg=0, cred="in-body"), CBOR, credential="header")
    assert up.credential == "header" and up.has_cred and up.entries == [] and up.status == {}


def test_link_modes_have_one_meaning():
    assert LINK_MODES == ("T1", "C1", "S1", "T2", "C2", "S2", "N")
    assert ("unknown", *LINK_MODES) == LINK_MODE_BY_CODE
    assert all(LINK_MODE_BY_CODE[code] == name for name, code in LINK_MODE_CODES.items())


def test_content_hash_ignores_status_and_credential():
    a = parse_uplink(_cbor(_env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}], status={"spool": 1})), CBOR)
    b = parse_uplink(_cbor(_env(cred="other", telegrams=[{"rx": 1, "mode": 1, "raw": FRAME}])), CBOR)
    assert content_hash(a.entries, a.rejected) == content_hash(b.entries, b.rejected)


def test_text_times_and_nul_in_reported_text():
    up = parse_uplink(
        orjson.dumps(
            _env(
                telegrams=[{"rx": "2026-01-01T00:00:00Z", "mode": "t1", "hex": FRAME.hex()}],
                status={"firmware": "a\x00b"},
                cfg_error={"version": 1, "message": "x\x00"},
            )
        ),
        JSON,
    )
    assert up.entries[0].rx == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert up.entries[0].mode == "T1" and up.status["firmware"] == "a\ufffdb" and up.cfg_error["message"] == "x\ufffd"
    tagged = parse_uplink(
        _cbor(_env(telegrams=[{"rx": datetime(2026, 1, 1, tzinfo=UTC), "mode": "T1", "raw": FRAME}])), CBOR
    )
    assert tagged.entries[0].rx == up.entries[0].rx


# --------------------------------------------------------------------------- whole uplink refused
def _batch(**over) -> dict:
    batch = {"data": FRAME * 2, "len": [len(FRAME)] * 2, "dt": [0, 5], "rssi": b"\xb9\x80", "mode": 1}
    batch.update(over)
    return batch


REFUSED = [
    ("too large", b"\xa0" * (MAX_BODY + 1), CBOR, 413, "payload_too_large", "exceeds"),
    ("not CBOR", b"\xff\xff", CBOR, 400, "invalid_cbor", "not valid CBOR"),
    ("not JSON", b"{nope", JSON, 400, "invalid_json", "not valid JSON"),
    ("media type", b"{}", "text/plain", 415, "unsupported_media_type", "content type"),
    ("bignum", _cbor({"v": 1, "seq": 1 << 70}), CBOR, 422, "invalid_uplink", "beyond 64 bits"),
    ("not a map", _cbor([1, 2]), CBOR, 422, "invalid_uplink", "must be a map"),
    ("version", _cbor(_env(v=2)), CBOR, 422, "invalid_uplink", "v must be 1"),
    ("serial", _cbor(_env(gw="bad serial")), CBOR, 422, "invalid_uplink", "gw must be"),
    ("serial type", _cbor(_env(gw=5)), CBOR, 422, "invalid_uplink", "gw must be"),
    ("cred type", _cbor(_env(cred=5)), CBOR, 422, "invalid_uplink", "cred must be text"),
    ("no cred", _cbor({k: v for k, v in _env().items() if k != "cred"}), CBOR, 401, "unauthorized", "missing"),
    ("empty cred", _cbor(_env(cred="")), CBOR, 401, "unauthorized", "missing"),
    ("seq", _cbor(_env(seq=-1)), CBOR, 422, "invalid_uplink", "seq must be"),
    ("seq bool", _cbor(_env(seq=True)), CBOR, 422, "invalid_uplink", "seq must be"),
    ("cfg", _cbor(_env(cfg=1 << 31)), CBOR, 422, "invalid_uplink", "cfg must be"),
    ("cfg_error map", _cbor(_env(cfg_error=3)), CBOR, 422, "invalid_uplink", "cfg_error must be a map"),
    ("cfg_error version", _cbor(_env(cfg_error={"message": "x"})), CBOR, 422, "invalid_uplink", "cfg_error.version"),
    (
        "cfg_error message",
        _cbor(_env(cfg_error={"version": 1, "message": 2})),
        CBOR,
        422,
        "invalid_uplink",
        "cfg_error.message",
    ),
    ("status map", _cbor(_env(status=[1])), CBOR, 422, "invalid_uplink", "status must be a map"),
    ("status type", _cbor(_env(status={"spool": "x"})), CBOR, 422, "invalid_uplink", "status.spool must be int"),
    ("status bool", _cbor(_env(status={"heard": True})), CBOR, 422, "invalid_uplink", "status.heard"),
    ("status range", _cbor(_env(status={"uptime_s": 1 << 63})), CBOR, 422, "invalid_uplink", "status.uptime_s"),
    ("status text", _cbor(_env(status={"firmware": "x" * 201})), CBOR, 422, "invalid_uplink", "text (up to 200)"),
    ("battery", _cbor(_env(status={"battery_pct": 101})), CBOR, 422, "invalid_uplink", "0-100"),
    ("both forms", _cbor(_env(t0=0, batch=_batch(), telegrams=[{}])), CBOR, 422, "invalid_uplink", "either"),
    ("batch map", _cbor(_env(t0=0, batch=[1])), CBOR, 422, "invalid_uplink", "batch must be a map"),
    ("t0", _cbor(_env(batch=_batch())), CBOR, 422, "invalid_uplink", "t0 must be"),
    ("data", _cbor(_env(t0=0, batch=_batch(data=5))), CBOR, 422, "invalid_uplink", "batch.data must be bytes"),
    (
        "data hex",
        orjson.dumps(_env(t0=0, batch=_batch(data="zz", rssi=None))),
        JSON,
        422,
        "invalid_uplink",
        "batch.data must be bytes",
    ),
    ("len array", _cbor(_env(t0=0, batch=_batch(len=3))), CBOR, 422, "invalid_uplink", "must be arrays"),
    (
        "too many",
        _cbor(_env(t0=0, batch=_batch(len=[0] * (MAX_TELEGRAMS + 1)))),
        CBOR,
        422,
        "invalid_uplink",
        "exceed the limit",
    ),
    ("dt count", _cbor(_env(t0=0, batch=_batch(dt=[0]))), CBOR, 422, "invalid_uplink", "batch.dt has 1"),
    ("len entry", _cbor(_env(t0=0, batch=_batch(len=[-1, 1]))), CBOR, 422, "invalid_uplink", "batch.len[0]"),
    ("len sum", _cbor(_env(t0=0, batch=_batch(len=[1, 1]))), CBOR, 422, "invalid_uplink", "sums to 2"),
    ("rssi count", _cbor(_env(t0=0, batch=_batch(rssi=b"\x01"))), CBOR, 422, "invalid_uplink", "batch.rssi has 1"),
    ("rssi type", _cbor(_env(t0=0, batch=_batch(rssi=5))), CBOR, 422, "invalid_uplink", "signed bytes"),
    ("mode count", _cbor(_env(t0=0, batch=_batch(mode=b"\x01"))), CBOR, 422, "invalid_uplink", "batch.mode has 1"),
    ("mode code", _cbor(_env(t0=0, batch=_batch(mode=9))), CBOR, 422, "invalid_uplink", "not a link mode code"),
    ("telegrams array", _cbor(_env(telegrams={"a": 1})), CBOR, 422, "invalid_uplink", "array of maps"),
    (
        "telegrams many",
        _cbor(_env(telegrams=[{}] * (MAX_TELEGRAMS + 1))),
        CBOR,
        422,
        "invalid_uplink",
        "exceed the limit",
    ),
]


@pytest.mark.parametrize(
    "body, content_type, status, code, words", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_every_refusal_names_its_reason(body, content_type, status, code, words):
    with pytest.raises(UplinkRejected) as info:
        parse_uplink(body, content_type)
    assert (info.value.status, info.value.code) == (status, code) and words in info.value.message
    assert info.value.to_dict() == {"error": {"code": code, "message": info.value.message}}


def test_parse_body_takes_cbor_by_default_and_json_by_type():
    assert parse_body(_cbor({"a": 1}), "") == {"a": 1}
    assert parse_body(_cbor({"a": 1}), "application/octet-stream") == {"a": 1}
    assert parse_body(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}


# --------------------------------------------------------------------------- single telegrams refused
SINGLE = [
    (_env(t0=0, batch=_batch(dt=[0, -1])), "batch.dt[1] must be"),
    (_env(t0=0, batch=_batch(dt=[0, True])), "batch.dt[1] must be"),
    (_env(t0=0, batch={"data": FRAME + b"123", "len": [len(FRAME), 3], "dt": [0, 0], "mode": 1}), "frame of 3 bytes"),
    (_env(t0=0, batch=_batch(mode=b"\x01\x09")), "batch.mode[1] is not a link mode"),
    (_env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, 7]), "telegrams[1]: must be a map"),
    (
        _env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, {"rx": 1, "mode": "T1", "hex": "zz"}]),
        "hex is not hex",
    ),
    (_env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, {"rx": 1, "mode": "T1"}]), "needs the frame"),
    (
        _env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, {"rx": 1, "mode": "T1", "hex": "00" * 9}]),
        "frame of 9 bytes",
    ),
    (
        _env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, {"rx": "yesterday", "mode": "T1", "raw": FRAME}]),
        "is not a time",
    ),
    (
        _env(
            telegrams=[
                {"rx": 1, "mode": "T1", "hex": FRAME.hex()},
                {"rx": "2026-01-01T00:00:00", "mode": "T1", "raw": FRAME},
            ]
        ),
        "is not a time",
    ),
    (
        _env(telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, {"rx": 1, "mode": "X9", "raw": FRAME}]),
        "is not a link mode",
    ),
    (
        _env(
            telegrams=[{"rx": 1, "mode": "T1", "hex": FRAME.hex()}, {"rx": 1, "mode": "T1", "raw": FRAME, "rssi": 500}]
        ),
        "not a dBm integer",
    ),
]


@pytest.mark.parametrize("envelope, words", SINGLE, ids=[s[1] for s in SINGLE])
def test_a_malformed_telegram_is_listed_the_others_kept(envelope, words):
    up = parse_uplink(_cbor(envelope), CBOR)
    assert [e.position for e in up.entries] == [0]
    assert len(up.rejected) == 1 and up.rejected[0]["index"] == 1 and words in up.rejected[0]["message"]


# --------------------------------------------------------------------------- arbitrary input
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
KEYS = st.sampled_from(["v", "gw", "seq", "cfg", "cred", "t0", "batch", "telegrams", "status", "cfg_error"])


@given(st.binary(max_size=600), st.sampled_from([CBOR, JSON, "", "text/plain"]))
def test_arbitrary_bytes_raise_only_uplink_rejected(body, content_type):
    try:
        parse_uplink(body, content_type)
    except UplinkRejected:
        pass


@given(st.dictionaries(KEYS, VALUES, max_size=10), st.booleans())
def test_arbitrary_envelopes_raise_only_uplink_rejected(envelope, as_json):
    envelope = {"v": 1, "gw": "GW-1", "cred": "c", **envelope}
    try:
        body = orjson.dumps(envelope, default=lambda b: b.hex()) if as_json else cbor2.dumps(envelope)
    except (TypeError, ValueError, orjson.JSONEncodeError):
        return  # not representable (e.g. an integer beyond 64 bits in JSON)
    try:
        up = parse_uplink(body, JSON if as_json else CBOR)
    except UplinkRejected:
        return
    assert len(up.entries) + len(up.rejected) <= MAX_TELEGRAMS
