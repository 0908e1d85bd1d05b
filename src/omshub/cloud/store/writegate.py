"""The head-end's own bulk writers and the decode workers' wake-up: the SQLite write gate and the
ingest clock. Ingest uses both before decode exists in the flow, so they live here, below both."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager, nullcontext

from sqlalchemy.engine import make_url

from omshub.cloud.store.database import Database


class _WriteGate:
    """SQLite allows one writer; a writer that finds the database locked polls with growing sleeps
    (SQLite's busy handler: 1, 2, 5, ... 100 ms), so under steady contention (ingest threads, decode
    workers) the lock often sits free while the waiters sleep. The head-end's own bulk writers queue
    on an flock instead, which wakes the next one the moment the lock is released. Other writers
    (API requests) still meet SQLite's busy timeout, as before; the kernel drops an flock with its
    process, so a killed writer never blocks the others."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.local = threading.local()
        self.fd: int | None = None
        self.pid: int | None = None

    @contextmanager
    def held(self):
        import fcntl  # POSIX only (write_gate makes gates only there): not imported on other systems

        with self.lock:
            depth = getattr(self.local, "depth", 0)
            if depth == 0:
                if self.fd is None or self.pid != os.getpid():
                    self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.local.depth = depth + 1
            try:
                yield
            finally:
                self.local.depth = depth
                if depth == 0:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)


_gates: dict[str, _WriteGate | None] = {}
_gates_lock = threading.Lock()


def write_gate(db: Database):
    """Context manager around a bulk write transaction (see _WriteGate); a no-op off SQLite."""
    gate = _gates.get(db.url)
    if db.url not in _gates:
        with _gates_lock:
            gate = None
            path = make_url(db.url).database if db.is_sqlite else None
            if path and path != ":memory:" and not path.startswith("file:") and os.name == "posix":
                gate = _WriteGate(os.path.abspath(path) + "-writegate")
            _gates[db.url] = gate
    return gate.held() if gate is not None else nullcontext()


# A shared double (time.monotonic() of the last uplink) while decode worker processes run
# (decode/workers.py creates it); None otherwise.
_ingest_clock = None


def ingest_clock(context):
    """The ingest clock shared with decode worker processes, created once in `context` (a
    multiprocessing context): a double without a lock (time.monotonic() is system-wide on Linux)."""
    global _ingest_clock
    if _ingest_clock is None:
        _ingest_clock = context.Value("d", 0.0, lock=False)
    return _ingest_clock


def note_ingest() -> None:
    """Called by ingest for every uplink (before and after its commit): idle decode workers wake
    up at once, and the idle-core ones stay paused meanwhile (on SQLite their write transactions
    would queue the uplinks' behind them)."""
    clock = _ingest_clock
    if clock is not None:
        clock.value = time.monotonic()
