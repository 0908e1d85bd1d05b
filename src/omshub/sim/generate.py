"""Generate a fleet file: ``omshub simulate init-fleet --gateways 20 --meters 1000``.

Each gateway sits in its own building (site) on a grid 120 m apart, so neighbouring gateways hear
some of each other's meters; its meters are split into a realistic mix of groups (Kamstrup-style
heat meters with ELL and compact frames, mode-7 heat meters, mode-5 water meters and heat cost
allocators), with a few foreign neighbour meters per gateway.
"""

from __future__ import annotations

import math

from omshub.sim.fleet import MAX_METERS_PER_GATEWAY

# (share, group settings) of a building's meters; heat first, as the issue asks.
_MIX = (
    (
        0.30,
        {
            "kind": "heat",
            "manufacturers": ["KAM"],
            "security": "ell",
            "link_mode": "C1",
            "interval_s": 96,
            "compact_every": 8,
            "monthly": 12,
        },
    ),
    (
        0.20,
        {
            "kind": "heat",
            "manufacturers": ["EFE", "ZRI"],
            "security": "7",
            "link_mode": "T1",
            "interval_s": 128,
            "monthly": 2,
            "error_rate": 0.002,
        },
    ),
    (
        0.30,
        {
            "kind": "water",
            "manufacturers": ["DME", "KAM"],
            "security": "5",
            "link_mode": "T1",
            "interval_s": 128,
            "monthly": 1,
        },
    ),
    (
        0.20,
        {
            "kind": "hca",
            "manufacturers": ["QDS", "TCH"],
            "security": "5",
            "link_mode": "T1",
            "interval_s": 240,
            "monthly": 1,
        },
    ),
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _split(total: int, shares: list[float]) -> list[int]:
    """Largest-remainder split of ``total`` by ``shares``."""
    raw = [total * s for s in shares]
    counts = [math.floor(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def generate_fleet_toml(
    gateways: int,
    meters: int,
    seed: int = 1,
    name: str = "simulated",
    neighbours: int = 3,
    epoch: str = "2025-01-01T00:00:00Z",
) -> str:
    if gateways < 1:
        raise ValueError("--gateways must be at least 1")
    if meters < 0:
        raise ValueError("--meters must not be negative")
    if meters > gateways * MAX_METERS_PER_GATEWAY:
        raise ValueError(
            f"{meters} meters need at least {math.ceil(meters / MAX_METERS_PER_GATEWAY)} gateways "
            f"(a gateway listens to at most {MAX_METERS_PER_GATEWAY})"
        )
    lines = [
        "# omshub simulated meter fleet (omshub simulate init-fleet); see docs/simulator.md",
        "",
        "[fleet]",
        f"name = {_toml_value(name)}",
        f"seed = {seed}",
        f"epoch = {_toml_value(epoch)}",
        'timezone = "Europe/Berlin"',
        'due_date = "12-31"',
        "",
        "[weather]",
        "mean_c = 9.0",
        "seasonal_amplitude_c = 9.0",
        "",
        "[radio]",
        "corrupt_rate = 0.01",
        "repeat_rate = 0.02",
        "",
    ]
    per_gateway = _split(meters, [1.0 / gateways] * gateways)
    side = math.ceil(math.sqrt(gateways))
    for g in range(gateways):
        x, y = (g % side) * 120.0, (g // side) * 120.0
        lines += [
            "[[sites]]",
            f'name = "site-{g + 1:05d}"',
            f'address = "Simulated Street {g + 1}, 10115 Berlin"',
            f"position = [{x}, {y}]",
            "heating_base_c = 20.0" if g % 5 else "heating_base_c = 15.0",
            "",
            "[[sites.gateways]]",
            f'serial = "GW{g + 1:06d}"',
            f"neighbours = {neighbours}",
            "",
        ]
        counts = _split(per_gateway[g], [share for share, _ in _MIX])
        for count, (_, group) in zip(counts, _MIX, strict=False):
            if not count:
                continue
            lines.append("[[sites.gateways.meters]]")
            lines.append(f"count = {count}")
            lines += [f"{k} = {_toml_value(v)}" for k, v in group.items()]
            lines += ["distance_m = [2.0, 40.0]", ""]
    return "\n".join(lines)
