"""Fuzzing the uplink parser (docs/formats.md §2) through `handle_uplink`, the entry every transport
uses: any body is either refused as a whole with a typed 4xx error that says what is wrong, or
answered with every telegram in it accounted for (stored, a duplicate, or rejected with a reason).
Example counts come from the hypothesis profile (HYPOTHESIS_PROFILE=fuzz for the long run)."""

from __future__ import annotations

import itertools

import cbor2
import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from omshub.cloud.ingest.uplink import handle_uplink
from omshub.protocol.envelope import UplinkRejected

from .conftest import encode

_seq = itertools.count(1_000_000)
_FRAMES = [encode(f"4400{i:04d}") for i in range(4)]

# values a field may take, right and wrong
_any_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_frame = st.one_of(
    st.sampled_from(_FRAMES), st.binary(max_size=80), st.sampled_from(_FRAMES).map(lambda f: f[: len(f) // 2])
)


@st.composite
def _batch(draw):
    frames = draw(st.lists(_frame, max_size=6))
    data = b"".join(frames)
    lengths = [len(f) for f in frames]
    if draw(st.integers(0, 3)) == 0:  # disagreeing lengths, negative or odd entries
        lengths = draw(st.lists(st.one_of(st.integers(-5, 600), _any_scalar), max_size=8))
    dts = (
        list(range(len(lengths)))
        if draw(st.integers(0, 2))
        else draw(st.one_of(st.lists(st.one_of(st.integers(-10, 1 << 40), _any_scalar), max_size=8), _any_scalar))
    )
    batch = {"data": data if draw(st.integers(0, 3)) else draw(_any_scalar), "len": lengths, "dt": dts}
    if draw(st.booleans()):
        batch["rssi"] = draw(
            st.one_of(
                st.binary(min_size=len(lengths), max_size=len(lengths)),
                _any_scalar,
                st.lists(st.integers(-300, 300), max_size=8),
            )
        )
    if draw(st.booleans()):
        batch["mode"] = draw(st.one_of(st.integers(-2, 9), _any_scalar, st.binary(max_size=8)))
    return batch


@st.composite
def _telegrams(draw):
    items = []
    for _ in range(draw(st.integers(0, 5))):
        item = {}
        for name, values in (
            (
                "rx",
                st.one_of(
                    st.integers(-5, 1 << 40),
                    st.just("2026-01-01T00:00:00Z"),
                    st.just("2026-01-01T00:00:00"),
                    _any_scalar,
                ),
            ),
            ("mode", st.one_of(st.sampled_from(["T1", "C1", "x"]), _any_scalar)),
            ("rssi", st.one_of(st.integers(-250, 150), _any_scalar)),
            ("hex", st.one_of(_frame.map(bytes.hex), st.text(max_size=30), _any_scalar)),
            ("raw", st.one_of(_frame, _any_scalar)),
        ):
            if draw(st.booleans()):
                item[name] = draw(values)
        items.append(draw(st.one_of(st.just(item), _any_scalar)))
    return items


@st.composite
def _envelope(draw, serial: str):
    if draw(st.integers(0, 3)):  # mostly a sound header: the telegrams' part is what varies
        env = {"v": 1, "gw": serial, "seq": next(_seq), "cfg": 0, "t0": 1767225600}
    else:
        env = {
            "v": draw(st.one_of(st.just(1), _any_scalar)),
            "gw": draw(st.one_of(st.just(serial), _any_scalar)),
            "seq": draw(st.one_of(st.just(next(_seq)), _any_scalar)),
            "cfg": draw(st.one_of(st.just(0), _any_scalar)),
            "t0": draw(st.one_of(st.just(1767225600), st.integers(-5, 1 << 40), _any_scalar)),
        }
    if draw(st.booleans()):
        env["status"] = (
            draw(
                st.dictionaries(
                    st.sampled_from(["battery_pct", "spool", "firmware", "next_contact"]),
                    st.integers(0, 1 << 40),
                    max_size=3,
                )
            )
            if draw(st.integers(0, 3))
            else draw(st.one_of(st.dictionaries(st.text(max_size=12), _any_scalar, max_size=4), _any_scalar))
        )
    if not draw(st.integers(0, 3)):
        env["cfg_error"] = draw(
            st.one_of(st.fixed_dictionaries({"version": _any_scalar, "message": _any_scalar}), _any_scalar)
        )
    form = draw(st.sampled_from(["batch", "telegrams", "batch", "telegrams", "both", "none"]))
    if form in ("batch", "both"):
        env["batch"] = draw(_batch()) if draw(st.integers(0, 4)) else draw(_any_scalar)
    if form in ("telegrams", "both"):
        env["telegrams"] = draw(_telegrams()) if draw(st.integers(0, 4)) else draw(_any_scalar)
    return env


def _check(db, body: bytes, content_type: str, credential: str, sent: dict | None) -> None:
    try:
        answer = handle_uplink(db, body, content_type=content_type, transport="https", credential=credential)
    except UplinkRejected as exc:
        assert 400 <= exc.status < 500 and exc.code and exc.message
        event(f"refused: {exc.code}")
        return
    # accepted: every telegram of the uplink is accounted for, none silently dropped
    assert isinstance(sent, dict)
    batch, telegrams = sent.get("batch"), sent.get("telegrams")
    count = (
        len(batch["len"])
        if isinstance(batch, dict) and batch.get("len")
        else len(telegrams)
        if isinstance(telegrams, list)
        else 0
    )
    assert answer["stored"] + answer["duplicates"] + len(answer["rejected"]) == count
    assert all(r["message"] for r in answer["rejected"])
    event("accepted, with telegrams" if count else "accepted")


@pytest.fixture(scope="module")
def gw(module_hub):
    return module_hub.gateway(module_hub.tenant())


@given(data=st.data())
def test_any_envelope_is_refused_with_a_reason_or_fully_accounted_for(db, gw, data):
    env = data.draw(_envelope(gw.serial))
    as_json = data.draw(st.booleans())
    if as_json:
        try:
            body = orjson.dumps(env, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # bytes have no JSON form: the CBOR encoding then
            as_json = False
    if not as_json:
        body = cbor2.dumps(env)
    _check(db, body, "application/json" if as_json else "application/cbor", gw.credential, env)


@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        ["application/cbor", "application/json", "application/octet-stream", "", "text/plain", "application/cbor; x=1"]
    ),
)
def test_any_bytes_are_refused_with_a_reason_or_accepted(db, gw, body, content_type):
    _check(db, body, content_type, gw.credential, None)
