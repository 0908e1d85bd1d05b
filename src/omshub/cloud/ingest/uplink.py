"""Uplink ingest (docs/formats.md §2): validate, authenticate, store, acknowledge.

Shared by every transport (HTTPS, CoAP, MQTT). The uplink body (its `cred` overwritten, see
redaction.py) and every telegram in it are committed before the response map is returned; nothing
is decoded here (the pipeline does that), so the hot path is: parse, one hash per credential, a
header peek per frame, two bulk inserts. A seq already stored with the same telegrams is a retry
(the stored answer is given again); with other telegrams it is a gateway that lost its state and
numbers from 1 again: stored like a new uplink, with a `gateway_seq_reset` alarm.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import cbor2
import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from omshub.codec import peek_address, peek_header

from omshub.cloud.domain.operations import OPEN_STATES
from omshub.cloud.domain.tokens import hash_secret
from omshub.cloud.ingest.config_answer import expected_next_contact, on_uplink, running_config
from omshub.cloud.ingest.redaction import redact_credential
from omshub.cloud.store.alarm_rows import on_seq_reuse
from omshub.cloud.store.database import BulkSql, Database, db_json, json_text, time_to_db
from omshub.cloud.store.models import Gateway
from omshub.cloud.store.writegate import note_ingest, write_gate

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_TELEGRAMS = 5000
MIN_FRAME, MAX_FRAME = 10, 512
MAX_UINT63 = (1 << 63) - 1
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z
SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LINK_MODES = ("unknown", "T1", "C1", "S1", "T2", "C2", "S2", "N")
_MODE_BY_NAME = {name.lower(): name for name in LINK_MODES}
_STATUS_KEYS = {"battery_pct": int, "battery_mv": int, "rssi": int, "firmware": str, "uptime_s": int,
                "spool": int, "spool_full": bool, "heard": int, "filtered": int, "time": int, "next_contact": int}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class UplinkRejected(Exception):
    """The uplink as a whole is refused: HTTP-like `status`, machine `code`, human `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def _bad(message: str) -> UplinkRejected:
    return UplinkRejected(422, "invalid_uplink", message)


def _uint(value, name: str, maximum: int = MAX_UINT63) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _bad(f"{name} must be an unsigned integer up to {maximum}, got {_show(value)}")
    return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _ts(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


class _Bignum(Exception):
    pass


def _refuse_bignum(_decoder, _immutable=False):
    raise _Bignum


# Integers beyond 64 bits come only as CBOR bignums (tags 2, 3). The format has none, and Python
# cannot even print one of more than 4,300 digits (an error message naming it failed as a 500).
_NO_BIGNUMS = {2: _refuse_bignum, 3: _refuse_bignum}


def parse_body(body: bytes, content_type: str) -> dict:
    """Body bytes -> envelope map (CBOR or JSON by content type)."""
    if len(body) > MAX_BODY:
        raise UplinkRejected(413, "payload_too_large", f"uplink body of {len(body)} bytes exceeds {MAX_BODY}")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("application/cbor", "application/octet-stream", ""):
        try:
            envelope = cbor2.loads(body, semantic_decoders=_NO_BIGNUMS)
        except (Exception, RecursionError) as exc:  # cbor2 raises several types on bad input
            if isinstance(exc.__cause__, _Bignum):
                raise _bad("the body holds an integer beyond 64 bits (a CBOR bignum, tag 2 or 3); "
                           "integers in an uplink are at most 64 bits") from None
            raise UplinkRejected(400, "invalid_cbor", f"body is not valid CBOR: {exc}") from None
    elif kind == "application/json":
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UplinkRejected(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    else:
        raise UplinkRejected(415, "unsupported_media_type",
                             f"content type {content_type!r}: use application/cbor or application/json")
    if not isinstance(envelope, dict):
        raise _bad(f"the uplink must be a map, got {type(envelope).__name__}")
    return envelope


def _text(value: str) -> str:
    """Reported text as stored: PostgreSQL cannot hold NUL in text (the raw body keeps the original)."""
    return value.replace("\x00", "\ufffd")


def _status(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("status must be a map")
    out = {}
    for key, typ in _STATUS_KEYS.items():
        if key in value and value[key] is not None:
            item = value[key]
            ok = isinstance(item, typ) and (typ is bool or not isinstance(item, bool))
            if typ is int and ok and not -(1 << 63) <= item <= MAX_UINT63:
                ok = False
            if typ is str and ok and len(item) > 200:
                ok = False
            if not ok:
                raise _bad(f"status.{key} must be {'text (up to 200)' if typ is str else typ.__name__}, "
                           f"got {_show(item)}")
            out[key] = _text(item) if typ is str else item
    if "battery_pct" in out and not 0 <= out["battery_pct"] <= 100:
        raise _bad(f"status.battery_pct must be 0-100, got {out['battery_pct']}")
    return out


def _cfg_error(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("cfg_error must be a map {version, message} or null")
    version = _uint(value.get("version"), "cfg_error.version", (1 << 31) - 1)
    message = value.get("message", "")
    if not isinstance(message, str):
        raise _bad("cfg_error.message must be text")
    return {"version": version, "message": _text(message[:2000])}


def _bytes_field(value, name: str) -> bytes:
    """A bstr (CBOR) or hex text (JSON)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _bad(f"{name} must be bytes (or hex text in JSON)") from None
    raise _bad(f"{name} must be bytes (or hex text in JSON), got {type(value).__name__}")


def _mode_name(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return LINK_MODES[value] if 0 <= value < len(LINK_MODES) else None
    if isinstance(value, str):
        return _MODE_BY_NAME.get(value.lower())
    return None


# One parsed telegram: (index, frame, receive unix seconds, link mode name, rssi or None)
Entry = tuple[int, bytes, int, str, "int | None"]


def _parse_batch(batch, t0) -> tuple[list[Entry], list[dict]]:
    if not isinstance(batch, dict):
        raise _bad("batch must be a map {data, len, dt, rssi, mode}")
    t0 = _uint(t0, "t0", MAX_TIME)
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
    rssi_raw = batch.get("rssi")
    if rssi_raw is None:
        rssis = [None] * n
    elif isinstance(rssi_raw, (bytes, bytearray)):
        if len(rssi_raw) != n:
            raise _bad(f"batch.rssi has {len(rssi_raw)} bytes but there are {n} telegrams")
        rssis = [None if b == 0x80 else (b - 256 if b > 127 else b) for b in rssi_raw]
    elif isinstance(rssi_raw, list) and len(rssi_raw) == n:
        rssis = [v if isinstance(v, int) and not isinstance(v, bool) and -128 <= v <= 127 else None
                 for v in rssi_raw]
    else:
        raise _bad(f"batch.rssi must be {n} signed bytes")
    mode_raw = batch.get("mode", 0)
    if isinstance(mode_raw, (bytes, bytearray, list)):
        if len(mode_raw) != n:
            raise _bad(f"batch.mode has {len(mode_raw)} entries but there are {n} telegrams")
        modes = [_mode_name(m) for m in mode_raw]
    else:
        single = _mode_name(mode_raw)
        if single is None:
            raise _bad(f"batch.mode {_show(mode_raw)} is not a link mode code 0-7")
        modes = [single] * n
    entries: list[Entry] = []
    rejected: list[dict] = []
    pos = 0
    for i in range(n):
        length = lengths[i]
        frame = data[pos:pos + length]
        pos += length
        dt = dts[i]
        if isinstance(dt, bool) or not isinstance(dt, int) or not 0 <= t0 + dt <= MAX_TIME or dt < 0:
            rejected.append({"index": i, "message": f"batch.dt[{i}] must be an unsigned integer, got {_show(dt)}"})
        elif not MIN_FRAME <= length <= MAX_FRAME:
            rejected.append({"index": i, "message": f"frame of {length} bytes (a frame has {MIN_FRAME}-{MAX_FRAME})"})
        elif modes[i] is None:
            rejected.append({"index": i, "message": f"batch.mode[{i}] is not a link mode code 0-7"})
        else:
            entries.append((i, frame, t0 + dt, modes[i], rssis[i]))
    return entries, rejected


def _rx_seconds(value) -> int | None:
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


def _parse_telegrams(items) -> tuple[list[Entry], list[dict]]:
    if not isinstance(items, list):
        raise _bad("telegrams must be an array of maps")
    if len(items) > MAX_TELEGRAMS:
        raise _bad(f"telegrams: {len(items)} telegrams exceed the limit of {MAX_TELEGRAMS} per uplink")
    entries: list[Entry] = []
    rejected: list[dict] = []
    for i, item in enumerate(items):
        problem, frame = None, None
        if not isinstance(item, dict):
            problem = "must be a map {rx, mode, rssi, hex|raw}"
        else:
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
            if problem:
                pass
            elif not MIN_FRAME <= len(frame) <= MAX_FRAME:
                problem = f"frame of {len(frame)} bytes (a frame has {MIN_FRAME}-{MAX_FRAME})"
            elif rx is None:
                problem = (f"rx {_show(item.get('rx'))} is not a time from 1970 to 9999: "
                           f"ISO 8601 with zone, or Unix seconds")
            elif mode is None:
                problem = f"mode {_show(item.get('mode'))} is not a link mode (T1, C1, ... or 0-7)"
            elif rssi is not None and (isinstance(rssi, bool) or not isinstance(rssi, int) or not -200 <= rssi <= 100):
                problem = f"rssi {_show(rssi)} is not a dBm integer"
        if problem:
            rejected.append({"index": i, "message": f"telegrams[{i}]: {problem}"})
        else:
            entries.append((i, frame, rx, mode, rssi))
    return entries, rejected


def _peek(frame: bytes) -> tuple[str | None, str | None]:
    """(manufacturer, meter id) from the link header; (None, None) if unreadable (decoded later as invalid)."""
    fast = peek_address(frame)
    if fast is not None:
        return fast
    try:
        head = peek_header(frame)
    except Exception:  # the codec promises DecodeError; never lose a telegram over a peek
        return None, None
    man, mid = head.get("manufacturer"), head.get("id")
    if not (isinstance(man, str) and len(man) == 3 and isinstance(mid, str) and len(mid) <= 8):
        return None, None
    return man, mid


def _next_contact(session, gateway, status: dict, now: datetime) -> datetime | None:
    """When the gateway should call next: as it reports, else from the configuration it runs
    (`gateway`: id, serial and the applied version this uplink reports; configuration versions
    are never changed once stored, so this is read before the write transaction)."""
    if "next_contact" in status and 0 < status["next_contact"] <= MAX_TIME and _ts(status["next_contact"]) > now:
        return _ts(status["next_contact"])  # (one in the past: from the configuration, as on_uplink does)
    return expected_next_contact(gateway, running_config(session, gateway), now)


def _telegram_rows(entries: list[Entry], sqlite: bool) -> list[tuple]:
    """The telegrams' rows in _TELEGRAM_COLUMNS order after (tenant, gateway, uplink id), made
    before the write lock is taken (the uplink id exists only in the write transaction)."""
    rows = []
    sha256 = hashlib.sha256
    to_db = time_to_db(sqlite)
    times: dict[int, object] = {}  # a batch's telegrams share few receive seconds: each converted once
    for _i, frame, rx, mode, rssi in entries:
        man, mid = _peek(frame)
        at = times.get(rx)
        if at is None:
            at = times[rx] = to_db(_ts(rx))
        rows.append((at, mode, rssi, frame, sha256(frame).digest(), man, mid, "new"))
    return rows


def _record_quiet_contact(sql: BulkSql, gateway_id: int, seq: int, cfg: int, cfg_error: dict | None, status: dict,
                          transport: str, next_contact: datetime | None, now: datetime) -> bool:
    """The gateway's contact in two statements, when the uplink changes no operation: the
    gateway runs its desired configuration (or has none), reports no configuration error and
    has no open operation (nearly every uplink). -> False when config_answer.on_uplink must run."""
    if cfg_error is not None:
        return False
    found = sql.rows("SELECT status, last_seq, desired_config_version FROM gateways WHERE id = {m}", (gateway_id,))
    if not found:
        return False
    old_status, last_seq, desired = found[0]
    if (desired or 0) not in (0, cfg) or sql.rows(
            "SELECT 1 FROM operations WHERE gateway_id = {m} AND state IN ({m}, {m}) LIMIT 1", (gateway_id, *OPEN_STATES)):
        return False
    sql.conn.exec_driver_sql(
        f"UPDATE gateways SET last_contact_at = {sql.mark}, last_seq = {sql.mark}, status = {sql.json_mark}, "
        f"applied_config_version = {sql.mark}, next_contact_at = {sql.mark} WHERE id = {sql.mark}",
        (sql.time(now), seq if last_seq is None else max(last_seq, seq),
         json_text({**(db_json(old_status) or {}), **status, "transport": transport}), cfg,
         sql.time(next_contact) if next_contact is not None else None, gateway_id))
    return True


def _entries(envelope: dict) -> tuple[list[Entry], list[dict]]:
    if envelope.get("batch") not in (None, {}, []) and envelope.get("telegrams") not in (None, []):
        raise _bad("send either batch or telegrams, not both")
    if envelope.get("batch") not in (None, {}, []):
        return _parse_batch(envelope["batch"], envelope.get("t0"))
    if envelope.get("telegrams") not in (None, []):
        return _parse_telegrams(envelope["telegrams"])
    return [], []


def content_hash(entries: list[Entry], rejected: list[dict]) -> bytes:
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


def _stored_content_hash(sql: BulkSql, uplink_id: int) -> bytes | None:
    """The content hash of an uplink stored before it was recorded (before migration 0005)."""
    found = sql.rows("SELECT body, content_type FROM uplinks WHERE id = {m}", (uplink_id,))
    try:
        return content_hash(*_entries(parse_body(bytes(found[0][0]), found[0][1])))
    except (UplinkRejected, IndexError):
        return None


def _earlier_use(sql: BulkSql, gateway_id: int, seq: int, digest: bytes) -> tuple[dict | None, bool]:
    """(the stored answer when this very uplink was stored before — a retry, whether the seq was
    used before by an uplink with other telegrams — the gateway numbers from 1 again)."""
    rows = sql.rows("SELECT id, response, content_hash FROM uplinks WHERE gateway_id = {m} AND seq = {m}",
                    (gateway_id, seq))
    for uplink_id, response, stored in rows:
        stored = bytes(stored) if stored is not None else _stored_content_hash(sql, uplink_id)
        if stored == digest:
            return {**db_json(response), "time": int(datetime.now(timezone.utc).timestamp())}, False
    return None, bool(rows)


def _seq_reused(session, gateway_id: int, tenant_id: int, serial: str, seq: int, stored: int, now: datetime) -> None:
    highest = session.execute(select(Gateway.last_seq).where(Gateway.id == gateway_id)).scalar()
    alarm = on_seq_reuse(session, tenant_id, gateway_id, serial, seq, highest, stored, now)
    # one warning per reset; while the gateway climbs through its old numbers, info
    log.log(logging.WARNING if alarm.details.get("reused_uplinks") == 1 else logging.INFO,
            "gateway %s reused uplink seq %d (it had reached %s) for other telegrams: stored them (%d new); "
            "it lost its uplink state", serial, seq, highest, stored)


def handle_uplink(db: Database, body: bytes, *, content_type: str, transport: str,
                  credential: str | None) -> dict:
    """Validate, authenticate, store (committed) and answer one uplink (docs/formats.md §2.5).
    Raises UplinkRejected (400/401/413/415/422) when the uplink as a whole is refused."""
    note_ingest()
    try:
        return _handle_uplink(db, body, content_type=content_type, transport=transport, credential=credential)
    finally:
        note_ingest()


def _handle_uplink(db: Database, body: bytes, *, content_type: str, transport: str, credential: str | None) -> dict:
    envelope = parse_body(body, content_type)
    if envelope.get("v") != 1:
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
    cred_hash = hash_secret(cred)
    seq = _uint(envelope.get("seq"), "seq")
    cfg = _uint(envelope.get("cfg"), "cfg", (1 << 31) - 1)
    cfg_error = _cfg_error(envelope.get("cfg_error"))
    status = _status(envelope.get("status"))
    entries, rejected = _entries(envelope)
    digest = content_hash(entries, rejected)

    now = datetime.now(timezone.utc)
    # everything that needs no write lock first: authentication, the rows, the next contact
    with db.session() as reader:
        gw = reader.execute(select(Gateway.id, Gateway.tenant_id, Gateway.serial)
                            .where(Gateway.credential_hash == cred_hash)).first()
        if gw is None or gw.serial != serial:
            raise UplinkRejected(401, "unauthorized", f"credential not valid for gateway {serial!r}")
        next_contact = _next_contact(reader, SimpleNamespace(id=gw.id, serial=gw.serial, applied_config_version=cfg),
                                     status, now)
    rows = _telegram_rows(entries, db.is_sqlite) if entries else []
    # the raw body is kept as evidence, but never with the gateway's credential in it
    stored_body, redactions = redact_credential(body, content_type, (cred,), has_cred="cred" in envelope)
    # in the write transaction the statements go at the driver level (the ORM's per-statement
    # overhead was a third of the time this holds SQLite's one write lock)
    with write_gate(db), db.session(write=True) as session:
        sql = BulkSql(session, db.is_sqlite)
        again, reused = _earlier_use(sql, gw.id, seq, digest)
        if again is not None:
            return again
        try:
            uplink_id = sql.conn.exec_driver_sql(
                "INSERT INTO uplinks (tenant_id, gateway_id, seq, received_at, transport, content_type, body, "
                f"telegram_count, content_hash, body_redactions, response) VALUES ({', '.join([sql.mark] * 9)}, "
                f"{sql.json_mark}, {sql.json_mark}) RETURNING id",
                (gw.tenant_id, gw.id, seq, sql.time(now), transport[:16], (content_type or "application/cbor")[:64],
                 stored_body, len(entries) + len(rejected), digest,
                 json_text(redactions) if redactions else None, "{}")).scalar_one()
        except IntegrityError:  # the same uplink raced in through another connection
            session.rollback()
            again, _ = _earlier_use(BulkSql(session, db.is_sqlite), gw.id, seq, digest)
            if again is None:
                raise
            return again
        stored = 0
        if rows:
            head = (gw.tenant_id, gw.id, uplink_id)
            stored = _insert_telegrams(session, db, [head + row for row in rows])
        if not _record_quiet_contact(sql, gw.id, seq, cfg, cfg_error, status, transport, next_contact, now):
            gateway = session.get(Gateway, gw.id)
            gateway.last_contact_at = now
            gateway.last_seq = seq if gateway.last_seq is None else max(gateway.last_seq, seq)
            gateway.status = {**(gateway.status or {}), **status, "transport": transport}
            gateway.applied_config_version = cfg
            gateway.next_contact_at = next_contact
            config = on_uplink(session, gateway, applied_version=cfg, cfg_error=cfg_error, now=now)
            session.flush()  # the gateway and operations, before the statement below
        else:
            config = None
        if reused:
            _seq_reused(session, gw.id, gw.tenant_id, serial, seq, stored, now)
        response = {"ack": seq, "stored": stored, "duplicates": len(entries) - stored, "rejected": rejected,
                    "config": config, "time": int(now.timestamp())}
        sql.conn.exec_driver_sql(f"UPDATE uplinks SET response = {sql.json_mark} WHERE id = {sql.mark}",
                                 (json_text(response), uplink_id))
        session.commit()
    if rejected:
        log.info("uplink %s seq %d from gateway %s: %d telegrams rejected", uplink_id, seq, serial, len(rejected))
    return response


_TELEGRAM_COLUMNS = ("tenant_id", "gateway_id", "uplink_id", "received_at", "link_mode", "rssi", "raw", "raw_hash",
                     "manufacturer", "meter_id", "state")
_TELEGRAM_TYPES = ("bigint", "bigint", "bigint", "timestamptz", "varchar", "integer", "bytea", "bytea", "varchar",
                   "varchar", "varchar")


def _insert_telegrams(session, db: Database, rows: list[tuple]) -> int:
    """Bulk insert of (column values...) in _TELEGRAM_COLUMNS order; rows already stored (same
    gateway, bytes, receive time) are skipped. -> newly stored. At the driver level (see
    db.BulkSql): the ORM's per-row parameter processing cost more than the insert."""
    return BulkSql(session, db.is_sqlite).insert("telegrams", _TELEGRAM_COLUMNS, _TELEGRAM_TYPES, rows,
                                                 "ON CONFLICT (gateway_id, raw_hash, received_at) DO NOTHING")
