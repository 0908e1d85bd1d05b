"""A decode batch: telegrams in state `new` -> readings, in crash-safe batches.

A batch is selected, decoded and written in ONE transaction (the telegrams' new states, their
readings, the meters' bookkeeping), so a crash at any point leaves every undecoded telegram `new`
and it is simply picked up again; `readings.telegram_id` is unique, so no telegram ever yields two
readings. On PostgreSQL batches are claimed with `FOR UPDATE SKIP LOCKED` (several workers may
run); on SQLite the batch is selected and decoded from a read snapshot and written in a short
transaction that holds the write lock (`BEGIN IMMEDIATE`). What becomes of each telegram is
rows.py's (the meters' rows meter_bookkeeping.py's); the worker loops are workers.py's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omshub.cloud.decode.alarm_hooks import raise_batch_alarms
from omshub.cloud.decode.caches import KEY_COLUMNS, Caches, DbFormatCache, TenantKeys, key_row
from omshub.cloud.decode.meter_bookkeeping import load_meters, update_meters
from omshub.cloud.decode.rows import (
    CHUNK,
    Decoded,
    NewTelegram,
    Outcome,
    Prepared,
    mark_duplicates,
    outcomes_of,
    retry_formats_learned_meanwhile,
    retry_keys_changed_meanwhile,
    time_readings,
    write_readings_and_telegrams,
)
from omshub.cloud.domain.meter_time import meter_clock, zone_info
from omshub.cloud.store.database import BulkSql, Database
from omshub.cloud.store.keystore import KeyStore
from omshub.cloud.store.models import Telegram
from omshub.cloud.store.outage import is_unreachable
from omshub.cloud.store.writegate import write_gate
from omshub.codec import DecodeError, decode
from omshub.times import utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Seen:
    """What a batch's decoding read: {tenant: DbFormatCache with the formats learned} and the key
    rows {(tenant, meter id): [KeyRow]}."""

    formats: dict[int, DbFormatCache]
    keys: dict


@dataclass(slots=True)
class DecodedBatch:
    """A batch selected and decoded from a read snapshot, not written yet (SQLite)."""

    rows: list[NewTelegram]
    decoded: list[Decoded]
    seen: Seen


def select_new(
    sql: BulkSql,
    partition: tuple[int, int],
    limit: int,
    ids: list[int] | None = None,
    exclude: list[int] | None = None,
    full: bool = False,
) -> list[NewTelegram]:
    """The next batch: this worker's partition, oldest first; when that is empty (its share
    is done), the newest of the others' — so no core idles while another has a backlog, and
    the owner (oldest first) and the helper (newest first) meet only at the end. A telegram
    both decode is written once (the write re-checks `new`; PostgreSQL skips locked rows).
    `exclude`: ids of this worker's batches decoded ahead, not written yet; `full`: only a
    whole batch of this worker's partition (else none)."""
    sqlite = sql.sqlite
    select_sql = f"SELECT {NewTelegram.COLUMNS} FROM telegrams WHERE state = 'new'"
    lock = "" if sqlite else " FOR UPDATE SKIP LOCKED"
    if ids is not None:
        isin, params = sql.isin("id", ids)
        return [NewTelegram(r) for r in sql.rows(f"{select_sql} AND {isin} ORDER BY id{lock}", params)]
    where, params = "", ()
    if exclude:
        isin, params = sql.isin("id", exclude)
        where = f" AND NOT {isin}"
    k, n = partition
    mod = "%" if sqlite else "%%"
    mine = f"{where} AND id {mod} {int(n)} = {int(k)}" if n > 1 else where
    if full:  # (an index count first: no rows read for a batch not taken)
        found = sql.rows(
            f"SELECT count(*) FROM (SELECT id FROM telegrams WHERE state = 'new'{mine} LIMIT {int(limit)}) AS x", params
        )
        if found[0][0] < limit:
            return []
    rows = sql.rows(f"{select_sql}{mine} ORDER BY id LIMIT {int(limit)}{lock}", params)
    if rows or n == 1 or full:
        return [NewTelegram(r) for r in rows]
    rows = sql.rows(f"{select_sql}{where} ORDER BY id DESC LIMIT {int(limit)}{lock}", params)
    return sorted((NewTelegram(r) for r in rows), key=lambda r: r.id)


def prefetch(sql: BulkSql, rows: list[NewTelegram], keys: dict, caches: Caches) -> None:
    """The batch's meters' key rows into `keys` ((tenant, meter id) -> [KeyRow]), and their known
    compact formats into the format memory (so learning a known format again costs no statement)."""
    by_tenant: dict[int, set[str]] = {}
    for row in rows:
        if row.meter_id:
            by_tenant.setdefault(row.tenant_id, set()).add(row.meter_id)
    formats = caches.formats
    for tenant, id_set in by_tenant.items():
        ids = sorted(id_set)
        for meter_id in ids:
            keys[(tenant, meter_id)] = []  # looked up: none, unless found below
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            for k in sql.lookup(KEY_COLUMNS, "meter_keys", "tenant_id = {m}", (tenant,), "meter_id", chunk):
                stored = key_row(k)
                keys[(tenant, stored.meter_id)].append(stored)
            for f in sql.lookup(
                "manufacturer, meter_id, signature, fmt",
                "compact_formats",
                "tenant_id = {m}",
                (tenant,),
                "meter_id",
                chunk,
            ):
                formats.store((tenant, f[0], f[1], f[2]), bytes(f[3]))


def _address(row: NewTelegram, result: dict | None, error: DecodeError | None) -> tuple[str | None, str | None]:
    """The meter a telegram belongs to: as decoded (else as far as it decoded), else the header peek's."""
    address = (result or {}).get("meter") or ((error.partial or {}).get("meter") if error else None) or {}
    manufacturer = address.get("manufacturer") or row.manufacturer
    meter_id = address.get("id") or row.meter_id
    if not (isinstance(manufacturer, str) and len(manufacturer) == 3):
        manufacturer = row.manufacturer
    if not (isinstance(meter_id, str) and len(meter_id) <= 8):
        meter_id = row.meter_id
    return manufacturer, meter_id


def decode_rows(
    session: Session, is_sqlite: bool, rows: list[NewTelegram], caches: Caches
) -> tuple[list[Decoded], Seen]:
    """Decode each row (keys and formats looked up in `session`). -> (what each decoded to, what
    the decoding read)."""
    keys: dict[tuple[int, str], list] = {}
    prefetch(BulkSql(session, is_sqlite), rows, keys, caches)
    format_caches: dict[int, DbFormatCache] = {}
    decoded = []
    lookups: dict[int, TenantKeys] = {}
    for row in rows:
        tenant = row.tenant_id
        key_for = lookups.get(tenant)
        if key_for is None:
            key_for = lookups[tenant] = TenantKeys(caches, session, is_sqlite, tenant, keys)
        cache = format_caches.get(tenant)
        if cache is None:
            cache = format_caches[tenant] = DbFormatCache(session, tenant, caches.formats)
        result, error = None, None
        try:
            result = decode(row.raw, keys=key_for, formats=cache)
        except DecodeError as exc:
            error = exc
        except Exception as exc:  # a codec bug must not stop the pipeline; the telegram stays stored
            log.exception("codec failed on telegram %d", row.id)
            error = DecodeError("invalid_frame", f"decoder error: {type(exc).__name__}: {exc}")
        manufacturer, meter_id = _address(row, result, error)
        prepared = Prepared(result, row) if result is not None else None
        result = None  # (the batch keeps the prepared form only, see rows.Prepared)
        decoded.append(Decoded(row, error, manufacturer, meter_id, prepared))
    return decoded, Seen(format_caches, keys)


class DecodePipeline:
    """Decodes telegrams in state `new`. One instance per worker; `run_once` is one batch."""

    def __init__(
        self,
        db: Database,
        keystore: KeyStore,
        *,
        meter_timezone: str = "UTC",
        key_cache_size: int = 100_000,
        format_cache_size: int = 100_000,
        partition: tuple[int, int] = (0, 1),
    ) -> None:
        self.db = db
        self.keystore = keystore
        # (k, n): this worker takes the telegrams with id % n == k, so n workers never decode the
        # same telegram (correctness does not depend on it: the write phase re-checks the state)
        self.partition = partition
        # the zone of meter clocks of tenants that have none of their own (see domain/meter_time.py)
        self.meter_timezone = meter_timezone
        zone_info(meter_timezone)  # (an unknown zone fails here, not in the first batch)
        self.caches = Caches(keystore, db.is_sqlite, key_cache_size=key_cache_size, format_cache_size=format_cache_size)
        self._lock = threading.Lock()  # one batch at a time per instance

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

    def decode_ahead(self, limit: int = 1000, exclude: list[int] | None = None) -> DecodedBatch | None:
        """SQLite: only the read phase of the next whole batch of this worker's partition (select
        and decode; no write lock), to be written by :meth:`write_ahead` once the write lock is
        free: what an idle-core worker does while uplinks arrive. `exclude`: ids of the batches it
        holds already. -> None when no whole batch is waiting."""
        with self._lock:
            return self._read_sqlite(limit, exclude=exclude, full=True)

    def write_ahead(self, batch: DecodedBatch) -> int:
        """Write a batch of :meth:`decode_ahead` (those of its telegrams still `new`). -> its size."""
        with self._lock:
            try:
                self._write_sqlite(batch)
            except Exception:
                log.exception("decode batch failed; decoding its telegrams one by one")
                self.caches.formats.clear()  # it may hold formats whose rows were rolled back
                self._one_by_one(0, [r.id for r in batch.rows])
        return len(batch.rows)

    # --- batches ---

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
            with self.db.session(write=True) as session:
                rows = select_new(BulkSql(session, False), self.partition, limit, ids)
                if not rows:
                    session.rollback()
                    return 0
                decoded, seen = self._decode_rows(session, rows)
                self._finish(session, decoded, seen)
                session.commit()
        except BaseException:
            self.caches.formats.clear()  # it may hold formats whose rows were rolled back
            raise
        return len(rows)

    def _read_sqlite(
        self, limit: int, ids: list[int] | None = None, exclude: list[int] | None = None, full: bool = False
    ) -> DecodedBatch | None:
        """SQLite's read phase: select and decode from a read snapshot (no lock: ingest goes on)."""
        with self.db.session() as reader:
            rows = select_new(BulkSql(reader, True), self.partition, limit, ids, exclude, full)
            if not rows:
                return None
            decoded, seen = self._decode_rows(reader, rows)
            reader.rollback()
        return DecodedBatch(rows, decoded, seen)

    def _write_sqlite(self, batch: DecodedBatch) -> None:
        """SQLite's write phase: a short write transaction that keeps the telegrams still `new`
        (another worker may have written some meanwhile) and writes their results."""
        with write_gate(self.db), self.db.session(write=True) as session:
            still_new: set[int] = set()
            all_ids = [d.row.id for d in batch.decoded]
            sql = BulkSql(session, True)
            for i in range(0, len(all_ids), CHUNK):
                isin, params = sql.isin("id", all_ids[i : i + CHUNK])
                still_new.update(
                    r[0] for r in sql.rows(f"SELECT id FROM telegrams WHERE {isin} AND state = 'new'", params)
                )
            self._finish(session, [d for d in batch.decoded if d.row.id in still_new], batch.seen)
            session.commit()
        self.db.checkpoint_soon()

    def _one_by_one(self, limit: int, ids: list[int] | None = None) -> int:
        if ids is None:
            with self.db.session() as session:
                ids = [
                    r.id
                    for r in session.execute(
                        select(Telegram.id).where(Telegram.state == "new").order_by(Telegram.id).limit(limit)
                    )
                ]
        for telegram_id in ids:
            try:
                self._batch(1, [telegram_id])
            except Exception as exc:
                log.exception("telegram %d cannot be processed; marked invalid", telegram_id)
                with self.db.transaction() as session:
                    session.execute(
                        update(Telegram)
                        .where(Telegram.id == telegram_id, Telegram.state == "new")
                        .values(
                            state="invalid",
                            decoded_at=utcnow(),
                            error=f"pipeline error: {type(exc).__name__}: {exc}"[:2000],
                        )
                    )
        return len(ids)

    # --- the work of one batch (inside its transaction) ---

    def _decode_rows(self, session: Session, rows: list[NewTelegram]) -> tuple[list[Decoded], Seen]:
        return decode_rows(session, self.db.is_sqlite, rows, self.caches)

    def _finish(self, session: Session, decoded: list[Decoded], seen: Seen) -> None:
        """In the write transaction: states (with the meters as they are now; a telegram whose
        meter's key or compact format arrived since it was decoded goes round again), duplicates,
        readings, telegram and meter updates, learned formats, alarm hooks. So a batch is written
        right however long ago it was decoded."""
        now = utcnow()
        sql = BulkSql(session, self.db.is_sqlite)
        outcomes = outcomes_of(decoded, load_meters(sql, decoded, lock=not self.db.is_sqlite))
        retry_keys_changed_meanwhile(sql, outcomes, seen.keys)
        time_readings(session, outcomes, self.caches, self.meter_timezone)
        if outcomes:
            mark_duplicates(sql, outcomes, self.db.is_sqlite)
            self._store(session, outcomes, now)
        for cache in seen.formats.values():
            cache.session = session
            cache.write_pending(self.db.dialect)
        retry_formats_learned_meanwhile(session, decoded)

    def _store(self, session: Session, outcomes: list[Outcome], now: datetime) -> None:
        writer = BulkSql(session, self.db.is_sqlite)
        readings = write_readings_and_telegrams(writer, outcomes, now)
        wrong_keys, calls = update_meters(session, writer, outcomes, readings)
        raise_batch_alarms(session, wrong_keys, calls, now, heard=(o.meter for o in outcomes if o.meter))

    # --- meter clocks ---

    def _timestamp(self, result: dict, received_at: datetime) -> datetime:
        """The meter's own current date-time record where one parses (a naive one in the server's
        meter time zone), else the receive time."""
        at, _db = self._meter_time(result, received_at=received_at)
        return received_at if at is None else at

    def _meter_time(
        self, result: dict, zone: str | None = None, received_at: datetime | None = None
    ) -> tuple[datetime | None, object]:
        """(the meter's own current date-time in UTC, as the driver stores it), or (None, None).
        A naive one is in `zone` (default: the server's meter time zone)."""
        clock = meter_clock(result)
        if clock is None:
            return None, None
        return self.caches.meter_time(clock, zone or self.meter_timezone, received_at)
