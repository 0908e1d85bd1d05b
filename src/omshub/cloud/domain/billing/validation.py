"""Validation rules (VEE) for billing values, with their documented defaults (docs/billing.md §Rules).

Each rule is a pure function that returns the `Finding`s it trips (empty: passed). A finding says
which rule, how severe (`warning`: review advised; `error`: the value must not be billed until an
operator decides), what in English and German, and the numbers behind it. The services run the
rules, put findings in the review queue and never change a raw value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from omshub.cloud.domain.billing.boundary import Sample, StoredValue

WARNING = "warning"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    message: str
    german: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToleranceBand:
    """From an expected consumption of `from_value` on: allowed deviation above and below, in percent
    of the expected value (SAP's relative limits, banded by consumption size)."""

    from_value: float
    above_pct: float
    below_pct: float


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """Thresholds per tenant; the defaults are documented in docs/billing.md."""

    zero_days: int = 30  # zero consumption this long in the heating season is suspicious
    heating_months: tuple[int, ...] = (10, 11, 12, 1, 2, 3, 4)
    stale_days: int = 7  # no reading for this long before a boundary
    future_tolerance: timedelta = timedelta(minutes=15)  # a meter clock may run a little fast
    # implied power (kW) or flow (m³/h) that no meter of a flat or a house delivers
    max_power_kw: float = 1_000.0
    max_flow_m3h: float = 50.0
    max_hca_units_per_day: float = 1_000.0
    bands: tuple[ToleranceBand, ...] = (ToleranceBand(0, 70, 40), ToleranceBand(100, 60, 30))
    reset_drop_share: float = 0.5  # a register that falls by more than half was reset or swapped


def _f(rule: str, severity: str, message: str, german: str, **details) -> Finding:
    return Finding(rule, severity, message, german, details)


def _num(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _num_de(value: float) -> str:
    return _num(value).replace(",", " ").replace(".", ",").replace(" ", ".")


def check_consumption(
    start: float,
    end: float,
    *,
    rollover_modulus: float | None = None,
    max_delta: float | None = None,
    reset_drop_share: float = 0.5,
) -> list[Finding]:
    """A register that went down: a rollover if the meter's digits wrapped and the wrapped consumption
    is physically possible (`max_delta`), a reset or swap if it fell by much, else negative
    consumption. Returns [] for end ≥ start."""
    if end >= start:
        return []
    if rollover_modulus:
        wrapped = end + rollover_modulus - start
        if max_delta is None or wrapped <= max_delta:
            return [
                _f(
                    "rollover",
                    WARNING,
                    f"the register wrapped around at {_num(rollover_modulus)}: consumption {_num(wrapped)}",
                    f"Das Zählwerk ist bei {_num_de(rollover_modulus)} übergelaufen: Verbrauch {_num_de(wrapped)}",
                    consumption=wrapped,
                    modulus=rollover_modulus,
                )
            ]
    if start > 0 and (start - end) / start > reset_drop_share:
        return [
            _f(
                "meter_reset",
                ERROR,
                f"the register fell from {_num(start)} to {_num(end)}: the meter was reset or swapped",
                f"Der Zählerstand fiel von {_num_de(start)} auf {_num_de(end)}: Zähler zurückgesetzt oder getauscht",
                start=start,
                end=end,
            )
        ]
    return [
        _f(
            "negative_consumption",
            ERROR,
            f"negative consumption: the register fell from {_num(start)} to {_num(end)}",
            f"Negativer Verbrauch: der Zählerstand fiel von {_num_de(start)} auf {_num_de(end)}",
            start=start,
            end=end,
        )
    ]


def check_zero(consumption: float, first_day: date, last_day: date, rules: ValidationRules) -> list[Finding]:
    """Zero consumption over at least `zero_days` days that fall in the heating season."""
    if consumption != 0:
        return []
    heating = sum(
        1
        for n in range((last_day - first_day).days + 1)
        if (first_day + timedelta(days=n)).month in rules.heating_months
    )
    if heating < rules.zero_days:
        return []
    return [
        _f(
            "zero_consumption",
            WARNING,
            f"no consumption over {heating} days of the heating season",
            f"Kein Verbrauch an {heating} Tagen der Heizperiode",
            heating_days=heating,
        )
    ]


def check_tolerance(consumption: float, expected: float | None, rules: ValidationRules) -> list[Finding]:
    """Consumption against the expected value (the same period last year, degree-day scaled): outside
    the band that applies to the expected size."""
    if expected is None or expected <= 0:
        return []
    band = max((b for b in rules.bands if expected >= b.from_value), key=lambda b: b.from_value, default=None)
    if band is None:
        return []
    high, low = expected * (1 + band.above_pct / 100), expected * (1 - band.below_pct / 100)
    if low <= consumption <= high:
        return []
    pct = (consumption / expected - 1) * 100
    return [
        _f(
            "outside_tolerance",
            WARNING,
            f"consumption {_num(consumption)} is {pct:+.0f} % of the expected {_num(expected)} "
            f"(allowed +{band.above_pct:g} % / −{band.below_pct:g} %)",
            f"Verbrauch {_num_de(consumption)} weicht um {pct:+.0f} % vom erwarteten Wert {_num_de(expected)} ab "
            f"(zulässig +{band.above_pct:g} % / −{band.below_pct:g} %)",
            expected=expected,
            low=low,
            high=high,
        )
    ]


def check_rate(consumption: float, hours: float, quantity: str, rules: ValidationRules) -> list[Finding]:
    """The average power (energy), flow (volume) or HCA units per day implied by a consumption over
    `hours` above what a meter can plausibly see."""
    if hours <= 0 or consumption <= 0:
        return []
    if quantity == "energy":
        rate, limit, unit = consumption / hours, rules.max_power_kw, "kW"
    elif quantity == "volume":
        rate, limit, unit = consumption / hours, rules.max_flow_m3h, "m³/h"
    elif quantity == "hca":
        rate, limit, unit = consumption / hours * 24, rules.max_hca_units_per_day, "units/day"
    else:
        return []
    if rate <= limit:
        return []
    unit_de = "Einheiten/Tag" if quantity == "hca" else unit
    return [
        _f(
            "implausible_rate",
            ERROR,
            f"implies {_num(rate)} {unit} on average, above the plausible maximum {_num(limit)} {unit}",
            f"Ergibt im Mittel {_num_de(rate)} {unit_de}, mehr als das plausible Maximum {_num_de(limit)} {unit_de}",
            rate=rate,
            limit=limit,
        )
    ]


def check_stale(last_reading_at: datetime | None, boundary: datetime, rules: ValidationRules) -> list[Finding]:
    """No reading for `stale_days` before the boundary."""
    if last_reading_at is not None and boundary - last_reading_at <= timedelta(days=rules.stale_days):
        return []
    if last_reading_at is None:
        en = "no reading in the period nor in the days before it"
        de = "Kein Messwert im Zeitraum und in den Tagen davor"
    else:
        en = f"no reading for more than {rules.stale_days} days before the boundary (last: {last_reading_at:%Y-%m-%d})"
        de = (
            f"Seit mehr als {rules.stale_days} Tagen vor dem Stichtag kein Messwert "
            f"(zuletzt am {last_reading_at:%d.%m.%Y})"
        )
    return [
        _f(
            "stale_reading",
            WARNING,
            en,
            de,
            last_reading_at=None if last_reading_at is None else last_reading_at.isoformat(),
        )
    ]


def check_future(sample: Sample, received_at: datetime, rules: ValidationRules) -> list[Finding]:
    """A reading whose meter time lies after the time the head-end received it."""
    if sample.at <= received_at + rules.future_tolerance:
        return []
    ahead = int((sample.at - received_at).total_seconds())
    return [
        _f(
            "future_timestamp",
            ERROR,
            f"the reading is dated {ahead} s after it was received",
            f"Der Messwert ist {ahead} s nach seinem Empfang datiert",
            telegram_id=sample.telegram_id,
            ahead_s=ahead,
        )
    ]


def check_unit(unit: str | None, expected: str) -> list[Finding]:
    """The register's unit is not the one its quantity is billed in."""
    if unit == expected:
        return []
    return [
        _f(
            "unit_mismatch",
            ERROR,
            f"register unit {unit!r} where {expected!r} is expected",
            f"Einheit des Zählwerks {unit!r}, erwartet {expected!r}",
            unit=unit,
            expected=expected,
        )
    ]


def check_duplicates(samples: list[Sample]) -> list[Finding]:
    """Two readings with the same time but different values (a repeat with the same value is fine)."""
    out = []
    for a, b in zip(samples, samples[1:], strict=False):
        if a.at == b.at and a.value != b.value:
            out.append(
                _f(
                    "conflicting_duplicate",
                    ERROR,
                    f"two readings at {a.at.isoformat()} differ: {_num(a.value)} and {_num(b.value)}",
                    f"Zwei Messwerte zum selben Zeitpunkt {a.at.isoformat()} weichen ab: "
                    f"{_num_de(a.value)} und {_num_de(b.value)}",
                    telegram_ids=[a.telegram_id, b.telegram_id],
                )
            )
    return out


def check_due_date(
    stored: StoredValue,
    *,
    telegram_day: date,
    total: float | None,
    installed_on: date | None = None,
    previous_value: float | None = None,
) -> list[Finding]:
    """A stored due-date or month-end value: dated after the telegram (the known "year 2128" decoding
    error), before the installation, above the meter's current total, or below the previous due-date
    value. (An impossible calendar date, e.g. month 15, never becomes a `StoredValue`: the caller reports
    it with `invalid_due_date`.)"""
    out = []
    if stored.day > telegram_day:
        out.append(
            _f(
                "due_date_after_telegram",
                ERROR,
                f"stored value dated {stored.day} after the telegram of {telegram_day}",
                f"Gespeicherter Wert mit Datum {stored.day} liegt nach dem Telegramm vom {telegram_day}",
                stored_day=stored.day.isoformat(),
            )
        )
    if installed_on is not None and stored.day < installed_on:
        out.append(
            _f(
                "due_date_before_installation",
                WARNING,
                f"stored value dated {stored.day} before the installation on {installed_on}",
                f"Gespeicherter Wert mit Datum {stored.day} liegt vor dem Einbau am {installed_on}",
                stored_day=stored.day.isoformat(),
            )
        )
    if total is not None and stored.value > total:
        out.append(
            _f(
                "due_date_value_above_total",
                ERROR,
                f"stored value {_num(stored.value)} above the current total {_num(total)}",
                f"Gespeicherter Wert {_num_de(stored.value)} über dem aktuellen Zählerstand {_num_de(total)}",
                value=stored.value,
                total=total,
            )
        )
    if previous_value is not None and stored.value < previous_value:
        out.append(
            _f(
                "due_date_value_below_previous",
                ERROR,
                f"stored value {_num(stored.value)} below the previous one {_num(previous_value)}",
                f"Gespeicherter Wert {_num_de(stored.value)} unter dem vorigen {_num_de(previous_value)}",
                value=stored.value,
                previous=previous_value,
            )
        )
    return out


def check_stored_between_readings(
    stored: StoredValue, before: Sample | None, after: Sample | None, tolerance: float = 0.001
) -> list[Finding]:
    """A stored value must lie between the meter's readings before and after the end of its day (the
    register only counts up): otherwise the meter or its decoding has the wrong value or date.
    `tolerance`: the share of the register the comparison allows for rounding."""
    low = before.value if before else None
    high = after.value if after else None
    if low is None and high is None:
        return []
    slack = abs(stored.value) * tolerance
    if (low is None or stored.value >= low - slack) and (high is None or stored.value <= high + slack):
        return []
    around = " – ".join(_num(x) for x in (low, high) if x is not None)
    umgebung = " – ".join(_num_de(x) for x in (low, high) if x is not None)
    return [
        _f(
            "due_date_value_outside_readings",
            ERROR,
            f"the meter's value {_num(stored.value)} for {stored.day} does not fit its readings "
            f"around that day ({around})",
            f"Der gespeicherte Wert {_num_de(stored.value)} zum {stored.day:%d.%m.%Y} passt nicht zu den Messwerten "
            f"um diesen Tag ({umgebung})",
            value=stored.value,
            stored_day=stored.day.isoformat(),
            before=low,
            after=high,
        )
    ]


def invalid_due_date(text: str) -> Finding:
    """A stored date the meter sent that is no calendar date (month 15, day 31 April)."""
    return _f(
        "invalid_due_date",
        ERROR,
        f"the meter's stored date {text!r} is no valid calendar date",
        f"Das gespeicherte Datum des Zählers {text!r} ist kein gültiges Kalenderdatum",
        text=text,
    )


def pending_after(previous_states: list[str]) -> bool:
    """SAP's check 95: a value after an implausible one that nobody has decided yet stays pending.
    `previous_states`: the review states of the earlier values of the same register, oldest first."""
    return any(s == "open" for s in previous_states)
