"""Helpers shared by the protocol-stack tests (vectors loader, sample meters)."""

from __future__ import annotations

import json

from tests.conftest import VECTORS

KAM = {"manufacturer": "KAM", "id": "12345678", "version": 27, "device_type_code": 4}
ELS = {"manufacturer": "ELS", "id": "87654321", "version": 0x33, "device_type_code": 3}
RADIO = {"manufacturer": "ZRI", "id": "44002802", "version": 1, "device_type_code": 0x37}
KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
OTHER_KEY = bytes.fromhex("F0E0D0C0B0A090807060504030201000")


def load_vectors() -> list[dict]:
    path = VECTORS / "oms-vectors.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text())


def vector(vector_id: str) -> dict:
    for item in load_vectors():
        if item["id"] == vector_id:
            return item
    import pytest

    pytest.skip(f"vector {vector_id} not available")


def record(quantity, unit, value, storage=0, tariff=0, subunit=0, function="instantaneous"):
    return {
        "quantity": quantity,
        "unit": unit,
        "value": value,
        "storage": storage,
        "tariff": tariff,
        "subunit": subunit,
        "function": function,
    }


HEAT_RECORDS = [
    record("energy", "kWh", 12345.0),
    record("volume", "m3", 678.912),
    record("power", "kW", 12.3),
    record("volume_flow", "m3/h", 0.456),
    record("flow_temperature", "°C", 65.4),
    record("return_temperature", "°C", 41.2),
    record("temperature_difference", "K", 24.2),
    record("datetime", "", "2026-01-15T10:30"),
    record("error_flags", "", 0),
    record("date", "", "2025-12-31", storage=1),
    record("energy", "kWh", 11000.0, storage=1),
    record("volume", "m3", 600.5, storage=1),
]
WATER_RECORDS = [record("volume", "m3", 81.0976), record("volume_flow", "m3/h", 1.715, function="maximum")]
SMALL_RECORDS = [record("energy", "kWh", 165.0)]
RECORD_SETS = [HEAT_RECORDS, WATER_RECORDS, SMALL_RECORDS]


def same_records(decoded: list[dict], given: list[dict]) -> bool:
    if len(decoded) != len(given):
        return False
    for got, want in zip(decoded, given, strict=False):
        for name, value in want.items():
            if isinstance(value, float):
                if not isinstance(got.get(name), (int, float)) or abs(got[name] - value) > 1e-9 * max(1, abs(value)):
                    return False
            elif got.get(name) != value:
                return False
    return True
