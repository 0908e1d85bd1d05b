"""The gateway configuration schema (docs/formats.md §3).

One pydantic model used on both sides of the link: the head-end validates a desired
configuration before it creates an operation, and the gateway validates what arrives in an
uplink response before applying it (keeping its old configuration when it fails).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LINK_MODES = ("T1", "C1", "S1", "T2", "C2", "S2", "N")
LINK_MODE_CODES = {"unknown": 0, "T1": 1, "C1": 2, "S1": 3, "T2": 4, "C2": 5, "S2": 6, "N": 7}
LINK_MODE_NAMES = {v: k for k, v in LINK_MODE_CODES.items()}
MAX_METERS = 250
_CRON_PROBE_START = 1_767_225_600.0  # 2026-01-01T00:00Z: any fixed start works for "does it ever fire"


def _check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 6:
        raise ValueError(f"cron expression {expr!r} must have 6 fields (s m h dom mon dow)")
    # croniter takes seconds as the 6th field; we write them first, as the issue asks.
    if not croniter.is_valid(" ".join(fields[1:] + fields[:1])):
        raise ValueError(f"cron expression {expr!r} is not valid")
    # Syntax is not enough: "0 0 0 30 2 *" (30 February) never fires, and a schedule that never
    # fires would leave a gateway without windows or uploads.
    try:
        croniter(cron_for_croniter(expr), _CRON_PROBE_START, max_years_between_matches=8).get_next(float)
    except Exception:  # croniter raises its own errors for "no match"
        raise ValueError(f"cron expression {expr!r} never fires") from None
    return expr


def check_timezone(name: str) -> str:
    """An IANA time zone name, or ValueError (shared by every schema with a `timezone`)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def cron_for_croniter(expr: str) -> str:
    """'s m h dom mon dow' (ours) -> 'm h dom mon dow s' (croniter's seconds position)."""
    f = expr.split()
    return " ".join(f[1:] + f[:1])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionWindow(_Strict):
    cron: str = "0 0 2 * * *"
    duration_s: int = Field(900, ge=1, le=86_400)
    link_modes: list[Literal["T1", "C1", "S1", "T2", "C2", "S2", "N"]] = Field(
        default_factory=lambda: ["T1", "C1"], min_length=1)
    max_telegrams: int = Field(2_000, ge=1, le=100_000)

    _cron = field_validator("cron")(classmethod(lambda cls, v: _check_cron(v)))


class UploadSchedule(_Strict):
    cron: str = "0 30 3 * * *"
    max_batch: int = Field(5_000, ge=1, le=5_000)

    _cron = field_validator("cron")(classmethod(lambda cls, v: _check_cron(v)))


class MeterRef(_Strict):
    manufacturer: str | None = Field(None, pattern=r"^[A-Z@]{3}$")
    id: str = Field(pattern=r"^[0-9A-Fa-f]{8}$")


class Filters(_Strict):
    mode: Literal["whitelist", "blacklist"] = "whitelist"
    meters: list[MeterRef] = Field(default_factory=list, max_length=MAX_METERS)
    manufacturers: list[str] = Field(default_factory=list, max_length=100)
    device_types: list[int] = Field(default_factory=list, max_length=256)
    ci: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("manufacturers")
    @classmethod
    def _mfct(cls, v: list[str]) -> list[str]:
        for m in v:
            if len(m) != 3 or not m.isalpha() or not m.isupper():
                raise ValueError(f"manufacturer {m!r} must be a 3-letter upper-case code")
        return v

    @field_validator("device_types")
    @classmethod
    def _types(cls, v: list[int]) -> list[int]:
        for t in v:
            if not 0 <= t <= 255:
                raise ValueError(f"device type {t} must be 0..255")
        return v

    @field_validator("ci")
    @classmethod
    def _ci(cls, v: list[str]) -> list[str]:
        out = []
        for c in v:
            try:
                n = int(c, 16)
            except ValueError:
                raise ValueError(f"CI {c!r} must be a hex byte") from None
            if not 0 <= n <= 255:
                raise ValueError(f"CI {c!r} must be a hex byte")
            out.append(f"{n:02X}")
        return out


class GatewayConfig(_Strict):
    version: int = Field(0, ge=0)
    timezone: str = "UTC"
    collection: list[CollectionWindow] = Field(default_factory=lambda: [CollectionWindow()],
                                               min_length=1, max_length=24)
    upload: UploadSchedule = Field(default_factory=UploadSchedule)
    spread_s: int = Field(1_800, ge=0, le=86_400)
    filters: Filters = Field(default_factory=Filters)
    keep: Literal["newest_per_kind", "all"] = "newest_per_kind"

    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))


class ConfigError(ValueError):
    """A configuration failed validation; the message says which field and why."""


def validate_config(data: dict) -> GatewayConfig:
    """Validate a configuration dict; raise ConfigError with a readable message."""
    if not isinstance(data, dict):
        raise ConfigError("configuration must be a JSON object")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            parts.append(f"{where}: {err['msg']}")
        raise ConfigError("; ".join(parts)) from None


def spread_offset(serial: str, spread_s: int) -> int:
    """Stable per-gateway offset in [0, spread_s): a fleet must not wake in the same second."""
    if spread_s <= 0:
        return 0
    h = int.from_bytes(hashlib.sha256(serial.encode()).digest()[:8], "big")
    return h % spread_s


# --- partial changes: JSON merge patch (RFC 7386) ---
#
# A change names only what it changes: objects merge key by key (recursively), `null` removes a
# key (so the schema's default applies again), anything else (arrays, strings, numbers) replaces
# the old value whole. Pure functions on JSON values; the head-end applies them to a gateway's
# desired configuration and validates the result with `validate_config`.

MAX_PATCH_DEPTH = 16  # the schema nests 4 deep; anything far deeper is not a configuration


def patch_depth(value) -> int:
    """How deeply objects and arrays nest in a JSON value (a scalar: 0), without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def merge_patch(target, patch):
    """RFC 7386: `target` with the JSON merge patch `patch` applied. Neither input is changed;
    the result shares no mutable part with them."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def diff_patch(before: dict, after: dict) -> dict:
    """The smallest merge patch that turns `before` into `after` (both JSON objects; `after` has
    no `null` values, as a merge result never has): merge_patch(before, diff_patch(before, after))
    == after."""
    patch: dict = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = diff_patch(old, value)
            if inner:
                patch[key] = inner
        elif key not in before or old != value or type(old) is not type(value):
            patch[key] = copy.deepcopy(value)
    for key in before:
        if key not in after:
            patch[key] = None
    return patch
