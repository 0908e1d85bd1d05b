"""A simulated gateway battery, so a year of operation shows in the status.

Model (defaults: one lithium-thionyl-chloride C cell, an NB-IoT modem and a wM-Bus receiver):
sleep current all the time, receiver current while a listen window is open, and a fixed charge per
uplink contact plus a charge per kilobyte sent. Voltage follows the flat Li-SOCl2 curve
(3.6 V, dropping steeply in the last 10 %). The consumed charge is persisted by the agent, which
takes a battery through its ``battery`` argument (``omshub.gateway.agent.BatteryGauge``).
"""

from __future__ import annotations

from dataclasses import dataclass

from omshub.gateway.settings import BatterySettings


@dataclass(slots=True)
class BatteryModel:
    capacity_mah: float = 8_500.0  # Li-SOCl2 C cell
    sleep_ua: float = 15.0  # MCU + RTC asleep
    radio_ma: float = 12.0  # wM-Bus receiver listening
    uplink_mah: float = 0.25  # NB-IoT attach + connection + release, per contact
    uplink_mah_per_kb: float = 0.02  # additional, per kilobyte sent


class Battery:
    def __init__(
        self, model: BatteryModel | None = None, consumed_mah: float = 0.0, last_time: float | None = None
    ) -> None:
        self.model = model or BatteryModel()
        self.consumed_mah = consumed_mah
        self.last_time = last_time

    def elapse(self, now: float) -> None:
        """Sleep current from the last accounted time to ``now``."""
        if self.last_time is not None and now > self.last_time:
            self.consumed_mah += self.model.sleep_ua / 1000.0 * (now - self.last_time) / 3600.0
        self.last_time = now if self.last_time is None else max(self.last_time, now)

    def radio_on(self, seconds: float) -> None:
        self.consumed_mah += self.model.radio_ma * max(0.0, seconds) / 3600.0

    def uplink(self, nbytes: int) -> None:
        self.consumed_mah += self.model.uplink_mah + self.model.uplink_mah_per_kb * nbytes / 1024.0

    @property
    def fraction(self) -> float:
        return max(0.0, 1.0 - self.consumed_mah / self.model.capacity_mah)

    @property
    def percent(self) -> int:
        return int(round(100 * self.fraction))

    @property
    def millivolts(self) -> int:
        f = self.fraction
        if f >= 0.1:
            return int(round(3650 - 150 * (1.0 - f)))  # flat plateau: 3.65 V -> 3.515 V
        return int(round(2800 + (3515 - 2800) * f / 0.1))  # the knee at the end of life


def battery_from_settings(settings: BatterySettings) -> Battery:
    """A fresh battery with the model of a gateway's ``[battery]`` settings."""
    return Battery(
        BatteryModel(
            settings.capacity_mah, settings.sleep_ua, settings.radio_ma, settings.uplink_mah, settings.uplink_mah_per_kb
        )
    )
