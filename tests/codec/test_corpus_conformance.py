"""Real-meter corpus conformance: how many of wmbusmeters' printed values do we reproduce?

Each line of ``../shared/vectors/wmbusmeters-public.jsonl`` is one telegram plus the values
wmbusmeters printed for it. We decode the line's ``prior_telegrams`` and then its ``telegram``
with :func:`omshub.codec.decode` (the line's key; one format cache per line, so compact frames
get the formats the earlier full frames taught; formats the driver files describe are the
decoder's own fallback, as in a deployment) and look for every expected value.

**Unit-bearing values** are the expected keys whose last ``_``-separated part is a unit in
:data:`SUFFIXES` (``_kwh``, ``_m3``, ``_c``, ``_hca``, ``_h`` …) and whose value is a number.
Dates, date-times, texts, status flags, ids, ratios (``power_factor``), tariff numbers
(``_nr``) and receiver data (``rssi_dbm`` is the dongle's, not the meter's) are not
unit-bearing. ``null`` values (wmbusmeters prints null for "not in this telegram") are
skipped. ``_counter`` (cumulation counters, pulse counts, transmission counters) counts as the
dimension "count" (records: dimensionless, cumulation/reset/stop counters, the access number
= transmission counter, plain-text units starting with ``#`` = "number of …"); a ``_c`` key
naming a temperature *difference* (wmbusmeters prints those in °C) counts as a temperature
difference (a step of 1 °C is 1 K).

A value is **matched** when ANY record of our output (or any ``fields`` entry, whose name ends
in a unit suffix the same way) of the same dimension has the same value after conversion to
the dimension's canonical unit: relative tolerance 1e-6, or half the last printed digit of a
non-integral expected value (wmbusmeters rounds what it prints). Records flagged
``error_value`` carry no value and never match.

Misses are grouped by cause: the decode error code (``no_key``, ``wrong_key``, ``unknown_ci``,
``unsupported_security_mode``, ``unknown_format``, ``decode_error:<code>``), ``value_missing``
(no record of that dimension at all) or ``value_differs`` (records of the dimension exist, none
with the value), per driver. Any exception other than DecodeError is an internal error and
fails the test.

Run ``pytest tests/codec/test_corpus_conformance.py -s`` to see the table, or
``python tests/codec/test_corpus_conformance.py [-v]`` (``-v`` lists every miss).
"""

from __future__ import annotations

import json
import math
import re
import sys
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRED_SHARE = 0.970  # 97.1 % on 2026-12-07; the misses left are listed in docs/drivers.md

# The misses judged so far, by cause: (cause, drivers, expected-key pattern). Every miss of the
# run is put under the first cause whose driver and key match; the others are "unexplained"
# (a new miss: a regression, or a meter whose values nobody has looked at yet) and fail the test.
# Each cause is a value the telegram does not carry as printed (docs/drivers.md, "Conformance").
KNOWN_CAUSES: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "Qundis 02 BB 56 is the duration of the last lower-limit exceedance of the flow (VIFE 56), not a flow"
        " (walk-by telegrams without that record: no flow in the telegram at all)",
        frozenset({"qwater", "qwaterv2"}),
        r"volume_flow_m3h",
    ),
    (
        "Qundis walk-by monthly consumption 8000 = no value (printed as -32768 units)",
        frozenset({"qheatv2", "qwaterv2"}),
        r"(energy|volume)_delta_\d+_(kwh|m3)",
    ),
    (
        "em24 VIFE 75 is a correction factor 10^-1 (EN 13757-3): the reference ignores it",
        frozenset({"em24"}),
        r"total_reactive_energy_(consumption|production)_kvarh",
    ),
    (
        "em24 apparent energy computed by the reference, not in the telegram",
        frozenset({"em24"}),
        r"total_apparent_energy_(consumption|production)_kvah",
    ),
    (
        "iem3000 manufacturer record FF 20 printed as 10^7 years of operating time",
        frozenset({"iem3000"}),
        r"operating_time_y",
    ),
    ("Hydrodigit month value FFFFFF (none) printed as 0", frozenset({"hydrodigit"}), r"[A-Z][a-z]+_total_m3"),
    (
        "Hydrodigit backflow under manufacturer-data flags whose field order is not documented",
        frozenset({"hydrodigit"}),
        r"backflow_m3",
    ),
    ("GWF manufacturer data (battery years): not documented", frozenset({"gwfwater"}), r"battery_y"),
    ("security mode 16 (manufacturer-specific): not documented", frozenset({"rfmtx1"}), r"total_m3"),
    (
        "Apator 162: the printed volume is not in the proprietary registers as documented",
        frozenset({"apator162"}),
        r"total_m3",
    ),
    ("plain-text VIF 'CO2' names the gas, not a unit (ppm)", frozenset({"elvsense"}), r"co2_ppm"),
)
UNEXPLAINED = "unexplained (not judged yet)"


def known_cause(driver: str, key: str) -> str:
    """The judged cause of a miss of ``key`` on a ``driver`` line (KNOWN_CAUSES), or UNEXPLAINED."""
    for cause, drivers, pattern in KNOWN_CAUSES:
        if driver in drivers and re.fullmatch(pattern, key):
            return cause
    return UNEXPLAINED


_YEAR_S = 365 * 86400  # wmbusmeters converts days to years with 365 days

# expected-key suffix -> (dimension, factor to the dimension's canonical unit)
SUFFIXES: dict[str, tuple[str, float | None]] = {
    "kwh": ("energy", 1.0),
    "wh": ("energy", 1e-3),
    "mwh": ("energy", 1e3),
    "gj": ("energy", 1e6 / 3600),
    "mj": ("energy", 1e3 / 3600),
    "m3": ("volume", 1.0),
    "l": ("volume", 1e-3),
    "m3h": ("volume_flow", 1.0),
    "lh": ("volume_flow", 1e-3),
    "kw": ("power", 1.0),
    "w": ("power", 1e-3),
    "mw": ("power", 1e3),
    "c": ("temperature", 1.0),
    "f": ("temperature", None),  # Fahrenheit: affine, see _canonical
    "k": ("temperature_difference", 1.0),
    "hca": ("hca", 1.0),
    "v": ("voltage", 1.0),
    "a": ("current", 1.0),
    "hz": ("frequency", 1.0),
    "bar": ("pressure", 1.0),
    "pa": ("pressure", 1e-5),
    "rh": ("relative_humidity", 1.0),
    "pct": ("relative_humidity", 1.0),
    "s": ("duration", 1.0),
    "min": ("duration", 60.0),
    "h": ("duration", 3600.0),
    "d": ("duration", 86400.0),
    "y": ("duration", float(_YEAR_S)),
    "kvarh": ("reactive_energy", 1.0),
    "kvah": ("apparent_energy", 1.0),
    "kvar": ("reactive_power", 1.0),
    "kva": ("apparent_power", 1.0),
    "counter": ("count", 1.0),
    "ppm": ("concentration", 1.0),
    "kg": ("mass", 1.0),
    "t": ("mass", 1e3),
}

# record quantity (omshub.codec.units) -> dimension; values are already canonical
QUANTITY_DIMENSIONS: dict[str, str] = {
    "energy": "energy",
    "volume": "volume",
    "volume_flow": "volume_flow",
    "mass": "mass",
    "power": "power",
    "cumulative_max_power": "power",
    "flow_temperature": "temperature",
    "return_temperature": "temperature",
    "external_temperature": "temperature",
    "temperature_limit": "temperature",
    "temperature_difference": "temperature_difference",
    "hca": "hca",
    "voltage": "voltage",
    "current": "current",
    "frequency": "frequency",
    "pressure": "pressure",
    "relative_humidity": "relative_humidity",
    "reactive_energy": "reactive_energy",
    "apparent_energy": "apparent_energy",
    "reactive_power": "reactive_power",
    "apparent_power": "apparent_power",
    "dimensionless": "count",
    "cumulation_counter": "count",
    "reset_counter": "count",
    "meter_stop_count": "count",
    "access_number": "count",
    "limit_exceed_count": "count",
}
for _q in (
    "on_time",
    "operating_time",
    "averaging_duration",
    "actuality_duration",
    "storage_interval",
    "duration_since_last_readout",
    "tariff_duration",
    "tariff_period",
    "transmission_period",
    "duration_since_last_cumulation",
    "battery_operating_time",
    "remaining_battery_life",
    "limit_exceed_duration",
    "event_duration",
):
    QUANTITY_DIMENSIONS[_q] = "duration"
# the same quantities counted in months / years
MONTHS_YEARS = {
    "storage_interval_months": 30 * 86400,
    "storage_interval_years": _YEAR_S,
    "duration_since_last_cumulation_months": 30 * 86400,
    "duration_since_last_cumulation_years": _YEAR_S,
    "battery_operating_time_months": 30 * 86400,
    "battery_operating_time_years": _YEAR_S,
}
# plain-text VIF units ("custom" records) we can place in a dimension
UNIT_TEXT_DIMENSIONS = {"ppm": ("concentration", 1.0), "%": ("relative_humidity", 1.0)}


def suffix_of(name: str) -> str | None:
    return name.rsplit("_", 1)[1].lower() if "_" in name else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _canonical(suffix: str, value: float) -> tuple[str, float]:
    dimension, factor = SUFFIXES[suffix]
    if factor is None:  # Fahrenheit
        return dimension, (value - 32.0) * 5.0 / 9.0
    return dimension, value * factor


def expected_values(expected: dict) -> list[tuple[str, str, float, float]]:
    """The unit-bearing expected values: (key, dimension, canonical value, tolerance)."""
    out = []
    for key, value in expected.items():
        suffix = suffix_of(key)
        if suffix not in SUFFIXES or not _number(value):
            continue
        dimension, canon = _canonical(suffix, float(value))
        if dimension == "temperature" and "difference" in key:
            dimension = "temperature_difference"  # wmbusmeters prints differences in °C; 1 °C step = 1 K
        factor = SUFFIXES[suffix][1] or 5.0 / 9.0
        tolerance = abs(canon) * 1e-6
        if isinstance(value, float) and not value.is_integer():
            text = repr(value)
            decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 6
            tolerance = max(tolerance, 0.5 * 10.0**-decimals * abs(factor))
        out.append((key, dimension, canon, max(tolerance, 1e-9)))
    return out


def produced_values(telegram: dict) -> dict[str, list[float]]:
    """Our output's numeric values by dimension: records, then driver fields."""
    by_dimension: dict[str, list[float]] = defaultdict(list)
    for record in telegram.get("records") or ():
        value = record.get("value")
        if record.get("error_value") or not _number(value):
            continue
        quantity = record.get("quantity")
        if quantity in QUANTITY_DIMENSIONS:
            by_dimension[QUANTITY_DIMENSIONS[quantity]].append(float(value))
        elif quantity in MONTHS_YEARS:
            by_dimension["duration"].append(float(value) * MONTHS_YEARS[quantity])
        elif quantity == "custom" and record.get("unit_text") in UNIT_TEXT_DIMENSIONS:
            dimension, factor = UNIT_TEXT_DIMENSIONS[record["unit_text"]]
            by_dimension[dimension].append(float(value) * factor)
        elif quantity == "custom" and str(record.get("unit_text") or "").startswith("#"):
            by_dimension["count"].append(float(value))  # plain-text unit "#…" = number of …
    for name, value in _flat_fields(telegram.get("fields") or {}):
        suffix = suffix_of(name)
        if suffix in SUFFIXES and _number(value):
            dimension, canon = _canonical(suffix, float(value))
            by_dimension[dimension].append(canon)
    return by_dimension


def _flat_fields(fields: dict, prefix: str = ""):
    for name, value in fields.items():
        if isinstance(value, dict):
            yield from _flat_fields(value, f"{prefix}{name}_")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from _flat_fields(item, prefix)
        else:
            yield prefix + name, value


@dataclass
class Report:
    total: int = 0
    matched: int = 0
    telegrams: int = 0
    errors: Counter = field(default_factory=Counter)  # decode error code -> telegrams
    misses: Counter = field(default_factory=Counter)  # (cause, driver) -> values
    miss_list: list = field(default_factory=list)  # (line, driver, key, expected, cause, detail)
    internal: list = field(default_factory=list)  # (line, driver, traceback)

    def by_known_cause(self) -> dict[str, list[tuple]]:
        """The misses grouped by their judged cause (:data:`KNOWN_CAUSES`), largest group first."""
        groups: dict[str, list[tuple]] = defaultdict(list)
        for miss in self.miss_list:
            groups[known_cause(miss[1], miss[2])].append(miss)
        return dict(sorted(groups.items(), key=lambda item: (item[0] == UNEXPLAINED, -len(item[1]))))

    @property
    def share(self) -> float:
        return self.matched / self.total if self.total else 0.0

    def figure(self) -> str:
        return f"corpus conformance: matched/total = {self.matched}/{self.total} = {100 * self.share:.1f}%"

    def table(self, verbose: bool = False) -> str:
        lines = [
            self.figure(),
            f"telegrams: {self.telegrams}, decode errors: "
            + (", ".join(f"{c}={n}" for c, n in self.errors.most_common()) or "none"),
        ]
        by_cause: dict[str, Counter] = defaultdict(Counter)
        for (cause, driver), n in self.misses.items():
            by_cause[cause][driver] += n
        lines.append("misses by cause (values; per driver):")
        for cause, drivers in sorted(by_cause.items(), key=lambda item: -sum(item[1].values())):
            per = ", ".join(f"{d} {n}" for d, n in drivers.most_common())
            lines.append(f"  {cause:<32} {sum(drivers.values()):>4}   {per}")
        lines.append("misses by judged cause (values: lines):")
        for cause, misses in self.by_known_cause().items():
            where = ", ".join(sorted({f"{d} {n}" for n, d, *_ in misses}, key=lambda t: int(t.split()[-1])))
            lines.append(f"  {len(misses):>4}  {cause}\n        {where}")
        if self.internal:
            lines.append(f"INTERNAL ERRORS: {len(self.internal)}")
            lines.extend(f"  line {n} ({d}): {tb.strip().splitlines()[-1]}" for n, d, tb in self.internal)
        if verbose:
            lines.append("every miss:")
            lines.extend(f"  line {n} {d} {k}={v!r}: {c} {detail}" for n, d, k, v, c, detail in self.miss_list)
        return "\n".join(lines)


def _cause(exc) -> str:
    code = exc.code
    if code in ("no_key", "wrong_key", "unknown_ci", "unsupported_security_mode", "unknown_format"):
        return code
    return f"decode_error:{code}"


def run_corpus(path: Path) -> Report:
    from omshub.codec import DecodeError, FormatCache, decode, parse_hex

    report = Report()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        entry = json.loads(line)
        driver = entry.get("driver", "?")
        wanted = expected_values(entry.get("expected") or {})
        report.telegrams += 1
        report.total += len(wanted)
        key = bytes.fromhex(entry["key"]) if entry.get("key") else None
        formats = FormatCache()
        telegram = None
        failure = None
        try:
            for prior in entry.get("prior_telegrams") or ():
                try:
                    decode(parse_hex(prior), key=key, formats=formats)
                except DecodeError:
                    pass  # an earlier telegram we cannot read only costs its formats
            telegram = decode(parse_hex(entry["telegram"]), key=key, formats=formats)
        except DecodeError as exc:
            failure = exc
            report.errors[exc.code] += 1
        except Exception:
            report.internal.append((number, driver, traceback.format_exc()))
        if telegram is None:
            cause = _cause(failure) if failure is not None else "internal_error"
            for key_name, _dim, canon, _tol in wanted:
                report.misses[(cause, driver)] += 1
                report.miss_list.append(
                    (number, driver, key_name, canon, cause, failure.message if failure is not None else "")
                )
            continue
        produced = produced_values(telegram)
        for key_name, dimension, canon, tolerance in wanted:
            candidates = produced.get(dimension, ())
            if any(abs(value - canon) <= tolerance for value in candidates):
                report.matched += 1
                continue
            cause = "value_differs" if candidates else "value_missing"
            report.misses[(cause, driver)] += 1
            report.miss_list.append(
                (number, driver, key_name, canon, cause, f"{dimension}: {sorted(set(candidates))[:8]}")
            )
    return report


def test_corpus_conformance(shared_vectors, request) -> None:
    report = run_corpus(shared_vectors / "wmbusmeters-public.jsonl")
    table = report.table()
    print("\n" + table)
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None and not hasattr(request.config, "workerinput"):
        request.config.add_cleanup(lambda: reporter.write_line(report.figure()))
    assert not report.internal, "internal errors (exceptions other than DecodeError):\n" + "\n".join(
        f"line {n} ({d}):\n{tb}" for n, d, tb in report.internal
    )
    assert report.total > 1500, f"corpus has only {report.total} unit-bearing values: wrong file?"
    unexplained = report.by_known_cause().get(UNEXPLAINED, [])
    assert not unexplained, "misses without a judged cause (KNOWN_CAUSES):\n" + "\n".join(
        f"line {n} {d} {k}={v!r}: {c} {detail}" for n, d, k, v, c, detail in unexplained
    )
    assert report.share >= REQUIRED_SHARE, f"{report.figure()} < {100 * REQUIRED_SHARE:.0f}%\n{table}"


def test_suffix_table() -> None:
    # the conversions the figure depends on
    values = {
        k: (d, v, t)
        for k, d, v, t in expected_values(
            {
                "total_energy_kwh": 1.5,
                "x_gj": 1,
                "t_f": 212,
                "d_y": 1,
                "t_difference_c": 0.25,
                "flag": "OK",
                "n_nr": 3,
                "n": None,
                "x_counter": 7,
            }
        )
    }
    assert set(values) == {"total_energy_kwh", "x_gj", "t_f", "d_y", "t_difference_c", "x_counter"}
    assert values["total_energy_kwh"] == ("energy", 1.5, pytest.approx(0.05))  # half the last digit
    assert values["x_gj"][:2] == ("energy", pytest.approx(277.7777778))
    assert values["x_gj"][2] == pytest.approx(277.78e-6, rel=1e-3)  # integers: relative 1e-6
    assert values["t_f"][:2] == ("temperature", pytest.approx(100.0))
    assert values["d_y"][:2] == ("duration", 365 * 86400.0)
    assert values["t_difference_c"][:2] == ("temperature_difference", 0.25)
    assert values["x_counter"][:2] == ("count", 7.0)
    produced = produced_values(
        {
            "records": [
                {"quantity": "volume", "value": 0.5},
                {"quantity": "volume", "value": None, "error_value": True},
                {"quantity": "operating_time", "value": 7200},
                {"quantity": "date", "value": "2024-01-01"},
                {"quantity": "custom", "value": 4, "unit_text": "#AL"},
                {"quantity": "access_number", "value": 9},
            ],
            "fields": {"due_date_hca": 12, "monthly": [{"volume_m3": 3}]},
        }
    )
    assert produced == {"volume": [0.5, 3.0], "duration": [7200.0], "hca": [12.0], "count": [4.0, 9.0]}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import VECTORS

    result = run_corpus(VECTORS / "wmbusmeters-public.jsonl")
    print(result.table(verbose="-v" in sys.argv))
    for n, d, tb in result.internal:
        print(f"--- line {n} ({d})\n{tb}")
