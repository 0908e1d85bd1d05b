"""The durable spool: telegrams collected but not yet acknowledged by the head-end.

SQLite in WAL mode with ``synchronous=FULL``: every ``put`` is committed (fsynced) before it
returns, so a power cut or SIGKILL loses nothing collected (``synchronous="normal"``, for
simulations, still survives SIGKILL but not a power cut). Bounded by rows and bytes: when full,
``put`` refuses (returns False) and the agent stops collecting and reports ``spool_full`` — nothing
is ever dropped silently.

Uploads: ``take_batch(max_batch)`` marks the oldest rows with a new uplink ``seq`` (persisted in the
same transaction); until that seq is acknowledged (``ack(seq)`` deletes its rows) every call returns
the same seq with the same rows, so a retry — even after a crash — repeats the same uplink.

``keep="newest_per_kind"``: within one listen window the spool holds one row per (meter, kind);
a newer frame of the same meter and kind replaces the older one (``window`` + ``dedup_key`` unique).
Rows already taken into an uplink are never replaced.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from omshub.protocol.envelope import MAX_FRAME

SCHEMA = """
CREATE TABLE IF NOT EXISTS telegram (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    raw BLOB NOT NULL,
    rx_time REAL NOT NULL,
    rssi INTEGER,
    link_mode TEXT NOT NULL,
    window INTEGER,
    dedup_key TEXT,
    upload_seq INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS telegram_window_key ON telegram(window, dedup_key);
CREATE INDEX IF NOT EXISTS telegram_upload_seq ON telegram(upload_seq);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(slots=True)
class SpooledTelegram:
    id: int
    raw: bytes
    rx_time: float
    rssi: int | None
    link_mode: str


@dataclass(slots=True)
class Batch:
    seq: int
    telegrams: list[SpooledTelegram]


class SpoolError(Exception):
    """The spool database cannot be opened or written (message says why)."""


def _private_file(path: Path) -> None:
    """The spool file 0600 (SQLite gives its -wal and -shm files the same mode) in a state
    directory created 0700; an existing spool readable by others is tightened."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for suffix in ("", "-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists() and companion.stat().st_mode & 0o077:
            os.chmod(companion, 0o600)


class Spool:
    def __init__(
        self, path: str | Path, *, max_rows: int = 100_000, max_bytes: int = 64 << 20, synchronous: str = "full"
    ) -> None:
        if max_rows < 1 or max_bytes < 1024:
            raise ValueError("spool limits: max_rows >= 1 and max_bytes >= 1024")
        if synchronous not in ("full", "normal"):
            raise ValueError("spool synchronous must be 'full' (survives power cuts) or 'normal'")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        try:
            _private_file(self.path)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: each commit is fsynced (power-cut safe). NORMAL (simulations): commits survive a
            # killed process, not a power cut, and are ~100x faster.
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(SCHEMA)
            self.rows, self.bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(raw)), 0) FROM telegram"
            ).fetchone()
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from None
        except OSError as exc:
            raise SpoolError(f"spool {self.path}: {exc.strerror}") from None

    # -- state (seq, config version, battery ...) -------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, **values: str | int | float | None) -> None:
        with self._tx():
            for k, v in values.items():
                if v is None:
                    self._db.execute("DELETE FROM state WHERE key = ?", (k,))
                else:
                    self._db.execute(
                        "INSERT INTO state(key, value) VALUES(?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (k, str(v)),
                    )

    def _tx(self) -> _Tx:
        return _Tx(self._db)

    # -- collecting --------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        """No room for one more frame of the largest size (512 bytes): collection must stop."""
        return self.rows >= self.max_rows or self.max_bytes - self.bytes < MAX_FRAME

    def put(
        self,
        raw: bytes,
        rx_time: float,
        rssi: int | None,
        link_mode: str,
        *,
        window: int | None = None,
        dedup_key: str | None = None,
    ) -> bool:
        """Store one frame durably. Returns False (and stores nothing) when the spool is full.

        With ``window`` and ``dedup_key`` a frame replaces the window's earlier frame with the same
        key (newest per kind) unless that one is already part of an uplink.
        """
        with self._tx():
            old = None
            if window is not None and dedup_key is not None:
                old = self._db.execute(
                    "SELECT id, LENGTH(raw), upload_seq FROM telegram WHERE window = ? AND dedup_key = ?",
                    (window, dedup_key),
                ).fetchone()
            if old is not None and old[2] is None:
                if self.bytes - old[1] + len(raw) > self.max_bytes:
                    return False
                self._db.execute(
                    "UPDATE telegram SET raw = ?, rx_time = ?, rssi = ?, link_mode = ? WHERE id = ?",
                    (raw, rx_time, rssi, link_mode, old[0]),
                )
                self.bytes += len(raw) - old[1]
                return True
            if self.full or self.bytes + len(raw) > self.max_bytes:
                return False
            if old is not None:  # the older one is in flight: keep it, store this one unkeyed
                dedup_key = None
            self._db.execute(
                "INSERT INTO telegram(raw, rx_time, rssi, link_mode, window, dedup_key) VALUES (?, ?, ?, ?, ?, ?)",
                (raw, rx_time, rssi, link_mode, window, dedup_key),
            )
            self.rows += 1
            self.bytes += len(raw)
            return True

    def next_window_id(self) -> int:
        n = int(self.get_state("window", "0") or 0) + 1
        self.set_state(window=n)
        return n

    # -- uploading ---------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return int(self.get_state("seq", "0") or 0)

    def inflight_seq(self) -> int | None:
        v = self.get_state("inflight_seq")
        return int(v) if v is not None else None

    def take_batch(self, max_batch: int) -> Batch:
        """The uplink to send: the one in flight (same seq, same rows) or a new one with the oldest
        ``max_batch`` rows (possibly empty: a status-only contact)."""
        with self._tx():
            seq = self.inflight_seq()
            if seq is None:
                seq = self.last_seq + 1
                self._db.execute(
                    "UPDATE telegram SET upload_seq = ? WHERE id IN (SELECT id FROM telegram "
                    "WHERE upload_seq IS NULL ORDER BY id LIMIT ?)",
                    (seq, max_batch),
                )
                self._set(seq=seq, inflight_seq=seq)
        return Batch(seq, self._rows_of(seq))

    def shrink_batch(self, seq: int, keep: int) -> Batch:
        """Give back all but the oldest ``keep`` rows of the in-flight batch (after a 413)."""
        with self._tx():
            self._db.execute(
                "UPDATE telegram SET upload_seq = NULL WHERE upload_seq = ? AND id NOT IN "
                "(SELECT id FROM telegram WHERE upload_seq = ? ORDER BY id LIMIT ?)",
                (seq, seq, keep),
            )
        return Batch(seq, self._rows_of(seq))

    def _rows_of(self, seq: int) -> list[SpooledTelegram]:
        cur = self._db.execute(
            "SELECT id, raw, rx_time, rssi, link_mode FROM telegram WHERE upload_seq = ? ORDER BY id", (seq,)
        )
        return [SpooledTelegram(*r) for r in cur]

    def ack(self, seq: int) -> int:
        """The head-end acknowledged ``seq``: delete its rows. Returns how many were deleted."""
        with self._tx():
            if self.inflight_seq() != seq:
                return 0
            n, b = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(raw)), 0) FROM telegram WHERE upload_seq = ?", (seq,)
            ).fetchone()
            self._db.execute("DELETE FROM telegram WHERE upload_seq = ?", (seq,))
            self._db.execute("DELETE FROM state WHERE key = 'inflight_seq'")
            self.rows -= n
            self.bytes -= b
        return n

    def pending(self) -> int:
        """Telegrams waiting (in flight or not)."""
        return self.rows

    def _set(self, **values: int) -> None:
        for k, v in values.items():
            self._db.execute(
                "INSERT INTO state(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (k, str(v)),
            )

    def close(self) -> None:
        self._db.close()


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (rollback on error); the commit is fsynced (synchronous=FULL)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
