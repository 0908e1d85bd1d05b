"""Heating, hot-water and water demand over time, as cumulative tables a meter reads from.

A :class:`DemandProfile` holds, per hour since the fleet epoch, the *normalised* demand of one kind
of household (profile class) in one building type (heating base/limit temperature) under one
climate: each series sums to 1.0 over the first year after the epoch, so a meter's annual
consumption is simply a scale factor. Demand is constant within an hour, hence the cumulative
series are exact integrals of the rates (a meter's energy register integrates its power reading).

Heating demand ∝ heating degree-hours × a daily profile (night setback, morning and evening peaks);
hot water and cold water follow their own daily profiles with a mild seasonal swing. The heat
meter's flow/return temperatures follow a heating curve, and its volume is
``energy / (c · ΔT)`` hour by hour (c = 1.163 kWh/(m³·K)), so energy ≈ volume × ΔT × c holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from zoneinfo import ZoneInfo

from omshub.sim.weather import Weather

HEAT_CAPACITY_KWH_M3K = 1.163  # water, kWh per m³ per kelvin

HEAT, HOT_WATER, HEAT_VOLUME, HOT_WATER_VOLUME, WATER = range(5)
SERIES = 5
PROFILE_CLASSES = 6
_BLOCK_HOURS = 24 * 32  # tables grow in blocks of ~a month
_MAX_HOURS = 24 * 366 * 30  # 30 years after the epoch is the limit of a simulation

# Relative demand per local hour 0..23 (scaled later, only the shape matters).
_HEAT_DAY = (
    0.6,
    0.6,
    0.6,
    0.6,
    0.6,
    0.8,
    1.4,
    1.5,
    1.3,
    1.0,
    0.95,
    0.95,
    0.95,
    0.95,
    0.95,
    1.0,
    1.1,
    1.25,
    1.3,
    1.3,
    1.2,
    1.0,
    0.8,
    0.65,
)
_HOT_WATER_DAY = (
    0.2,
    0.1,
    0.1,
    0.1,
    0.2,
    0.6,
    2.0,
    2.6,
    1.8,
    1.0,
    0.8,
    0.8,
    1.0,
    0.9,
    0.7,
    0.7,
    0.8,
    1.1,
    1.6,
    1.8,
    1.6,
    1.3,
    0.8,
    0.4,
)
# Profile classes: (hours the household's day is shifted by, how pronounced its peaks are).
_CLASSES = ((0, 1.0), (-1, 1.0), (1, 1.0), (2, 1.2), (0, 0.5), (-2, 0.8))


def heating_curve(outdoor_c: float) -> tuple[float, float]:
    """(flow °C, temperature difference K) a weather-compensated heating system runs at."""
    cold = 20.0 - outdoor_c
    flow = min(75.0, max(45.0, 40.0 + 1.0 * cold))
    delta = min(25.0, max(8.0, 8.0 + 0.4 * cold))
    return flow, delta


def _shaped(day: tuple[float, ...], shift: int, sharpness: float) -> list[float]:
    return [1.0 + sharpness * (day[(h - shift) % 24] - 1.0) for h in range(24)]


@dataclass(frozen=True)
class Snapshot:
    """A profile's state at one instant: cumulative normalised series and their hourly rates."""

    cumulative: tuple[float, ...]  # per series, since the epoch (heating fraction of a year, ...)
    rate: tuple[float, ...]  # per series, per hour
    outdoor_c: float
    flow_c: float
    return_c: float


class _HourlyConditions:
    """Weather-derived values per hour since the epoch for one building type, shared by the
    profile classes: degree-hours, heating curve, seasonal phase and local (civil) hour."""

    def __init__(self, weather: Weather, tz: ZoneInfo, epoch_hour: int, base_c: float, limit_c: float) -> None:
        self.weather, self.tz, self.epoch_hour = weather, tz, epoch_hour
        self.base_c, self.limit_c = base_c, limit_c
        self.degree_hours: list[float] = []
        self.flow: list[float] = []
        self.delta: list[float] = []
        self.outdoor: list[float] = []
        self.season: list[float] = []
        self.local_hour: list[int] = []

    def extend_to(self, count: int) -> None:
        w = self.weather
        while len(self.flow) < count:
            h0 = self.epoch_hour + len(self.flow)
            for hour in range(h0, h0 + _BLOCK_HOURS):
                outdoor = w.hour_temperature(hour)
                flow, delta = heating_curve(outdoor)
                self.degree_hours.append(w.heating_degree_hours(hour, self.base_c, self.limit_c))
                self.flow.append(flow)
                self.delta.append(delta)
                self.outdoor.append(outdoor)
                self.season.append(math.cos(2 * math.pi * ((hour / 24.0) % 365.2425 - 15) / 365.2425))
                # civil time: households follow daylight saving time
                self.local_hour.append(datetime.fromtimestamp(hour * 3600, self.tz).hour)


class DemandProfile:
    def __init__(self, conditions: _HourlyConditions, profile_class: int) -> None:
        self.cond = conditions
        self.weather = conditions.weather
        self.epoch_hour = conditions.epoch_hour
        shift, sharp = _CLASSES[profile_class % len(_CLASSES)]
        self._heat_day = _shaped(_HEAT_DAY, shift, sharp)
        self._hot_day = _shaped(_HOT_WATER_DAY, shift, sharp)
        self._rates: list[list[float]] = [[] for _ in range(SERIES)]
        self._cum: list[list[float]] = [[0.0] for _ in range(SERIES)]
        # Normalise each series so that the first year after the epoch sums to 1.
        self._norm = [1.0] * SERIES
        sums = [sum(col) for col in self._raw_block(0, 8766)]
        self._norm = [1.0 / s if s > 0 else 0.0 for s in sums]

    def _raw_block(self, first: int, count: int) -> tuple[list[float], ...]:
        c = self.cond
        c.extend_to(first + count)
        sl = slice(first, first + count)
        heat_day, hot_day = self._heat_day, self._hot_day
        n_heat, n_hot, n_water = self._norm[HEAT], self._norm[HOT_WATER], self._norm[WATER]
        heat = [dh * heat_day[lh] * n_heat for dh, lh in zip(c.degree_hours[sl], c.local_hour[sl], strict=False)]
        # hot water: colder mains water in winter; cold water: more drinking/garden water in summer
        hours_seasons = list(zip(c.local_hour[sl], c.season[sl], strict=False))
        hot = [hot_day[lh] * (1.0 + 0.1 * se) * n_hot for lh, se in hours_seasons]
        water = [hot_day[lh] * (1.0 - 0.08 * se) * n_water for lh, se in hours_seasons]
        per_m3 = [1.0 / (HEAT_CAPACITY_KWH_M3K * d) for d in c.delta[sl]]
        return (
            heat,
            hot,
            [a * b for a, b in zip(heat, per_m3, strict=False)],
            [a * b for a, b in zip(hot, per_m3, strict=False)],
            water,
        )

    def _extend_to(self, index: int) -> None:
        if index >= _MAX_HOURS:
            raise ValueError(f"simulated time is more than {_MAX_HOURS // 8766} years after the fleet epoch")
        while len(self._rates[0]) <= index:
            block = self._raw_block(len(self._rates[0]), _BLOCK_HOURS)
            for s in range(SERIES):
                self._rates[s].extend(block[s])
                running = accumulate(block[s], initial=self._cum[s][-1])
                next(running)  # the start value is already the last element
                self._cum[s].extend(running)

    def snapshot(self, t: float) -> Snapshot:
        """State at Unix time ``t``; before the epoch everything is zero (meters not installed)."""
        x = t / 3600.0 - self.epoch_hour
        if x < 0:
            outdoor = self.weather.temperature(t)
            flow, delta = heating_curve(outdoor)
            return Snapshot((0.0,) * SERIES, (0.0,) * SERIES, outdoor, flow, flow - delta)
        i = int(x)
        frac = x - i
        if i >= len(self._rates[0]):
            self._extend_to(i)
        r, c = self._rates, self._cum
        rates = (r[0][i], r[1][i], r[2][i], r[3][i], r[4][i])  # unrolled: the simulator's hot path
        cum = (
            c[0][i] + frac * rates[0],
            c[1][i] + frac * rates[1],
            c[2][i] + frac * rates[2],
            c[3][i] + frac * rates[3],
            c[4][i] + frac * rates[4],
        )
        flow = self.cond.flow[i]
        return Snapshot(cum, rates, self.cond.outdoor[i], flow, flow - self.cond.delta[i])

    def cumulative(self, series: int, t: float) -> float:
        x = t / 3600.0 - self.epoch_hour
        if x < 0:
            return 0.0
        i = int(x)
        self._extend_to(i)
        return self._cum[series][i] + (x - i) * self._rates[series][i]


class Climate:
    """Weather + time zone + epoch: hands out the (cached) demand profiles meters read from."""

    def __init__(self, weather: Weather, tz: ZoneInfo, epoch: float) -> None:
        self.weather = weather
        self.tz = tz
        self.epoch = epoch
        self._conditions: dict[tuple[float, float], _HourlyConditions] = {}
        self._profiles: dict[tuple[float, float, int], DemandProfile] = {}

    def profile(self, base_c: float, limit_c: float, profile_class: int) -> DemandProfile:
        key = (base_c, limit_c, profile_class % PROFILE_CLASSES)
        p = self._profiles.get(key)
        if p is None:
            cond = self._conditions.get(key[:2])
            if cond is None:
                cond = self._conditions[key[:2]] = _HourlyConditions(
                    self.weather, self.tz, math.floor(self.epoch / 3600), base_c, limit_c
                )
            p = self._profiles[key] = DemandProfile(cond, key[2])
        return p


def monthly_totals(profile: DemandProfile, series: int, year: int) -> list[float]:
    """Normalised consumption of each calendar month (UTC) of ``year`` — for reports and tests."""
    bounds = [datetime(year, m, 1, tzinfo=UTC).timestamp() for m in range(1, 13)]
    bounds.append(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    return [profile.cumulative(series, bounds[m + 1]) - profile.cumulative(series, bounds[m]) for m in range(12)]


__all__ = [
    "Climate",
    "DemandProfile",
    "Snapshot",
    "heating_curve",
    "monthly_totals",
    "HEAT",
    "HOT_WATER",
    "HEAT_VOLUME",
    "HOT_WATER_VOLUME",
    "WATER",
    "HEAT_CAPACITY_KWH_M3K",
]
