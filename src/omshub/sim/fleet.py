"""The fleet file (TOML): sites, gateways, meter groups — validated, then expanded into meters.

```toml
[fleet]
name = "demo"
seed = 42
epoch = "2025-01-01T00:00:00Z"   # registers start at their initial values here
timezone = "Europe/Berlin"
due_date = "12-31"               # yearly billing date (value at the end of that day)

[weather]                        # optional, see WeatherParams
[radio]                          # optional, see omshub.sim.radio.RadioParams

[[sites]]
name = "site-001"
address = "Hauptstr. 1, Berlin"
position = [0.0, 0.0]            # metres
heating_base_c = 20.0            # degree-hours base temperature
heating_limit_c = 15.0           # no heating on days warmer than this

[[sites.gateways]]
serial = "GW000001"
position = [0.0, 0.0]            # metres, relative to the site
neighbours = 5                   # foreign meters nearby (in no list: the gateway must ignore them)

[[sites.gateways.meters]]
kind = "heat"                    # heat | water | hca
count = 20
manufacturers = ["KAM"]          # cycled through
security = "ell"                 # "5" | "7" | "ell" | "none"
interval_s = 96                  # 8..256
link_mode = "C1"
compact_every = 8                # one full frame, then 7 compact ones
monthly = 12                     # month-end values at storage 2..13
distance_m = [2.0, 30.0]         # from the gateway, uniform
```

Meters of a group get consecutive 8-digit ids (``first_id`` or the fleet's running number), a key
derived from the fleet seed and their address, and per-meter random consumption and schedule
parameters — all deterministic from the seed. Validation errors name the key, e.g.
``sites[0].gateways[1].meters[0].interval_s: must be <= 256``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from omshub.protocol.config import check_timezone
from omshub.protocol.topics import SERIAL_PATTERN
from omshub.sim.consumption import HEAT_CAPACITY_KWH_M3K, Climate
from omshub.sim.meters import DEVICE_TYPE_NAMES, VirtualMeter
from omshub.sim.noise import gaussian, text_id, uniform
from omshub.sim.weather import Weather, WeatherParams

MAX_METERS_PER_GATEWAY = 250
MAX_FLEET_METERS = 1_000_000
MAX_FILE_BYTES = 16 * 1024 * 1024

# A plausible version byte per manufacturer (any byte is accepted in the file).
DEFAULT_VERSIONS = {
    "KAM": 0x1B,
    "EFE": 0x04,
    "ZRI": 0x20,
    "TCH": 0x69,
    "QDS": 0x35,
    "DME": 0x66,
    "LUG": 0x0A,
    "SON": 0x3C,
    "BMT": 0x14,
    "ITW": 0x33,
    "APA": 0x07,
    "ELS": 0x10,
}
# Foreign neighbour meters are drawn from these.
_FOREIGN_MANUFACTURERS = ("KAM", "EFE", "DME", "TCH", "QDS", "ITW", "LUG")


class FleetError(ValueError):
    """The fleet file is invalid; the message lists each problem with its key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FleetSection(_Strict):
    name: str = Field(default="fleet", min_length=1, max_length=64)
    seed: int = Field(default=1, ge=0, lt=2**63)
    epoch: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    timezone: str = "Europe/Berlin"
    due_date: str = "12-31"
    first_id: int = Field(default=30_000_001, ge=0, le=99_999_999)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))

    @field_validator("due_date")
    @classmethod
    def _due(cls, v: str) -> str:
        m = re.fullmatch(r"(\d\d)-(\d\d)", v)
        if not m:
            raise ValueError(f"due_date must be MM-DD, not {v!r}")
        try:
            date(2024, int(m[1]), int(m[2]))
        except ValueError:
            raise ValueError(f"due_date {v!r} is not a calendar day") from None
        return v

    @field_validator("epoch")
    @classmethod
    def _epoch(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("epoch needs a time zone (e.g. 2025-01-01T00:00:00Z)")
        if not (2000 <= v.year <= 2090):
            raise ValueError("epoch must be between the years 2000 and 2090")
        return v


class WeatherSection(_Strict):
    mean_c: float = Field(default=9.0, ge=-30, le=35)
    seasonal_amplitude_c: float = Field(default=9.0, ge=0, le=40)
    daily_amplitude_c: float = Field(default=4.0, ge=0, le=20)
    noise_c: float = Field(default=3.0, ge=0, le=15)
    coldest_day: int = Field(default=15, ge=1, le=366)


class RadioSection(_Strict):
    tx_power_dbm: float = Field(default=10.0, ge=-20, le=27)
    path_loss_1m_db: float = Field(default=40.0, ge=0, le=100)
    path_loss_exponent: float = Field(default=3.5, ge=1.5, le=6)
    wall_loss_db_max: float = Field(default=20.0, ge=0, le=60)
    building_loss_db: float = Field(default=15.0, ge=0, le=60)  # extra loss from a meter in another building
    fading_sigma_db: float = Field(default=4.0, ge=0, le=20)
    sensitivity_dbm: float = Field(default=-105.0, ge=-140, le=-50)
    corrupt_rate: float = Field(default=0.01, ge=0, le=1)
    repeat_rate: float = Field(default=0.02, ge=0, le=1)


class MeterGroup(_Strict):
    kind: Literal["heat", "water", "hca"]
    count: int = Field(ge=1, le=MAX_METERS_PER_GATEWAY)
    manufacturers: list[str] = Field(default_factory=lambda: ["KAM"], min_length=1, max_length=16)
    version: int | None = Field(default=None, ge=0, le=255)
    security: Literal["5", "7", "ell", "none"] = "5"
    tpl: Literal["short", "long"] = "short"
    interval_s: float = Field(default=128.0, ge=8, le=256)
    jitter_s: float | None = Field(default=None, ge=0)
    link_mode: Literal["T1", "C1", "S1"] = "T1"
    frame_format: Literal["A", "B"] | None = None
    compact_every: int = Field(default=0, ge=0, le=64)
    monthly: int = Field(default=0, ge=0, le=15)
    distance_m: tuple[float, float] = (2.0, 30.0)
    annual: tuple[float, float] | None = None
    error_rate: float = Field(default=0.0, ge=0, le=1)
    first_id: int | None = Field(default=None, ge=0, le=99_999_999)

    @field_validator("security", mode="before")
    @classmethod
    def _security(cls, v):
        return str(v).lower() if isinstance(v, (int, str)) else v

    @field_validator("manufacturers", mode="before")
    @classmethod
    def _manufacturers(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("manufacturers")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        for code in v:
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(f"manufacturer {code!r} must be three capital letters A-Z")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MeterGroup:
        lo, hi = self.distance_m
        if not (0.5 <= lo <= hi <= 5000):
            raise ValueError("distance_m must be [min, max] with 0.5 <= min <= max <= 5000")
        if self.jitter_s is not None and self.jitter_s >= self.interval_s / 2:
            raise ValueError("jitter_s must be less than half of interval_s")
        if self.frame_format == "B" and self.link_mode != "C1":
            raise ValueError("frame format B exists only in link mode C1")
        if self.security == "ell" and self.tpl == "long":
            raise ValueError('ELL meters send no TPL header (use tpl = "short")')
        if self.annual is not None and not (0 <= self.annual[0] <= self.annual[1] <= 1e7):
            raise ValueError("annual must be [min, max] with 0 <= min <= max <= 1e7")
        return self


class GatewaySection(_Strict):
    serial: str = Field(pattern=SERIAL_PATTERN)
    position: tuple[float, float] = (0.0, 0.0)
    neighbours: int = Field(default=0, ge=0, le=1000)
    meters: list[MeterGroup] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _size(self) -> GatewaySection:
        total = sum(g.count for g in self.meters)
        if total > MAX_METERS_PER_GATEWAY:
            raise ValueError(f"{total} meters; a gateway listens to at most {MAX_METERS_PER_GATEWAY}")
        return self


class SiteSection(_Strict):
    name: str = Field(min_length=1, max_length=128)
    address: str | None = Field(default=None, max_length=256)
    position: tuple[float, float] = (0.0, 0.0)
    heating_base_c: float = Field(default=20.0, ge=10, le=25)
    heating_limit_c: float = Field(default=15.0, ge=5, le=25)
    gateways: list[GatewaySection] = Field(min_length=1, max_length=10_000)


class FleetFile(_Strict):
    fleet: FleetSection = Field(default_factory=FleetSection)
    weather: WeatherSection = Field(default_factory=WeatherSection)
    radio: RadioSection = Field(default_factory=RadioSection)
    sites: list[SiteSection] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _unique(self) -> FleetFile:
        serials: set[str] = set()
        names: set[str] = set()
        total = 0
        for i, site in enumerate(self.sites):
            if site.name in names:
                raise ValueError(f"sites[{i}].name: duplicate site name {site.name!r}")
            names.add(site.name)
            for j, gw in enumerate(site.gateways):
                if gw.serial in serials:
                    raise ValueError(f"sites[{i}].gateways[{j}].serial: duplicate gateway serial {gw.serial!r}")
                serials.add(gw.serial)
                total += sum(g.count for g in gw.meters)
        if total > MAX_FLEET_METERS:
            raise ValueError(f"{total} meters; a simulated fleet has at most {MAX_FLEET_METERS}")
        return self


@dataclass(frozen=True)
class GatewayInfo:
    serial: str
    site: str
    position: tuple[float, float]


class Fleet:
    """An expanded fleet: every meter (own and foreign), gateways, climate and radio parameters."""

    def __init__(self, spec: FleetFile) -> None:
        self.spec = spec
        self.seed = spec.fleet.seed
        self.name = spec.fleet.name
        self.epoch = spec.fleet.epoch.timestamp()
        self.tz = ZoneInfo(spec.fleet.timezone)
        w = spec.weather
        offset = datetime(2025, 1, 15, tzinfo=self.tz).utcoffset()
        offset_h = (offset.total_seconds() if offset is not None else 0.0) / 3600.0
        params = WeatherParams(
            w.mean_c, w.seasonal_amplitude_c, w.daily_amplitude_c, w.noise_c, w.coldest_day, offset_h
        )
        self.climate = _climate(params, self.seed, spec.fleet.timezone, self.epoch)
        self.weather = self.climate.weather
        self.radio = spec.radio
        self.gateways: dict[str, GatewayInfo] = {}
        self.meters: list[VirtualMeter] = []
        self.foreign: list[VirtualMeter] = []
        self._by_gateway: dict[str, list[VirtualMeter]] = {}
        self._expand()

    # -- expansion -----------------------------------------------------------------------------
    def _expand(self) -> None:
        f = self.spec.fleet
        due = (int(f.due_date[:2]), int(f.due_date[3:]))
        next_id = f.first_id
        seen: dict[tuple[str, str], str] = {}
        uid = 0
        for si, site in enumerate(self.spec.sites):
            sx, sy = site.position
            for gi, gw in enumerate(site.gateways):
                gx, gy = sx + gw.position[0], sy + gw.position[1]
                self.gateways[gw.serial] = GatewayInfo(gw.serial, site.name, (gx, gy))
                own: list[VirtualMeter] = []
                for mi, group in enumerate(gw.meters):
                    start = group.first_id if group.first_id is not None else next_id
                    if start + group.count - 1 > 99_999_999:
                        raise FleetError(f"sites[{si}].gateways[{gi}].meters[{mi}]: meter ids run past 99999999")
                    for n in range(group.count):
                        manufacturer = group.manufacturers[n % len(group.manufacturers)]
                        meter_id = f"{start + n:08d}"
                        where = f"sites[{si}].gateways[{gi}].meters[{mi}]"
                        if (manufacturer, meter_id) in seen:
                            raise FleetError(
                                f"{where}.first_id: meter {manufacturer} {meter_id} already defined "
                                f"at {seen[(manufacturer, meter_id)]}"
                            )
                        seen[(manufacturer, meter_id)] = where
                        meter = self._make_meter(uid, group, manufacturer, meter_id, site, gw.serial, (gx, gy), due)
                        meter.address = site.address
                        own.append(meter)
                        uid += 1
                    if group.first_id is None:
                        next_id += group.count
                self._by_gateway[gw.serial] = own
                self.meters.extend(own)
        # foreign neighbours: after all own meters so adding some never changes the fleet's own meters
        for site in self.spec.sites:
            for gw in site.gateways:
                gx, gy = self.gateways[gw.serial].position
                for n in range(gw.neighbours):
                    h = text_id(f"{gw.serial}/{n}")
                    manufacturer = _FOREIGN_MANUFACTURERS[h % len(_FOREIGN_MANUFACTURERS)]
                    meter_id = f"9{(h >> 8) % 10_000_000:07d}"
                    kind: Literal["heat", "water", "hca"] = ("heat", "water", "hca")[(h >> 40) % 3]
                    group = MeterGroup(
                        kind=kind,
                        count=1,
                        manufacturers=[manufacturer],
                        security="5",
                        interval_s=8 + (h >> 48) % 240,
                        distance_m=(15.0, 80.0),
                    )
                    self.foreign.append(self._make_meter(uid, group, manufacturer, meter_id, site, None, (gx, gy), due))
                    uid += 1

    def _make_meter(
        self,
        uid: int,
        group: MeterGroup,
        manufacturer: str,
        meter_id: str,
        site: SiteSection,
        gateway: str | None,
        origin: tuple[float, float],
        due: tuple[int, int],
    ) -> VirtualMeter:
        s = self.seed
        u = lambda tag: uniform(s, tag, uid)  # noqa: E731 - one stream per parameter
        lo, hi = group.distance_m
        distance = lo + (hi - lo) * u(1)
        angle = 2 * math.pi * u(2)
        position = (origin[0] + distance * math.cos(angle), origin[1] + distance * math.sin(angle))
        interval = group.interval_s
        jitter = group.jitter_s if group.jitter_s is not None else interval / 8
        profile = self.climate.profile(site.heating_base_c, site.heating_limit_c, int(u(3) * 6))
        spread = math.exp(0.35 * gaussian(s, 4, uid))
        annual_hot = 0.0
        initial_volume = 0.0
        if group.kind == "heat":
            annual = _pick(group.annual, 7000.0 * spread, u(5))
            annual_hot = 1800.0 * math.exp(0.3 * gaussian(s, 6, uid))
            initial: float = math.floor(40_000.0 * u(7))
            initial_volume = initial / (HEAT_CAPACITY_KWH_M3K * 20.0)
        elif group.kind == "water":
            annual = _pick(group.annual, 45.0 * spread, u(5))
            initial = math.floor(400_000.0 * u(7)) / 1000
        else:
            annual = _pick(group.annual, 1200.0 * spread, u(5))
            initial = 0.0
        version = group.version if group.version is not None else DEFAULT_VERSIONS.get(manufacturer, 0x01)
        return VirtualMeter(
            uid=uid,
            kind=group.kind,
            manufacturer=manufacturer,
            id=meter_id,
            version=version,
            key=derive_key(s, manufacturer, meter_id),
            security=group.security,
            profile=profile,
            tz=self.tz,
            epoch=self.epoch,
            due_date=due,
            interval_s=interval,
            jitter_s=jitter,
            phase_s=interval * u(8),
            access0=int(u(9) * 256),
            compact_every=group.compact_every,
            monthly=group.monthly,
            tpl=group.tpl,
            link_mode=group.link_mode,
            frame_format=group.frame_format,
            annual=annual,
            annual_hot_water=annual_hot,
            initial=initial,
            initial_volume=initial_volume,
            error_rate=group.error_rate,
            seed=s,
            gateway=gateway,
            site=site.name,
            position=position,
        )

    # -- queries -------------------------------------------------------------------------------
    def meters_of(self, serial: str) -> list[VirtualMeter]:
        try:
            return self._by_gateway[serial]
        except KeyError:
            raise FleetError(f"no gateway {serial!r} in fleet {self.name!r}") from None

    def all_meters(self) -> list[VirtualMeter]:
        return self.meters + self.foreign

    def keys_csv(self) -> str:
        """The head-end's key import format: ``id,key,manufacturer`` (own meters only)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["id", "key", "manufacturer"])
        for m in self.meters:
            w.writerow([m.id, m.key.hex().upper(), m.manufacturer])
        return out.getvalue()

    def meters_csv(self) -> str:
        """The head-end's meter import format:
        ``manufacturer,id,device_type,gateway,metering_point,address,customer_ref``."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["manufacturer", "id", "device_type", "gateway", "metering_point", "address", "customer_ref"])
        for m in self.meters:
            w.writerow(
                [
                    m.manufacturer,
                    m.id,
                    DEVICE_TYPE_NAMES[m.kind],
                    m.gateway or "",
                    f"{m.site}/{m.kind}/{m.id}",
                    m.address or "",
                    "",
                ]
            )
        return out.getvalue()


_climates: dict[tuple, Climate] = {}


def _climate(params: WeatherParams, seed: int, tz: str, epoch: float) -> Climate:
    """Climates are pure functions of their parameters: fleets loaded again (tests, several gateways
    in one process) reuse the demand tables instead of rebuilding them."""
    key = (params, seed, tz, epoch)
    climate = _climates.get(key)
    if climate is None:
        if len(_climates) >= 4:
            _climates.clear()
        climate = _climates[key] = Climate(Weather(params, seed), ZoneInfo(tz), epoch)
    return climate


def _pick(bounds: tuple[float, float] | None, default: float, u: float) -> float:
    return default if bounds is None else bounds[0] + (bounds[1] - bounds[0]) * u


def derive_key(seed: int, manufacturer: str, meter_id: str) -> bytes:
    """A meter's AES-128 key: derived from the fleet seed (simulation only — real keys are random)."""
    return hashlib.blake2b(
        f"{manufacturer}:{meter_id}".encode(), digest_size=16, key=f"omshub-sim-key:{seed}".encode()
    ).digest()


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-") or part in ("tuple[float, float]", "literal"):
            continue  # pydantic's internal validator names are no help to the reader
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_fleet(text: str, source: str = "fleet file") -> Fleet:
    """TOML text -> :class:`Fleet`; raises :class:`FleetError` naming each bad key."""
    if len(text) > MAX_FILE_BYTES:
        raise FleetError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetError(f"{source}: not valid TOML: {exc}") from None
    try:
        spec = FleetFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            where = _loc(err["loc"])
            lines.append(f"{source}: {where}: {msg}" if where else f"{source}: {msg}")
        raise FleetError("\n".join(lines)) from None
    try:
        return Fleet(spec)
    except FleetError as exc:
        raise FleetError(f"{source}: {exc}") from None


def load_fleet(path: str | Path) -> Fleet:
    p = Path(path)
    try:
        raw = p.read_bytes()[: MAX_FILE_BYTES + 1]
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FleetError(f"{p}: not UTF-8 (byte {exc.start})") from None
    return parse_fleet(text, str(p))
