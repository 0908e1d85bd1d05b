"""Virtual OMS meters: their registers at any instant, their records, and their telegrams.

A :class:`VirtualMeter` is static configuration (address, key, security, schedule, consumption
scale); everything that changes — registers, access number, compact/full choice, error state — is a
pure function of (meter, transmission index, time), so any window of a meter's life can be produced
on demand and twice the same. Registers read from a :class:`~omshub.sim.consumption.DemandProfile`:

* heat meter: energy = initial + heating kWh/year × heating share + hot water kWh/year × hot-water
  share; volume integrates ``power / (c·ΔT)``; power and flow are the current hour's rates;
* water meter: volume integrates the water profile; flow is its current rate;
* heat cost allocator: units accumulate with heating demand and restart at each due date.

Records use the codings real meters use (fixed DIF/VIF per register, see docs/protocol.md §8.4 and §10.1),
so the record layout — and a compact frame's format signature — never changes between telegrams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from omshub.sim.consumption import HEAT, HEAT_VOLUME, HOT_WATER, HOT_WATER_VOLUME, WATER, DemandProfile
from omshub.sim.noise import hash_ints, uniform, uniform_at

KINDS = ("heat", "water", "hca")
DEVICE_TYPE_CODES = {"heat": 0x04, "water": 0x07, "hca": 0x08}
DEVICE_TYPE_NAMES = {"heat": "heat", "water": "water", "hca": "heat_cost_allocator"}
SECURITY_MODES = ("5", "7", "ell", "none")
STATUS_ERROR = 0x12  # application error (bits 1-0 = 10) + temporary error (bit 4), EN 13757-7

# Fixed codings (DIF/VIF hex) per register; storage-n variants are derived in _storage_dif_vif.
_ENERGY, _VOLUME, _POWER, _FLOW = "0406", "0413", "042b", "043b"  # kWh, l, W, l/h
_FLOW_T, _RETURN_T, _DATETIME, _ERRORS = "0259", "025d", "046d", "02fd17"  # 0.01 °C, type F, flags
_DATE, _HCA = "026c", "036e"


def _storage_dif_vif(dif_vif: str, storage: int) -> str:
    """The same coding moved to storage number ``storage`` (DIF bit 6 + DIFE storage nibbles)."""
    raw = bytes.fromhex(dif_vif)
    dif, vif = raw[0], raw[1:]
    dif = (dif & 0x3F) | ((storage & 1) << 6)
    rest = storage >> 1
    difes = []
    while rest:
        difes.append(rest & 0x0F)
        rest >>= 4
    if difes:
        dif |= 0x80
        difes = [b | 0x80 for b in difes[:-1]] + [difes[-1]]
    return (bytes([dif, *difes]) + vif).hex()


def _record(quantity: str, unit: str, value, dif_vif: str, storage: int = 0) -> dict:
    return {
        "quantity": quantity,
        "unit": unit,
        "value": value,
        "storage": storage,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
        "dif_vif": _storage_dif_vif(dif_vif, storage) if storage else dif_vif,
    }


@dataclass(slots=True, eq=False)  # identity semantics: a meter is hashable and names caches
class VirtualMeter:
    uid: int  # fleet-wide index (names the meter's random streams)
    kind: str  # heat | water | hca
    manufacturer: str
    id: str  # 8 hex/BCD digits
    version: int
    key: bytes
    security: str  # "5" | "7" | "ell" | "none"
    profile: DemandProfile
    tz: ZoneInfo
    epoch: float  # Unix time the registers start at their initial values
    due_date: tuple[int, int]  # (month, day): yearly billing date, value at the end of that day
    interval_s: float = 128.0
    jitter_s: float = 8.0
    phase_s: float = 0.0
    access0: int = 0  # access number of transmission 0
    compact_every: int = 0  # 0: always full frames; n: one full frame then n-1 compact ones
    monthly: int = 0  # month-end values at storage 2..monthly+1
    tpl: str = "short"
    link_mode: str = "T1"
    frame_format: str | None = None
    annual: float = 6000.0  # heat: heating kWh/yr; water: m3/yr; hca: units/yr
    annual_hot_water: float = 0.0  # heat: hot-water kWh/yr
    initial: float = 0.0  # heat: kWh; water: m3; hca: unused
    initial_volume: float = 0.0  # heat: m3
    error_rate: float = 0.0  # fraction of days with an error state
    seed: int = 0
    gateway: str | None = None  # owning gateway serial (None: a foreign neighbour meter)
    site: str | None = None
    address: str | None = None
    position: tuple[float, float] = (0.0, 0.0)
    jitter_stream: int = 0  # names the meter's jitter draws (set in __post_init__)

    def __post_init__(self) -> None:
        self.jitter_stream = hash_ints(self.seed, 0x71, self.uid)

    # -- identity ------------------------------------------------------------------------------
    @property
    def device_type_code(self) -> int:
        return DEVICE_TYPE_CODES[self.kind]

    def address_dict(self) -> dict:
        return {
            "manufacturer": self.manufacturer,
            "id": self.id,
            "version": self.version,
            "device_type_code": self.device_type_code,
        }

    # -- schedule ------------------------------------------------------------------------------
    def transmission_time(self, index: int) -> float:
        """Unix time of transmission ``index`` (0 = the first after the epoch)."""
        jitter = self.jitter_s * (uniform_at(self.jitter_stream, index) - 0.5)
        return self.epoch + self.phase_s + index * self.interval_s + jitter

    def first_index_at_or_after(self, t: float) -> int:
        i = max(0, math.ceil((t - self.epoch - self.phase_s - self.jitter_s / 2) / self.interval_s))
        while self.transmission_time(i) < t:
            i += 1
        return i

    def access_number(self, index: int) -> int:
        return (self.access0 + index) & 0xFF

    def is_compact(self, index: int) -> bool:
        return self.compact_every > 1 and index % self.compact_every != 0

    def error_state(self, t: float) -> bool:
        return self.error_rate > 0 and uniform(self.seed, 0xE4, self.uid, int(t // 86_400)) < self.error_rate

    # -- registers -----------------------------------------------------------------------------
    def registers(self, t: float) -> dict:
        """Exact (unrounded) register values at Unix time ``t``."""
        snap = self.profile.snapshot(t)
        c, r = snap.cumulative, snap.rate
        if self.kind == "heat":
            a, b = self.annual, self.annual_hot_water
            return {
                "energy_kwh": self.initial + a * c[HEAT] + b * c[HOT_WATER],
                "volume_m3": self.initial_volume + a * c[HEAT_VOLUME] + b * c[HOT_WATER_VOLUME],
                "power_kw": a * r[HEAT] + b * r[HOT_WATER],
                "flow_m3h": a * r[HEAT_VOLUME] + b * r[HOT_WATER_VOLUME],
                "flow_c": snap.flow_c,
                "return_c": snap.return_c,
            }
        if self.kind == "water":
            return {"volume_m3": self.initial + self.annual * c[WATER], "flow_m3h": self.annual * r[WATER]}
        return {"hca_total": self.annual * c[HEAT]}

    def _counter(self, t: float) -> float:
        """The register the due-date and monthly values store (energy, volume or HCA units)."""
        if self.kind == "heat":
            return self.registers(t)["energy_kwh"]
        if self.kind == "water":
            return self.initial + self.annual * self.profile.cumulative(WATER, t)
        return self.annual * self.profile.cumulative(HEAT, t)

    # -- records -------------------------------------------------------------------------------
    def records(self, t: float) -> tuple[list[dict], int]:
        """(records, status byte) the meter sends at Unix time ``t``."""
        current, today, status = self.current_records(t)
        return current + self.stored_records(today), status

    def current_records(self, t: float) -> tuple[list[dict], date, int]:
        """(the records that change with every telegram, the meter's local date, status byte);
        the stored records follow them (:meth:`stored_records` of that date)."""
        local = datetime.fromtimestamp(t, self.tz)
        reg = self.registers(t)
        error = self.error_state(t)
        flags = (1 << (self.uid % 4)) if error else 0
        stamp = local.strftime("%Y-%m-%dT%H:%M")
        recs: list[dict]
        if self.kind == "heat":
            recs = [
                _record("energy", "kWh", float(math.floor(reg["energy_kwh"])), _ENERGY),
                _record("volume", "m3", _milli(math.floor(reg["volume_m3"] * 1000)), _VOLUME),
                _record("power", "kW", _milli(round(reg["power_kw"] * 1000)), _POWER),
                _record("volume_flow", "m3/h", _milli(round(reg["flow_m3h"] * 1000)), _FLOW),
                _record("flow_temperature", "°C", _centi(round(reg["flow_c"] * 100)), _FLOW_T),
                _record("return_temperature", "°C", _centi(round(reg["return_c"] * 100)), _RETURN_T),
            ]
        elif self.kind == "water":
            recs = [
                _record("volume", "m3", _milli(math.floor(reg["volume_m3"] * 1000)), _VOLUME),
                _record("volume_flow", "m3/h", _milli(round(reg["flow_m3h"] * 1000)), _FLOW),
            ]
        else:
            due = self._period_start(local.date())
            units = math.floor(reg["hca_total"]) - math.floor(self._counter_at_end(due))
            recs = [_record("hca", "HCA", units, _HCA)]
        recs.append(_record("datetime", "", stamp, _DATETIME))
        recs.append(_record("error_flags", "", flags, _ERRORS))
        return recs, local.date(), (STATUS_ERROR if error else 0)

    def stored_key(self, today: date) -> tuple:
        """Names the stored records of ``today``: they change only with the month or the due date."""
        return (self, today.year, today.month, self._period_start(today))

    def _period_start(self, day: date) -> date:
        """The due date that starts the billing period ``day`` belongs to (latest one before it)."""
        return _due_dates(day - timedelta(days=1), self.due_date)[0]

    def _counter_at_end(self, day: date) -> float:
        """The stored register at the end of ``day`` (its initial value before the epoch)."""
        end = _end_of_day(day, self.tz)
        if end <= self.epoch:
            return 0.0 if self.kind == "hca" else self.initial
        return self._counter(end)

    def stored_records(self, today: date) -> list[dict]:
        """Due-date (storage 1) and month-end (storage 2..) records sent on ``today``."""
        due = self._period_start(today)
        quantity, unit, coding = {
            "heat": ("energy", "kWh", _ENERGY),
            "water": ("volume", "m3", _VOLUME),
            "hca": ("hca", "HCA", _HCA),
        }[self.kind]
        recs = [
            _record("date", "", due.isoformat(), _DATE, 1),
            _record(quantity, unit, self._stored_value(due), coding, 1),
        ]
        if self.kind == "heat":
            end = _end_of_day(due, self.tz)
            vol = self.registers(end)["volume_m3"] if end > self.epoch else self.initial_volume
            recs.append(_record("volume", "m3", _milli(math.floor(vol * 1000)), _VOLUME, 1))
        month_end = today.replace(day=1) - timedelta(days=1)
        for n in range(self.monthly):
            storage = 2 + n
            if n == 0:
                recs.append(_record("date", "", month_end.isoformat(), _DATE, storage))
            recs.append(_record(quantity, unit, self._stored_value(month_end), coding, storage))
            month_end = month_end.replace(day=1) - timedelta(days=1)
        return recs

    def _stored_value(self, day: date):
        """Register at the end of ``day`` in its record's unit (HCA: units of the billing period then)."""
        value = self._counter_at_end(day)
        if self.kind == "heat":
            return float(math.floor(value))
        if self.kind == "water":
            return _milli(math.floor(value * 1000))
        return math.floor(value) - math.floor(self._counter_at_end(self._period_start(day)))


def _milli(n: int) -> float:
    return n / 1000


def _centi(n: int) -> float:
    return n / 100


def _due_dates(today: date, due: tuple[int, int]) -> tuple[date, date]:
    """(latest due date on or before today, the one before it)."""
    month, day = due
    this_year = _safe_date(today.year, month, day)
    latest = this_year if this_year <= today else _safe_date(today.year - 1, month, day)
    return latest, _safe_date(latest.year - 1, month, day)


def _safe_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:  # 29 February in a common year
        return date(year, month, 28)


@lru_cache(maxsize=4096)
def _end_of_day(day: date, tz: ZoneInfo) -> float:
    nxt = day + timedelta(days=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()


def encode_transmission(meter: VirtualMeter, index: int, t: float | None = None) -> bytes:
    """The frame of the meter's transmission ``index`` (sent at ``t``, default its scheduled time).

    The one place telegrams are built: records from the meter's registers, then the codec's encoder
    with the meter's security (mode 5 / mode 7 with the 32-bit message counter / ELL AES-CTR like
    Kamstrup), compact frames between full ones, and block CRCs when the meter's frame format says so.
    """
    # Imported when the first frame is made: the codec (which sim.template imports too) takes ~0.6 s
    # to import (python -X importtime), and `omshub simulate init-fleet|keys|meters` never make one.
    from omshub.codec import encode_telegram
    from omshub.sim.template import apl_bytes

    if t is None:
        t = meter.transmission_time(index)
    current, today, status = meter.current_records(t)
    kw: dict = {}
    if meter.security == "ell":
        kw = {"mode": 0, "ell": "8D", "tpl": "none"}
    elif meter.security == "7":
        kw = {"mode": 7, "tpl": meter.tpl, "message_counter": (meter.access0 + index) & 0xFFFF_FFFF}
    elif meter.security == "5":
        kw = {"mode": 5, "tpl": meter.tpl}
    else:
        kw = {"mode": 0, "tpl": meter.tpl}
    compact = meter.is_compact(index)
    # the codec's bytes, packed fast for the fixed layouts; the stored records are packed once a month
    packed = apl_bytes(current, compact, lambda: meter.stored_records(today), meter.stored_key(today))
    records = current + meter.stored_records(today) if packed is None else []
    return encode_telegram(
        meter.address_dict(),
        records,
        key=meter.key,
        access_number=meter.access_number(index),
        status=status,
        compact=compact,
        frame_format=meter.frame_format,
        apl=packed,
        **kw,
    )
