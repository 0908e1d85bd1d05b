"""Head-end settings: command-line flags > environment (`OMSHUB_…`) > TOML file > defaults.

The TOML file holds the same keys as the fields below (top level, or under a `[omshub]` table),
e.g. ``database = "postgresql://omshub@db/omshub"`` and ``port = 8080``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "OMSHUB_"


class SettingsError(ValueError):
    """Settings could not be read; the message names the source and the key."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: str | None = None  # URL; default sqlite:///<data_dir>/omshub.db
    # PostgreSQL read replica for the API's read routes (GET); default: the database itself
    database_read_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("omshub-data")
    master_key: str | None = None  # hex or base64 of 32 bytes; else <data_dir>/master.key
    coap_host: str = "::"
    coap_port: int | None = Field(None, ge=0, le=65535)  # CoAP uplink server off unless set
    mqtt_url: str | None = None  # mqtt[s]://[user:pass@]host:port; MQTT bridge off unless set
    mqtt_prefix: str = "omshub"  # topics <prefix>/up/<serial> and <prefix>/down/<serial>
    # several head-end instances share the uplinks (MQTT 5 shared subscription $share/<group>/...)
    mqtt_shared_group: str | None = None
    session_ttl_s: int = Field(12 * 3600, ge=60)
    # the console's cookie session ends after this long without a request (docs/security.md)
    session_idle_s: int = Field(30 * 60, ge=60)
    # the console's cookies only over HTTPS (browsers make an exception for http://localhost and
    # 127.0.0.1); off only behind a TLS-terminating proxy that talks plain HTTP to a non-loopback name
    cookie_secure: bool = True
    pipeline: bool = True  # run the decode pipeline worker inside `serve`
    pipeline_batch: int = Field(1000, ge=1, le=20000)
    # decode worker processes (0: decode in a thread of the serving process); by default one core
    # is left to the HTTP ingest
    pipeline_workers: int = Field(default_factory=lambda: max(0, min(4, (os.cpu_count() or 1) - 1)), ge=0, le=32)
    # several head-ends on one PostgreSQL (docs/deploy.md): this one is node `node_index` of
    # `node_count`, and its decode workers take that share of the telegrams first
    node_index: int = Field(0, ge=0, le=1023)
    node_count: int = Field(1, ge=1, le=1024)
    alarm_interval_s: int = Field(60, ge=1)
    silent_days: int = Field(3, ge=1)
    # `omshub admin maintenance` run by `serve` every this many seconds (0: never; docs/deploy.md)
    maintenance_interval_s: int = Field(86400, ge=0)
    delivery_interval_s: float = Field(10, ge=0)  # webhooks and export jobs (services/delivery_worker.py); 0: off
    # zone of the meters' own date-times for tenants that have none (those created before tenants
    # had their own, see migration 0004); new tenants get Europe/Berlin (docs/formats.md §4)
    meter_timezone: str = "UTC"
    # Request body limits in bytes (cloud/api/guard.py): a larger body is refused with 413 before it
    # is read, and no body is read for a route needing a credential until a valid one is shown.
    max_uplink_body: int = Field(1 << 20, ge=4096, le=1 << 20)  # an uplink on any transport; 1 MiB is
    #   the format's limit (docs/formats.md §2.4): 5,000 telegrams of ~100 bytes, 250 of 512 in JSON
    max_json_body: int = Field(1 << 20, ge=4096, le=64 << 20)  # every other request (JSON routes, login)
    max_import_body: int = Field(10 << 20, ge=4096, le=256 << 20)  # CSV imports (meters, keys), key export
    # CoAP: bytes of all unfinished blockwise uplinks held at once (a daily batch of 250 meters is
    # ~25 KB); beyond, new transfers get 5.03 and the gateways retry later
    coap_max_pending: int = Field(32 << 20, ge=1 << 20, le=1 << 30)
    log_level: str = "info"

    @field_validator("mqtt_prefix", "mqtt_shared_group")
    @classmethod
    def _topic_part(cls, value: str | None, info) -> str | None:
        if value is None:
            return value
        levels = value.split("/")
        if info.field_name == "mqtt_shared_group" and len(levels) > 1:
            raise ValueError(f"a shared-subscription group is one topic level, got {value!r}")
        if not value or len(value) > 100 or any(not level for level in levels) or any(ch in value for ch in "+#$\x00"):
            raise ValueError(f"{value!r} must be topic levels without wildcards (+ #), $, or empty levels")
        return value

    @model_validator(mode="after")
    def _node(self) -> Settings:
        if self.node_index >= self.node_count:
            raise ValueError(f"node_index {self.node_index} must be below node_count {self.node_count}")
        return self

    @field_validator("meter_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: `postgresql://` is served by psycopg 3."""
        url = self.database or f"sqlite:///{(self.data_dir / 'omshub.db').as_posix()}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: {exc}") from None
    if isinstance(data.get("omshub"), dict):
        data = data["omshub"]
    return data


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None and value != "":
            out[name] = value
    return out


def load_settings(
    config_file: str | os.PathLike | None = None, *, environ: dict[str, str] | None = None, **flags: Any
) -> Settings:
    """Merge the sources; `flags` with value None are "not given". SettingsError names the bad key."""
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, Any] = {}
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        merged.update(_from_toml(Path(config_file)))
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
