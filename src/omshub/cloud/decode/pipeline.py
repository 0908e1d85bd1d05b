"""The decode pipeline: telegrams in state `new` -> readings, in crash-safe batches.

A batch is selected, decoded and written in ONE transaction (the telegrams' new states, their
readings, the meters' bookkeeping), so a crash at any point leaves every undecoded telegram `new`
and it is simply picked up again; `readings.telegram_id` is unique, so no telegram ever yields two
readings. On PostgreSQL batches are claimed with `FOR UPDATE SKIP LOCKED` (several workers may
run); on SQLite the batch transaction holds the write lock (`BEGIN IMMEDIATE`).

States: decoded | no_key | wrong_key | unknown_meter (heard, not registered in the tenant) |
invalid (not decodable; `error` says why) | duplicate (the same transmission again: same meter,
access number and plaintext, within DUPLICATE_WINDOW — another gateway or a repeater heard it).
no_key, wrong_key and unknown_meter wait: `requeue_waiting` sets them back to `new` after a key
import or a meter registration.

A meter's key_status follows its telegrams: `present` after an encrypted good decode (or a key
import), `missing` on no_key, and on wrong_key: `suspect` (no alarm) when the key has decrypted its
telegrams before — a single corrupted CRC-less frame fails the same way — else, or when already
`suspect`, `wrong` with a wrong_key alarm.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from omshub.codec import DecodeError, FormatCache, decode
from omshub.codec.security import KeyContext

from omshub.cloud.domain.meter_time import (ZoneRules, is_unambiguous, meter_clock, meter_time_to_utc, telegram_model,
                                            zone_info)
from omshub.cloud.domain.registers import registers
from omshub.cloud.store import alarm_rows as alarms
from omshub.cloud.store.database import BulkSql, Database, db_json, db_time, json_text, time_to_db
from omshub.cloud.store.keystore import KeyStore, KeyStoreError
from omshub.cloud.store.meter_zones import load_rules
from omshub.cloud.store.telegram_states import WAITING_STATES, requeue_states, requeue_waiting
from omshub.cloud.store.writegate import ingest_clock, note_ingest, write_gate
from omshub.cloud.store.models import REDECODABLE_SQL, REDECODABLE_STATES, CompactFormat, Meter, MeterKey, Reading, Telegram, compact_reading_data, expand_reading_data
from omshub.cloud.store.outage import database_outage, is_unreachable

log = logging.getLogger(__name__)

DUPLICATE_WINDOW = timedelta(hours=1)
_CHUNK = 500
_WRONG_KEY_CODES = ("wrong_key", "mac_error")
_SELECT_COLUMNS = "id, tenant_id, gateway_id, received_at, raw, manufacturer, meter_id"


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def lookup(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def store(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


class DbFormatCache(FormatCache):
    """Compact-frame formats of one tenant, kept in `compact_formats`, with an in-memory LRU
    shared across batches. Newly learned formats are collected and written by `write_pending`
    in the batch's transaction (one bulk statement, not one per meter)."""

    def __init__(self, session: Session, tenant_id: int, memory: _LRU) -> None:
        super().__init__()
        self.session, self.tenant_id, self.memory = session, tenant_id, memory
        self.pending: dict[tuple[str, str, int], bytes] = {}

    def get(self, manufacturer: str, meter_id: str, signature: int) -> bytes | None:
        key = (self.tenant_id, manufacturer, meter_id, signature)
        fmt = self.memory.lookup(key)
        if fmt is None:
            fmt = self.session.scalar(select(CompactFormat.fmt).where(
                CompactFormat.tenant_id == self.tenant_id, CompactFormat.manufacturer == manufacturer,
                CompactFormat.meter_id == meter_id, CompactFormat.signature == signature))
            if fmt is not None:
                fmt = bytes(fmt)
                self.memory.store(key, fmt)
        return fmt

    def put(self, manufacturer: str, meter_id: str, signature: int, fmt: bytes) -> None:
        key = (self.tenant_id, manufacturer, meter_id, signature)
        fmt = bytes(fmt)
        if self.memory.lookup(key) == fmt or not (len(manufacturer) == 3 and len(meter_id) <= 8):
            return
        self.memory.store(key, fmt)
        self.pending[(manufacturer, meter_id, signature)] = fmt

    def write_pending(self, dialect: str) -> None:
        if not self.pending:
            return
        sql = BulkSql(self.session, dialect == "sqlite")
        sql.insert("compact_formats", ("tenant_id", "manufacturer", "meter_id", "signature", "fmt"),
                   ("bigint", "varchar", "varchar", "integer", "bytea"),
                   [(self.tenant_id, man, mid, sig, fmt) for (man, mid, sig), fmt in self.pending.items()],
                   "ON CONFLICT (tenant_id, manufacturer, meter_id, signature) DO UPDATE SET fmt = excluded.fmt")
        # compact frames that came before any full frame of their meter can be decoded now (found
        # through the index of telegrams to decode again, REDECODABLE_SQL)
        ids = sorted({mid for _man, mid, _sig in self.pending})
        like = "unknown_format:%" if dialect == "sqlite" else "unknown_format:%%"
        for i in range(0, len(ids), _CHUNK):
            isin, params = sql.isin("meter_id", ids[i:i + _CHUNK])
            sql.conn.exec_driver_sql(
                f"UPDATE telegrams SET state = 'new', error = NULL WHERE {REDECODABLE_SQL} AND state = 'invalid' "
                f"AND tenant_id = {sql.mark} AND {isin} AND error LIKE '{like}'", (self.tenant_id, *params))
        self.pending.clear()


def _fingerprint(access_number, records, manufacturer_data) -> bytes:
    """Same transmission <=> same access number and plaintext content (the records as stored:
    rows, see models.compact_reading_data)."""
    body = orjson.dumps([access_number, records, manufacturer_data], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=16).digest()


class _Prepared:
    """What a decoded telegram's reading needs that does not depend on the database: made while
    decoding, so that on SQLite the write transaction (which holds the one write lock) only
    writes. Times also as the driver stores them (`_db`). The decoded dict itself is not kept: a
    batch holding a thousand of them (~100 objects each) made every later allocation miss the
    CPU cache — the codec ran at half its speed. The alarm hooks that read it (rare) get it back
    from `data_json`."""
    __slots__ = ("fingerprint", "timestamp", "timestamp_db", "received_db", "fields_json", "data_json",
                 "reports_error", "registers", "encrypted", "clock", "model")

    def __init__(self, pipeline: "DecodePipeline", result: dict, row: "_NewTelegram") -> None:
        stored = compact_reading_data(result)  # as models.ReadingData stores it
        self.fingerprint = _fingerprint(result.get("access_number"), stored.get("records"),
                                        result.get("manufacturer_data"))
        # the meter's own date-time, converted once its meter's zone is known (DecodePipeline._time_readings)
        self.clock = meter_clock(result)
        self.model = telegram_model(result)
        self.timestamp, self.timestamp_db = row.received_at, row.received_db
        self.received_db = row.received_db
        self.fields_json = json_text(result.get("fields") or {})
        self.data_json = json_text(stored)
        self.reports_error = bool(alarms.error_causes(result)[0])
        self.registers = registers(result)
        self.encrypted = bool((result.get("security") or {}).get("encrypted"))


class _MeterState:
    """A meter row as the batch sees and changes it (written back in one bulk UPDATE)."""
    __slots__ = ("id", "tenant_id", "manufacturer", "meter_id", "last_heard_at", "last_reading_id", "key_status",
                 "last_reading_at", "last_registers", "last_heard_db", "last_reading_db", "dirty", "key_proven",
                 "meter_timezone")
    COLUMNS = "id, tenant_id, manufacturer, meter_id, last_heard_at, last_reading_id, key_status, " \
              "last_reading_at, last_registers, meter_timezone"

    def __init__(self, row) -> None:
        (self.id, self.tenant_id, self.manufacturer, self.meter_id, last_heard_at, self.last_reading_id,
         self.key_status, last_reading_at, last_registers, self.meter_timezone) = row
        self.last_heard_at, self.last_heard_db = db_time(last_heard_at), last_heard_at
        self.last_reading_at, self.last_reading_db = db_time(last_reading_at), last_reading_at
        self.last_registers = db_json(last_registers)
        self.dirty = False
        self.key_proven: bool | None = None  # has its current key decrypted a telegram? (None: not looked up)


class _Seen:
    """What a batch's decoding read: {tenant: DbFormatCache with the formats learned} and the key
    rows {(tenant, meter id): [(manufacturer, meter id, nonce, ciphertext)]}."""
    __slots__ = ("formats", "keys")

    def __init__(self, formats: dict, keys: dict) -> None:
        self.formats, self.keys = formats, keys


class DecodedBatch:
    """A batch selected and decoded from a read snapshot, not written yet (SQLite)."""
    __slots__ = ("rows", "decoded", "seen")

    def __init__(self, rows: list, decoded: list, seen: _Seen) -> None:
        self.rows, self.decoded, self.seen = rows, decoded, seen


class StoredReading:
    """A reading row just inserted, as passed to the alarm hooks (attribute names as `Reading`).
    `fields` and `data` may be given as their stored JSON, parsed when first read."""
    __slots__ = ("id", "tenant_id", "meter_pk", "telegram_id", "timestamp", "received_at", "_fields", "_data",
                 "fingerprint", "reports_error", "registers", "_fields_json", "_data_json")

    def __init__(self, id: int, tenant_id: int, meter_pk: int, telegram_id: int,  # noqa: A002 - the column
                 timestamp: datetime, received_at: datetime, fields: dict | None, data: dict | None,
                 fingerprint: bytes | None, reports_error: bool | None = None, registers: dict | None = None, *,
                 fields_json: str | None = None, data_json: str | None = None) -> None:
        self.id, self.tenant_id, self.meter_pk, self.telegram_id = id, tenant_id, meter_pk, telegram_id
        self.timestamp, self.received_at, self._fields, self._data = timestamp, received_at, fields, data
        self.fingerprint, self.reports_error, self.registers = fingerprint, reports_error, registers
        self._fields_json, self._data_json = fields_json, data_json

    @property
    def fields(self) -> dict:
        if self._fields is None:
            self._fields = orjson.loads(self._fields_json) if self._fields_json is not None else {}
        return self._fields

    @property
    def data(self) -> dict | None:
        """The decoded telegram (None: a summary of a reading stored earlier, see _update_meters)."""
        if self._data is None and self._data_json is not None:
            self._data = expand_reading_data(orjson.loads(self._data_json))
        return self._data

    def register_map(self) -> dict[str, float]:
        """consumption.registers of the data (worked out once)."""
        if self.registers is None:
            self.registers = registers(self.data)
        return self.registers


class _NewTelegram:
    """A telegram row selected for decoding."""
    __slots__ = ("id", "tenant_id", "gateway_id", "received_at", "received_db", "raw", "manufacturer", "meter_id")

    def __init__(self, row) -> None:
        (self.id, self.tenant_id, self.gateway_id, received_at, raw, self.manufacturer, self.meter_id) = row
        self.received_at = db_time(received_at)
        self.received_db = received_at  # as the driver gives it back: written back unchanged
        self.raw = bytes(raw)


_READING_COLUMNS = ("id", "tenant_id", "meter_pk", "telegram_id", "timestamp", "received_at", "fields", "data",
                    "fingerprint")
_READING_TYPES = ("bigint", "bigint", "bigint", "bigint", "timestamptz", "timestamptz", "json", "json", "bytea")


class _TenantKeys:
    """The codec's key lookup for one tenant's telegrams in a batch (`KeyRing`-like): keys from the
    batch's prefetched rows, opened once and kept in the pipeline's LRU; AES contexts reused
    across batches (creating one costs more than decrypting a telegram)."""
    __slots__ = ("pipeline", "session", "tenant", "keys")

    def __init__(self, pipeline: "DecodePipeline", session: Session, tenant: int, keys: dict) -> None:
        self.pipeline, self.session, self.tenant, self.keys = pipeline, session, tenant, keys

    def __call__(self, manufacturer: str, meter_id: str) -> bytes | None:
        return self.pipeline._key(self.session, self.tenant, manufacturer, meter_id, self.keys)

    def context(self, key: bytes) -> KeyContext:
        contexts = self.pipeline._contexts
        ctx = contexts.lookup(key)
        if ctx is None:
            ctx = KeyContext(key)
            contexts.store(key, ctx)
        return ctx


class DecodePipeline:
    """Decodes telegrams in state `new`. One instance per worker; `run_once` is one batch."""

    def __init__(self, db: Database, keystore: KeyStore, *, meter_timezone: str = "UTC",
                 key_cache_size: int = 100_000, format_cache_size: int = 100_000,
                 partition: tuple[int, int] = (0, 1)) -> None:
        self.db = db
        self.keystore = keystore
        # (k, n): this worker takes the telegrams with id % n == k, so n workers never decode the
        # same telegram (correctness does not depend on it: the write phase re-checks the state)
        self.partition = partition
        # the zone of meter clocks of tenants that have none of their own (see timezones.py)
        self.meter_timezone = meter_timezone
        zone_info(meter_timezone)  # (an unknown zone fails here, not in the first batch)
        self._keys = _LRU(key_cache_size)        # (tenant, manufacturer, id, nonce) -> key
        self._formats = _LRU(format_cache_size)
        self._contexts = _LRU(min(key_cache_size, 20_000))  # key -> AES context (a few KB each)
        # (meter date-time, zone) -> (UTC, as stored), for the times that need no receive time
        self._times: dict[tuple[datetime, str], tuple[datetime, object]] = {}
        self._to_db = time_to_db(db.is_sqlite)
        self._lock = threading.Lock()            # one batch at a time per instance

    # --- public ---

    def run_once(self, limit: int = 1000) -> int:
        """Decode up to `limit` new telegrams and commit. -> how many were processed."""
        with self._lock:
            try:
                return self._batch(limit)
            except Exception as exc:
                if is_unreachable(exc):  # one by one would fail alike: the caller reports the outage
                    raise
                log.exception("decode batch failed; decoding its telegrams one by one")
                return self._one_by_one(limit)

    def run_until_idle(self, limit: int = 1000, max_batches: int = 1_000_000) -> int:
        total = 0
        for _ in range(max_batches):
            n = self.run_once(limit)
            total += n
            if n == 0:
                break
        return total

    # --- batches ---

    def _select_new(self, session: Session, limit: int, ids: list[int] | None = None,
                    exclude: list[int] | None = None, full: bool = False) -> list[_NewTelegram]:
        """The next batch: this worker's partition, oldest first; when that is empty (its share
        is done), the newest of the others' — so no core idles while another has a backlog, and
        the owner (oldest first) and the helper (newest first) meet only at the end. A telegram
        both decode is written once (the write re-checks `new`; PostgreSQL skips locked rows).
        `exclude`: ids of this worker's batches decoded ahead, not written yet; `full`: only a
        whole batch of this worker's partition (else none)."""
        sql = BulkSql(session, self.db.is_sqlite)
        select_new = f"SELECT {_SELECT_COLUMNS} FROM telegrams WHERE state = 'new'"
        lock = "" if self.db.is_sqlite else " FOR UPDATE SKIP LOCKED"
        if ids is not None:
            isin, params = sql.isin("id", ids)
            return [_NewTelegram(r) for r in sql.rows(f"{select_new} AND {isin} ORDER BY id{lock}", params)]
        where, params = "", ()
        if exclude:
            isin, params = sql.isin("id", exclude)
            where = f" AND NOT {isin}"
        k, n = self.partition
        mod = "%" if self.db.is_sqlite else "%%"
        mine = f"{where} AND id {mod} {int(n)} = {int(k)}" if n > 1 else where
        if full:  # (an index count first: no rows read for a batch not taken)
            found = sql.rows(f"SELECT count(*) FROM (SELECT id FROM telegrams WHERE state = 'new'{mine} "
                             f"LIMIT {int(limit)}) AS x", params)
            if found[0][0] < limit:
                return []
        rows = sql.rows(f"{select_new}{mine} ORDER BY id LIMIT {int(limit)}{lock}", params)
        if rows or n == 1 or full:
            return [_NewTelegram(r) for r in rows]
        rows = sql.rows(f"{select_new}{where} ORDER BY id DESC LIMIT {int(limit)}{lock}", params)
        return sorted((_NewTelegram(r) for r in rows), key=lambda r: r.id)

    def _batch(self, limit: int, ids: list[int] | None = None) -> int:
        """PostgreSQL: claim (FOR UPDATE SKIP LOCKED), decode and write in one transaction.
        SQLite: select and decode from a read snapshot (no lock: ingest goes on meanwhile), then in
        a short write transaction keep the telegrams still `new` and write the results."""
        try:
            if self.db.is_sqlite:
                batch = self._read_sqlite(limit, ids)
                if batch is None:
                    return 0
                self._write_sqlite(batch)
                return len(batch.rows)
            else:
                with self.db.session(write=True) as session:
                    rows = self._select_new(session, limit, ids)
                    if not rows:
                        session.rollback()
                        return 0
                    decoded, seen = self._decode_rows(session, rows)
                    self._finish(session, decoded, seen)
                    session.commit()
        except BaseException:
            self._formats.clear()  # it may hold formats whose rows were rolled back
            raise
        return len(rows)

    def decode_ahead(self, limit: int = 1000, exclude: list[int] | None = None) -> "DecodedBatch | None":
        """SQLite: only the read phase of the next whole batch of this worker's partition (select
        and decode; no write lock), to be written by :meth:`write_ahead` once the write lock is
        free: what an idle-core worker does while uplinks arrive. `exclude`: ids of the batches it
        holds already. -> None when no whole batch is waiting."""
        with self._lock:
            return self._read_sqlite(limit, exclude=exclude, full=True)

    def write_ahead(self, batch: "DecodedBatch") -> int:
        """Write a batch of :meth:`decode_ahead` (those of its telegrams still `new`). -> its size."""
        with self._lock:
            try:
                self._write_sqlite(batch)
            except Exception:
                log.exception("decode batch failed; decoding its telegrams one by one")
                self._formats.clear()  # it may hold formats whose rows were rolled back
                self._one_by_one(0, [r.id for r in batch.rows])
        return len(batch.rows)

    def _read_sqlite(self, limit: int, ids: list[int] | None = None, exclude: list[int] | None = None,
                     full: bool = False) -> "DecodedBatch | None":
        """SQLite's read phase: select and decode from a read snapshot (no lock: ingest goes on)."""
        with self.db.session() as reader:
            rows = self._select_new(reader, limit, ids, exclude, full)
            if not rows:
                return None
            decoded, seen = self._decode_rows(reader, rows)
            reader.rollback()
        return DecodedBatch(rows, decoded, seen)

    def _write_sqlite(self, batch: "DecodedBatch") -> None:
        """SQLite's write phase: a short write transaction that keeps the telegrams still `new`
        (another worker may have written some meanwhile) and writes their results."""
        with write_gate(self.db), self.db.session(write=True) as session:
            still_new = set()
            all_ids = [d[0].id for d in batch.decoded]
            sql = BulkSql(session, True)
            for i in range(0, len(all_ids), _CHUNK):
                isin, params = sql.isin("id", all_ids[i:i + _CHUNK])
                still_new.update(r[0] for r in sql.rows(
                    f"SELECT id FROM telegrams WHERE {isin} AND state = 'new'", params))
            self._finish(session, [d for d in batch.decoded if d[0].id in still_new], batch.seen)
            session.commit()
        self.db.checkpoint_soon()

    def _one_by_one(self, limit: int, ids: list[int] | None = None) -> int:
        if ids is None:
            with self.db.session() as session:
                ids = [r.id for r in session.execute(select(Telegram.id).where(Telegram.state == "new")
                                                     .order_by(Telegram.id).limit(limit))]
        for telegram_id in ids:
            try:
                self._batch(1, [telegram_id])
            except Exception as exc:
                log.exception("telegram %d cannot be processed; marked invalid", telegram_id)
                with self.db.transaction() as session:
                    session.execute(update(Telegram).where(Telegram.id == telegram_id, Telegram.state == "new")
                                    .values(state="invalid", error=f"pipeline error: {type(exc).__name__}: {exc}"[:2000],
                                            decoded_at=datetime.now(timezone.utc)))
        return len(ids)

    # --- the work of one batch (inside its transaction) ---

    def _decode_rows(self, session: Session, rows) -> tuple[list, "_Seen"]:
        """Decode each row (keys and formats looked up in `session`). -> ([row, error | None,
        manufacturer, meter_id, _Prepared | None] per row, what the decoding read)."""
        keys: dict[tuple[int, str], list] = {}
        self._prefetch(session, rows, keys)
        format_caches: dict[int, DbFormatCache] = {}
        decoded = []
        lookups: dict[int, _TenantKeys] = {}
        for row in rows:
            tenant = row.tenant_id
            key_for = lookups.get(tenant)
            if key_for is None:
                key_for = lookups[tenant] = _TenantKeys(self, session, tenant, keys)
            cache = format_caches.get(tenant)
            if cache is None:
                cache = format_caches[tenant] = DbFormatCache(session, tenant, self._formats)
            result, error = None, None
            try:
                result = decode(row.raw, keys=key_for, formats=cache)
            except DecodeError as exc:
                error = exc
            except Exception as exc:  # a codec bug must not stop the pipeline; the telegram stays stored
                log.exception("codec failed on telegram %d", row.id)
                error = DecodeError("invalid_frame", f"decoder error: {type(exc).__name__}: {exc}")
            address = (result or {}).get("meter") or ((error.partial or {}).get("meter") if error else None) or {}
            manufacturer = address.get("manufacturer") or row.manufacturer
            meter_id = address.get("id") or row.meter_id
            if not (isinstance(manufacturer, str) and len(manufacturer) == 3):
                manufacturer = row.manufacturer
            if not (isinstance(meter_id, str) and len(meter_id) <= 8):
                meter_id = row.meter_id
            prepared = _Prepared(self, result, row) if result is not None else None
            result = None  # (the batch keeps the prepared form only, see _Prepared)
            decoded.append((row, error, manufacturer, meter_id, prepared))
        return decoded, _Seen(format_caches, keys)

    def _finish(self, session: Session, decoded: list, seen: "_Seen") -> None:
        """In the write transaction: states (with the meters as they are now; a telegram whose
        meter's key or compact format arrived since it was decoded goes round again), duplicates,
        readings, telegram and meter updates, learned formats, alarm hooks. So a batch is written
        right however long ago it was decoded."""
        now = datetime.now(timezone.utc)
        meters = self._load_meters(session, decoded)
        outcomes = []   # [row, state, error, meter, manufacturer, meter_id, _Prepared | None]
        for row, error, manufacturer, meter_id, prepared in decoded:
            meter = meters.get((row.tenant_id, manufacturer, meter_id)) if manufacturer and meter_id else None
            if prepared is not None:
                state, message = ("decoded", None) if meter is not None else ("unknown_meter", None)
            elif error.code == "no_key":
                state, message = ("no_key" if meter is not None else "unknown_meter"), error.message
            elif error.code in _WRONG_KEY_CODES:
                state, message = ("wrong_key" if meter is not None else "unknown_meter"), error.message
            else:
                state, message = "invalid", f"{error.code}: {error.message}"
            outcomes.append([row, state, message, meter, manufacturer, meter_id, prepared])
        self._retry_keys_changed_meanwhile(session, outcomes, seen.keys)
        self._time_readings(session, outcomes)
        if outcomes:
            self._mark_duplicates(session, outcomes)
            self._store(session, outcomes, now)
        for cache in seen.formats.values():
            cache.session = session
            cache.write_pending(self.db.dialect)
        self._retry_formats_learned_meanwhile(session, decoded)

    def _retry_keys_changed_meanwhile(self, session: Session, outcomes: list, seen: dict) -> None:
        """A telegram decoded without a key (or with the old one) while a key import for its meter
        committed would wait in no_key / wrong_key for good (the import's re-queue ran while it
        was still `new`): where the meter's key rows now differ from those the decoding read, it
        goes round again (`new`). Only those outcomes are checked, so a normal batch asks nothing."""
        waiting = [o for o in outcomes if o[1] in ("no_key", "wrong_key")]
        if not waiting:
            return
        sql = BulkSql(session, self.db.is_sqlite)
        by_tenant: dict[int, set[str]] = {}
        for o in waiting:
            by_tenant.setdefault(o[0].tenant_id, set()).add(o[5])
        now_rows: dict[tuple[int, str], set] = {}
        for tenant, id_set in by_tenant.items():
            ids = sorted(id_set)
            for i in range(0, len(ids), _CHUNK):
                for man, meter_id, nonce in sql.lookup("manufacturer, meter_id, nonce", "meter_keys", "tenant_id = {m}",
                                                       (tenant,), "meter_id", ids[i:i + _CHUNK]):
                    now_rows.setdefault((tenant, meter_id), set()).add((man, bytes(nonce)))
        for o in waiting:
            key = (o[0].tenant_id, o[5])
            before = {(k[0], bytes(k[2])) for k in seen.get(key) or ()}
            if now_rows.get(key, set()) != before:
                o[1], o[2] = "new", None

    def _retry_formats_learned_meanwhile(self, session: Session, decoded: list) -> None:
        """A compact frame decoded from a snapshot taken before another worker committed its
        meter's format would stay `invalid` (that worker's re-queue ran before this row was
        written): re-check in this write transaction and send such rows round again."""
        waiting: dict[tuple[int, str, str, int], list[int]] = {}
        for row, error, manufacturer, meter_id, prepared in decoded:
            if prepared is None and error.code == "unknown_format" and manufacturer and meter_id:
                compact = ((error.partial or {}).get("frame") or {}).get("compact") or {}
                try:
                    signature = int(compact.get("signature", ""), 16)
                except ValueError:
                    continue
                waiting.setdefault((row.tenant_id, manufacturer, meter_id, signature), []).append(row.id)
        if not waiting:
            return
        for (tenant, manufacturer, meter_id, signature), ids in waiting.items():
            known = session.scalar(select(CompactFormat.id).where(
                CompactFormat.tenant_id == tenant, CompactFormat.manufacturer == manufacturer,
                CompactFormat.meter_id == meter_id, CompactFormat.signature == signature))
            if known is not None:
                session.execute(update(Telegram).where(Telegram.id.in_(ids), Telegram.state == "invalid")
                                .values(state="new", error=None).execution_options(synchronize_session=False))

    def _load_meters(self, session: Session, decoded: list) -> dict:
        """The batch's meters, read in the write transaction (locked on PostgreSQL, so concurrent
        workers update a meter's latest reading one after the other)."""
        by_tenant: dict[int, set[str]] = {}
        manufacturers: dict[int, set[str]] = {}
        for row, _error, manufacturer, meter_id, _prepared in decoded:
            if manufacturer and meter_id:
                by_tenant.setdefault(row.tenant_id, set()).add(meter_id)
                manufacturers.setdefault(row.tenant_id, set()).add(manufacturer)
        meters: dict[tuple[int, str, str], _MeterState] = {}
        sql = BulkSql(session, self.db.is_sqlite)
        for tenant, id_set in sorted(by_tenant.items()):
            ids = sorted(id_set)
            mans = sorted(manufacturers[tenant])
            in_mans, man_params = sql.isin("manufacturer", mans)
            for i in range(0, len(ids), _CHUNK):
                # (tenant, manufacturer, id) is the unique index: all three narrow the look-up;
                # PostgreSQL locks the rows, tenant by tenant in meter-id order (so concurrent workers
                # lock in the same order and never deadlock)
                for m in sql.lookup(_MeterState.COLUMNS, "meters", f"tenant_id = {{m}} AND {in_mans}",
                                    (tenant, *man_params), "meter_id", ids[i:i + _CHUNK], lock=not self.db.is_sqlite):
                    meters[(tenant, m[2], m[3])] = _MeterState(m)
        return meters

    def _prefetch(self, session: Session, rows, keys: dict) -> None:
        """The batch's meters' key rows (manufacturer, meter id, nonce, ciphertext) into `keys`,
        and their known compact formats into the format memory (so learning a known format again
        costs no statement)."""
        sql = BulkSql(session, self.db.is_sqlite)
        by_tenant: dict[int, set[str]] = {}
        for row in rows:
            if row.meter_id:
                by_tenant.setdefault(row.tenant_id, set()).add(row.meter_id)
        formats = self._formats
        for tenant, id_set in by_tenant.items():
            ids = sorted(id_set)
            for meter_id in ids:
                keys[(tenant, meter_id)] = []  # looked up: none, unless found below
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                for k in sql.lookup("manufacturer, meter_id, nonce, ciphertext", "meter_keys", "tenant_id = {m}",
                                    (tenant,), "meter_id", chunk):
                    keys[(tenant, k[1])].append(k)
                for f in sql.lookup("manufacturer, meter_id, signature, fmt", "compact_formats", "tenant_id = {m}",
                                    (tenant,), "meter_id", chunk):
                    formats.store((tenant, f[0], f[1], f[2]), bytes(f[3]))

    def _key(self, session: Session, tenant: int, manufacturer: str, meter_id: str, keys: dict) -> bytes | None:
        candidates = keys.get((tenant, meter_id))
        if candidates is None:  # an id the header peek did not give (the long TPL's, say)
            candidates = keys[(tenant, meter_id)] = BulkSql(session, self.db.is_sqlite).rows(
                "SELECT manufacturer, meter_id, nonce, ciphertext FROM meter_keys "
                "WHERE tenant_id = {m} AND meter_id = {m}", (tenant, meter_id))
        chosen = None
        for k in candidates:  # (manufacturer, meter id, nonce, ciphertext)
            if k[0] == manufacturer:
                chosen = k
                break
            if k[0] is None:
                chosen = k
        if chosen is None:
            return None
        chosen_manufacturer, _id, nonce, ciphertext = chosen
        cache_key = (tenant, chosen_manufacturer, meter_id, bytes(nonce))
        key = self._keys.lookup(cache_key)
        if key is None:
            try:
                key = self.keystore.open(tenant, chosen_manufacturer, meter_id, bytes(nonce), bytes(ciphertext))
            except KeyStoreError as exc:
                log.error("tenant %d: %s", tenant, exc)
                return None
            self._keys.store(cache_key, key)
        return key

    def _mark_duplicates(self, session: Session, outcomes: list) -> None:
        decoded = [o for o in outcomes if o[1] == "decoded"]
        if not decoded:
            return
        seen: dict[tuple[int, bytes], list[datetime]] = {}
        # the (meter_pk, fingerprint) pairs joined against the index of that name: one probe per
        # telegram (two IN lists would make SQLite probe every meter x fingerprint combination).
        # A meter without a latest reading has none stored at all: nothing to ask.
        # (PostgreSQL: a LATERAL look-up per pair, fenced by OFFSET 0 — as a plain join the
        # planner may hash all readings, measured 3x slower and growing with the history)
        pairs = sorted({(o[3].id, o[6].fingerprint) for o in decoded if o[3].last_reading_id is not None})
        sql = BulkSql(session, self.db.is_sqlite)
        for i in range(0, len(pairs), _CHUNK):
            chunk = pairs[i:i + _CHUNK]
            if self.db.is_sqlite:
                query = (f"WITH k(meter_pk, fingerprint) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))}) "
                         "SELECT r.meter_pk, r.fingerprint, r.received_at FROM k JOIN readings r "
                         "ON r.meter_pk = k.meter_pk AND r.fingerprint = k.fingerprint")
                params = tuple(v for pair in chunk for v in pair)
            else:
                query = ("SELECT r.meter_pk, r.fingerprint, r.received_at FROM unnest(%s::bigint[], %s::bytea[]) "
                         "AS k(m, f) CROSS JOIN LATERAL (SELECT meter_pk, fingerprint, received_at FROM readings "
                         "WHERE meter_pk = k.m AND fingerprint = k.f OFFSET 0) r")
                params = ([m for m, _f in chunk], [f for _m, f in chunk])
            for meter_pk, fingerprint, received_at in sql.rows(query, params):
                seen.setdefault((meter_pk, bytes(fingerprint)), []).append(db_time(received_at))
        for o in decoded:
            rx = o[0].received_at
            times = seen.setdefault((o[3].id, o[6].fingerprint), [])
            if any(abs(rx - t) <= DUPLICATE_WINDOW for t in times):
                o[1], o[2] = "duplicate", "same transmission already decoded (another gateway or a repeat)"
            else:
                times.append(rx)

    def _timestamp(self, result: dict, received_at: datetime) -> datetime:
        """The meter's own current date-time record where one parses (a naive one in the server's
        meter time zone), else the receive time."""
        at, _db = self._meter_time(result, received_at=received_at)
        return received_at if at is None else at

    def _meter_time(self, result: dict, zone: str | None = None,
                    received_at: datetime | None = None) -> tuple[datetime | None, object]:
        """(the meter's own current date-time in UTC, as the driver stores it), or (None, None).
        A naive one is in `zone` (default: the server's meter time zone)."""
        clock = meter_clock(result)
        if clock is None:
            return None, None
        return self._utc(clock, zone or self.meter_timezone, received_at)

    def _utc(self, clock: datetime, zone: str, received_at: datetime | None) -> tuple[datetime, object]:
        """A meter clock reading in `zone` -> (UTC, as stored). Cached per (reading, zone): a fleet's
        meters report the same few minutes; not the autumn hour, whose answer depends on the
        receive time."""
        key = (clock, zone)
        known = self._times.get(key)
        if known is None:
            tz = zone_info(zone)
            value = meter_time_to_utc(clock, tz, received_at)
            known = (value, self._to_db(value))
            if is_unambiguous(clock, tz):
                if len(self._times) >= 10_000:
                    self._times.clear()
                self._times[key] = known
        return known

    def _time_readings(self, session: Session, outcomes: list) -> None:
        """The timestamps of the batch's readings: each meter clock converted with its meter's zone
        (meter > model > tenant > server setting, see timezones.py); the tenants' zone settings are
        read in this transaction, so a change applies from the next batch on."""
        timed = [o for o in outcomes if o[6] is not None and o[3] is not None and o[6].clock is not None]
        if not timed:
            return
        rules = load_rules(session, {o[0].tenant_id for o in timed}, self.meter_timezone)
        for o in timed:
            row, meter, prep = o[0], o[3], o[6]
            tenant_rules = rules.get(row.tenant_id) or ZoneRules(self.meter_timezone)
            zone = tenant_rules.zone_for(meter.meter_timezone, *prep.model)
            prep.timestamp, prep.timestamp_db = self._utc(prep.clock, zone, row.received_at)

    def _store(self, session: Session, outcomes: list, now: datetime) -> None:
        writer = BulkSql(session, self.db.is_sqlite)
        decoded = [o for o in outcomes if o[1] == "decoded"]
        readings: list[tuple[list, StoredReading]] = []
        if decoded:
            rows = []
            for o, reading_id in zip(decoded, writer.new_ids("readings", len(decoded))):
                row, prep = o[0], o[6]
                stored = StoredReading(reading_id, row.tenant_id, o[3].id, row.id, prep.timestamp, row.received_at,
                                       None, None, prep.fingerprint, prep.reports_error, prep.registers,
                                       fields_json=prep.fields_json, data_json=prep.data_json)
                readings.append((o, stored))
                rows.append((reading_id, row.tenant_id, o[3].id, row.id, prep.timestamp_db, prep.received_db,
                             prep.fields_json, prep.data_json, prep.fingerprint))
            writer.insert("readings", _READING_COLUMNS, _READING_TYPES, rows)
        at = writer.time(now)
        writer.update("telegrams", ("state", "error", "decoded_at", "meter_pk"),
                      ("varchar", "text", "timestamptz", "bigint"),
                      [(o[1], o[2], at if o[1] != "new" else None, o[3].id if o[3] is not None else None, o[0].id)
                       for o in outcomes])
        # the address as decoded, where the header peek read another (a long TPL's): a separate
        # statement, since SQLite rewrites the (tenant, manufacturer, id) index entry of every row
        # whose UPDATE names these columns, changed or not
        writer.update("telegrams", ("manufacturer", "meter_id"), ("varchar", "varchar"),
                      [(o[4], o[5], o[0].id) for o in outcomes
                       if o[4] != o[0].manufacturer or o[5] != o[0].meter_id])
        self._update_meters(session, writer, outcomes, readings, now)

    def _update_meters(self, session: Session, writer: BulkSql, outcomes: list, readings: list,
                       now: datetime) -> None:
        latest: dict[int, object] = {}
        # the meters' latest readings as their rows describe them (time, registers); loaded only
        # for meters whose row has no registers (latest reading stored before they were kept)
        previous_by_id: dict[int, StoredReading] = {}
        to_load = set()
        for o, _r in readings:
            m = o[3]
            if m.last_reading_id is not None and m.last_reading_id not in previous_by_id:
                if isinstance(m.last_registers, dict) and m.last_reading_at is not None:
                    previous_by_id[m.last_reading_id] = StoredReading(
                        m.last_reading_id, m.tenant_id, m.id, None, m.last_reading_at, None, {}, None, None,
                        registers=m.last_registers)
                else:
                    to_load.add(m.last_reading_id)
        previous_by_id.update(self._load_readings(writer, sorted(to_load)))
        wrong_keys = []
        for o in outcomes:
            row, state, _message, meter = o[:4]
            if meter is None:
                continue
            if meter.last_heard_at is None or meter.last_heard_at < row.received_at:
                meter.last_heard_at, meter.last_heard_db, meter.dirty = row.received_at, row.received_db, True
            status = meter.key_status
            if state == "no_key":
                status = "missing"
            elif state == "wrong_key":
                # No CRC survives on stripped frames, so one corrupted frame of a meter whose key has
                # worked looks like a wrong key: first `suspect` (no alarm), `wrong` on a second
                # failure with no good decode between. A key that never decrypted anything is wrong now.
                if status == "present" and self._key_proven(session, meter):
                    status = "suspect"
                else:
                    status = "wrong"
                    wrong_keys.append(meter)
            elif state == "decoded" and o[6].encrypted:
                status = "present"
                meter.key_proven = True
            if status != meter.key_status:
                meter.key_status, meter.dirty = status, True
        calls = []
        for o, reading in readings:
            meter, prep = o[3], o[6]
            if meter.id not in latest:
                latest[meter.id] = previous_by_id.get(meter.last_reading_id)
            previous = latest[meter.id]
            # a late (spooled) reading is stored and compared, but the meter's latest stays the newer one
            if previous is None or reading.timestamp >= previous.timestamp:
                meter.last_reading_id, meter.dirty = reading.id, True
                meter.last_reading_at, meter.last_registers = reading.timestamp, reading.register_map()
                meter.last_reading_db = prep.timestamp_db
                latest[meter.id] = reading
            calls.append((meter, reading, previous))
        changed = {m.id: m for m in (o[3] for o in outcomes) if m is not None and m.dirty}
        writer.update("meters", ("last_heard_at", "last_reading_id", "key_status", "last_reading_at", "last_registers"),
                      ("timestamptz", "bigint", "varchar", "timestamptz", "json"),
                      [(m.last_heard_db, m.last_reading_id, m.key_status, m.last_reading_db,
                        json_text(m.last_registers) if m.last_registers is not None else None, m.id)
                       for m in changed.values()])
        for meter in wrong_keys:
            self._hook(alarms.on_decode_failure, session, session.get(Meter, meter.id), "wrong_key", now)
        if calls:
            self._reading_alarms(session, alarms, calls, now)

    def _load_readings(self, writer: BulkSql, ids: list[int]) -> dict[int, "StoredReading"]:
        """Stored readings by id, with what the alarm checks read of them (not their fields)."""
        out = {}
        for i in range(0, len(ids), _CHUNK):
            isin, params = writer.isin("id", ids[i:i + _CHUNK])
            for r in writer.rows(f'SELECT id, tenant_id, meter_pk, telegram_id, "timestamp", received_at, data, '
                                 f'fingerprint FROM readings WHERE {isin}', params):
                out[r[0]] = StoredReading(r[0], r[1], r[2], r[3], db_time(r[4]), db_time(r[5]), {},
                                          expand_reading_data(db_json(r[6])), r[7])
        return out

    @staticmethod
    def _key_proven(session: Session, meter: _MeterState) -> bool:
        """Has the meter's current key (the one its telegrams are opened with) decrypted one of its
        telegrams? `present` alone does not say so: a key import sets it too. Asked only on a
        wrong_key outcome (rare), so the query costs nothing in normal batches."""
        if meter.key_proven is None:
            keys = {m: at for m, at in session.execute(
                select(MeterKey.manufacturer, MeterKey.created_at).where(
                    MeterKey.tenant_id == meter.tenant_id, MeterKey.meter_id == meter.meter_id))}
            since = keys.get(meter.manufacturer, keys.get(None))  # the manufacturer-bound key first, as _key
            meter.key_proven = since is not None and session.scalar(
                select(Telegram.id).where(Telegram.meter_pk == meter.id, Telegram.state.in_(("decoded", "duplicate")),
                                          Telegram.decoded_at >= since).limit(1)) is not None
        return meter.key_proven

    def _reading_alarms(self, session: Session, alarms, calls: list, now: datetime) -> None:
        """alarms.on_reading for the stored readings. Its per-reading queries would dominate the
        batch, so (unless alarms offers a batch `on_readings`) it is called only where it can change
        something: the meter has an active alarm, the reading reports an error, or a cumulative
        register went backwards — the same tests alarms.on_reading makes, with its own helpers."""
        if hasattr(alarms, "on_readings"):
            orm_meters = {m.id: session.get(Meter, m.id) for m, _r, _p in calls}
            stubs = [p.id for _m, _r, p in calls if p is not None and p.data is None]
            full = self._load_readings(BulkSql(session, self.db.is_sqlite), sorted(set(stubs))) if stubs else {}
            calls = [(m, r, full.get(p.id) if p is not None and p.data is None else p) for m, r, p in calls]
            self._hook(alarms.on_readings, session, [(orm_meters[m.id], r, p) for m, r, p in calls], now)
            return
        meter_ids = sorted({meter.id for meter, _r, _p in calls})
        tenants = sorted({meter.tenant_id for meter, _r, _p in calls})
        active: set[int] = set()
        sql = BulkSql(session, self.db.is_sqlite)
        true = "1" if self.db.is_sqlite else "true"
        in_tenants, tenant_params = sql.isin("tenant_id", tenants)
        for i in range(0, len(meter_ids), _CHUNK):
            in_meters, meter_params = sql.isin("subject_id", meter_ids[i:i + _CHUNK])
            # tenant and active first: the (tenant_id, active) index answers it
            active.update(r[0] for r in sql.rows(
                f"SELECT subject_id FROM alarms WHERE {in_tenants} AND active = {true} "
                f"AND subject_type = 'meter' AND {in_meters}", (*tenant_params, *meter_params)))
        for meter, reading, previous in calls:
            if meter.id in active or _may_alarm(alarms, reading, previous):
                if previous is not None and previous.data is None:  # the meter row's summary: the hook reads it all
                    previous = self._load_readings(sql, [previous.id]).get(previous.id)
                active.add(meter.id)  # it may have raised one: later readings must be seen too
                self._hook(alarms.on_reading, session, session.get(Meter, meter.id), reading, previous, now)

    @staticmethod
    def _hook(fn, *args) -> None:
        """Alarm evaluation is secondary: its failure must not stop decoding."""
        try:
            fn(*args)
        except Exception:
            log.exception("alarm hook %s failed", getattr(fn, "__name__", fn))


def _may_alarm(alarms, reading: Reading, previous: Reading | None) -> bool:
    """Could alarms.on_reading raise something for this reading of a meter without active alarms?"""
    if reading.reports_error if reading.reports_error is not None else alarms.error_causes(reading.data)[0]:
        return True
    if previous is None:
        return False
    earlier, later = (previous, reading) if previous.timestamp <= reading.timestamp else (reading, previous)
    after = _register_map(later)
    for quantity, a in _register_map(earlier).items():
        b = after.get(quantity)
        if b is not None and b < a:
            return True
    return False


def _register_map(reading) -> dict[str, float]:
    return reading.register_map() if isinstance(reading, StoredReading) else registers(reading.data)


def tune_gc() -> None:
    """A batch keeps its ~1000 decoded telegrams (~100 objects each) alive until it is written,
    so with CPython's default thresholds the cyclic collector runs every 700 allocations and walks
    them again and again: a quarter of the decode time. Everything built at start-up is frozen
    out of collection and generation 0 is collected every 20,000 allocations instead; the
    pipeline makes no reference cycles, so memory stays flat."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def _process_main(url: str, master_key: bytes, meter_timezone: str, batch: int, partition: tuple[int, int],
                  parent_pid: int, log_level: str, niceness: int = 0, ingest_clock=None,
                  wait_for_quiet: bool = False) -> None:
    """A decode worker process (started by PipelineProcesses); ends when its parent is gone.
    Idle, it polls the database every IDLE_POLL_S, and sooner when the ingest clock moves (an
    uplink was stored: decoding starts within ~10 ms, not after a poll interval). With
    `wait_for_quiet` (the idle-core workers) it writes only while no uplink is arriving; meanwhile
    (on SQLite) it decodes up to AHEAD_BATCHES whole batches ahead, written once uplinks pause."""
    import os
    import signal
    import time

    if niceness:
        try:
            os.nice(niceness)
        except OSError:
            pass  # not permitted here: runs at normal priority
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    db = Database(url)
    pipeline = DecodePipeline(db, KeyStore(master_key), meter_timezone=meter_timezone, partition=partition)
    tune_gc()
    clock = ingest_clock.value if ingest_clock is not None else 0.0
    ahead: list[DecodedBatch] = []  # decoded while uplinks arrived, written when they pause
    while not stopping.is_set() and os.getppid() == parent_pid:
        if wait_for_quiet and time.monotonic() - ingest_clock.value < INGEST_QUIET_S:
            # uplinks are arriving: the SQLite write lock is theirs, but while the other workers
            # write, a core is idle: decode whole batches ahead (niced, a few at most)
            if db.is_sqlite and len(ahead) < AHEAD_BATCHES:
                try:
                    decoded = pipeline.decode_ahead(batch, [r.id for b in ahead for r in b.rows])
                except Exception as exc:
                    if not database_outage.failed(exc):
                        log.exception("decode worker %d/%d error", *partition)
                    decoded = None
                if decoded is not None:
                    ahead.append(decoded)
                    continue
            time.sleep(0.02)
            continue
        if ahead:  # (however old: the write re-checks what may have changed, see _finish)
            try:
                pipeline.write_ahead(ahead.pop(0))
            except Exception as exc:
                if not database_outage.failed(exc):
                    log.exception("decode worker %d/%d error", *partition)
            continue
        if ingest_clock is not None:
            clock = ingest_clock.value
        try:
            n = pipeline.run_once(batch)
            database_outage.succeeded()
        except Exception as exc:
            if not database_outage.failed(exc):
                log.exception("decode worker %d/%d error", *partition)
            n = 0
        if n == 0:
            deadline = time.monotonic() + IDLE_POLL_S
            while time.monotonic() < deadline and not stopping.is_set():
                if ingest_clock is not None and ingest_clock.value != clock:
                    break
                time.sleep(0.01)
    db.dispose()


IDLE_WORKER_NICENESS = 5
AHEAD_BATCHES = 2         # whole batches an idle-core worker decodes ahead while uplinks arrive
INGEST_QUIET_S = 0.05     # the idle-core workers decode only when no uplink came for this long
IDLE_POLL_S = 0.2         # an idle worker looks for new telegrams at least this often


class PipelineProcesses:
    """Decode workers in their own processes (partition k of n each): decoding is CPU work, and in
    the serving process it would compete with the HTTP ingest for the GIL. A worker exits when
    the server process dies (even by SIGKILL).

    `workers` run at normal priority; with `fill_cores` (default) more are added, at a lower
    priority (nice +IDLE_WORKER_NICENESS), until every core has one: the serving process needs
    its core (and on SQLite the write lock) while uplinks arrive, so these only decode ahead
    then, and once ingest pauses the backlog is written and decoded on all cores."""

    def __init__(self, url: str, master_key: bytes, *, workers: int, meter_timezone: str = "UTC",
                 batch: int = 1000, log_level: str = "warning", fill_cores: bool = True) -> None:
        import multiprocessing
        import os
        self._context = multiprocessing.get_context("spawn")
        self._args = (url, master_key, meter_timezone, batch)
        self._parent, self._log_level = os.getpid(), log_level
        self._clock = ingest_clock(self._context)
        self.normal = workers
        self.workers = max(workers, os.cpu_count() or 1) if fill_cores and workers > 0 else workers
        self.processes = [self._new(k) for k in range(self.workers)]
        self._stopping = False

    def _new(self, k: int):
        url, master_key, meter_timezone, batch = self._args
        idle_core = k >= self.normal
        return self._context.Process(target=_process_main, name=f"omshub-decode-{k}", daemon=True,
                                     args=(url, master_key, meter_timezone, batch, (k, self.workers), self._parent,
                                           self._log_level, IDLE_WORKER_NICENESS if idle_core else 0,
                                           self._clock, idle_core))

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def revive(self) -> None:
        """Restart a worker that died (its partition would otherwise never be decoded)."""
        if self._stopping:
            return
        for i, process in enumerate(self.processes):
            if process.exitcode is not None:
                log.error("decode worker %s exited with %s; restarting it", process.name, process.exitcode)
                self.processes[i] = self._new(i)
                self.processes[i].start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()


class PipelineWorker(threading.Thread):
    """Runs a DecodePipeline in a thread until stopped (used by `omshub serve`); with
    `processes` instead, it starts those worker processes, revives any that die, stops them."""

    def __init__(self, pipeline: DecodePipeline | None, *, batch: int = 1000, idle_s: float = 0.2,
                 processes: PipelineProcesses | None = None) -> None:
        super().__init__(name="omshub-pipeline", daemon=True)
        self.pipeline, self.batch, self.idle_s, self.processes = pipeline, batch, idle_s, processes
        self.stopping = threading.Event()
        self.wakeup = threading.Event()

    def run(self) -> None:
        if self.processes is not None:
            self.processes.start()
        while not self.stopping.is_set():
            n = 0
            if self.pipeline is not None:
                try:
                    n = self.pipeline.run_once(self.batch)
                    database_outage.succeeded()
                except Exception as exc:
                    if not database_outage.failed(exc):
                        log.exception("decode pipeline error")
            if n == 0:
                if self.processes is not None:
                    self.processes.revive()
                self.wakeup.wait(self.idle_s if self.pipeline is not None else 1.0)
                self.wakeup.clear()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        self.join(timeout)
        if self.processes is not None:
            self.processes.stop(timeout)
