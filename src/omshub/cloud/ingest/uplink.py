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
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from omshub.cloud.domain.operations import OPEN_STATES
from omshub.cloud.domain.tokens import hash_secret
from omshub.cloud.ingest import metrics
from omshub.cloud.ingest.config_answer import expected_next_contact, on_uplink, running_config
from omshub.cloud.ingest.redaction import redact_credential
from omshub.cloud.store.alarm_rows import on_seq_reuse
from omshub.cloud.store.database import BulkSql, Database, db_json, json_text, time_to_db
from omshub.cloud.store.models import Gateway
from omshub.cloud.store.uplink_bodies import frames_cut
from omshub.cloud.store.writegate import note_ingest, write_gate
from omshub.codec import peek_address, peek_header
from omshub.protocol.envelope import (
    MAX_TIME,
    Entry,
    UplinkRejected,
    content_hash,
    parse_body,
    parse_entries,
    parse_uplink,
)

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


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
        # 8 bytes of the hash: the key is (receive time, gateway, hash), so a collision would need
        # two different frames from one gateway in the same second with the same 64-bit prefix
        rows.append((at, mode, rssi, frame, sha256(frame).digest()[:8], man, mid, "new"))
    return rows


def _record_quiet_contact(
    sql: BulkSql,
    gateway_id: int,
    seq: int,
    cfg: int,
    cfg_error: dict | None,
    status: dict,
    transport: str,
    next_contact: datetime | None,
    now: datetime,
) -> bool:
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
        "SELECT 1 FROM operations WHERE gateway_id = {m} AND state IN ({m}, {m}) LIMIT 1", (gateway_id, *OPEN_STATES)
    ):
        return False
    sql.conn.exec_driver_sql(
        f"UPDATE gateways SET last_contact_at = {sql.mark}, last_seq = {sql.mark}, status = {sql.json_mark}, "
        f"applied_config_version = {sql.mark}, next_contact_at = {sql.mark} WHERE id = {sql.mark}",
        (
            sql.time(now),
            seq if last_seq is None else max(last_seq, seq),
            json_text({**(db_json(old_status) or {}), **status, "transport": transport}),
            cfg,
            sql.time(next_contact) if next_contact is not None else None,
            gateway_id,
        ),
    )
    return True


def _stored_content_hash(sql: BulkSql, uplink_id: int) -> bytes | None:
    """The content hash of an uplink stored before it was recorded (before migration 0005)."""
    found = sql.rows(
        "SELECT body, content_type, frames_cut_at, frames_after_id, telegram_count FROM uplinks WHERE id = {m}",
        (uplink_id,),
    )
    if not found:
        return None
    body, ctype, cut_at, after, count = found[0]
    body = bytes(body)
    if cut_at is not None:  # (the frames are in the telegram rows, store/uplink_bodies.py)
        frames = sql.rows(
            "SELECT raw FROM telegrams WHERE uplink_id = {m} AND id > {m} ORDER BY id LIMIT {m}",
            (uplink_id, after or 0, count),
        )
        body = body[:cut_at] + b"".join(bytes(f[0]) for f in frames) + body[cut_at:]
    try:
        return content_hash(*parse_entries(parse_body(body, ctype)))
    except UplinkRejected:
        return None


def _earlier_use(sql: BulkSql, gateway_id: int, seq: int, digest: bytes) -> tuple[dict | None, bool]:
    """(the stored answer when this very uplink was stored before — a retry, whether the seq was
    used before by an uplink with other telegrams — the gateway numbers from 1 again)."""
    rows = sql.rows(
        "SELECT id, response, content_hash FROM uplinks WHERE gateway_id = {m} AND seq = {m}", (gateway_id, seq)
    )
    for uplink_id, response, stored in rows:
        stored = bytes(stored) if stored is not None else _stored_content_hash(sql, uplink_id)
        if stored == digest:
            return {**db_json(response), "time": int(datetime.now(UTC).timestamp())}, False
    return None, bool(rows)


def _seq_reused(session, gateway_id: int, tenant_id: int, serial: str, seq: int, stored: int, now: datetime) -> None:
    highest = session.execute(select(Gateway.last_seq).where(Gateway.id == gateway_id)).scalar()
    alarm = on_seq_reuse(session, tenant_id, gateway_id, serial, seq, highest, stored, now)
    # one warning per reset; while the gateway climbs through its old numbers, info
    log.log(
        logging.WARNING if alarm.details.get("reused_uplinks") == 1 else logging.INFO,
        "gateway %s reused uplink seq %d (it had reached %s) for other telegrams: stored them (%d new); "
        "it lost its uplink state",
        serial,
        seq,
        highest,
        stored,
    )


def handle_uplink(db: Database, body: bytes, *, content_type: str, transport: str, credential: str | None) -> dict:
    """Validate, authenticate, store (committed) and answer one uplink (docs/formats.md §2.5).
    Raises UplinkRejected (400/401/413/415/422) when the uplink as a whole is refused."""
    note_ingest()
    try:
        response = _handle_uplink(db, body, content_type=content_type, transport=transport, credential=credential)
    except UplinkRejected as exc:
        metrics.uplink_refused(transport, exc.code)
        raise
    finally:
        note_ingest()
    metrics.uplink_taken(transport, len(body), response)
    return response


def _handle_uplink(db: Database, body: bytes, *, content_type: str, transport: str, credential: str | None) -> dict:
    uplink = parse_uplink(body, content_type, credential=credential)
    serial, seq, cfg, cfg_error, status = uplink.serial, uplink.seq, uplink.cfg, uplink.cfg_error, uplink.status
    entries, rejected = uplink.entries, uplink.rejected
    cred_hash = hash_secret(uplink.credential)
    digest = content_hash(entries, rejected)

    now = datetime.now(UTC)
    # everything that needs no write lock first: authentication, the rows, the next contact
    with db.session() as reader:
        gw = reader.execute(
            select(Gateway.id, Gateway.tenant_id, Gateway.serial).where(Gateway.credential_hash == cred_hash)
        ).first()
        if gw is None or gw.serial != serial:
            raise UplinkRejected(401, "unauthorized", f"credential not valid for gateway {serial!r}")
        next_contact = _next_contact(
            reader, SimpleNamespace(id=gw.id, serial=gw.serial, applied_config_version=cfg), status, now
        )
    rows = _telegram_rows(entries, db.is_sqlite) if entries else []
    # the raw body is kept as evidence, but never with the gateway's credential in it
    stored_body, redactions = redact_credential(body, content_type, (uplink.credential,), has_cred=uplink.has_cred)
    # the frames' bytes are kept once, in the telegram rows (put back by store/uplink_bodies.py)
    cut = frames_cut(stored_body, [e[1] for e in entries]) if entries and not rejected else None
    # in the write transaction the statements go at the driver level (the ORM's per-statement
    # overhead was a third of the time this holds SQLite's one write lock)
    with write_gate(db), db.session(write=True) as session:
        sql = BulkSql(session, db.is_sqlite)
        again, reused = _earlier_use(sql, gw.id, seq, digest)
        if again is not None:
            return again
        try:
            uplink_id = _insert_uplink(
                sql,
                gw,
                seq,
                now,
                transport,
                content_type,
                stored_body,
                len(entries) + len(rejected),
                digest,
                redactions,
                None if cut is None else (cut[0], cut[1], _last_telegram_id(sql)),
            )
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
            if cut is not None and stored < len(rows):
                # a frame was not stored as a row of its own (the same frame stored before): the
                # body is kept whole
                sql.conn.exec_driver_sql(
                    f"UPDATE uplinks SET body = {sql.mark}, frames_cut_at = NULL, frames_after_id = NULL "
                    f"WHERE id = {sql.mark}",
                    (stored_body, uplink_id),
                )
        config = _gateway_contact(session, sql, gw.id, seq, cfg, cfg_error, status, transport, next_contact, now)
        if reused:
            _seq_reused(session, gw.id, gw.tenant_id, serial, seq, stored, now)
        response = {
            "ack": seq,
            "stored": stored,
            "duplicates": len(entries) - stored,
            "rejected": rejected,
            "config": config,
            "time": int(now.timestamp()),
        }
        sql.conn.exec_driver_sql(
            f"UPDATE uplinks SET response = {sql.json_mark} WHERE id = {sql.mark}", (json_text(response), uplink_id)
        )
        session.commit()
    if rejected:
        log.info("uplink %s seq %d from gateway %s: %d telegrams rejected", uplink_id, seq, serial, len(rejected))
    return response


def _insert_uplink(
    sql: BulkSql,
    gw,
    seq: int,
    now: datetime,
    transport: str,
    content_type: str | None,
    stored_body: bytes,
    count: int,
    digest: bytes,
    redactions,
    cut: tuple[int, bytes, int] | None,
) -> int:
    """The uplink's row (its response written once known). -> its id. Raises IntegrityError when
    the same uplink raced in through another connection. `cut`: (where the frames were cut out,
    the body without them, an id below the telegrams about to be stored) or None (the whole body)."""
    return sql.conn.exec_driver_sql(
        "INSERT INTO uplinks (tenant_id, gateway_id, seq, received_at, transport, content_type, body, "
        "frames_cut_at, frames_after_id, telegram_count, content_hash, body_redactions, response) "
        f"VALUES ({', '.join([sql.mark] * 11)}, {sql.json_mark}, {sql.json_mark}) RETURNING id",
        (
            gw.tenant_id,
            gw.id,
            seq,
            sql.time(now),
            transport[:16],
            (content_type or "application/cbor")[:64],
            stored_body if cut is None else cut[1],
            None if cut is None else cut[0],
            None if cut is None else cut[2],
            count,
            digest,
            json_text(redactions) if redactions else None,
            "{}",
        ),
    ).scalar_one()


def _last_telegram_id(sql: BulkSql) -> int:
    """An id below every telegram inserted after this call (SQLite: the write lock is held, so the
    highest; PostgreSQL: a value of the sequence, which hands out only higher ones later)."""
    if sql.sqlite:
        return sql.conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM telegrams").scalar_one()
    return sql.conn.exec_driver_sql("SELECT nextval(pg_get_serial_sequence('telegrams', 'id'))").scalar_one()


def _gateway_contact(
    session: Session,
    sql: BulkSql,
    gateway_id: int,
    seq: int,
    cfg,
    cfg_error,
    status: dict,
    transport: str,
    next_contact,
    now: datetime,
):
    """The gateway's row after this contact (last contact, seq, status, applied configuration,
    next contact). -> the configuration to send, if any (None on a quiet contact)."""
    if _record_quiet_contact(sql, gateway_id, seq, cfg, cfg_error, status, transport, next_contact, now):
        return None
    gateway = session.get_one(Gateway, gateway_id)  # (authenticated above)
    gateway.last_contact_at = now
    gateway.last_seq = seq if gateway.last_seq is None else max(gateway.last_seq, seq)
    gateway.status = {**(gateway.status or {}), **status, "transport": transport}
    gateway.applied_config_version = cfg
    gateway.next_contact_at = next_contact
    config = on_uplink(session, gateway, applied_version=cfg, cfg_error=cfg_error, now=now)
    session.flush()  # the gateway and operations, before the uplink's response is written
    return config


_TELEGRAM_COLUMNS = (
    "tenant_id",
    "gateway_id",
    "uplink_id",
    "received_at",
    "link_mode",
    "rssi",
    "raw",
    "raw_hash",
    "manufacturer",
    "meter_id",
    "state",
)
_TELEGRAM_TYPES = (
    "bigint",
    "bigint",
    "bigint",
    "timestamptz",
    "varchar",
    "integer",
    "bytea",
    "bytea",
    "varchar",
    "varchar",
    "varchar",
)


def _insert_telegrams(session, db: Database, rows: list[tuple]) -> int:
    """Bulk insert of (column values...) in _TELEGRAM_COLUMNS order; rows already stored (same
    gateway, bytes, receive time) are skipped. -> newly stored. At the driver level (see
    db.BulkSql): the ORM's per-row parameter processing cost more than the insert."""
    return BulkSql(session, db.is_sqlite).insert(
        "telegrams",
        _TELEGRAM_COLUMNS,
        _TELEGRAM_TYPES,
        rows,
        "ON CONFLICT (received_at, gateway_id, raw_hash) DO NOTHING",
    )
