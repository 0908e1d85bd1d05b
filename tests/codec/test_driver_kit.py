"""The driver test kit (`omshub drivers check`) and the test telegrams the driver files carry."""

from __future__ import annotations

import json
import tomllib

import pytest
import typer
from typer.testing import CliRunner

from omshub.codec import decode, driver_kit, drivers, parse_hex
from omshub.commands.drivers import register

PACKAGED = drivers.packaged_texts()
IME = PACKAGED["ime.toml"]
IME_TELEGRAM = tomllib.loads(IME)["test"][0]["telegram"]


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # keeps `drivers` a sub-command
        pass

    return app


def test_packaged_files_pass_their_own_test_telegrams() -> None:
    with_tests = [name for name, text in PACKAGED.items() if tomllib.loads(text).get("test")]
    assert sorted(with_tests) == sorted(PACKAGED)  # every packaged file carries its test telegrams
    for name in with_tests:
        result = driver_kit.check_text(name, PACKAGED[name])
        assert result.ok, driver_kit.report(result)
        assert all(t.records or t.fields for t in result.tests)


def test_report_prints_every_decoded_value_and_the_driver() -> None:
    result = driver_kit.check_text("ime.toml", IME)
    text = driver_kit.report(result)
    assert result.ok and len(result.tests) == 1
    assert "record operating_time [tariff 1] = 47621400.0 s  <- driver ime_conto" in text
    assert "record power [tariff 1] = 7.529 kW" in text
    assert text.endswith("1/1 tests passed")


def test_mismatches_name_the_test_and_the_value() -> None:
    text = IME.replace("value = 159420.0", "value = 159421.0")
    result = driver_kit.check_text("ime.toml", text)
    assert not result.ok
    assert result.tests[0].problems == [
        "test[0]: no record matches records[2] = {'quantity': 'operating_time', 'unit': 's', 'tariff': 2, 'value': 159421.0}"
    ]
    fields = IME + '\n[[test]]\ntelegram = "' + IME_TELEGRAM + '"\nfields = { total_kwh = 1 }\n'
    problems = driver_kit.check_text("ime.toml", fields).tests[1].problems
    assert problems == ["test[1]: field 'total_kwh' missing (expected 1)"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('comment = "x"\n[[generic]]\ndevice_types = [4]\nfields = []\n', "new.toml: no [[test]] tables"),
        ("[[driver]]\nname = 1\n", "new.toml: driver[0].name"),
        ("not toml [", "new.toml: not valid TOML"),
    ],
)
def test_file_errors(text: str, error: str) -> None:
    result = driver_kit.check_text("new.toml", text)
    assert not result.ok and result.error is not None and result.error.startswith(error)
    assert "FAILED" in driver_kit.report(result)


@pytest.mark.parametrize(
    ("test", "problem"),
    [
        ('telegram = "zz"\nfields = { a = 1 }', "test[0].telegram:"),
        ('telegram = "6803036808017216"\nfields = { a = 1 }', "test[0]: the telegram does not decode:"),
        (f'telegram = "{IME_TELEGRAM}"', "test[0]: expects nothing"),
        (f'telegram = "{IME_TELEGRAM}"\nexpected = 3', "test[0]: unknown keys ['expected']"),
    ],
)
def test_bad_test_tables(test: str, problem: str) -> None:
    text = IME.split("[[test]]")[0] + "[[test]]\n" + test + "\n"
    result = driver_kit.check_text("ime.toml", text)
    assert not result.ok
    assert result.tests[0].problems[0].startswith(problem), result.tests[0].problems


def test_the_file_under_test_replaces_the_packaged_one_only_while_checking() -> None:
    without_rule = IME.replace('  { vif = "FF8F21"', '  # { vif = "FF8F21"')
    result = driver_kit.check_text("ime.toml", without_rule)
    assert not result.ok  # the running-time records are not decoded without the rule
    assert any(r.get("quantity") == "manufacturer_specific" for r in result.tests[0].records)
    after = decode(parse_hex(IME_TELEGRAM))  # the packaged registry is back
    assert {r["quantity"] for r in after["records"]} == {"operating_time", "power"}


def test_cli_check(tmp_path) -> None:
    good = tmp_path / "ime.toml"
    good.write_text(IME)
    result = CliRunner().invoke(_app(), ["drivers", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "1/1 tests passed" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[[driver]]\n")
    result = CliRunner().invoke(_app(), ["drivers", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert "bad.toml:\n  FAILED: bad.toml: driver[0]" in result.output
    assert CliRunner().invoke(_app(), ["drivers", "check"]).exit_code == 2
    assert CliRunner().invoke(_app(), ["drivers", "check", str(tmp_path / "missing.toml")]).exit_code == 2


def test_ime_running_time_on_the_public_corpus(shared_vectors) -> None:
    lines = (shared_vectors / "wmbusmeters-public.jsonl").read_text().splitlines()
    entries = [e for e in map(json.loads, lines) if e["driver"] == "ime" and "run_meter_total_h" in e["expected"]]
    assert entries
    for entry in entries:
        t = decode(parse_hex(entry["telegram"]))
        hours = {r["tariff"]: r["value"] / 3600 for r in t["records"] if r["quantity"] == "operating_time"}
        e = entry["expected"]
        assert hours[1] == pytest.approx(e["run_meter_tariff1_h"], abs=1e-5)
        assert hours[2] == pytest.approx(e["run_meter_tariff2_h"], abs=1e-5)
        assert e["run_meter_total_h"] in [pytest.approx(v, abs=1e-5) for k, v in hours.items() if k not in (1, 2)]


def _corpus(shared_vectors, driver: str) -> list[dict]:
    lines = (shared_vectors / "wmbusmeters-public.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["driver"] == driver]


def test_izar_alarm_flags_on_the_public_corpus(shared_vectors) -> None:
    # the alarm names the corpus lists, per state, against the named flags of diehl.toml
    now = {"leakage": "LEAK", "meter_blocked": "METER_BLOCKED", "underflow": "UNDERFLOW", "backflow": "BACKFLOW"}
    now |= {"overflow": "OVERFLOW", "submarine": "SUBMARINE", "sensor_fraud": "SENSOR_FRAUD"}
    now |= {"mechanical_fraud": "MECHANICAL_FRAUD", "general_alarm": "GENERAL_ALARM"}
    before = {"leakage": "LEAK_BEFORE", "sensor_fraud": "SENSOR_FRAUD_BEFORE"}
    before |= {"mechanical_fraud": "MECHANICAL_FRAUD_BEFORE"}
    entries = _corpus(shared_vectors, "izar")
    assert any(e["expected"]["current_alarms"] != "no_alarm" for e in entries)
    for entry in entries:
        e = entry["expected"]
        wanted = {now[a] for a in e["current_alarms"].split(",") if a != "no_alarm"}
        wanted |= {before[a] for a in e["previous_alarms"].split(",") if a != "no_alarm"}
        t = decode(parse_hex(entry["telegram"]))
        assert set(t["fields"]["alarms"]) == wanted, entry["telegram"]
        errors = [r for r in t["records"] if r["quantity"] == "error_flags"]
        assert len(errors) == 1 and errors[0]["value"] == t["fields"]["error_flags"]


def test_proprietary_payload_is_kept_as_sent() -> None:
    techem = tomllib.loads(PACKAGED["techem.toml"])["test"][0]["telegram"]
    t = decode(parse_hex(techem))
    assert t["frame"]["ci"] == "A1"
    assert t["frame"]["proprietary"] == techem[22:].lower()  # after L C M A CI: byte 0 is undocumented
    assert t["fields"]["total_energy_kwh"] == 12345 + 678


@pytest.mark.parametrize(
    ("relabel", "error"),
    [
        ('{ match = { vife = "ff0f" }, quantity = "volume" }', "relabel[0].match.vife: expected a list of VIFE bytes"),
        ('{ match = { vife = ["ff"] }, quantity = "volume", qualifiers = ["often"] }', "unknown qualifier 'often'"),
    ],
)
def test_relabel_schema_errors(relabel: str, error: str) -> None:
    text = f'[[driver]]\nname = "x"\nmanufacturers = ["ABC"]\nrelabel = [{relabel}]\n'
    result = driver_kit.check_text("new.toml", text)
    assert result.error is not None and error in result.error
