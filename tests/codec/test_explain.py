"""`omshub decode --explain`: every byte range of a telegram with the layer and rule that read it."""

from __future__ import annotations

import json
import tomllib

import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from omshub.codec import DecodeError, FormatCache, KeyRing, drivers, encode_telegram, parse_hex
from omshub.codec.explain import explain, render
from omshub.commands.decode import register

from ._stack import HEAT_RECORDS, KAM, KEY
from .test_fuzz_stack import SEEDS

TECHEM = tomllib.loads(drivers.packaged_texts()["techem.toml"])["test"][0]["telegram"]


def _contiguous(spans, end: int) -> bool:
    pos = 0
    for span in spans:
        if span.start != pos or span.end <= span.start:
            return False
        pos = span.end
    return pos == end


def test_proprietary_payload_byte_by_byte() -> None:
    frame = parse_hex(TECHEM)
    result, error, spans = explain(frame)
    assert error is None and result is not None
    assert _contiguous(spans, len(frame))
    by_start = {s.start: (s.layer, s.rule, s.hex) for s in spans}
    assert by_start[0] == ("link", "L field", "16")
    assert by_start[10] == ("tpl", "manufacturer-specific CI A1", "a1")
    assert by_start[11] == ("kept", "not read", "00")  # undocumented: kept, with the reason
    assert by_start[14] == ("driver", "driver techem_compact_v: due_date_energy_kwh", "393000")
    assert "kept as hex in frame.proprietary" in render(result, error, spans)


def test_unknown_ci_is_kept_as_hex_with_the_reason() -> None:
    frame = parse_hex(TECHEM[:20] + "B1" + TECHEM[22:])
    result, error, spans = explain(frame)
    assert result is None and error is not None and error.code == "unknown_ci"
    assert spans[-1].layer == "kept" and spans[-1].detail == "no driver file describes this CI (unknown_ci)"
    assert spans[-1].hex == TECHEM[22:].lower()
    assert render(result, error, spans).endswith("decode error unknown_ci: unknown or unsupported CI B1 at offset 10")


def test_encrypted_records_with_and_without_the_key() -> None:
    frame = encode_telegram(KAM, HEAT_RECORDS, mode=5, key=KEY, access_number=7)
    result, error, spans = explain(frame, key=KEY)
    assert error is None and _contiguous(spans, len(frame))
    tpl = next(s for s in spans if s.layer == "tpl")
    assert "security mode 5" in tpl.detail and "decrypted, explained as plaintext below" in tpl.detail
    records = [s for s in spans if s.rule == "EN 13757-3 record"]
    assert len(records) == len(HEAT_RECORDS)
    assert records[0].detail == "energy = 12345.0 kWh"
    assert any(s.rule == "fill bytes 2F" for s in spans)
    _, error, spans = explain(frame)
    assert spans[-1].layer == "security" and spans[-1].detail.startswith("kept encrypted:")


def test_manufacturer_data_without_a_driver_is_kept() -> None:
    frame = bytes.fromhex("44" + "2D2C785634121B04" + "7A01000000" + "040601000000" + "0F0A0B0C")
    frame = bytes([len(frame)]) + frame
    result, error, spans = explain(frame)
    assert error is None
    assert [(s.rule, s.hex) for s in spans[-2:]] == [
        ("DIF 0F: manufacturer data follows", "0f"),
        ("not read", "0a0b0c"),
    ]
    assert spans[-1].detail == "kept as hex in manufacturer_data"
    assert result is not None and result["manufacturer_data"] == "0a0b0c"


def test_public_corpus_every_byte_is_explained(shared_vectors) -> None:
    lines = (shared_vectors / "wmbusmeters-public.jsonl").read_text().splitlines()
    explained = 0
    for entry in map(json.loads, lines):
        key = bytes.fromhex(entry["key"]) if entry.get("key") else None
        formats = FormatCache()
        for prior in entry.get("prior_telegrams") or ():
            explain(parse_hex(prior), key=key, formats=formats)
        try:
            frame = parse_hex(entry["telegram"])
        except DecodeError:
            continue  # not hex (the corpus has one such line)
        result, error, spans = explain(frame, key=key, formats=formats)
        assert spans, entry["telegram"]
        assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False)), entry["telegram"]
        explained += 1
    assert explained > 300


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SEEDS))), st.data())
def test_explain_never_raises(index, data) -> None:
    raw = bytearray(SEEDS[index])
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        pos = data.draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))
        if raw and data.draw(st.booleans()):
            raw[pos] = data.draw(st.integers(min_value=0, max_value=255))
        else:
            del raw[pos:]
    if data.draw(st.booleans()) and raw:
        raw[0] = len(raw) - 1 if len(raw) <= 256 else raw[0]
    result, error, spans = explain(bytes(raw), keys=KeyRing(KEY))
    assert (result is None) != (error is None)
    assert all(0 <= s.start < s.end for s in spans)
    render(result, error, spans)


@given(st.binary(max_size=120))
def test_explain_random_bytes(raw) -> None:
    result, error, spans = explain(raw)
    assert (result is None) != (error is None)
    render(result, error, spans)


def test_cli_explain() -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # keeps `decode` a sub-command
        pass

    out = CliRunner().invoke(app, ["decode", "--explain", TECHEM, "zz"])
    assert out.exit_code == 1
    assert out.output.startswith("telegram 1 (TCH 12345678, 23 bytes):\n")
    assert "driver techem_compact_v: current_period_energy_kwh" in out.output
    assert "telegram 2: invalid_hex" in out.output
