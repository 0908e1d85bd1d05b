"""Quantities the codec produces and their canonical units.

Every decoded record carries a ``quantity`` (snake_case) and its value in the canonical unit of
that quantity, whatever unit the meter sent (the VIF tables in :mod:`omshub.codec.vif` map to
these). This table is data: ``docs/formats.md`` §1.1 is generated from :func:`markdown_table`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

# quantity -> (canonical unit, value type, description)
# value type: "float" (always a float), "number" (int when the VIF scale is integral, else float),
# "int", "date" (YYYY-MM-DD), "datetime" (YYYY-MM-DDTHH:MM[:SS]), "time" (HH:MM:SS),
# "text"/"number" (LVAR text gives a string), "raw" (value null, bytes kept as "raw" hex),
# "hex" (the value is the bytes as hex text).
QUANTITIES: dict[str, tuple[str, str, str]] = {
    # --- primary VIF table
    "energy": ("kWh", "float", "energy (from Wh, J, MWh, GJ, Mcal)"),
    "volume": ("m3", "float", "volume (from l, m3, ft3)"),
    "mass": ("kg", "float", "mass (from g, kg, t)"),
    "on_time": ("s", "number", "on time"),
    "operating_time": ("s", "number", "operating time"),
    "power": ("kW", "float", "power (from W, J/h, MW, GJ/h)"),
    "volume_flow": ("m3/h", "float", "volume flow (from l/h, m3/min, m3/s)"),
    "mass_flow": ("kg/h", "float", "mass flow"),
    "flow_temperature": ("°C", "float", "flow temperature"),
    "return_temperature": ("°C", "float", "return temperature"),
    "temperature_difference": ("K", "float", "temperature difference"),
    "external_temperature": ("°C", "float", "external / room temperature"),
    "pressure": ("bar", "float", "pressure"),
    "date": ("", "date", "date (type G)"),
    "datetime": ("", "datetime", "date and time (type F, or I with seconds)"),
    "time": ("", "time", "time of day (type J)"),
    "hca": ("HCA", "number", "heat cost allocator units"),
    "averaging_duration": ("s", "number", "averaging duration"),
    "actuality_duration": ("s", "number", "actuality duration (age of the value)"),
    "fabrication_number": ("", "number", "fabrication number (number or text)"),
    "enhanced_identification": ("", "number", "enhanced identification"),
    "bus_address": ("", "int", "bus address"),
    "custom": ("", "number", "value with a plain-text unit (see unit_text)"),
    "manufacturer_specific": ("", "raw", "manufacturer-specific VIF (value kept as raw hex)"),
    "unknown": ("", "number", "reserved/unknown VIF (value unscaled, raw hex kept)"),
    "undecoded": ("", "hex", "bytes the record grammar could not place, with their `reason` (§1.2)"),
    # --- first extension table (FB)
    "reactive_energy": ("kvarh", "float", "reactive energy"),
    "apparent_energy": ("kVAh", "float", "apparent energy"),
    "reactive_power": ("kvar", "float", "reactive power"),
    "apparent_power": ("kVA", "float", "apparent power"),
    "relative_humidity": ("%", "float", "relative humidity"),
    "phase_u_u": ("°", "float", "phase voltage to voltage"),
    "phase_u_i": ("°", "float", "phase voltage to current"),
    "frequency": ("Hz", "float", "frequency"),
    "rating_factor_k": ("", "float", "HCA resulting rating factor K (2^-12 scale)"),
    "rating_factor_kq": ("", "float", "HCA thermal output rating factor Kq (2^-12 scale)"),
    "rating_factor_kc": ("", "float", "HCA rating factor Kc (2^-12 scale)"),
    "rating_factor_kcr": ("", "float", "HCA rating factor Kcr (2^-12 scale)"),
    "rating_factor_kch": ("", "float", "HCA rating factor Kch (2^-12 scale)"),
    "rating_factor_kt": ("", "float", "HCA rating factor Kt (2^-12 scale)"),
    "rating_factor_kd": ("", "float", "HCA rating factor KD (2^-12 scale)"),
    "temperature_limit": ("°C", "float", "cold / warm temperature limit"),
    "cumulative_max_power": ("kW", "float", "cumulative count max power"),
    # --- second extension table (FD)
    "credit": ("currency", "float", "credit (currency units)"),
    "debit": ("currency", "float", "debit (currency units)"),
    "access_number": ("", "int", "unique message identification / access number"),
    "medium": ("", "int", "device type (medium)"),
    "manufacturer": ("", "int", "manufacturer code"),
    "parameter_set_id": ("", "number", "parameter set identification"),
    "model_version": ("", "number", "model / version"),
    "hardware_version": ("", "number", "hardware version"),
    "firmware_version": ("", "number", "metrology (firmware) version"),
    "software_version": ("", "number", "other software version"),
    "customer_location": ("", "number", "customer location"),
    "customer": ("", "number", "customer"),
    "access_code_user": ("", "number", "access code user"),
    "access_code_operator": ("", "number", "access code operator"),
    "access_code_system_operator": ("", "number", "access code system operator"),
    "access_code_developer": ("", "number", "access code developer"),
    "password": ("", "number", "password"),
    "error_flags": ("", "int", "error flags (bit field, device specific)"),
    "error_mask": ("", "int", "error mask"),
    "security_key": ("", "raw", "security key"),
    "digital_output": ("", "int", "digital output (bit field)"),
    "digital_input": ("", "int", "digital input (bit field)"),
    "baud_rate": ("Bd", "int", "baud rate"),
    "response_delay_time": ("bit times", "int", "response delay time"),
    "retry": ("", "int", "retry"),
    "remote_control": ("", "int", "remote control (device specific)"),
    "first_storage_number": ("", "int", "first storage number for cyclic storage"),
    "last_storage_number": ("", "int", "last storage number for cyclic storage"),
    "storage_block_size": ("", "int", "size of storage block"),
    "tariff_subunit_descriptor": ("", "int", "descriptor for tariff and subunit"),
    "storage_interval": ("s", "number", "storage interval"),
    "storage_interval_months": ("month", "number", "storage interval in months"),
    "storage_interval_years": ("year", "number", "storage interval in years"),
    "operator_specific_data": ("", "number", "operator specific data"),
    "time_point_second": ("s", "number", "time point, second"),
    "duration_since_last_readout": ("s", "number", "duration since last readout"),
    "tariff_start": ("", "datetime", "start (date/time) of tariff"),
    "tariff_duration": ("s", "number", "duration of tariff"),
    "tariff_period": ("s", "number", "period of tariff"),
    "tariff_period_months": ("month", "number", "period of tariff in months"),
    "tariff_period_years": ("year", "number", "period of tariff in years"),
    "dimensionless": ("", "number", "dimensionless (counters, pulses)"),
    "wmbus_container": ("", "raw", "wireless M-Bus data container (a complete frame)"),
    "transmission_period": ("s", "number", "period of nominal data transmissions"),
    "voltage": ("V", "float", "voltage"),
    "current": ("A", "float", "current"),
    "reset_counter": ("", "int", "reset counter"),
    "cumulation_counter": ("", "int", "cumulation counter"),
    "control_signal": ("", "int", "control signal"),
    "day_of_week": ("", "int", "day of week"),
    "week_number": ("", "int", "week number"),
    "day_change_time": ("", "number", "time point of day change"),
    "parameter_activation_state": ("", "int", "state of parameter activation"),
    "special_supplier_information": ("", "number", "special supplier information"),
    "duration_since_last_cumulation": ("s", "number", "duration since last cumulation"),
    "duration_since_last_cumulation_months": ("month", "number", "duration since last cumulation, months"),
    "duration_since_last_cumulation_years": ("year", "number", "duration since last cumulation, years"),
    "battery_operating_time": ("s", "number", "operating time battery"),
    "battery_operating_time_months": ("month", "number", "operating time battery, months"),
    "battery_operating_time_years": ("year", "number", "operating time battery, years"),
    "battery_change_datetime": ("", "datetime", "date and time of battery change"),
    "rf_level": ("dBm", "number", "RF level"),
    "daylight_saving": ("", "raw", "daylight saving schedule (type K, kept raw)"),
    "listening_window": ("", "raw", "listening window management (type L, kept raw)"),
    "remaining_battery_life": ("s", "number", "remaining battery life time (sent in days)"),
    "meter_stop_count": ("", "int", "number of times the meter was stopped"),
    "manufacturer_container": ("", "raw", "data container for a manufacturer-specific protocol"),
    # --- records a combinable VIFE turns into another kind of value ("of" names the VIF's quantity)
    "limit_exceed_count": ("", "int", "number of exceeds of the lower/upper limit of `of`"),
    "limit_exceed_begin": ("", "datetime", "date(/time) the first/last limit exceed of `of` began"),
    "limit_exceed_end": ("", "datetime", "date(/time) the first/last limit exceed of `of` ended"),
    "limit_exceed_duration": ("s", "number", "duration of the first/last limit exceed of `of`"),
    "event_duration": ("s", "number", "duration of the first/last event of `of`"),
    "event_begin": ("", "datetime", "date(/time) of begin of the first/last event of `of`"),
    "event_end": ("", "datetime", "date(/time) of end of the first/last event of `of`"),
}

# Record qualifiers a combinable VIFE adds (record key "qualifiers", a list, in VIFE order).
QUALIFIERS: dict[str, str] = {
    "forward": "accumulation only of positive contributions (forward flow, import)",
    "backward": "accumulation of abs. value only of negative contributions (backward flow, export)",
    "average": "average value",
    "lower_limit": "lower limit value (or: refers to the lower limit)",
    "upper_limit": "upper limit value (or: refers to the upper limit)",
    "first": "first occurrence",
    "last": "last occurrence",
    "uncorrected": "VIF contains uncorrected unit/value",
    "base_conditions": "value at base conditions",
    "future_value": "future value",
    "leakage": "leakage values",
    "overflow": "overflow values",
    "during_lower_limit_exceed": "value during lower limit exceed",
    "during_upper_limit_exceed": "value during upper limit exceed",
    "additive_correction": "additive correction constant (offset) in the unit of the quantity",
    "relative_deviation": "relative deviation",
    "standard_conform": "standard conform data content",
    "inverse_compact_profile": "inverse compact profile (raw)",
    "compact_profile": "compact profile (raw)",
    "compact_profile_with_registers": "compact profile with register numbers (raw)",
    "start_of": "start date(/time) of",
    "obis": "OBIS declaration",
    "per_second": "per second",
    "per_minute": "per minute",
    "per_hour": "per hour",
    "per_day": "per day",
    "per_week": "per week",
    "per_month": "per month",
    "per_year": "per year",
    "per_revolution": "per revolution / measurement",
    "increment_per_input_pulse_0": "increment per input pulse, channel 0",
    "increment_per_input_pulse_1": "increment per input pulse, channel 1",
    "increment_per_output_pulse_0": "increment per output pulse, channel 0",
    "increment_per_output_pulse_1": "increment per output pulse, channel 1",
    "per_litre": "per litre",
    "per_m3": "per m3",
    "per_kg": "per kg",
    "per_K": "per K",
    "per_kWh": "per kWh",
    "per_GJ": "per GJ",
    "per_kW": "per kW",
    "per_K_l": "per K·l",
    "per_V": "per V",
    "per_A": "per A",
    "times_s": "multiplied by s",
    "times_s_per_V": "multiplied by s/V",
    "times_s_per_A": "multiplied by s/A",
    "phase_L1": "at phase L1",
    "phase_L2": "at phase L2",
    "phase_L3": "at phase L3",
    "phase_N": "at neutral",
    "phase_L1_L2": "between phases L1 and L2",
    "phase_L2_L3": "between phases L2 and L3",
    "phase_L3_L1": "between phases L3 and L1",
}

# Units a caller may hand to the encoder (or compare against) -> factor to the canonical unit.
_KWH = Fraction(1)
UNIT_FACTORS: dict[tuple[str, str], Fraction] = {
    ("energy", "Wh"): Fraction(1, 1000),
    ("energy", "kWh"): _KWH,
    ("energy", "MWh"): Fraction(1000),
    ("energy", "J"): Fraction(1, 3_600_000),
    ("energy", "kJ"): Fraction(1, 3600),
    ("energy", "MJ"): Fraction(1000, 3600),
    ("energy", "GJ"): Fraction(1_000_000, 3600),
    ("energy", "Mcal"): Fraction(1163, 1000),
    ("energy", "MCal"): Fraction(1163, 1000),
    ("volume", "l"): Fraction(1, 1000),
    ("volume", "m3"): Fraction(1),
    ("volume", "ft3"): Fraction(28316846592, 10**12),
    ("mass", "g"): Fraction(1, 1000),
    ("mass", "kg"): Fraction(1),
    ("mass", "t"): Fraction(1000),
    ("power", "W"): Fraction(1, 1000),
    ("power", "kW"): Fraction(1),
    ("power", "MW"): Fraction(1000),
    ("power", "J/h"): Fraction(1, 3_600_000),
    ("power", "GJ/h"): Fraction(1_000_000, 3600),
    ("volume_flow", "l/h"): Fraction(1, 1000),
    ("volume_flow", "m3/h"): Fraction(1),
    ("volume_flow", "m3/min"): Fraction(60),
    ("volume_flow", "m3/s"): Fraction(3600),
    ("reactive_energy", "kVARh"): Fraction(1),
    ("reactive_power", "kVAR"): Fraction(1),
}
_TEMPERATURE_ALIASES = ("C", "°C", "degC")
_DURATION_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "days": 86400}


def canonical_unit(quantity: str) -> str:
    """The canonical unit of a quantity ('' for dimensionless); KeyError for unknown quantities."""
    return QUANTITIES[quantity][0]


def to_canonical(quantity: str, unit: str | None, value: Any) -> Any:
    """Convert ``value`` given in ``unit`` to the canonical unit of ``quantity``.

    Non-numeric values and units equal to the canonical one pass through. Raises ``KeyError``
    for a unit the table does not know for that quantity.
    """
    canon = QUANTITIES[quantity][0]
    if unit is None or unit == canon or not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    if canon == "°C" and unit in _TEMPERATURE_ALIASES:
        return value
    if canon == "s" and unit in _DURATION_UNITS:
        return value * _DURATION_UNITS[unit]
    factor = UNIT_FACTORS[(quantity, unit)]
    if factor.denominator == 1:
        return value * factor.numerator
    # exact decimal arithmetic: 12345 Wh -> 12.345 kWh, not 12.345000000000001
    return float(Fraction(repr(value) if isinstance(value, float) else value) * factor)


def markdown_table() -> str:
    """The quantity table as Markdown (docs/formats.md §1.1)."""
    lines = ["| quantity | canonical unit | value | meaning |", "|---|---|---|---|"]
    for name, (unit, kind, text) in QUANTITIES.items():
        lines.append(f"| `{name}` | {unit or '—'} | {kind} | {text} |")
    return "\n".join(lines)
