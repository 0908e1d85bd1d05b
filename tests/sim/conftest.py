"""Small fleets shared by the simulator tests (module-scoped: building demand tables costs ~0.3 s)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omshub.sim.fleet import parse_fleet

# Every security mode, frame style and kind, one gateway with neighbours, a second building nearby.
MIXED_FLEET = """
[fleet]
name = "test"
seed = 7
epoch = "2025-01-01T00:00:00Z"
due_date = "12-31"

[radio]
corrupt_rate = 0.05
repeat_rate = 0.05

[[sites]]
name = "a"
address = "Teststr. 1"

[[sites.gateways]]
serial = "GW-A"
neighbours = 6

[[sites.gateways.meters]]
kind = "heat"
count = 4
manufacturers = ["KAM"]
security = "ell"
link_mode = "C1"
interval_s = 16
compact_every = 8
monthly = 12
distance_m = [2.0, 20.0]

[[sites.gateways.meters]]
kind = "heat"
count = 3
manufacturers = ["EFE", "ZRI"]
security = 7
tpl = "long"
interval_s = 32
monthly = 2
frame_format = "A"
error_rate = 0.5

[[sites.gateways.meters]]
kind = "water"
count = 3
manufacturers = ["DME"]
security = "5"
link_mode = "C1"
frame_format = "B"
interval_s = 20
monthly = 1

[[sites.gateways.meters]]
kind = "hca"
count = 3
manufacturers = ["QDS", "TCH"]
interval_s = 60
monthly = 3

[[sites]]
name = "b"
position = [90.0, 0.0]
heating_base_c = 15.0

[[sites.gateways]]
serial = "GW-B"

[[sites.gateways.meters]]
kind = "water"
count = 5
manufacturers = ["KAM"]
interval_s = 30
distance_m = [20.0, 60.0]
"""


@pytest.fixture(scope="module")
def fleet():
    return parse_fleet(MIXED_FLEET, "test fleet")


@pytest.fixture(scope="module")
def winter() -> float:
    return datetime(2026, 1, 14, 6, 0, tzinfo=UTC).timestamp()
