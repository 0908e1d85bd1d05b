"""The quantity/unit table and unit conversion."""

from __future__ import annotations

import pytest

from omshub.codec import units, vif


def test_every_table_quantity_is_documented():
    for table in (vif.PRIMARY, vif.FB, vif.FD):
        for entry in table.values():
            assert entry.quantity in units.QUANTITIES, entry
    for name in vif.QUALIFIER_VIFE.values():
        assert name in units.QUALIFIERS
    for name, _suffix in vif.PER_UNIT.values():
        assert name in units.QUALIFIERS
    for name, _suffix, _factor in vif.PER_TIME.values():
        assert name in units.QUALIFIERS
    for name in vif.FC_PHASES.values():
        assert name in units.QUALIFIERS


def test_quantity_names_are_snake_case():
    for name, (unit, kind, text) in units.QUANTITIES.items():
        assert name == name.lower() and " " not in name and "-" not in name
        assert kind in {"float", "number", "int", "date", "datetime", "time", "raw", "hex"}
        assert text


@pytest.mark.parametrize(
    "quantity, unit, value, expected",
    [
        ("energy", "Wh", 12345, 12.345),
        ("energy", "MWh", 1.5, 1500.0),
        ("energy", "GJ", 3.6, 1000.0),
        ("energy", "MJ", 36, 10.0),
        ("volume", "l", 12345, 12.345),
        ("power", "W", 1500, 1.5),
        ("volume_flow", "l/h", 250, 0.25),
        ("volume_flow", "m3/s", 1, 3600),
        ("flow_temperature", "C", 21.5, 21.5),
        ("on_time", "h", 2, 7200),
        ("remaining_battery_life", "d", 2, 172800),
        ("energy", "kWh", 1.25, 1.25),
        ("date", "", "2024-01-01", "2024-01-01"),
    ],
)
def test_to_canonical(quantity, unit, value, expected):
    assert units.to_canonical(quantity, unit, value) == expected


def test_to_canonical_unknown_unit():
    with pytest.raises(KeyError):
        units.to_canonical("energy", "furlong", 1)


def test_markdown_table():
    table = units.markdown_table()
    assert table.startswith("| quantity |")
    assert "| `energy` | kWh |" in table
    assert table.count("\n") == len(units.QUANTITIES) + 1
