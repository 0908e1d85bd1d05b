"""The gateway's local settings file (``gateway.toml``; see docs/gateway.md).

Local settings say who the gateway is and how it reaches the head-end (serial, credential, server,
transport, radio source, state directory); the *configuration* (schedules, filters; docs/formats.md
§3) comes from the head-end. ``[config]`` holds the initial configuration used until the head-end
sends one (a configuration the head-end sent and the gateway applied is persisted in the state
directory and wins unless ``[config].version`` is higher).
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from omshub.protocol.config import ConfigError, GatewayConfig, validate_config
from omshub.protocol.topics import SERIAL_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UplinkSettings(_Strict):
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    retry_base_s: float = Field(default=30.0, gt=0, le=86_400)  # first retry after a failed contact
    retry_max_s: float = Field(default=3_600.0, gt=0, le=7 * 86_400)
    max_catch_up: int = Field(default=50, ge=1, le=10_000)  # uplinks in a row when the spool is deep
    contact_on_start: bool = True  # one status contact when the agent starts
    verify_tls: bool | str = True  # False, True or a CA bundle path
    options: dict[str, Any] = Field(default_factory=dict)  # transport specifics (mqtt: prefix, username)


class SpoolSettings(_Strict):
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    max_bytes: int = Field(default=64 << 20, ge=1024, le=1 << 34)
    synchronous: Literal["full", "normal"] = "full"  # "normal" for simulations: no fsync per telegram


class BatterySettings(_Strict):
    capacity_mah: float = Field(default=8_500.0, gt=0)
    sleep_ua: float = Field(default=15.0, ge=0)
    radio_ma: float = Field(default=12.0, ge=0)
    uplink_mah: float = Field(default=0.25, ge=0)
    uplink_mah_per_kb: float = Field(default=0.02, ge=0)


class ClockSettings(_Strict):
    speed: float | None = Field(default=None, ge=0)  # None: real time; N: simulated, N s per real s; 0: jump
    start: float | None = None  # simulated start (Unix s); default: now


class GatewaySettings(_Strict):
    serial: str = Field(pattern=SERIAL_PATTERN)
    credential: SecretStr | None = None
    credential_file: str | None = None
    server: str
    transport: Literal["https", "coap", "mqtt"] = "https"
    source: str
    state_dir: str
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    uplink: UplinkSettings = Field(default_factory=UplinkSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    battery: BatterySettings = Field(default_factory=BatterySettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_credential(self) -> GatewaySettings:
        if (self.credential is None) == (self.credential_file is None):
            raise ValueError("give exactly one of credential or credential_file")
        return self

    def secret(self) -> str:
        if self.credential is not None:
            return self.credential.get_secret_value()
        assert self.credential_file is not None
        try:
            text = Path(self.credential_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"credential_file {self.credential_file}: {exc.strerror}") from None
        if not text:
            raise SettingsError(f"credential_file {self.credential_file} is empty")
        _warn_if_readable_by_others(Path(self.credential_file))
        return text

    def initial_config(self) -> GatewayConfig:
        try:
            return validate_config(self.config)
        except ConfigError as exc:
            raise SettingsError(f"[config]: {exc}") from None


class SettingsError(ValueError):
    """The settings file is missing or invalid (message names the file and field)."""


_warned: set[str] = set()


def _warn_if_readable_by_others(path: Path) -> None:
    """Once per file: the credential authenticates the gateway, so only its owner should read it."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and str(path) not in _warned:
        _warned.add(str(path))
        logging.getLogger("omshub.gateway").warning(
            "credential_file %s is readable by other users (mode %o): chmod 600 it", path, mode
        )


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def load_settings(path: str | Path) -> GatewaySettings:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(data, base=path.resolve().parent, where=str(path))


def settings_from_dict(data: dict[str, Any], *, base: Path | None = None, where: str = "settings") -> GatewaySettings:
    try:
        s = GatewaySettings.model_validate(data)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:10]]
        raise SettingsError(f"{where}: " + "; ".join(parts)) from None
    if base is not None:
        # Relative paths are relative to the settings file, not to the working directory.
        s.state_dir = _resolve(base, s.state_dir)
        if s.credential_file:
            s.credential_file = _resolve(base, s.credential_file)
        kind, sep, arg = s.source.partition(":")
        if sep and kind in ("hexfile", "rtlwmbus", "sim") and arg != "-":
            s.source = f"{kind}:{_resolve(base, arg)}"
    s.initial_config()
    return s


EXAMPLE = """\
# omshub gateway settings (docs/gateway.md). Relative paths are relative to this file.
serial = "GW-0001"                       # 1-64 characters [A-Za-z0-9._-], as registered in the head-end
credential_file = "gateway.credential"   # or: credential = "..." (never logged)
server = "https://headend.example.com"   # https://host | coap://host:5683/u | mqtt://host:1883
transport = "https"                      # https | coap | mqtt
source = "im871a:/dev/ttyUSB0"           # hexfile:PATH | rtlwmbus:PATH|- | im871a:DEV | amb8465:DEV | sim:FLEET.toml
state_dir = "state"                      # spool, applied configuration, counters
log_level = "info"

[uplink]
timeout_s = 30
retry_base_s = 30          # backoff after a failed contact: 30 s, 60 s, 120 s ... (with jitter)
retry_max_s = 3600
max_catch_up = 50          # uplinks in a row when the spool is deep (after an outage)
contact_on_start = true

[spool]
max_rows = 100000
max_bytes = 67108864
synchronous = "full"       # fsync every telegram (power-cut safe); "normal" for fast simulations

[battery]                  # simulated battery (reported in the status)
capacity_mah = 8500       # Li-SOCl2 C cell

# The initial configuration (docs/formats.md §3); the head-end's configuration replaces it.
[config]
version = 0
timezone = "Europe/Berlin"
spread_s = 1800
keep = "newest_per_kind"

[[config.collection]]
cron = "0 0 2 * * *"       # s m h dom mon dow: every day at 02:00 (+ spread)
duration_s = 900
link_modes = ["T1", "C1"]
max_telegrams = 2000

[config.upload]
cron = "0 30 3 * * *"
max_batch = 5000

[config.filters]
mode = "whitelist"         # empty lists do not restrict
meters = []                # e.g. [{manufacturer = "KAM", id = "12345678"}]
manufacturers = []
device_types = []
ci = []
"""
