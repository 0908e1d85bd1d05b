"""The full decoded dict of stored readings, decoded again from their raw telegrams.

Readings keep typed values only (store/reading_values.py); whoever shows a reading's whole uniform
dict (records, named fields, header) asks here. The telegram is decoded as the pipeline decoded it:
with the tenant's stored key for the meter and its learned compact formats (read-only: nothing is
learned or written). A telegram that no longer decodes (its key was replaced by one that does not
open it, or retention removed it) gives None: the caller falls back to the typed values.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session

from omshub.cloud.decode.batch import prefetch  # the pipeline's key and format look-up: both decode alike
from omshub.cloud.decode.caches import Caches, DbFormatCache, TenantKeys
from omshub.cloud.decode.rows import CHUNK, NewTelegram
from omshub.cloud.store.database import BulkSql
from omshub.cloud.store.keystore import KeyStore
from omshub.codec import DecodeError, decode

log = logging.getLogger(__name__)


class Redecoder:
    """Decodes stored telegrams again; keeps opened keys, their AES contexts and formats for its
    lifetime (the app keeps one: opening a key costs more than decoding a telegram). Thread-safe."""

    def __init__(self, keystore: KeyStore | None, is_sqlite: bool, cache_size: int = 20_000) -> None:
        self.caches = Caches(keystore, is_sqlite, key_cache_size=cache_size, format_cache_size=cache_size)
        self.is_sqlite = is_sqlite
        self._lock = threading.Lock()  # the caches are plain dicts, shared by the API's threads

    def telegrams(self, session: Session, telegram_ids: list[int], tenant_id: int) -> dict[int, dict]:
        """{telegram id: decoded dict} of the tenant's telegrams with these ids that decode."""
        with self._lock:
            return self._telegrams(session, telegram_ids, tenant_id)

    def _telegrams(self, session: Session, telegram_ids: list[int], tenant_id: int) -> dict[int, dict]:
        sql = BulkSql(session, self.is_sqlite)
        ids = sorted({i for i in telegram_ids if i is not None})
        rows: list[NewTelegram] = []
        for i in range(0, len(ids), CHUNK):
            isin, params = sql.isin("id", ids[i : i + CHUNK])
            rows.extend(
                NewTelegram(r)
                for r in sql.rows(
                    f"SELECT {NewTelegram.COLUMNS} FROM telegrams WHERE tenant_id = {sql.mark} AND {isin}",
                    (tenant_id, *params),
                )
            )
        keys: dict = {}
        prefetch(sql, rows, keys, self.caches)
        key_for = TenantKeys(self.caches, session, self.is_sqlite, tenant_id, keys)
        formats = DbFormatCache(session, tenant_id, self.caches.formats)
        out = {}
        for row in rows:
            try:
                out[row.id] = decode(row.raw, keys=key_for, formats=formats)
            except DecodeError as exc:
                log.info("telegram %d no longer decodes (%s): its reading shows its stored values", row.id, exc.code)
            except Exception:  # a codec bug must not fail a read; the typed values are shown
                log.exception("codec failed on stored telegram %d", row.id)
        formats.pending.clear()  # (read-only: a format it learned again is the pipeline's to write)
        return out
