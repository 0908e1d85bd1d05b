"""EN 13757-3 VIF/VIFE tables (docs/protocol.md §8.2) as data: code -> (quantity, scale, kind).

``scale`` is an exact :class:`fractions.Fraction` that turns the transmitted number into the
canonical unit of the quantity (:mod:`omshub.codec.units`); ``kind`` says how the data field is
read: ``num`` (signed type B / BCD / real), ``uint`` (types C/D: identifiers, bit fields),
``date`` / ``datetime`` (types G, F, I, J by data field), ``raw`` (kept as hex).
Built once at import; :mod:`omshub.codec.headers` caches the per-header result.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple


class VifEntry(NamedTuple):
    quantity: str
    scale: Fraction
    kind: str  # "num" | "uint" | "date" | "datetime" | "raw"


def _p10(n: int) -> Fraction:
    return Fraction(10) ** n


_ONE = Fraction(1)
_KWH_PER_J = Fraction(1, 3_600_000)
_SECONDS = (Fraction(1), Fraction(60), Fraction(3600), Fraction(86400))  # nn = s, min, h, d
_HOURS_DAYS = (Fraction(3600), Fraction(86400))
_FT3 = Fraction(28316846592, 10**12)
_MCAL_KWH = Fraction(1163, 1000)  # 1 Mcal (IT) = 4.1868 MJ = 1.163 kWh
_HCA_FACTOR = Fraction(1, 4096)  # exmbus: HCA rating factors in units of 2^-12 [S]


def _primary() -> dict[int, VifEntry]:
    t: dict[int, VifEntry] = {}
    for n in range(8):
        t[0x00 + n] = VifEntry("energy", _p10(n - 6), "num")  # 10^(n-3) Wh
        t[0x08 + n] = VifEntry("energy", _p10(n) * _KWH_PER_J, "num")  # 10^n J
        t[0x10 + n] = VifEntry("volume", _p10(n - 6), "num")
        t[0x18 + n] = VifEntry("mass", _p10(n - 3), "num")
        t[0x28 + n] = VifEntry("power", _p10(n - 6), "num")  # 10^(n-3) W
        t[0x30 + n] = VifEntry("power", _p10(n) * _KWH_PER_J, "num")  # 10^n J/h
        t[0x38 + n] = VifEntry("volume_flow", _p10(n - 6), "num")
        t[0x40 + n] = VifEntry("volume_flow", _p10(n - 7) * 60, "num")  # m3/min
        t[0x48 + n] = VifEntry("volume_flow", _p10(n - 9) * 3600, "num")  # m3/s
        t[0x50 + n] = VifEntry("mass_flow", _p10(n - 3), "num")
    for n in range(4):
        t[0x20 + n] = VifEntry("on_time", _SECONDS[n], "num")
        t[0x24 + n] = VifEntry("operating_time", _SECONDS[n], "num")
        t[0x58 + n] = VifEntry("flow_temperature", _p10(n - 3), "num")
        t[0x5C + n] = VifEntry("return_temperature", _p10(n - 3), "num")
        t[0x60 + n] = VifEntry("temperature_difference", _p10(n - 3), "num")
        t[0x64 + n] = VifEntry("external_temperature", _p10(n - 3), "num")
        t[0x68 + n] = VifEntry("pressure", _p10(n - 3), "num")
        t[0x70 + n] = VifEntry("averaging_duration", _SECONDS[n], "num")
        t[0x74 + n] = VifEntry("actuality_duration", _SECONDS[n], "num")
    t[0x6C] = VifEntry("date", _ONE, "date")
    t[0x6D] = VifEntry("datetime", _ONE, "datetime")
    t[0x6E] = VifEntry("hca", _ONE, "num")
    t[0x78] = VifEntry("fabrication_number", _ONE, "uint")
    t[0x79] = VifEntry("enhanced_identification", _ONE, "uint")
    t[0x7A] = VifEntry("bus_address", _ONE, "uint")
    t[0x7F] = VifEntry("manufacturer_specific", _ONE, "raw")
    # 0x6F (third table), 0x7B/0x7D without extension bit, 0x7E (readout request): not in the
    # primary table -> decoded as "unknown" by the caller.
    return t


def _fb() -> dict[int, VifEntry]:
    t: dict[int, VifEntry] = {}
    for n in range(2):
        t[0x00 + n] = VifEntry("energy", _p10(n - 1) * 1000, "num")  # 10^(n-1) MWh
        t[0x02 + n] = VifEntry("reactive_energy", _p10(n), "num")
        t[0x04 + n] = VifEntry("apparent_energy", _p10(n), "num")
        t[0x08 + n] = VifEntry("energy", _p10(n - 1) * 1_000_000_000 * _KWH_PER_J, "num")  # GJ
        t[0x10 + n] = VifEntry("volume", _p10(n + 2), "num")
        t[0x18 + n] = VifEntry("mass", _p10(n + 2) * 1000, "num")  # 10^(n+2) t
        t[0x1A + n] = VifEntry("relative_humidity", _p10(n - 1), "num")
        t[0x28 + n] = VifEntry("power", _p10(n - 1) * 1000, "num")  # 10^(n-1) MW
        t[0x30 + n] = VifEntry("power", _p10(n - 1) * 1_000_000 / 3600, "num")  # GJ/h -> kW
    for n in range(4):
        t[0x0C + n] = VifEntry("energy", _p10(n - 1) * _MCAL_KWH, "num")
        t[0x14 + n] = VifEntry("reactive_power", _p10(n - 3), "num")
        t[0x2C + n] = VifEntry("frequency", _p10(n - 3), "num")
        t[0x34 + n] = VifEntry("apparent_power", _p10(n - 3), "num")
        t[0x74 + n] = VifEntry("temperature_limit", _p10(n - 3), "num")
    for n in range(8):
        t[0x78 + n] = VifEntry("cumulative_max_power", _p10(n - 6), "num")  # 10^(n-3) W
    t[0x20] = VifEntry("volume", _FT3, "num")
    t[0x21] = VifEntry("volume", _FT3 / 10, "num")
    t[0x2A] = VifEntry("phase_u_u", _ONE, "num")
    t[0x2B] = VifEntry("phase_u_i", _ONE, "num")
    for code, name in zip(range(0x68, 0x6F), ("k", "kq", "kc", "kcr", "kch", "kt", "kd"), strict=False):
        t[code] = VifEntry("rating_factor_" + name, _HCA_FACTOR, "num")
    return t


def _fd() -> dict[int, VifEntry]:
    t: dict[int, VifEntry] = {}
    for n in range(4):
        t[0x00 + n] = VifEntry("credit", _p10(n - 3), "num")
        t[0x04 + n] = VifEntry("debit", _p10(n - 3), "num")
        t[0x24 + n] = VifEntry("storage_interval", _SECONDS[n], "num")
        t[0x2C + n] = VifEntry("duration_since_last_readout", _SECONDS[n], "num")
        t[0x34 + n] = VifEntry("tariff_period", _SECONDS[n], "num")
        t[0x3C + n] = VifEntry("transmission_period", _SECONDS[n], "num")
    for n in range(1, 4):  # nn = 0 not used
        t[0x30 + n] = VifEntry("tariff_duration", _SECONDS[n], "num")
    for n in range(16):
        t[0x40 + n] = VifEntry("voltage", _p10(n - 9), "num")
        t[0x50 + n] = VifEntry("current", _p10(n - 12), "num")
    names = {
        0x08: ("access_number", "uint"),
        0x09: ("medium", "uint"),
        0x0A: ("manufacturer", "uint"),
        0x0B: ("parameter_set_id", "uint"),
        0x0C: ("model_version", "uint"),
        0x0D: ("hardware_version", "uint"),
        0x0E: ("firmware_version", "uint"),
        0x0F: ("software_version", "uint"),
        0x10: ("customer_location", "uint"),
        0x11: ("customer", "uint"),
        0x12: ("access_code_user", "uint"),
        0x13: ("access_code_operator", "uint"),
        0x14: ("access_code_system_operator", "uint"),
        0x15: ("access_code_developer", "uint"),
        0x16: ("password", "uint"),
        0x17: ("error_flags", "uint"),
        0x18: ("error_mask", "uint"),
        0x19: ("security_key", "raw"),
        0x1A: ("digital_output", "uint"),
        0x1B: ("digital_input", "uint"),
        0x1C: ("baud_rate", "uint"),
        0x1D: ("response_delay_time", "uint"),
        0x1E: ("retry", "uint"),
        0x1F: ("remote_control", "uint"),
        0x20: ("first_storage_number", "uint"),
        0x21: ("last_storage_number", "uint"),
        0x22: ("storage_block_size", "uint"),
        0x23: ("tariff_subunit_descriptor", "uint"),
        0x2A: ("operator_specific_data", "uint"),
        0x2B: ("time_point_second", "num"),
        0x30: ("tariff_start", "datetime"),
        0x3A: ("dimensionless", "num"),
        0x3B: ("wmbus_container", "raw"),
        0x60: ("reset_counter", "uint"),
        0x61: ("cumulation_counter", "uint"),
        0x62: ("control_signal", "uint"),
        0x63: ("day_of_week", "uint"),
        0x64: ("week_number", "uint"),
        0x65: ("day_change_time", "uint"),
        0x66: ("parameter_activation_state", "uint"),
        0x67: ("special_supplier_information", "uint"),
        0x70: ("battery_change_datetime", "datetime"),
        0x71: ("rf_level", "num"),
        0x72: ("daylight_saving", "raw"),
        0x73: ("listening_window", "raw"),
        0x75: ("meter_stop_count", "uint"),
        0x76: ("manufacturer_container", "raw"),
    }
    for code, (name, kind) in names.items():
        t[code] = VifEntry(name, _ONE, kind)
    t[0x28] = VifEntry("storage_interval_months", _ONE, "num")
    t[0x29] = VifEntry("storage_interval_years", _ONE, "num")
    t[0x38] = VifEntry("tariff_period_months", _ONE, "num")
    t[0x39] = VifEntry("tariff_period_years", _ONE, "num")
    for n, (suffix, scale) in enumerate(
        (("", _HOURS_DAYS[0]), ("", _HOURS_DAYS[1]), ("_months", _ONE), ("_years", _ONE))
    ):
        t[0x68 + n] = VifEntry("duration_since_last_cumulation" + suffix, scale, "num")
        t[0x6C + n] = VifEntry("battery_operating_time" + suffix, scale, "num")
    t[0x74] = VifEntry("remaining_battery_life", Fraction(86400), "num")  # sent in days
    return t


PRIMARY: dict[int, VifEntry] = _primary()
FB: dict[int, VifEntry] = _fb()
FD: dict[int, VifEntry] = _fd()
UNKNOWN = VifEntry("unknown", _ONE, "num")

# Combinable VIFEs that only add a qualifier (docs/protocol.md §8.2).
QUALIFIER_VIFE: dict[int, str] = {
    0x12: "average",
    0x13: "inverse_compact_profile",
    0x14: "relative_deviation",
    0x1D: "standard_conform",
    0x1E: "compact_profile_with_registers",
    0x1F: "compact_profile",
    0x28: "increment_per_input_pulse_0",
    0x29: "increment_per_input_pulse_1",
    0x2A: "increment_per_output_pulse_0",
    0x2B: "increment_per_output_pulse_1",
    0x39: "start_of",
    0x3A: "uncorrected",
    0x3B: "forward",
    0x3C: "backward",
    0x3E: "base_conditions",
    0x40: "lower_limit",
    0x48: "upper_limit",
    0x68: "during_lower_limit_exceed",
    0x6C: "during_upper_limit_exceed",
    0x69: "leakage",
    0x6D: "overflow",
    0x7E: "future_value",
}
# VIFEs whose data is a profile/container: LVAR kept as raw bytes.
PROFILE_VIFES = frozenset({0x13, 0x1E, 0x1F})

# Record error codes (VIFE 00-0F, 15-1C in uplink): the record has no valid value.
RECORD_ERRORS: dict[int, str] = {
    0x01: "too_many_difes",
    0x02: "storage_not_implemented",
    0x03: "subunit_not_implemented",
    0x04: "tariff_not_implemented",
    0x05: "function_not_implemented",
    0x06: "data_class_not_implemented",
    0x07: "data_size_not_implemented",
    0x08: "reserved_error_08",
    0x09: "reserved_error_09",
    0x0A: "reserved_error_0a",
    0x0B: "too_many_vifes",
    0x0C: "illegal_vif_group",
    0x0D: "illegal_vif_exponent",
    0x0E: "vif_dif_mismatch",
    0x0F: "unimplemented_action",
    0x15: "no_data_available",
    0x16: "data_overflow",
    0x17: "data_underflow",
    0x18: "data_error",
    0x19: "reserved_error_19",
    0x1A: "reserved_error_1a",
    0x1B: "reserved_error_1b",
    0x1C: "premature_end_of_record",
}

# VIFE 20-27: per time unit. Rates of volume/energy/mass become flow/power/mass flow.
PER_TIME: dict[int, tuple[str, str, Fraction | None]] = {
    0x20: ("per_second", "s", Fraction(3600)),
    0x21: ("per_minute", "min", Fraction(60)),
    0x22: ("per_hour", "h", Fraction(1)),
    0x23: ("per_day", "d", None),
    0x24: ("per_week", "week", None),
    0x25: ("per_month", "month", None),
    0x26: ("per_year", "year", None),
    0x27: ("per_revolution", "rev", None),
}
RATE_OF = {"volume": "volume_flow", "energy": "power", "mass": "mass_flow"}

# VIFE 2C-35: per unit; 36-38: multiplied by.
PER_UNIT: dict[int, tuple[str, str]] = {
    0x2C: ("per_litre", "/l"),
    0x2D: ("per_m3", "/m3"),
    0x2E: ("per_kg", "/kg"),
    0x2F: ("per_K", "/K"),
    0x30: ("per_kWh", "/kWh"),
    0x31: ("per_GJ", "/GJ"),
    0x32: ("per_kW", "/kW"),
    0x33: ("per_K_l", "/(K·l)"),
    0x34: ("per_V", "/V"),
    0x35: ("per_A", "/A"),
    0x36: ("times_s", "·s"),
    0x37: ("times_s_per_V", "·s/V"),
    0x38: ("times_s_per_A", "·s/A"),
}

# Second-level combinable table after VIFE 0x7C ("FC" table, EN 13757-3:2018) [S]: phases.
FC_PHASES: dict[int, str] = {
    0x01: "phase_L1",
    0x02: "phase_L2",
    0x03: "phase_L3",
    0x04: "phase_N",
    0x05: "phase_L1_L2",
    0x06: "phase_L2_L3",
    0x07: "phase_L3_L1",
}
