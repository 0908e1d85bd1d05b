"""Outdoor temperature over the year, deterministic from a seed, and heating degree days.

Model: seasonal sine (coldest around mid-January) + daily cycle (coldest before dawn, warmest mid
afternoon, in local solar time) + weather anomalies that persist for days (smooth value noise on a
3-day and a 1-day scale) + a little hourly noise. Defaults resemble central Europe (annual mean
9 °C, January ≈ 0 °C, July ≈ 18 °C).

Time is Unix seconds (UTC); the model works on whole hours (``hour = floor(t / 3600)``) and
interpolates linearly in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from omshub.sim.noise import gaussian

_HOUR = 3600
_YEAR_DAYS = 365.2425
_EPOCH_DAY0 = date(1970, 1, 1)


@dataclass(frozen=True)
class WeatherParams:
    mean_c: float = 9.0  # annual mean temperature
    seasonal_amplitude_c: float = 9.0  # half the difference between the warmest and coldest month
    daily_amplitude_c: float = 4.0  # half the day/night difference
    noise_c: float = 3.0  # typical size of multi-day weather anomalies
    coldest_day: int = 15  # day of year of the seasonal minimum
    utc_offset_h: float = 1.0  # local solar time offset for the daily cycle


def _smooth_noise(seed: int, octave: int, x: float) -> float:
    """Value noise: Gaussian knots at integer x, cosine-interpolated (continuous, random access)."""
    k = math.floor(x)
    f = x - k
    a = gaussian(seed, 0x5EA, octave, k)
    b = gaussian(seed, 0x5EA, octave, k + 1)
    w = (1.0 - math.cos(math.pi * f)) * 0.5
    return a + (b - a) * w


class Weather:
    """Outdoor temperature of one climate, a pure function of (params, seed, time)."""

    def __init__(self, params: WeatherParams | None = None, seed: int = 0) -> None:
        self.params = params or WeatherParams()
        self.seed = seed
        self._hourly: dict[int, float] = {}
        self._daily_mean: dict[int, float] = {}

    def hour_temperature(self, hour: int) -> float:
        """Temperature (°C) at the start of Unix hour ``hour``."""
        cached = self._hourly.get(hour)
        if cached is not None:
            return cached
        p = self.params
        t = hour * _HOUR
        day = t / 86_400.0
        doy = day % _YEAR_DAYS  # Unix day 0 is Jan 1st: close enough to day of year over decades
        seasonal = p.mean_c - p.seasonal_amplitude_c * math.cos(2 * math.pi * (doy - p.coldest_day) / _YEAR_DAYS)
        local_h = (hour + p.utc_offset_h) % 24
        daily = -p.daily_amplitude_c * math.cos(2 * math.pi * (local_h - 4.0) / 24.0)
        anomaly = (
            p.noise_c * (0.8 * _smooth_noise(self.seed, 3, day / 3.0) + 0.6 * _smooth_noise(self.seed, 1, day)) / 1.0
        )
        jitter = 0.3 * gaussian(self.seed, 0x40A, hour)
        value = seasonal + daily + anomaly + jitter
        if len(self._hourly) > 200_000:  # bound the cache (≈ 23 years of hours)
            self._hourly.clear()
        self._hourly[hour] = value
        return value

    def temperature(self, t: float) -> float:
        """Temperature (°C) at Unix time ``t`` (linear between hours)."""
        h = math.floor(t / _HOUR)
        f = t / _HOUR - h
        a = self.hour_temperature(h)
        return a + (self.hour_temperature(h + 1) - a) * f

    def daily_mean(self, unix_day: int) -> float:
        """Mean of the 24 hourly temperatures of UTC day ``unix_day`` (days since 1970-01-01)."""
        cached = self._daily_mean.get(unix_day)
        if cached is None:
            cached = sum(self.hour_temperature(unix_day * 24 + i) for i in range(24)) / 24.0
            self._daily_mean[unix_day] = cached
        return cached

    def heating_degree_hours(self, hour: int, base_c: float, limit_c: float) -> float:
        """Degree-hours of one hour: ``base - T`` on heating days (daily mean below ``limit_c``).

        base 20 / limit 15 is the German "Gradtagzahl G20/15"; base 15 / limit 15 the classic
        heating degree days HDD15.
        """
        if self.daily_mean(hour // 24) >= limit_c:
            return 0.0
        return max(0.0, base_c - self.hour_temperature(hour))

    def heating_degree_days(self, start: date, end: date, base_c: float = 20.0, limit_c: float = 15.0) -> float:
        """Sum over days in [start, end) of ``base - daily mean`` where the daily mean is below ``limit_c``."""
        total = 0.0
        d = start
        while d < end:
            mean = self.daily_mean((d - _EPOCH_DAY0).days)
            if mean < limit_c:
                total += base_c - mean
            d += timedelta(days=1)
        return total


def unix(dt: datetime) -> float:
    """Aware datetime -> Unix seconds (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
