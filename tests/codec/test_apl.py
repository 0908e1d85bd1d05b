"""EN 13757-3 record grammar: table-driven decode tests per DIF coding, DIFE chain, VIF/VIFE
family, date type and invalid marker, plus the encoder's choices and errors."""

from __future__ import annotations

import json
import math

import pytest

from omshub.codec import apl, headers
from omshub.codec.errors import DecodeError


def one(hex_text: str) -> dict:
    records, mdata = apl.decode_records(bytes.fromhex(hex_text))
    assert mdata is None
    assert len(records) == 1, records
    json.dumps(records)  # always JSON-serialisable
    return records[0]


# ------------------------------------------------------------------ data field codings (DIF)


@pytest.mark.parametrize(
    "hex_text, quantity, unit, value",
    [
        ("011305", "volume", "m3", 0.005),
        ("0113FF", "volume", "m3", -0.001),  # type B signed
        ("02133930", "volume", "m3", 12.345),
        ("0313FFFFFF", "volume", "m3", -0.001),
        ("031340E201", "volume", "m3", 123.456),
        ("0406A5000000", "energy", "kWh", 165.0),
        ("050600004841", "energy", "kWh", 12.5),  # real32
        ("0513CDCCCC3D", "volume", "m3", 0.0001),  # 0.1f l -> shortest decimal
        ("0613010000000001", "volume", "m3", 1099511627.777),  # 48 bit
        ("07130100000000000000", "volume", "m3", 0.001),  # 64 bit
        ("091345", "volume", "m3", 0.045),  # 2-digit BCD
        ("0A5A2502", "flow_temperature", "°C", 22.5),
        ("0B13436587", "volume", "m3", 876.543),
        ("0C1427048502", "volume", "m3", 28504.27),
        ("0C13674523F1", "volume", "m3", -1234.567),  # sign nibble F
        ("0E06563412000000", "energy", "kWh", 123456.0),  # 12-digit BCD
        ("0B2D000000", "power", "kW", 0.0),
    ],
)
def test_data_field_codings(hex_text, quantity, unit, value):
    rec = one(hex_text)
    assert (rec["quantity"], rec["unit"]) == (quantity, unit)
    assert rec["value"] == value
    assert type(rec["value"]) is float  # physical quantities are always floats
    assert rec["dif_vif"] == hex_text.lower()[: len(rec["dif_vif"])]


def test_decimal_scaling_has_no_binary_noise():
    assert repr(one("041339300000")["value"]) == "12.345"
    assert repr(one("0413" + (123456789).to_bytes(4, "little").hex())["value"]) == "123456.789"
    assert repr(one("025B" + (1234).to_bytes(2, "little").hex())["value"]) == "1234.0"
    assert repr(one("0259" + (2155).to_bytes(2, "little").hex())["value"]) == "21.55"


@pytest.mark.parametrize("hex_text", ["0B3BBDEBDD", "0A5AAB00", "0913A1", "0C13674523E1"])
def test_invalid_bcd_is_an_error_value_with_raw(hex_text):
    rec = one(hex_text)
    assert rec["error_value"] is True and rec["value"] is None
    assert rec["raw"] == hex_text[4:].lower()


def test_no_data_and_selection_for_readout():
    assert one("0013")["value"] is None
    assert one("0813")["value"] is None


@pytest.mark.parametrize(
    "dif, function", [(0x04, "instantaneous"), (0x14, "maximum"), (0x24, "minimum"), (0x34, "error")]
)
def test_function_field(dif, function):
    rec = one(f"{dif:02X}1301000000")
    assert rec["function"] == function and rec["value"] == 0.001


# ------------------------------------------------------------------ DIFE chains


@pytest.mark.parametrize(
    "hex_text, storage, tariff, subunit",
    [
        ("426C1F3C", 1, 0, 0),
        ("82046C1F3C", 8, 0, 0),
        ("84010600000000", 2, 0, 0),
        ("8C101300000000", 0, 1, 0),
        ("8C400600000000", 0, 0, 1),
        ("C4810106 00000000", 35, 0, 0),  # storage 1 | 1<<1 | 1<<5
        ("84B0D00106 00000000", 512, 3 | (1 << 2), 1 << 1),
        ("848080808080808080800106 00000000", 1 << 37, 0, 0),  # 10 DIFEs
    ],
)
def test_dife_chains(hex_text, storage, tariff, subunit):
    rec = one(hex_text.replace(" ", ""))
    assert (rec["storage"], rec["tariff"], rec["subunit"]) == (storage, tariff, subunit)


def test_too_many_difes():
    with pytest.raises(DecodeError) as info:
        apl.decode_records(bytes.fromhex("84" + "80" * 10 + "01" + "06" + "00000000"))
    assert info.value.code == "invalid_record" and "DIFE" in str(info.value)


# ------------------------------------------------------------------ primary VIF table


@pytest.mark.parametrize(
    "vif, quantity, unit, raw, value",
    [
        (0x03, "energy", "kWh", 1234, 1.234),
        (0x07, "energy", "kWh", 12, 120.0),
        (0x0E, "energy", "kWh", 3600, 1000.0),  # MJ
        (0x0B, "energy", "kWh", 3600, 1.0),  # kJ
        (0x16, "volume", "m3", 7, 7.0),
        (0x1B, "mass", "kg", 5, 5.0),
        (0x18, "mass", "kg", 5, 0.005),
        (0x22, "on_time", "s", 2, 7200),
        (0x27, "operating_time", "s", 3, 259200),
        (0x2B, "power", "kW", 1500, 1.5),
        (0x33, "power", "kW", 3600, 1.0),  # 10^3 J/h
        (0x3B, "volume_flow", "m3/h", 1250, 1.25),
        (0x43, "volume_flow", "m3/h", 5, 0.03),  # 10^-4 m3/min
        (0x4E, "volume_flow", "m3/h", 1, 3.6),  # 10^-3 m3/s
        (0x53, "mass_flow", "kg/h", 7, 7.0),
        (0x59, "flow_temperature", "°C", 6543, 65.43),
        (0x5D, "return_temperature", "°C", 4321, 43.21),
        (0x61, "temperature_difference", "K", 2222, 22.22),
        (0x66, "external_temperature", "°C", 215, 21.5),
        (0x68, "pressure", "bar", 1013, 1.013),
        (0x6E, "hca", "HCA", 99, 99),
        (0x70, "averaging_duration", "s", 15, 15),
        (0x75, "actuality_duration", "s", 2, 120),
        (0x78, "fabrication_number", "", 12345678, 12345678),
        (0x7A, "bus_address", "", 200, 200),
    ],
)
def test_primary_vifs(vif, quantity, unit, raw, value):
    rec = one(f"04{vif:02X}" + raw.to_bytes(4, "little", signed=True).hex())
    assert (rec["quantity"], rec["unit"]) == (quantity, unit)
    assert math.isclose(rec["value"], value, rel_tol=1e-12)


def test_non_decimal_conversion_is_rounded_below_resolution():
    rec = one("040E" + (1234).to_bytes(4, "little").hex())  # 1234 MJ
    assert rec["value"] == round(1234 / 3.6, 7)
    assert rec["unit"] == "kWh"


@pytest.mark.parametrize(
    "hex_text, quantity, unit, value",
    [
        ("04FB0005000000", "energy", "kWh", 500.0),  # 0.1 MWh
        ("04FB0103000000", "energy", "kWh", 3000.0),
        ("04FB8275CF0C0000", "reactive_energy", "kvarh", 327.9),
        ("04FB0402000000", "apparent_energy", "kVAh", 2.0),
        ("04FB0903000000", "energy", "kWh", 833.333333),  # 3 GJ
        ("04FB0D02000000", "energy", "kWh", 2.326),  # 2 Mcal
        ("04FB1001000000", "volume", "m3", 100.0),
        ("04FB1901000000", "mass", "kg", 1_000_000.0),  # 1000 t
        ("02FB1A6601", "relative_humidity", "%", 35.8),
        ("04FB2001000000", "volume", "m3", 0.028316846592),  # ft3
        ("04FB2EF4010000", "frequency", "Hz", 50.0),  # 0.1 Hz
        ("04FB2902000000", "power", "kW", 2000.0),  # MW
        ("04FB3102000000", "power", "kW", 555.555556),  # 2 GJ/h
        ("02FB750500", "temperature_limit", "°C", 0.05),
        ("02FB680010", "rating_factor_k", "", 1.0),
    ],
)
def test_fb_table(hex_text, quantity, unit, value):
    rec = one(hex_text)
    assert (rec["quantity"], rec["unit"]) == (quantity, unit)
    assert math.isclose(rec["value"], value, rel_tol=1e-6)


@pytest.mark.parametrize(
    "hex_text, quantity, unit, value",
    [
        ("02FD17FFFF", "error_flags", "", 65535),  # type D: unsigned
        ("01FD0805", "access_number", "", 5),
        ("02FD3A2A00", "dimensionless", "", 42),
        ("02FD48E508", "voltage", "V", 227.7),
        ("02FD59E803", "current", "A", 1.0),
        ("02FD74F00C", "remaining_battery_life", "s", 3312 * 86400),
        ("01FD1B03", "digital_input", "", 3),
        ("01FD1A01", "digital_output", "", 1),
        ("01FD0B02", "parameter_set_id", "", 2),
        ("01FD6105", "cumulation_counter", "", 5),
        ("01FD6007", "reset_counter", "", 7),
        ("0DFD0C06554747342020", "model_version", "", "  4GGU"),
        ("0DFD1003636261", "customer_location", "", "abc"),
        ("02FD2D0A00", "duration_since_last_readout", "s", 600),
        ("02FD6D0200", "battery_operating_time", "s", 172800),
        ("02FD6E0200", "battery_operating_time_months", "month", 2),
        ("01FD7180", "rf_level", "dBm", -128),
    ],
)
def test_fd_table(hex_text, quantity, unit, value):
    rec = one(hex_text)
    assert (rec["quantity"], rec["unit"], rec["value"]) == (quantity, unit, value)


def test_unknown_vif_keeps_value_unscaled():
    rec = one("02FD7F0700")  # FD 7F reserved
    assert (rec["quantity"], rec["value"]) == ("unknown", 7)
    assert one("016F05")["quantity"] == "unknown"


# ------------------------------------------------------------------ combinable VIFEs


@pytest.mark.parametrize(
    "hex_text, expect",
    [
        ("04933C01000000", {"quantity": "volume", "qualifiers": ["backward"], "value": 0.001}),
        ("04933B01000000", {"quantity": "volume", "qualifiers": ["forward"]}),
        ("04853CCC0F0000", {"quantity": "energy", "qualifiers": ["backward"], "value": 404.4}),
        ("04967001000000", {"quantity": "volume", "value": 1e-06}),  # x 10^-6
        ("04937D01000000", {"quantity": "volume", "value": 1.0}),  # x 10^3
        ("0493F57D02000000", {"quantity": "volume", "value": 0.2}),  # 10^-1 * 10^3 * l
        ("04967A02000000", {"quantity": "volume", "qualifiers": ["additive_correction"], "value": 0.2}),
        ("04932202000000", {"quantity": "volume_flow", "unit": "m3/h", "value": 0.002}),  # l per hour
        ("04932002000000", {"quantity": "volume_flow", "unit": "m3/h", "value": 7.2}),  # l per second
        ("04862102000000", {"quantity": "power", "unit": "kW", "value": 120.0}),  # kWh per minute
        ("04932302000000", {"quantity": "volume", "unit": "m3/d", "qualifiers": ["per_day"]}),
        ("04AB4001000000", {"quantity": "power", "qualifiers": ["lower_limit"], "value": 0.001}),
        ("04AB4801000000", {"quantity": "power", "qualifiers": ["upper_limit"]}),
        (
            "04AB4903000000",
            {"quantity": "limit_exceed_count", "of": "power", "value": 3, "qualifiers": ["upper_limit"]},
        ),
        (
            "04AB4B32371F15",
            {
                "quantity": "limit_exceed_end",
                "of": "power",
                "value": "2008-05-31T23:50",
                "qualifiers": ["upper_limit", "first"],
            },
        ),
        (
            "02AB46FE04",
            {
                "quantity": "limit_exceed_begin",
                "of": "power",
                "value": "2007-04-30",
                "qualifiers": ["lower_limit", "last"],
            },
        ),
        (
            "02AB590500",
            {
                "quantity": "limit_exceed_duration",
                "of": "power",
                "unit": "s",
                "value": 300,
                "qualifiers": ["upper_limit", "first"],
            },
        ),
        ("02AB660200", {"quantity": "event_duration", "of": "power", "value": 7200, "qualifiers": ["last"]}),
        ("04AB6A32371F15", {"quantity": "event_begin", "of": "power", "qualifiers": ["first"]}),
        ("02AB120500", {"quantity": "power", "qualifiers": ["average"]}),
        ("02AB3E0500", {"quantity": "power", "qualifiers": ["base_conditions"]}),
        ("02AB7E0500", {"quantity": "power", "qualifiers": ["future_value"]}),
        ("02ABFC010500", {"quantity": "power", "qualifiers": ["phase_L1"]}),
        ("02ABFC060500", {"quantity": "power", "qualifiers": ["phase_L2_L3"]}),
        ("02AB3D0500", {"quantity": "power", "vife": ["3d"], "value": 0.005}),  # unknown: kept
        ("02ABFF050500", {"quantity": "power", "vife": ["ff", "05"]}),  # manufacturer VIFEs
        (
            "02AB150000",
            {
                "quantity": "power",
                "record_error": "no_data_available",
                "error_value": True,
                "value": None,
                "raw": "0000",
            },
        ),
        ("0AA6189999", {"quantity": "operating_time", "record_error": "data_error", "value": None}),
    ],
)
def test_combinable_vifes(hex_text, expect):
    rec = one(hex_text)
    for key, value in expect.items():
        if isinstance(value, float):
            assert math.isclose(rec[key], value, rel_tol=1e-12), (key, rec)
        else:
            assert rec[key] == value, (key, rec)


def test_too_many_vifes():
    with pytest.raises(DecodeError) as info:
        apl.decode_records(bytes.fromhex("02" + "AB" + "BB" * 11 + "3B" + "0000"))
    assert info.value.code == "invalid_record" and "VIFE" in str(info.value)


def test_profile_vife_keeps_lvar_raw():
    rec = one("8D04EE1F03AABBCC")
    assert rec["qualifiers"] == ["compact_profile"] and rec["value"] is None and rec["raw"] == "aabbcc"
    assert rec["storage"] == 8 and rec["quantity"] == "hca"


# ------------------------------------------------------------------ plain text, manufacturer VIF


def test_plain_text_vif():
    rec = one("007C085453455420434E45")
    assert rec["quantity"] == "custom" and rec["unit_text"] == "ENC TEST" and rec["value"] is None
    rec = one("01FC7402626105")  # VIFE 74 (x10^-2) before the text, then the data
    assert rec["unit_text"] == "ab" and rec["value"] == 0.05


def test_manufacturer_specific_vif_keeps_raw():
    rec = one("02FF2071 00".replace(" ", ""))
    assert rec["quantity"] == "manufacturer_specific" and rec["value"] is None
    assert rec["raw"] == "7100" and rec["vife"] == ["20"]
    assert one("017F14")["raw"] == "14"


# ------------------------------------------------------------------ LVAR


@pytest.mark.parametrize(
    "hex_text, value",
    [
        ("0D78083430363030383332", "23800604"),  # text, last character first
        ("0D13C23412", 1.234),  # positive BCD
        ("0D13D23412", -1.234),  # negative BCD
        ("0D13E2FEFF", -0.002),  # binary, signed
        ("0D1300", ""),
    ],
)
def test_lvar(hex_text, value):
    assert one(hex_text)["value"] == value


def test_lvar_long_binary_and_containers_stay_raw():
    rec = one("0D13F0" + "11" * 16)
    assert rec["value"] is None and rec["raw"] == "11" * 16
    rec = one("0DFD3B03010203")
    assert rec["quantity"] == "wmbus_container" and rec["raw"] == "010203"


@pytest.mark.parametrize("lvar", ["F7", "FF", "CA", "DF"])
def test_reserved_lvar(lvar):
    with pytest.raises(DecodeError) as info:
        apl.decode_records(bytes.fromhex(f"0D13{lvar}00000000"))
    assert info.value.code == "invalid_record" and "LVAR" in str(info.value)


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    "hex_text, quantity, value",
    [
        ("026CFE04", "date", "2007-04-30"),
        ("026C1F3C", "date", "2024-12-31"),
        ("026CE1F1", "date", "--01-01"),  # year 127: every year on 1 January
        ("026CEFF0", "date", "---15"),  # every month on the 15th
        ("046D32371F15", "datetime", "2008-05-31T23:50"),
        ("046D1C2A2F3C", "datetime", "2025-12-15T10:28"),
        ("066D18260AEB2500", "datetime", "2023-05-11T10:38:24"),
        ("036D1E1F17", "time", "23:31:30"),
        ("026D1F3C", "date", "2024-12-31"),
        ("046C32371F15", "date", "2008-05-31"),
        ("04FD3032371F15", "tariff_start", "2008-05-31T23:50"),
    ],
)
def test_dates(hex_text, quantity, value):
    rec = one(hex_text)
    assert (rec["quantity"], rec["value"]) == (quantity, value)
    assert "error_value" not in rec


@pytest.mark.parametrize(
    "hex_text", ["026CFFFF", "046DB2371F15", "066D18A60AEB2500", "026C0000", "026C1F3D", "036D3C0000", "046D3B381F15"]
)
def test_invalid_dates(hex_text):
    rec = one(hex_text)
    assert rec["error_value"] is True and rec["value"] is None and rec["raw"] == hex_text[4:].lower()


def test_summer_time_flag():
    assert one("046D32B71F15")["dst"] is True
    assert "dst" not in one("046D32371F15")
    assert one("066D58260AEB2500")["dst"] is True


def test_date_type_m_and_unknown_widths_stay_raw():
    assert one("0D6D03010203")["raw"] == "010203"
    rec = one("0C6C01020304")
    assert rec["value"] is None and rec["raw"] == "01020304"


# ------------------------------------------------------------------ special DIFs and grammar


def test_idle_fillers_are_skipped():
    records, mdata = apl.decode_records(bytes.fromhex("2F2F0413010000002F2F2F02FD1700002F"))
    assert [r["quantity"] for r in records] == ["volume", "error_flags"] and mdata is None


@pytest.mark.parametrize("dif", ["0F", "1F"])
def test_manufacturer_data(dif):
    data = bytes.fromhex(f"041301000000{dif}AABB2F")
    records, mdata = apl.decode_records(data)
    assert len(records) == 1 and mdata == "aabb2f"
    assert data[len(data) - len(mdata) // 2 - 1] == int(dif, 16)
    assert apl.decode_records(bytes.fromhex("0F")) == ([], "")


@pytest.mark.parametrize("dif", ["3F", "4F", "5F", "6F", "7F", "8F", "FF"])
def test_reserved_special_functions_fail(dif):
    with pytest.raises(DecodeError) as info:
        apl.decode_records(bytes.fromhex(f"041301000000{dif}00"))
    err = info.value
    assert (err.code, err.layer, err.offset) == ("invalid_record", "apl", 6)
    assert len(err.partial["records"]) == 1


def test_every_truncation_is_a_clear_error():
    data = bytes.fromhex("0C14270485028C4006010000000DFD0C03414243027C036162630500")
    full, _ = apl.decode_records(data)
    boundaries = {0, 6, 13, 20, 28}
    assert len(data) == 28 and len(full) == 4
    for cut in range(len(data)):
        if cut in boundaries:
            assert len(apl.decode_records(data[:cut])[0]) == sorted(boundaries).index(cut)
            continue
        with pytest.raises(DecodeError) as info:
            apl.decode_records(data[:cut])
        err = info.value
        assert err.code == "invalid_record" and err.layer == "apl"
        assert err.offset == max(b for b in boundaries if b < cut)
        assert "truncated" in str(err) and str(err.offset) in str(err)
        assert err.partial["records"] == full[: sorted(boundaries).index(err.offset)]


def test_start_and_end_bounds():
    data = bytes.fromhex("AAAA041301000000BBBB")
    records, _ = apl.decode_records(data, 2, 8)
    assert records[0]["value"] == 0.001
    with pytest.raises(DecodeError):
        apl.decode_records(data, 0, 11)
    with pytest.raises(DecodeError):
        apl.decode_records(data, 9, 8)
    with pytest.raises(DecodeError) as info:
        apl.decode_records(bytes(apl.MAX_APL + 1))
    assert info.value.code == "too_long"


def test_records_are_independent_copies():
    data = bytes.fromhex("04933C01000000")
    first, _ = apl.decode_records(data)
    first[0]["qualifiers"].append("mutated")
    first[0]["value"] = 99
    again, _ = apl.decode_records(data)
    assert again[0]["qualifiers"] == ["backward"] and again[0]["value"] == 0.001


def test_header_cache_is_bounded():
    for code in range(headers.HEADER_CACHE_LIMIT + 10):
        storage = code & 0x3FF
        hdr = bytes([0x84, 0x80 | (storage & 0x0F), 0x80 | ((storage >> 4) & 0x0F), storage >> 8, 0x13])
        apl.decode_records(hdr + b"\x00" * 4)
    assert len(headers.HEADERS) <= headers.HEADER_CACHE_LIMIT


# ------------------------------------------------------------------ encoder


def rec(**kw) -> dict:
    base = {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous"}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "record, hex_text",
    [
        (rec(quantity="energy", unit="kWh", value=165.0), "0206a500"),
        (rec(quantity="energy", unit="kWh", value=1230.0), "01077b"),
        (rec(quantity="volume", unit="m3", value=12.345), "02133930"),
        (rec(quantity="volume", unit="m3", value=0.001, storage=8, tariff=1, subunit=1), "81541301"),
        (rec(quantity="volume", unit="m3", value=1.0, qualifiers=["backward"]), "01963c01"),
        (rec(quantity="power", unit="kW", value=0.003, function="maximum"), "112b03"),
        (rec(quantity="error_flags", unit="", value=0), "01fd1700"),
        (rec(quantity="date", unit="", value="2024-12-31"), "026c1f3c"),
        (rec(quantity="datetime", unit="", value="2008-05-31T23:50"), "046d32371f15"),
        (rec(quantity="datetime", unit="", value="2023-05-11T10:38:24"), "066d18260aeb2500"),
        (rec(quantity="time", unit="", value="23:31:30"), "036d1e1f17"),
        (rec(quantity="fabrication_number", unit="", value="23800604"), "0d78083430363030383332"),
        (rec(quantity="energy", unit="Wh", value=1500), "01050f"),
        (rec(quantity="manufacturer_specific", unit="", value=None, raw="7100"), "027f7100"),
        (rec(quantity="flow_temperature", unit="°C", value=22.5), "025ae100"),
        (rec(quantity="volume", unit="m3", value=0.5, dif_vif="0c13"), "0c1300050000"),
        (rec(quantity="volume", unit="m3", value=-1234.567, dif_vif="0c13"), "0c13674523f1"),
        (rec(quantity="energy", unit="kWh", value=12.5, dif_vif="0506"), "050600004841"),
        (rec(quantity="custom", unit="", value=5, unit_text="ab"), "017c02626105"),
        (rec(quantity="power", unit="kW", value=0.005, qualifiers=["phase_L1"]), "01abfc0105"),
    ],
)
def test_encoder_choices(record, hex_text):
    assert apl.encode_records([record]).hex() == hex_text
    back = one(hex_text)
    for key in ("quantity", "storage", "tariff", "subunit", "function"):
        assert back[key] == record[key]


@pytest.mark.parametrize(
    "record, message",
    [
        (rec(quantity="nonsense", value=1), "unknown quantity"),
        (rec(quantity="energy", unit="furlong", value=1), "unit"),
        (rec(quantity="volume", value=0.0005, dif_vif="0413"), "whole multiple"),
        (rec(quantity="volume", value=1, dif_vif="zz"), "not hex"),
        (rec(quantity="volume", value=1, dif_vif="0413ff"), "bytes after the record header"),
        (rec(quantity="volume", value=1, dif_vif="0f"), "not a data record header"),
        (rec(quantity="volume", value=1000, dif_vif="0113"), "does not fit"),
        (rec(quantity="volume", value=1, function="sometimes"), "function"),
        (rec(quantity="volume", value=1, storage=-1), "storage"),
        (rec(quantity="volume", value=True), "not a number"),
        (rec(quantity="date", value="2024-13-01"), "out of range"),
        (rec(quantity="date", value="yesterday"), "ISO"),
        (rec(quantity="limit_exceed_count", value=1, of="power"), "dif_vif"),
        (rec(quantity="power", value=1, qualifiers=["sideways"]), "qualifier"),
        (rec(quantity="volume", value=None, dif_vif="0413"), "no value"),
        (rec(quantity="error_flags", value=-1, dif_vif="02fd17"), "does not fit"),
    ],
)
def test_encoder_errors(record, message):
    with pytest.raises(DecodeError) as info:
        apl.encode_records([record])
    assert info.value.code == "invalid_record" and message in str(info.value)


def test_encode_decode_keeps_invalid_markers():
    records, _ = apl.decode_records(bytes.fromhex("3B3BBDEBDD026CFFFF0AA6189999"))
    for r in records:
        del r["dif_vif"]
    back, _ = apl.decode_records(apl.encode_records(records))
    for a, b in zip(records, back, strict=False):
        assert b["error_value"] is True and b["raw"] == a["raw"] and b["quantity"] == a["quantity"]


def test_header_info_rejects_incomplete_headers():
    assert apl.header_info(bytes.fromhex("0413")).template["quantity"] == "volume"
    for bad in ("", "0f", "84", "0493", "041300"):
        with pytest.raises(DecodeError):
            apl.header_info(bytes.fromhex(bad))


def test_huge_integer_results_become_floats():
    rec = one("0723" + "ff" * 7 + "7f")  # 2^63-1 days in seconds: beyond 64 bits
    assert isinstance(rec["value"], float)
    assert isinstance(one("0423" + "01000000")["value"], int)


def test_encoder_tolerates_float_noise_but_dif_vif_is_exact():
    data = apl.encode_records([rec(quantity="volume", unit="m3", value=0.1 + 0.2)])
    assert one(data.hex())["value"] == 0.3
    with pytest.raises(DecodeError):
        apl.encode_records([rec(quantity="volume", unit="m3", value=0.1 + 0.2, dif_vif="0413")])


def test_encoder_falls_back_to_real32_only_when_needed():
    data = apl.encode_records([rec(quantity="volume", unit="m3", value=1.23456789e-12)])
    assert data[0] & 0x0F == 5
    assert math.isclose(one(data.hex())["value"], 1.23456789e-12, rel_tol=1e-6)


# ------------------------------------------------------------------ 1F: more records follow


@pytest.mark.parametrize("tail, more", [("0FAABB", False), ("1FAABB", True), ("1F", True), ("0F", False), ("", False)])
def test_decode_records_ex_tells_whether_more_records_follow(tail, more):
    data = bytes.fromhex("2F2F041301000000" + tail + "9999")
    end = len(data) - 2  # the APL ends before the last two bytes
    records, mdata, follows = apl.decode_records_ex(data, 0, end)
    assert (records, mdata) == apl.decode_records(data, 0, end)
    assert follows is more
    assert apl.more_records_follow(data, end, mdata) is more


# ------------------------------------------------------------------ compact profiles

CALTOSE = "0B6E250200426C41314B6E99000082046C41328B046ECB00008D04EE132C3BFE990000520000100000000000" + "FF" * 30


def test_inverse_compact_profile_values_become_records():
    records, _ = apl.decode_records(bytes.fromhex(CALTOSE))
    profile = records[5]
    assert profile["qualifiers"] == ["inverse_compact_profile"] and profile["raw"].startswith("3bfe99")
    derived = records[6:]
    assert [(r["storage"], r["value"]) for r in derived] == [(9, 99), (10, 52), (11, 10), (12, 0)]
    assert all(
        r["quantity"] == "hca" and r["unit"] == "HCA" and r["dif_vif"] == "" and r["derived_from"] == "8d04ee13"
        for r in derived
    )
    # the record format (joined dif_vif) is still the header sequence
    assert "".join(r["dif_vif"] for r in records) == "0b6e426c4b6e82046c8b046e8d04ee13"
    # the encoder leaves derived records out: the profile record's raw bytes carry them
    assert apl.encode_records(records) == bytes.fromhex(CALTOSE)


@pytest.mark.parametrize(
    "profile",
    [
        "8D04EE13057BFE990000",  # increment mode 1 (increments): not expanded
        "8D04EE13013B",  # no spacing byte
        "8D04EE130435FE0000",  # real32 elements
        "8D04EE13053BFEFFFFFF",  # first element invalid (FF fill)
    ],
)
def test_compact_profiles_not_expanded(profile):
    records, _ = apl.decode_records(bytes.fromhex(profile))
    assert len(records) == 1 and "raw" in records[0]


def test_inverse_compact_profile_of_binary_values_is_scaled():
    records, _ = apl.decode_records(bytes.fromhex("8D0493130A34FEE8030000D0070000"))
    assert [(r["quantity"], r["storage"], r["value"]) for r in records[1:]] == [("volume", 9, 1.0), ("volume", 10, 2.0)]


# ------------------------------------------------------------------ layout memo

HEAT = bytes.fromhex(
    "2F2F"
    "0C0612345678"
    "0B2B123456"
    "0A5A1203"
    "0A5E5602"
    "046D2B0BA424"
    "02FD170000"
    "426CBF2C"
    "4C0612340000"
    "0DFD110431323334"
    "053B0000803F"
    "01FF2105"
    "0F0102"
)


@pytest.fixture(params=["uncompiled", "compiled"])
def learned(request, monkeypatch):
    """Learn HEAT's layout; compiled, or not (its APLs then go to the general decoder)."""
    monkeypatch.setattr(apl.LAYOUTS, "compile_after", 1 if request.param == "compiled" else 10**9)
    apl.LAYOUTS.clear()
    results = [apl.decode_records(HEAT) for _ in range(3)]  # noted, learned, used
    entry = next(e for entries in apl.LAYOUTS.layouts.values() for e in entries)
    assert entry.compiled == (request.param == "compiled")
    assert results[0] == results[1] == results[2]
    return request.param


def test_layout_memo_gives_the_general_result(learned):
    assert apl.decode_records(HEAT) == apl.decode_general(HEAT, 0, len(HEAT))
    # same headers, other values: still identical to the general decoder's result
    other = bytearray(HEAT)
    other[4:8] = bytes.fromhex("99999999")
    assert apl.decode_records(bytes(other)) == apl.decode_general(bytes(other), 0, len(other))


@pytest.mark.parametrize(
    "offset, value",
    [
        (4, "AB"),  # invalid BCD digit
        (7, "F1"),  # negative BCD (sign nibble)
        (23, "AB"),  # invalid date/time (IV bit)
        (24, "8B"),  # summer-time flag
        (34, "FFFF"),  # invalid date
        (52, "0000C07F"),  # real32 NaN
    ],
)
def test_layout_memo_falls_back_for_special_values(learned, offset, value):
    data = bytearray(HEAT)
    raw = bytes.fromhex(value)
    data[offset : offset + len(raw)] = raw
    data = bytes(data)
    assert apl.decode_records(data) == apl.decode_general(data, 0, len(data))


def test_layout_memo_is_bounded():
    apl.LAYOUTS.clear()
    for k in range(apl.LAYOUTS.limit + 10):
        apl.decode_records(bytes([0x04, 0x13]) + bytes(4) + bytes([0x0F]) + bytes(k % 300) + bytes([k & 0xFF]))
        apl.decode_records(bytes([0x04, 0x13]) + bytes(4) + bytes([0x02, 0xFD, 0x17, k & 0xFF, 0]))
    assert len(apl.LAYOUTS) <= apl.LAYOUTS.limit
    assert all(len(v) <= apl.LAYOUTS.per_key for v in apl.LAYOUTS.layouts.values())
