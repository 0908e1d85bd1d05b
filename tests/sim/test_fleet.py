from __future__ import annotations

from pathlib import Path

import pytest

from omshub.codec import KeyRing
from omshub.sim.fleet import FleetError, load_fleet, parse_fleet
from omshub.sim.generate import generate_fleet_toml

MINIMAL = """
[[sites]]
name = "s"
[[sites.gateways]]
serial = "G1"
[[sites.gateways.meters]]
kind = "water"
count = 3
"""


def _error(text: str) -> str:
    with pytest.raises(FleetError) as err:
        parse_fleet(text, "f.toml")
    return str(err.value)


@pytest.mark.parametrize(
    "change, expected",
    [
        (("count = 3", "count = 3\ninterval_s = 300"), "f.toml: sites[0].gateways[0].meters[0].interval_s: "),
        (
            ("count = 3", "count = 3\ninterval_s = 4"),
            "meters[0].interval_s: Input should be greater than or equal to 8",
        ),
        (("count = 3", "count = 3\nsecurity = 9"), "meters[0].security"),
        (("count = 3", "count = 3\nkind2 = 1"), "meters[0].kind2: Extra inputs are not permitted"),
        (('kind = "water"', 'kind = "gas"'), "meters[0].kind"),
        (("count = 3", "count = 300"), "meters[0].count"),
        (("count = 3", 'count = 3\nmanufacturers = ["kam"]'), "meters[0].manufacturers: manufacturer 'kam'"),
        (("count = 3", 'count = 3\nframe_format = "B"'), "frame format B exists only in link mode C1"),
        (("count = 3", "count = 3\njitter_s = 100"), "jitter_s must be less than half of interval_s"),
        (('serial = "G1"', 'serial = "G 1"'), "sites[0].gateways[0].serial"),
        (("[[sites]]", '[fleet]\ntimezone = "Mars/Base"\n[[sites]]'), "fleet.timezone: unknown time zone 'Mars/Base'"),
        (
            ("[[sites]]", '[fleet]\ndue_date = "02-30"\n[[sites]]'),
            "fleet.due_date: due_date '02-30' is not a calendar day",
        ),
        (("[[sites]]", "[fleet]\nepoch = 2025-01-01T00:00:00\n[[sites]]"), "fleet.epoch: epoch needs a time zone"),
        (("[[sites]]", "[radio]\nfading_sigma_db = -1\n[[sites]]"), "radio.fading_sigma_db"),
    ],
)
def test_validation_errors_name_the_key(change, expected):
    assert expected in _error(MINIMAL.replace(*change))


def test_structural_errors():
    assert "not valid TOML" in _error("[[sites]\n")
    assert "sites: Field required" in _error("[fleet]\nseed = 1\n")
    assert "duplicate gateway serial 'G1'" in _error(MINIMAL + MINIMAL.replace('name = "s"', 'name = "t"'))
    assert "meter KAM 00000002 already defined" in _error(
        MINIMAL.replace("count = 3", 'count = 2\nfirst_id = 1\nmanufacturers = ["KAM"]')
        + MINIMAL.replace('name = "s"', 'name = "t"')
        .replace('"G1"', '"G2"')
        .replace("count = 3", 'count = 2\nfirst_id = 2\nmanufacturers = ["KAM"]')
    )
    too_many = "\n".join('[[sites.gateways.meters]]\nkind = "hca"\ncount = 200' for _ in range(2))
    assert "403 meters; a gateway listens to at most 250" in _error(MINIMAL + "\n" + too_many)


def test_load_fleet_errors(tmp_path: Path):
    with pytest.raises(FleetError, match="cannot read fleet file"):
        load_fleet(tmp_path / "missing.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(FleetError, match="not UTF-8"):
        load_fleet(bad)


def test_generated_fleet_loads_with_the_requested_size():
    fleet = parse_fleet(generate_fleet_toml(7, 333, seed=3, neighbours=2))
    assert len(fleet.gateways) == 7 and len(fleet.meters) == 333 and len(fleet.foreign) == 14
    assert {m.kind for m in fleet.meters} == {"heat", "water", "hca"}
    assert {m.security for m in fleet.meters} == {"5", "7", "ell"}
    sizes = [len(fleet.meters_of(s)) for s in fleet.gateways]
    assert max(sizes) - min(sizes) <= 1
    ids = [(m.manufacturer, m.id) for m in fleet.all_meters()]
    assert len(set(ids)) == len(ids)
    with pytest.raises(ValueError, match="need at least 2 gateways"):
        generate_fleet_toml(1, 251)


def test_same_seed_same_fleet_other_seed_other_keys():
    a = parse_fleet(generate_fleet_toml(2, 20, seed=5))
    b = parse_fleet(generate_fleet_toml(2, 20, seed=5))
    c = parse_fleet(generate_fleet_toml(2, 20, seed=6))
    assert a.keys_csv() == b.keys_csv() != c.keys_csv()
    assert [m.annual for m in a.meters] == [m.annual for m in b.meters]


def test_key_and_meter_csv_match_the_head_end_formats():
    fleet = parse_fleet(generate_fleet_toml(2, 10, seed=1, neighbours=4))
    ring = KeyRing.from_csv(fleet.keys_csv())
    for m in fleet.meters:
        assert ring(m.manufacturer, m.id) == m.key
    for m in fleet.foreign:  # foreign meters belong to someone else: no keys exported
        assert ring(m.manufacturer, m.id) is None
    lines = fleet.meters_csv().splitlines()
    assert lines[0] == "manufacturer,id,device_type,gateway,metering_point,address,customer_ref"
    assert len(lines) == 11
    man, ident, dtype, gateway, point, *_ = lines[1].split(",")
    assert (man, ident, gateway) == (fleet.meters[0].manufacturer, fleet.meters[0].id, "GW000001")
    assert dtype in ("heat", "water", "heat_cost_allocator") and point


from hypothesis import given
from hypothesis import strategies as st

_VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8).map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(["true", "[]", "[1, 2]", '["KAM"]', "{}", '"C1"', '"B"', '"ell"', "2025-01-01"]),
)
_KEYS = [
    "count",
    "kind",
    "interval_s",
    "jitter_s",
    "security",
    "manufacturers",
    "distance_m",
    "monthly",
    "frame_format",
    "link_mode",
    "compact_every",
    "annual",
    "error_rate",
    "first_id",
    "version",
    "tpl",
]


@given(st.lists(st.tuples(st.sampled_from(_KEYS), _VALUES), max_size=4))
def test_any_group_setting_loads_or_fails_with_a_fleet_error(settings):
    group = {"kind": '"water"', "count": "3"}
    group.update(dict(settings))
    text = '[[sites]]\nname = "s"\n[[sites.gateways]]\nserial = "G1"\n[[sites.gateways.meters]]\n' + "".join(
        f"{k} = {v}\n" for k, v in group.items()
    )
    try:
        fleet = parse_fleet(text)
    except FleetError as exc:
        assert str(exc).startswith("fleet file")
        return
    assert 1 <= len(fleet.meters) <= 250
