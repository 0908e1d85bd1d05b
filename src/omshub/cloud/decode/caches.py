"""What a decode worker keeps between batches: opened meter keys and their AES contexts, the
tenants' compact-frame formats, and meter clock readings converted to UTC. All bounded."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.meter_time import is_unambiguous, meter_time_to_utc, zone_info
from omshub.cloud.store.database import BulkSql, time_to_db
from omshub.cloud.store.keystore import KeyStore, KeyStoreError, applicable_key
from omshub.cloud.store.models import CompactFormat
from omshub.cloud.store.telegram_states import requeue_unknown_formats
from omshub.codec import FormatCache
from omshub.codec.security import KeyContext

log = logging.getLogger(__name__)

_TIMES_KEPT = 10_000  # meter clock readings converted (a fleet reports the same few minutes)


class LRU(OrderedDict):
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


class KeyRow(NamedTuple):
    """A stored meter key, still sealed (store/keystore.py)."""

    manufacturer: str | None
    meter_id: str
    nonce: bytes
    ciphertext: bytes


KEY_COLUMNS = "manufacturer, meter_id, nonce, ciphertext"  # a KeyRow as selected from meter_keys


def key_row(row) -> KeyRow:
    return KeyRow(row[0], row[1], bytes(row[2]), bytes(row[3]))


class Caches:
    """One worker's memory across batches (see the module docstring)."""

    def __init__(
        self,
        keystore: KeyStore | None,
        is_sqlite: bool,
        *,
        key_cache_size: int = 100_000,
        format_cache_size: int = 100_000,
    ) -> None:
        self.keystore = keystore
        self.keys = LRU(key_cache_size)  # (tenant, manufacturer, id, nonce) -> key
        self.formats = LRU(format_cache_size)  # (tenant, manufacturer, id, signature) -> format
        self.contexts = LRU(min(key_cache_size, 20_000))  # key -> AES context (a few KB each)
        # (meter date-time, zone) -> (UTC, as stored), for the times that need no receive time
        self.times: dict[tuple[datetime, str], tuple[datetime, object]] = {}
        self.to_db = time_to_db(is_sqlite)

    def open_key(self, tenant: int, meter_id: str, row: KeyRow) -> bytes | None:
        """The meter key of a stored row, opened once (None: it does not open, logged)."""
        cache_key = (tenant, row.manufacturer, meter_id, row.nonce)
        key = self.keys.lookup(cache_key)
        if key is None:
            if self.keystore is None:
                raise RuntimeError("a stored meter key, but no key store to open it with")
            try:
                key = self.keystore.open(tenant, row.manufacturer, meter_id, row.nonce, row.ciphertext)
            except KeyStoreError as exc:
                log.error("tenant %d: %s", tenant, exc)
                return None
            self.keys.store(cache_key, key)
        return key

    def context(self, key: bytes) -> KeyContext:
        """An AES context for the key, reused across batches (making one costs more than
        decrypting a telegram)."""
        ctx = self.contexts.lookup(key)
        if ctx is None:
            ctx = KeyContext(key)
            self.contexts.store(key, ctx)
        return ctx

    def meter_time(self, clock: datetime, zone: str, received_at: datetime | None) -> tuple[datetime, object]:
        """A meter clock reading in `zone` -> (UTC, as stored). Cached per (reading, zone): a fleet's
        meters report the same few minutes; not the autumn hour, whose answer depends on the
        receive time."""
        key = (clock, zone)
        known = self.times.get(key)
        if known is None:
            tz = zone_info(zone)
            value = meter_time_to_utc(clock, tz, received_at)
            known = (value, self.to_db(value))
            if is_unambiguous(clock, tz):
                if len(self.times) >= _TIMES_KEPT:
                    self.times.clear()
                self.times[key] = known
        return known


class TenantKeys:
    """The codec's key lookup for one tenant's telegrams in a batch (`KeyRing`-like): the key rows
    prefetched for the batch (`keys`: (tenant, meter id) -> [KeyRow]), the one that applies chosen
    by keystore.applicable_key, opened through the worker's caches."""

    __slots__ = ("caches", "session", "is_sqlite", "tenant", "keys")

    def __init__(self, caches: Caches, session: Session, is_sqlite: bool, tenant: int, keys: dict) -> None:
        self.caches, self.session, self.is_sqlite, self.tenant, self.keys = caches, session, is_sqlite, tenant, keys

    def __call__(self, manufacturer: str, meter_id: str) -> bytes | None:
        candidates = self.keys.get((self.tenant, meter_id))
        if candidates is None:  # an id the header peek did not give (the long TPL's, say)
            candidates = self.keys[(self.tenant, meter_id)] = [
                key_row(r)
                for r in BulkSql(self.session, self.is_sqlite).rows(
                    f"SELECT {KEY_COLUMNS} FROM meter_keys WHERE tenant_id = {{m}} AND meter_id = {{m}}",
                    (self.tenant, meter_id),
                )
            ]
        if not candidates:
            return None
        chosen = applicable_key({k.manufacturer: k for k in candidates}, manufacturer)
        return self.caches.open_key(self.tenant, meter_id, chosen) if chosen is not None else None

    def context(self, key: bytes) -> KeyContext:
        return self.caches.context(key)


class DbFormatCache(FormatCache):
    """Compact-frame formats of one tenant, kept in `compact_formats`, with an in-memory LRU
    shared across batches. Newly learned formats are collected and written by `write_pending`
    in the batch's transaction (one bulk statement, not one per meter)."""

    def __init__(self, session: Session, tenant_id: int, memory: LRU) -> None:
        super().__init__()
        self.session, self.tenant_id, self.memory = session, tenant_id, memory
        self.pending: dict[tuple[str, str, int], bytes] = {}

    def get(self, manufacturer: str, meter_id: str, signature: int) -> bytes | None:
        key = (self.tenant_id, manufacturer, meter_id, signature)
        fmt = self.memory.lookup(key)
        if fmt is None:
            fmt = self.session.scalar(
                select(CompactFormat.fmt).where(
                    CompactFormat.tenant_id == self.tenant_id,
                    CompactFormat.manufacturer == manufacturer,
                    CompactFormat.meter_id == meter_id,
                    CompactFormat.signature == signature,
                )
            )
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
        sql.insert(
            "compact_formats",
            ("tenant_id", "manufacturer", "meter_id", "signature", "fmt"),
            ("bigint", "varchar", "varchar", "integer", "bytea"),
            [(self.tenant_id, man, mid, sig, fmt) for (man, mid, sig), fmt in self.pending.items()],
            "ON CONFLICT (tenant_id, manufacturer, meter_id, signature) DO UPDATE SET fmt = excluded.fmt",
        )
        # compact frames that came before any full frame of their meter can be decoded now
        requeue_unknown_formats(sql, self.tenant_id, [mid for _man, mid, _sig in self.pending], dialect)
        self.pending.clear()
