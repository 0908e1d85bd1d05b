"""Register arithmetic: which cumulative register a meter has and its current value in a decoded
telegram (docs/formats.md). Consumption is a difference of these registers."""

from __future__ import annotations

# quantity -> canonical unit (omshub.codec.units)
CUMULATIVE_UNITS = {"energy": "kWh", "volume": "m3", "hca": "HCA"}
_BY_DEVICE_TYPE = {
    "heat": "energy",
    "heat_inlet": "energy",
    "heat_cooling": "energy",
    "cooling": "energy",
    "cooling_inlet": "energy",
    "electricity": "energy",
    "steam": "energy",
    "water": "volume",
    "warm_water": "volume",
    "hot_water": "volume",
    "cold_water": "volume",
    "dual_register_water": "volume",
    "waste_water": "volume",
    "gas": "volume",
    "oil": "volume",
    "heat_cost_allocator": "hca",
}


def cumulative_quantity(device_type: str | None) -> str | None:
    """The register whose difference is consumption for this device type (None: unknown)."""
    return _BY_DEVICE_TYPE.get((device_type or "").lower())


def register_value(data: dict | None, quantity: str) -> float | None:
    """The current (storage 0, tariff 0, subunit 0, instantaneous) value of `quantity` in a
    decoded telegram, or None when absent or not a number."""
    return registers(data, (quantity,)).get(quantity)


def registers(data: dict | None, quantities=CUMULATIVE_UNITS) -> dict[str, float]:
    """{quantity: register_value(data, quantity)} of those `quantities` present, in one pass over
    the records (the first current, numeric record of a quantity counts)."""
    out: dict[str, float] = {}
    if not isinstance(data, dict):
        return out
    for rec in data.get("records") or ():
        if type(rec) is not dict:
            continue
        quantity = rec.get("quantity")
        if (
            type(quantity) is str
            and quantity in quantities
            and quantity not in out
            and not rec.get("storage")
            and not rec.get("tariff")
            and not rec.get("subunit")
            and rec.get("function", "instantaneous") == "instantaneous"
        ):
            value = rec.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[quantity] = float(value)
    return out
