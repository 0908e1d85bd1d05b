"""The gateway configuration schema shared by head-end and gateway (docs/formats.md §3)."""

import pytest

from omshub.protocol.config import ConfigError, spread_offset, validate_config


def test_defaults_are_valid_and_complete():
    cfg = validate_config({})
    assert cfg.version == 0 and cfg.collection and cfg.upload.cron == "0 30 3 * * *"


@pytest.mark.parametrize(
    "cron, why",
    [
        ("0 0 2 * *", "6 fields"),
        ("x 0 2 * * *", "not valid"),
        ("0 0 0 30 2 *", "never fires"),  # 30 February
        ("0 0 0 31 4 *", "never fires"),  # 31 April
    ],
)
def test_bad_crons_are_refused_with_the_field_named(cron, why):
    with pytest.raises(ConfigError) as exc:
        validate_config({"upload": {"cron": cron}})
    assert "upload.cron" in str(exc.value) and why in str(exc.value)


def test_rare_but_real_schedules_pass():
    assert validate_config({"upload": {"cron": "0 0 0 29 2 *"}}).upload.cron == "0 0 0 29 2 *"


@pytest.mark.parametrize(
    "data, field",
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"filters": {"meters": [{"id": "1234567"}]}}, "filters.meters.0.id"),
        ({"filters": {"meters": [{"id": f"{i:08d}"} for i in range(251)]}}, "filters.meters"),
        ({"filters": {"manufacturers": ["kam"]}}, "filters.manufacturers"),
        ({"filters": {"ci": ["7G"]}}, "filters.ci"),
        ({"collection": [{"link_modes": ["X1"]}]}, "collection.0.link_modes"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_fields_are_named(data, field):
    with pytest.raises(ConfigError) as exc:
        validate_config(data)
    assert field in str(exc.value)


def test_not_an_object():
    with pytest.raises(ConfigError, match="JSON object"):
        validate_config([1, 2])


def test_spread_is_stable_and_within_range():
    offsets = {spread_offset(f"GW-{i:04d}", 1800) for i in range(200)}
    assert all(0 <= o < 1800 for o in offsets) and len(offsets) > 150
    assert spread_offset("GW-0001", 1800) == spread_offset("GW-0001", 1800)
    assert spread_offset("GW-0001", 0) == 0
