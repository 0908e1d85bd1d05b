"""The gateway configuration schema (docs/formats.md §3).

One pydantic model used on both sides of the link: the head-end validates a desired
configuration before it creates an operation, and the gateway validates what arrives in an
uplink response before applying it (keeping its old configuration when it fails).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from omshub.protocol.envelope import MAX_TELEGRAMS
from omshub.protocol.topics import LinkMode

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


_DEFAULT_MODES: list[LinkMode] = ["T1", "C1"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionWindow(_Strict):
    cron: str = "0 0 2 * * *"
    duration_s: int = Field(default=900, ge=1, le=86_400)
    link_modes: list[LinkMode] = Field(default_factory=lambda: _DEFAULT_MODES.copy(), min_length=1)
    max_telegrams: int = Field(default=2_000, ge=1, le=100_000)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _check_cron(v)


class UploadSchedule(_Strict):
    cron: str = "0 30 3 * * *"
    max_batch: int = Field(default=MAX_TELEGRAMS, ge=1, le=MAX_TELEGRAMS)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _check_cron(v)


class MeterRef(_Strict):
    manufacturer: str | None = Field(default=None, pattern=r"^[A-Z@]{3}$")
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
        out: list[str] = []
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
    version: int = Field(default=0, ge=0)
    timezone: str = "UTC"
    collection: list[CollectionWindow] = Field(
        default_factory=lambda: [CollectionWindow()], min_length=1, max_length=24
    )
    upload: UploadSchedule = Field(default_factory=UploadSchedule)
    spread_s: int = Field(default=1_800, ge=0, le=86_400)
    filters: Filters = Field(default_factory=Filters)
    keep: Literal["newest_per_kind", "all"] = "newest_per_kind"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)


class ConfigError(ValueError):
    """A configuration failed validation; the message says which field and why. `problems`: the
    validation errors one by one (pydantic's shape), for messages in other words or languages."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def validate_config(data: Any) -> GatewayConfig:
    """Validate a configuration dict; raise ConfigError with a readable message."""
    if not isinstance(data, dict):
        raise ConfigError("configuration must be a JSON object")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        parts: list[str] = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            parts.append(f"{where}: {err['msg']}")
        raise ConfigError("; ".join(parts), [dict(e) for e in exc.errors()[:10]]) from None


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


def patch_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a JSON value (a scalar: 0), without recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
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


def merge_patch(target: Any, patch: Any) -> Any:
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


def diff_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch that turns `before` into `after` (both JSON objects; `after` has
    no `null` values, as a merge result never has): merge_patch(before, diff_patch(before, after))
    == after."""
    patch: dict[str, Any] = {}
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
