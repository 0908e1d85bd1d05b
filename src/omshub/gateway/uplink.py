"""The uplink envelope (docs/formats.md §2) and the transport protocol every transport implements.

``build_envelope`` makes the CBOR map with the column-wise ``batch`` (or, for JSON, the readable
``telegrams`` array); ``parse_response`` checks the head-end's answer. Transports (HTTPS here, CoAP
and MQTT in ``transport_coap``/``transport_mqtt``) only carry bytes: ``send(body) -> response body``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

import cbor2

from .config import LINK_MODE_CODES

FORMAT_VERSION = 1
MAX_BODY = 1 << 20
MAX_TELEGRAMS = 5_000
MIN_FRAME, MAX_FRAME = 10, 512
RSSI_UNKNOWN = 0x80
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TransportError(Exception):
    """The uplink did not get through (link down, timeout, server error): retry later."""


class PayloadTooLarge(TransportError):
    """The head-end (or the link) refused the body as too large: send a smaller batch."""


class UplinkRejected(TransportError):
    """The head-end refused the uplink (4xx other than 413); ``status`` is the HTTP-like code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProtocolError(TransportError):
    """The head-end's response is not a valid §2.5 response map."""


@runtime_checkable
class UplinkTransport(Protocol):
    name: str
    cred_in_envelope: bool  # True when the credential travels in the envelope (`cred`): CoAP, MQTT

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes: ...
    async def close(self) -> None: ...


class Telegram(Protocol):
    """What build_envelope needs of a telegram (ReceivedFrame and SpooledTelegram both fit)."""

    raw: bytes
    rx_time: float
    rssi: int | None
    link_mode: str


def _rssi_byte(rssi: int | None) -> int:
    if rssi is None:
        return RSSI_UNKNOWN
    return max(-127, min(127, int(rssi))) & 0xFF


def build_envelope(*, serial: str, seq: int, cfg: int, telegrams: Sequence[Telegram] = (),
                   status: dict[str, Any] | None = None, cfg_error: dict[str, Any] | None = None,
                   cred: str | None = None, encoding: str = "cbor") -> bytes:
    """The uplink body. ``encoding`` "cbor" (column-wise ``batch``) or "json" (``telegrams`` array).

    Raises ValueError for an envelope the head-end would refuse (bad serial, too many telegrams,
    a frame outside 10..512 bytes).
    """
    if not _SERIAL.match(serial):
        raise ValueError(f"gateway serial {serial!r} must be 1-64 characters [A-Za-z0-9._-]")
    if len(telegrams) > MAX_TELEGRAMS:
        raise ValueError(f"{len(telegrams)} telegrams in one uplink; at most {MAX_TELEGRAMS}")
    env: dict[str, Any] = {"v": FORMAT_VERSION, "gw": serial, "seq": int(seq), "cfg": int(cfg)}
    if cfg_error is not None:
        env["cfg_error"] = {"version": int(cfg_error["version"]), "message": str(cfg_error["message"])}
    if status:
        env["status"] = status
    if cred is not None:
        env["cred"] = cred
    for i, t in enumerate(telegrams):
        if not MIN_FRAME <= len(t.raw) <= MAX_FRAME:
            raise ValueError(f"telegram {i}: frame of {len(t.raw)} bytes; must be {MIN_FRAME}..{MAX_FRAME}")
    if encoding == "json":
        import orjson
        if telegrams:
            env["telegrams"] = [
                {"rx": int(math.floor(t.rx_time)), "mode": t.link_mode, "hex": t.raw.hex().upper(),
                 **({"rssi": int(t.rssi)} if t.rssi is not None else {})}
                for t in telegrams]
        return orjson.dumps(env)
    if encoding != "cbor":
        raise ValueError(f"encoding {encoding!r} must be 'cbor' or 'json'")
    if telegrams:
        times = [int(math.floor(t.rx_time)) for t in telegrams]
        t0 = min(times)
        modes = [LINK_MODE_CODES.get(t.link_mode, 0) for t in telegrams]
        env["t0"] = t0
        env["batch"] = {
            "data": b"".join(t.raw for t in telegrams),
            "len": [len(t.raw) for t in telegrams],
            "dt": [x - t0 for x in times],
            "rssi": bytes(_rssi_byte(t.rssi) for t in telegrams),
            "mode": modes[0] if len(set(modes)) == 1 else bytes(modes),
        }
    return cbor2.dumps(env)


def decode_envelope(body: bytes, content_type: str = "application/cbor") -> dict[str, Any]:
    """Inverse of build_envelope, for tests and tools: the map with ``telegrams`` as a list of
    ``{"raw", "rx", "rssi", "mode"}`` (mode as name), whichever form was sent."""
    if content_type.startswith("application/json"):
        import orjson
        env = orjson.loads(body)
    else:
        env = cbor2.loads(body)
    out = {k: v for k, v in env.items() if k not in ("batch", "telegrams", "t0")}
    names = {v: k for k, v in LINK_MODE_CODES.items()}
    tel: list[dict[str, Any]] = []
    if env.get("batch"):
        b, t0 = env["batch"], env["t0"]
        pos = 0
        mode = b["mode"]
        for i, n in enumerate(b["len"]):
            r = b["rssi"][i]
            tel.append({"raw": bytes(b["data"][pos:pos + n]), "rx": t0 + b["dt"][i],
                        "rssi": None if r == RSSI_UNKNOWN else (r - 256 if r > 127 else r),
                        "mode": names.get(mode if isinstance(mode, int) else mode[i], "unknown")})
            pos += n
    for t in env.get("telegrams") or []:
        raw = t["raw"] if "raw" in t else bytes.fromhex(t["hex"])
        tel.append({"raw": raw, "rx": t["rx"], "rssi": t.get("rssi"), "mode": t["mode"]})
    out["telegrams"] = tel
    return out


def parse_response(body: bytes, content_type: str = "application/cbor") -> dict[str, Any]:
    """The head-end's §2.5 response map, checked. Raises ProtocolError naming what is wrong."""
    try:
        if content_type.startswith("application/json"):
            import orjson
            resp = orjson.loads(body)
        else:
            resp = cbor2.loads(body)
    except Exception as exc:  # cbor2/orjson raise several types for garbage
        raise ProtocolError(f"uplink response is not valid {content_type}: {exc}") from None
    if not isinstance(resp, dict):
        raise ProtocolError("uplink response must be a map")
    ack = resp.get("ack")
    if not isinstance(ack, int) or isinstance(ack, bool) or ack < 0:
        raise ProtocolError(f"uplink response: 'ack' must be an unsigned integer, got {ack!r}")
    cfg = resp.get("config")
    if cfg is not None and not isinstance(cfg, dict):
        raise ProtocolError("uplink response: 'config' must be a map or null")
    t = resp.get("time")
    if t is not None and not isinstance(t, (int, float)):
        raise ProtocolError("uplink response: 'time' must be Unix seconds")
    rejected = resp.get("rejected") or []
    if not isinstance(rejected, list):
        raise ProtocolError("uplink response: 'rejected' must be an array")
    return {"ack": ack, "stored": resp.get("stored", 0), "duplicates": resp.get("duplicates", 0),
            "rejected": rejected, "config": cfg, "time": t}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")
