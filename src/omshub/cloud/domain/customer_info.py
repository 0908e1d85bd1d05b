"""Pure rules of the monthly consumption information (HeizkostenV §6a(2), FFVAV §4(4);
docs/customer-information.md): months, how a figure is marked, the cohort of comparable units, the
benchmark of the average user, and what makes a record incomplete.

A figure is a dict {"value": float | None, "status": …}. Status: `measured`, `interpolated`,
`estimated` (shown with `*`), `missing` (the month was closed but has no value: `–`), `not_collected`
(no data were collected for it: `–`), `before_move_in` / `after_move_out` (outside the occupant's stay:
not theirs to see, `–`). Never a silent zero.
"""

from __future__ import annotations

from datetime import date, timedelta

SHOWN = ("measured", "interpolated", "estimated")
NO_VALUE = ("missing", "not_collected", "before_move_in", "after_move_out")

# what a line measures: the quantity of its metering points, the unit it is shown in
KIND_UNITS = {"heat": "kWh", "hot_water": "m³", "hca": "units"}
HOT_WATER_TYPES = {"warm_water", "hot_water"}
HEAT_TYPES = {"heat", "heat_inlet", "heat_cooling"}

DEFAULT_FLAT_BINS = (50.0, 80.0, 120.0)  # m²: flats below 50, 50–80, 80–120, 120 and more
COHORT_KEYS = ("energy_carrier", "size_class", "flat_size")


def kind_of(quantity: str, device_type: str) -> str | None:
    """The information line a metering point feeds: heat (kWh), hot water (m³) or allocator units;
    None for what the monthly information does not cover (cold water, gas volume, electricity)."""
    dt = (device_type or "").lower()
    if quantity == "energy" and dt in HEAT_TYPES:
        return "heat"
    if quantity == "volume" and dt in HOT_WATER_TYPES:
        return "hot_water"
    if quantity == "hca" and dt == "heat_cost_allocator":
        return "hca"
    return None


def month_label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def shift_month(label: str, months: int) -> str:
    year, month = int(label[:4]), int(label[5:7])
    index = year * 12 + month - 1 + months
    return month_label(index // 12, index % 12 + 1)


def month_days(label: str) -> tuple[date, date]:
    """The first and last day of the month."""
    first = date(int(label[:4]), int(label[5:7]), 1)
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def stay_in_month(label: str, moved_in: date, moved_out: date | None) -> tuple[date, date] | None:
    """The days of the month within a stay (both inclusive), or None if the stay misses it."""
    first, last = month_days(label)
    a, b = max(first, moved_in), min(last, moved_out or last)
    return (a, b) if a <= b else None


def mark(figure: dict) -> str:
    """`*` for an estimated value, `–` for none; nothing for a measured or interpolated one."""
    status = figure.get("status")
    if status == "estimated":
        return "*"
    return "–" if status in NO_VALUE or figure.get("value") is None else ""


def flat_size_class(area_m2: float, bins: tuple[float, ...] | list[float] = DEFAULT_FLAT_BINS) -> str:
    """The flat size class of a living area: "<50", "50-80", …, "120+"."""
    edges = sorted(float(b) for b in bins)
    lower = None
    for edge in edges:
        if area_m2 < edge:
            return f"<{edge:g}" if lower is None else f"{lower:g}-{edge:g}"
        lower = edge
    return f"{lower:g}+" if lower is not None else "all"


def cohort_key(energy_carrier: str, size_class: str, area_m2: float, keys=COHORT_KEYS, bins=DEFAULT_FLAT_BINS) -> str:
    """The cohort a unit is compared with: energy carrier × building size class × flat size class
    (the configured subset), e.g. "energy_carrier=district_heat|size_class=7-12|flat_size=50-80"."""
    parts = {
        "energy_carrier": energy_carrier or "unknown",
        "size_class": size_class or "unknown",
        "flat_size": flat_size_class(area_m2, bins),
    }
    return "|".join(f"{k}={parts[k]}" for k in COHORT_KEYS if k in keys) or "all"


def average_per_m2(samples: list[tuple[float, float]]) -> float | None:
    """Area-weighted consumption per m² of (value, area) pairs: Σ value / Σ area, the normalised
    average user of the group; None if there is none."""
    area = sum(a for _, a in samples)
    return None if not samples or area <= 0 else sum(v for v, _ in samples) / area


def benchmark(
    per_m2: float | None, size: int, area_m2: float, share: float, basis: str, min_size: int, key: str
) -> dict:
    """The average user of a group scaled to this unit's area and the share of the month the record
    covers. Groups smaller than `min_size` are not shown (too few to compare, and too close to
    telling a neighbour's consumption)."""
    out = {"key": key, "size": size, "basis": basis, "per_m2": None, "value": None, "status": "not_collected"}
    if per_m2 is None or size == 0:
        return out
    if size < min_size:
        out["status"] = "too_small"
        return out
    out.update(per_m2=round(per_m2, 4), value=round(per_m2 * area_m2 * share, 1), status="measured")
    return out


def gaps_of(lines: list[dict]) -> list[str]:
    """Why the month's information is not complete: `no_meter` (no line at all), `no_data:<kind>`
    (the month's value is missing), `estimated:<kind>` (shown, but estimated)."""
    if not lines:
        return ["no_meter"]
    out = []
    for line in lines:
        status = line["month"]["status"]
        if status in NO_VALUE:
            out.append(f"no_data:{line['kind']}")
        elif status == "estimated":
            out.append(f"estimated:{line['kind']}")
    return out


def weather_corrected(value: float | None, actual_dd: float | None, reference_dd: float | None) -> float | None:
    """Heat consumption corrected to the reference climate by degree days (Gradtagzahl method,
    EV_corrected = EV · G_ref / G; docs/customer-information.md §Annual information): None where a
    figure is missing or the period had no degree days. Hot water is never corrected (HeizkostenV §6a(3))."""
    if value is None or not actual_dd or actual_dd <= 0 or not reference_dd:
        return None
    return round(value * reference_dd / actual_dd, 1)
