"""Every decoded_records entry of ../shared/vectors/oms-vectors.json reproduced by apl.decode_records."""

from __future__ import annotations

import json
import math

import pytest

from omshub.codec import apl
from omshub.codec.errors import DecodeError

# reference decoder names -> ours
_NAMES = {
    "fabrication_no": "fabrication_number",
    "hca_units": "hca",
    "volume_flow_ext": "volume_flow",
    "manufacturer_specific_vif": "manufacturer_specific",
    "plain_text_unit": "custom",
    "remaining_battery_life_days": "remaining_battery_life",
}
# (reference name or None, reference unit) -> factor to our canonical unit
_FACTORS = {"Wh": 0.001, "W": 0.001, "m3/s": 3600.0, "m3/min": 60.0, "s": 1, "min": 60, "h": 3600, "d": 86400}


def _vectors(shared_vectors):
    return json.loads((shared_vectors / "oms-vectors.json").read_text())


def _records_start(vector) -> int | None:
    plain = bytes.fromhex(vector["plaintext_hex"])
    if vector["mode"] == "ELL-CTR":  # 2-byte payload CRC, then the CI
        return 3 if plain[2] == 0x78 else None
    return 0


def _expected(ref: dict) -> dict:
    name = _NAMES.get(ref["desc"], ref["desc"])
    value = ref["value"]
    if name == "remaining_battery_life":
        value = value * 86400
    if isinstance(value, str):
        if value.startswith("invalid"):
            value = "ERROR"
        elif value.startswith("hex:"):
            value = "RAW"
        elif name in ("date", "datetime"):
            value = value.replace(" (DST)", "").replace(" ", "T")
    elif isinstance(value, (int, float)) and ref["unit"] in _FACTORS:
        value = value * _FACTORS[ref["unit"]]
    return {
        "quantity": name,
        "value": value,
        "storage": ref["storage"],
        "tariff": ref["tariff"],
        "subunit": ref["subunit"],
        "function": ref["function"].replace("error_state", "error"),
    }


def _compare(ours: dict, ref: dict, where: str) -> None:
    exp = _expected(ref)
    assert ours["dif_vif"] == ref["raw_record"][: len(ours["dif_vif"])], where
    for key in ("storage", "tariff", "subunit", "function"):
        assert ours[key] == exp[key], (where, key, ours, ref)
    if ours.get("of"):  # a VIFE turned the record into a count/duration/date of the quantity
        assert ours["of"] == exp["quantity"], (where, ours, ref)
        return
    if exp["quantity"] == "datetime" and ours["quantity"] in ("time", "date"):
        pass
    else:
        assert ours["quantity"] == exp["quantity"], (where, ours, ref)
    if ours.get("record_error"):
        assert ours["error_value"] is True and ours["value"] is None, where
        return
    if exp["value"] == "ERROR":
        assert ours.get("error_value") is True and ours["value"] is None and ours["raw"], where
    elif exp["value"] == "RAW" or ours["quantity"] == "manufacturer_specific":
        assert ours["value"] is None and ours["raw"], where
    elif isinstance(ours["value"], str) and ours["value"].startswith("--"):  # periodic (year 127)
        assert exp["value"].endswith(ours["value"].lstrip("-")), (where, ours, ref)
    elif isinstance(exp["value"], float) or isinstance(ours["value"], float):
        assert math.isclose(ours["value"], exp["value"], rel_tol=1e-9, abs_tol=1e-9), (where, ours, ref)
    else:
        assert ours["value"] == exp["value"], (where, ours, ref)


def test_vectors_reproduce_reference_records(shared_vectors):
    checked = 0
    for vector in _vectors(shared_vectors):
        refs = vector.get("decoded_records")
        if not isinstance(refs, list):
            continue
        start = _records_start(vector)
        if start is None:
            continue
        data = bytes.fromhex(vector["plaintext_hex"])
        stop = next((k for k, r in enumerate(refs) if "special" in r or "error" in r), len(refs))
        plain_refs = refs[:stop]
        tail = refs[stop] if stop < len(refs) else None
        if tail is not None and tail.get("special", "").startswith("manufacturer_specific"):
            records, mfr = apl.decode_records(data, start)
            assert mfr == tail["data"], vector["id"]
        elif tail is not None:  # truncated / reserved special DIF: error with the records so far
            with pytest.raises(DecodeError) as info:
                apl.decode_records(data, start)
            assert info.value.code == "invalid_record" and info.value.layer == "apl"
            records = info.value.partial["records"]
        else:
            records, mfr = apl.decode_records(data, start)
            assert mfr is None, vector["id"]
        records = [r for r in records if "derived_from" not in r]  # values taken out of a profile
        assert len(records) == len(plain_refs), vector["id"]
        for k, (ours, ref) in enumerate(zip(records, plain_refs, strict=False)):
            _compare(ours, ref, f"{vector['id']} record {k}")
            checked += 1
    assert checked > 250
