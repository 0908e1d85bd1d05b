"""The uplink envelope (docs/formats.md §2): built by the gateway, parsed by the head-end, and the
head-end's response map (§2.5). Pure functions on bytes; the transports only carry them.

The CBOR form sends the telegrams column-wise (``batch``: all frames in one byte string, their
lengths, receive times as offsets from ``t0``, RSSI bytes, link mode codes); the JSON form a
readable ``telegrams`` array. The head-end takes both, and refuses an uplink as a whole by raising
:class:`UplinkRejected` (status, code, message) — the gateway's transports raise the same class
when the head-end refused one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypedDict

import cbor2
import orjson

from omshub.protocol.topics import LINK_MODE_BY_CODE, LINK_MODE_CODES, LINK_MODE_NAMES, SERIAL_RE

FORMAT_VERSION = 1
MAX_BODY = 1 << 20  # bytes of one uplink body
MAX_RESPONSE = 1 << 20  # bytes of one response map (a gateway reads no more)
MAX_TELEGRAMS = 5_000  # telegrams in one uplink
MIN_FRAME, MAX_FRAME = 10, 512  # bytes of one wM-Bus frame, from its L-field
MAX_UINT63 = (1 << 63) - 1
MAX_CFG_VERSION = (1 << 31) - 1
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z
RSSI_UNKNOWN = 0x80  # the RSSI byte of a frame whose level the receiver did not say
JSON = "application/json"
CBOR = "application/cbor"

_STATUS_KEYS: dict[str, type] = {
    "battery_pct": int,
    "battery_mv": int,
    "rssi": int,
    "firmware": str,
    "uptime_s": int,
    "spool": int,
    "spool_full": bool,
    "heard": int,
    "filtered": int,
    "time": int,
    "next_contact": int,
}
_MODE_BY_NAME = {name.lower(): name for name in LINK_MODE_BY_CODE}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- errors
class UplinkError(Exception):
    """An uplink did not go through; the classes below say why."""


class TransportError(UplinkError):
    """The uplink did not get through (link down, timeout, server error): retry later."""


class PayloadTooLarge(TransportError):
    """The head-end (or the link) refused the body as too large: send a smaller batch."""


class ProtocolError(TransportError):
    """The head-end's response is not a valid §2.5 response map."""


class UplinkRejected(UplinkError):
    """The uplink as a whole is refused: HTTP-like `status`, machine `code`, human `message`.
    Raised by the head-end's parser and by a gateway transport the head-end answered with a
    refusal (4xx other than 413): sending it again unchanged will not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _bad(message: str) -> UplinkRejected:
    return UplinkRejected(422, "invalid_uplink", message)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- building (gateway)
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


def build_envelope(
    *,
    serial: str,
    seq: int,
    cfg: int,
    telegrams: Sequence[Telegram] = (),
    status: dict[str, Any] | None = None,
    cfg_error: dict[str, Any] | None = None,
    cred: str | None = None,
    encoding: str = "cbor",
) -> bytes:
    """The uplink body. ``encoding`` "cbor" (column-wise ``batch``) or "json" (``telegrams`` array).

    Raises ValueError for an envelope the head-end would refuse (bad serial, too many telegrams,
    a frame outside 10..512 bytes).
    """
    if not SERIAL_RE.match(serial):
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
        if telegrams:
            env["telegrams"] = [
                {
                    "rx": int(math.floor(t.rx_time)),
                    "mode": t.link_mode,
                    "hex": t.raw.hex().upper(),
                    **({"rssi": int(t.rssi)} if t.rssi is not None else {}),
                }
                for t in telegrams
            ]
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


def decode_envelope(body: bytes, content_type: str = CBOR) -> dict[str, Any]:
    """Inverse of build_envelope, for tests and tools (no validation: see parse_uplink): the map
    with ``telegrams`` as a list of ``{"raw", "rx", "rssi", "mode"}`` (mode as name)."""
    env = orjson.loads(body) if content_type.startswith(JSON) else cbor2.loads(body)
    out = {k: v for k, v in env.items() if k not in ("batch", "telegrams", "t0")}
    tel: list[dict[str, Any]] = []
    if env.get("batch"):
        b, t0 = env["batch"], env["t0"]
        pos = 0
        mode = b["mode"]
        for i, n in enumerate(b["len"]):
            r = b["rssi"][i]
            tel.append(
                {
                    "raw": bytes(b["data"][pos : pos + n]),
                    "rx": t0 + b["dt"][i],
                    "rssi": None if r == RSSI_UNKNOWN else (r - 256 if r > 127 else r),
                    "mode": LINK_MODE_NAMES.get(mode if isinstance(mode, int) else mode[i], "unknown"),
                }
            )
            pos += n
    for t in env.get("telegrams") or []:
        raw = t["raw"] if "raw" in t else bytes.fromhex(t["hex"])
        tel.append({"raw": raw, "rx": t["rx"], "rssi": t.get("rssi"), "mode": t["mode"]})
    out["telegrams"] = tel
    return out


# --------------------------------------------------------------------------- the response (§2.5)
class UplinkResponse(TypedDict):
    """The head-end's answer, checked (a map on the wire, a dict here)."""

    ack: int  # the seq the head-end stored
    stored: Any  # telegrams newly stored (as the head-end reports)
    duplicates: Any  # telegrams it had already
    rejected: list[Any]  # [{index, message}] of malformed telegrams
    config: dict[str, Any] | None  # a configuration to apply, or None
    time: int | float | None  # the head-end's clock, Unix seconds


def parse_response(body: bytes, content_type: str = CBOR) -> UplinkResponse:
    """The head-end's §2.5 response map, checked. Raises ProtocolError naming what is wrong."""
    try:
        resp = orjson.loads(body) if content_type.startswith(JSON) else cbor2.loads(body)
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
    return {
        "ack": ack,
        "stored": resp.get("stored", 0),
        "duplicates": resp.get("duplicates", 0),
        "rejected": rejected,
        "config": cfg,
        "time": t,
    }


# --------------------------------------------------------------------------- parsing (head-end)
class Entry(NamedTuple):
    """One telegram of an uplink that passed the checks."""

    position: int  # its index in the uplink (as the gateway sent it)
    frame: bytes  # the wM-Bus frame from its L-field
    rx: int  # receive time, Unix seconds
    mode: str  # link mode name ("T1", ... or "unknown")
    rssi: int | None  # dBm, None when unknown


@dataclass(frozen=True, slots=True)
class Uplink:
    """A parsed, checked uplink envelope (docs/formats.md §2)."""

    envelope: dict[str, Any]  # the map as it came (for what the fields below omit)
    serial: str  # gw
    credential: str  # the transport's credential, else the envelope's `cred`
    seq: int
    cfg: int  # the configuration version the gateway runs
    cfg_error: dict[str, Any] | None  # {version, message}: a configuration it refused
    status: dict[str, Any]  # the known status keys, type-checked
    entries: list[Entry]  # the telegrams that passed the checks
    rejected: list[dict[str, Any]]  # [{index, message}] of those that did not

    @property
    def has_cred(self) -> bool:
        """Whether the body carries a credential (`cred`), which must not be stored."""
        return "cred" in self.envelope


def parse_uplink(body: bytes, content_type: str, *, credential: str | None = None) -> Uplink:
    """Body bytes -> a checked :class:`Uplink`. ``credential`` is the one the transport carried
    (HTTP's bearer token); without one the envelope's ``cred`` is used.

    Raises UplinkRejected (400/401/413/415/422) when the uplink as a whole is refused; single
    malformed telegrams are listed in ``rejected`` instead.
    """
    envelope = parse_body(body, content_type)
    if envelope.get("v") != FORMAT_VERSION:
        raise _bad(f"v must be 1 (format version), got {_show(envelope.get('v'))}")
    serial = envelope.get("gw")
    if not isinstance(serial, str) or not SERIAL_RE.match(serial):
        raise _bad(f"gw must be the gateway serial (1-64 of A-Z a-z 0-9 . _ -), got {_show(serial)}")
    cred = credential
    if cred is None:
        cred = envelope.get("cred")
        if cred is not None and not isinstance(cred, str):
            raise _bad("cred must be text")
    if not cred:
        raise UplinkRejected(401, "unauthorized", "missing gateway credential (Authorization: Bearer, or cred)")
    seq = _uint(envelope.get("seq"), "seq")
    cfg = _uint(envelope.get("cfg"), "cfg", MAX_CFG_VERSION)
    cfg_error = _cfg_error(envelope.get("cfg_error"))
    status = _status(envelope.get("status"))
    entries, rejected = parse_entries(envelope)
    return Uplink(
        envelope=envelope,
        serial=serial,
        credential=cred,
        seq=seq,
        cfg=cfg,
        cfg_error=cfg_error,
        status=status,
        entries=entries,
        rejected=rejected,
    )


class _Bignum(Exception):
    pass


def _refuse_bignum(_decoder: object, _immutable: bool = False) -> Any:
    raise _Bignum


# Integers beyond 64 bits come only as CBOR bignums (tags 2, 3). The format has none, and Python
# cannot even print one of more than 4,300 digits (an error message naming it failed as a 500).
_NO_BIGNUMS = {2: _refuse_bignum, 3: _refuse_bignum}


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Body bytes -> envelope map (CBOR or JSON by content type), unchecked inside."""
    if len(body) > MAX_BODY:
        raise UplinkRejected(413, "payload_too_large", f"uplink body of {len(body)} bytes exceeds {MAX_BODY}")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in (CBOR, "application/octet-stream", ""):
        try:
            envelope = cbor2.loads(body, semantic_decoders=_NO_BIGNUMS)
        except (Exception, RecursionError) as exc:  # cbor2 raises several types on bad input
            if isinstance(exc.__cause__, _Bignum):
                raise _bad(
                    "the body holds an integer beyond 64 bits (a CBOR bignum, tag 2 or 3); "
                    "integers in an uplink are at most 64 bits"
                ) from None
            raise UplinkRejected(400, "invalid_cbor", f"body is not valid CBOR: {exc}") from None
    elif kind == JSON:
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UplinkRejected(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    else:
        raise UplinkRejected(
            415, "unsupported_media_type", f"content type {content_type!r}: use application/cbor or application/json"
        )
    if not isinstance(envelope, dict):
        raise _bad(f"the uplink must be a map, got {type(envelope).__name__}")
    return envelope


def parse_entries(envelope: dict[str, Any]) -> tuple[list[Entry], list[dict[str, Any]]]:
    """The telegrams of an envelope map: (those that passed, [{index, message}] of the others)."""
    if envelope.get("batch") not in (None, {}, []) and envelope.get("telegrams") not in (None, []):
        raise _bad("send either batch or telegrams, not both")
    if envelope.get("batch") not in (None, {}, []):
        return _parse_batch(envelope["batch"], envelope.get("t0"))
    if envelope.get("telegrams") not in (None, []):
        return _parse_telegrams(envelope["telegrams"])
    return [], []


def content_hash(entries: list[Entry], rejected: list[dict[str, Any]]) -> bytes:
    """What makes two uplinks under one seq the same uplink: their telegrams (frame, receive
    time, link mode, RSSI, position) and which entries were malformed. Not the status, the
    credential or the encoding: a gateway's retry carries a fresh status and may come over
    another transport, yet is the same batch."""
    digest = hashlib.sha256(b"omshub-uplink-content-1")
    digest.update(len(entries).to_bytes(4, "big") + len(rejected).to_bytes(4, "big"))
    for i, frame, rx, mode, rssi in entries:
        digest.update(b"%d|%d|%s|%s|%d|" % (i, rx, mode.encode(), b"-" if rssi is None else b"%d" % rssi, len(frame)))
        digest.update(frame)
    for item in rejected:
        digest.update(b"r%d|" % item["index"])
    return digest.digest()


def _uint(value: Any, name: str, maximum: int = MAX_UINT63) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _bad(f"{name} must be an unsigned integer up to {maximum}, got {_show(value)}")
    return value


def _text(value: str) -> str:
    """Reported text as stored: PostgreSQL cannot hold NUL in text (the raw body keeps the original)."""
    return value.replace("\x00", "\ufffd")


def _status(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("status must be a map")
    out: dict[str, Any] = {}
    for key, typ in _STATUS_KEYS.items():
        if key in value and value[key] is not None:
            item: Any = value[key]
            ok = isinstance(item, typ) and (typ is bool or not isinstance(item, bool))
            if typ is int and ok and not -(1 << 63) <= item <= MAX_UINT63:
                ok = False
            if typ is str and ok and len(item) > 200:
                ok = False
            if not ok:
                raise _bad(
                    f"status.{key} must be {'text (up to 200)' if typ is str else typ.__name__}, got {_show(item)}"
                )
            out[key] = _text(item) if typ is str else item
    if "battery_pct" in out and not 0 <= out["battery_pct"] <= 100:
        raise _bad(f"status.battery_pct must be 0-100, got {out['battery_pct']}")
    return out


def _cfg_error(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("cfg_error must be a map {version, message} or null")
    version = _uint(value.get("version"), "cfg_error.version", MAX_CFG_VERSION)
    message = value.get("message", "")
    if not isinstance(message, str):
        raise _bad("cfg_error.message must be text")
    return {"version": version, "message": _text(message[:2000])}


def _bytes_field(value: Any, name: str) -> bytes:
    """A bstr (CBOR) or hex text (JSON)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _bad(f"{name} must be bytes (or hex text in JSON)") from None
    raise _bad(f"{name} must be bytes (or hex text in JSON), got {type(value).__name__}")


def _mode_name(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return LINK_MODE_BY_CODE[value] if 0 <= value < len(LINK_MODE_BY_CODE) else None
    if isinstance(value, str):
        return _MODE_BY_NAME.get(value.lower())
    return None


def _batch_rssis(rssi_raw: Any, n: int) -> list[int | None]:
    if rssi_raw is None:
        return [None] * n
    if isinstance(rssi_raw, (bytes, bytearray)):
        if len(rssi_raw) != n:
            raise _bad(f"batch.rssi has {len(rssi_raw)} bytes but there are {n} telegrams")
        return [None if b == RSSI_UNKNOWN else (b - 256 if b > 127 else b) for b in rssi_raw]
    if isinstance(rssi_raw, list) and len(rssi_raw) == n:
        return [v if isinstance(v, int) and not isinstance(v, bool) and -128 <= v <= 127 else None for v in rssi_raw]
    raise _bad(f"batch.rssi must be {n} signed bytes")


def _batch_modes(mode_raw: Any, n: int) -> list[str | None]:
    if isinstance(mode_raw, (bytes, bytearray, list)):
        if len(mode_raw) != n:
            raise _bad(f"batch.mode has {len(mode_raw)} entries but there are {n} telegrams")
        return [_mode_name(m) for m in mode_raw]
    single = _mode_name(mode_raw)
    if single is None:
        raise _bad(f"batch.mode {_show(mode_raw)} is not a link mode code 0-7")
    return [single] * n


def _parse_batch(batch: Any, t0_raw: Any) -> tuple[list[Entry], list[dict[str, Any]]]:
    if not isinstance(batch, dict):
        raise _bad("batch must be a map {data, len, dt, rssi, mode}")
    t0 = _uint(t0_raw, "t0", MAX_TIME)
    data = _bytes_field(batch.get("data", b""), "batch.data")
    lengths = batch.get("len", [])
    dts = batch.get("dt", [])
    if not isinstance(lengths, list) or not isinstance(dts, list):
        raise _bad("batch.len and batch.dt must be arrays")
    n = len(lengths)
    if n > MAX_TELEGRAMS:
        raise _bad(f"batch.len: {n} telegrams exceed the limit of {MAX_TELEGRAMS} per uplink")
    if len(dts) != n:
        raise _bad(f"batch.dt has {len(dts)} entries but batch.len has {n}")
    for i, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise _bad(f"batch.len[{i}] must be an unsigned integer, got {_show(length)}")
    if sum(lengths) != len(data):
        raise _bad(f"batch.len sums to {sum(lengths)} but batch.data has {len(data)} bytes")
    rssis = _batch_rssis(batch.get("rssi"), n)
    modes = _batch_modes(batch.get("mode", 0), n)
    entries: list[Entry] = []
    rejected: list[dict[str, Any]] = []
    pos = 0
    for i in range(n):
        length = lengths[i]
        frame = data[pos : pos + length]
        pos += length
        dt = dts[i]
        mode = modes[i]
        if isinstance(dt, bool) or not isinstance(dt, int) or not 0 <= t0 + dt <= MAX_TIME or dt < 0:
            rejected.append({"index": i, "message": f"batch.dt[{i}] must be an unsigned integer, got {_show(dt)}"})
        elif not MIN_FRAME <= length <= MAX_FRAME:
            rejected.append({"index": i, "message": f"frame of {length} bytes (a frame has {MIN_FRAME}-{MAX_FRAME})"})
        elif mode is None:
            rejected.append({"index": i, "message": f"batch.mode[{i}] is not a link mode code 0-7"})
        else:
            entries.append(Entry(i, frame, t0 + dt, mode, rssis[i]))
    return entries, rejected


def _rx_seconds(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if 0 <= value <= MAX_TIME else None
    if isinstance(value, datetime):  # CBOR tag 0/1
        dt = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        return None
    seconds = int((dt - _EPOCH).total_seconds())
    return seconds if 0 <= seconds <= MAX_TIME else None


def _telegram_item(item: Any) -> tuple[Entry | None, str | None]:
    """One item of a JSON-style ``telegrams`` array -> (entry without its index, problem)."""
    if not isinstance(item, dict):
        return None, "must be a map {rx, mode, rssi, hex|raw}"
    frame: bytes | None = None
    problem: str | None = None
    if "raw" in item and isinstance(item["raw"], (bytes, bytearray)):
        frame = bytes(item["raw"])
    elif isinstance(item.get("hex"), str) and len(item["hex"]) <= 4 * MAX_FRAME:
        try:
            frame = bytes.fromhex(item["hex"].replace(" ", ""))
        except ValueError:
            problem = "hex is not hex"
    else:
        problem = "needs the frame as hex (text) or raw (bytes)"
    rx = _rx_seconds(item.get("rx"))
    mode = _mode_name(item.get("mode", 0))
    rssi = item.get("rssi")
    if problem or frame is None:
        return None, problem
    if not MIN_FRAME <= len(frame) <= MAX_FRAME:
        return None, f"frame of {len(frame)} bytes (a frame has {MIN_FRAME}-{MAX_FRAME})"
    if rx is None:
        return None, (
            f"rx {_show(item.get('rx'))} is not a time from 1970 to 9999: ISO 8601 with zone, or Unix seconds"
        )
    if mode is None:
        return None, f"mode {_show(item.get('mode'))} is not a link mode (T1, C1, ... or 0-7)"
    if rssi is not None and (isinstance(rssi, bool) or not isinstance(rssi, int) or not -200 <= rssi <= 100):
        return None, f"rssi {_show(rssi)} is not a dBm integer"
    return Entry(0, frame, rx, mode, rssi), None


def _parse_telegrams(items: Any) -> tuple[list[Entry], list[dict[str, Any]]]:
    if not isinstance(items, list):
        raise _bad("telegrams must be an array of maps")
    if len(items) > MAX_TELEGRAMS:
        raise _bad(f"telegrams: {len(items)} telegrams exceed the limit of {MAX_TELEGRAMS} per uplink")
    entries: list[Entry] = []
    rejected: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        entry, problem = _telegram_item(item)
        if entry is None:
            rejected.append({"index": i, "message": f"telegrams[{i}]: {problem}"})
        else:
            entries.append(entry._replace(position=i))
    return entries, rejected
