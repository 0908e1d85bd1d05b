"""The decode workers: a thread in the serving process, or worker processes (partition k of n
each) that wake up when an uplink is stored (store/writegate.py's ingest clock) and, on the
idle cores, decode whole batches ahead while uplinks arrive."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
import time

from omshub.cloud.decode.batch import DecodedBatch, DecodePipeline
from omshub.cloud.store.database import Database
from omshub.cloud.store.keystore import KeyStore
from omshub.cloud.store.outage import database_outage
from omshub.cloud.store.writegate import ingest_clock

log = logging.getLogger(__name__)

IDLE_WORKER_NICENESS = 5
AHEAD_BATCHES = 2  # whole batches an idle-core worker decodes ahead while uplinks arrive
INGEST_QUIET_S = 0.05  # the idle-core workers decode only when no uplink came for this long
IDLE_POLL_S = 0.2  # an idle worker looks for new telegrams at least this often


def tune_gc() -> None:
    """A batch keeps its ~1000 decoded telegrams (~100 objects each) alive until it is written,
    so with CPython's default thresholds the cyclic collector runs every 700 allocations and walks
    them again and again: a quarter of the decode time. Everything built at start-up is frozen
    out of collection and generation 0 is collected every 20,000 allocations instead; the
    pipeline makes no reference cycles, so memory stays flat."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def _logged(partition: tuple[int, int], step, *args):
    """One step of a worker; an error is logged (once per outage when the database is away). -> its
    result, None after an error."""
    try:
        return step(*args)
    except Exception as exc:
        if not database_outage.failed(exc):
            log.exception("decode worker %d/%d error", *partition)
        return None


def _idle_wait(stopping: threading.Event, clock, seen: float) -> None:
    """Up to IDLE_POLL_S, less when the ingest clock moves (an uplink was stored)."""
    deadline = time.monotonic() + IDLE_POLL_S
    while time.monotonic() < deadline and not stopping.is_set():
        if clock is not None and clock.value != seen:
            break
        time.sleep(0.01)


def _process_main(
    url: str,
    master_key: bytes,
    meter_timezone: str,
    batch: int,
    partition: tuple[int, int],
    parent_pid: int,
    log_level: str,
    niceness: int = 0,
    clock=None,
    wait_for_quiet: bool = False,
) -> None:
    """A decode worker process (started by PipelineProcesses); ends when its parent is gone.
    Idle, it polls the database every IDLE_POLL_S, and sooner when the ingest clock moves (an
    uplink was stored: decoding starts within ~10 ms, not after a poll interval). With
    `wait_for_quiet` (the idle-core workers) it writes only while no uplink is arriving; meanwhile
    (on SQLite) it decodes up to AHEAD_BATCHES whole batches ahead, written once uplinks pause."""
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
    seen = clock.value if clock is not None else 0.0
    ahead: list[DecodedBatch] = []  # decoded while uplinks arrived, written when they pause
    while not stopping.is_set() and os.getppid() == parent_pid:
        if wait_for_quiet and time.monotonic() - clock.value < INGEST_QUIET_S:
            # uplinks are arriving: the SQLite write lock is theirs, but while the other workers
            # write, a core is idle: decode whole batches ahead (niced, a few at most)
            if db.is_sqlite and len(ahead) < AHEAD_BATCHES:
                decoded = _logged(partition, pipeline.decode_ahead, batch, [r.id for b in ahead for r in b.rows])
                if decoded is not None:
                    ahead.append(decoded)
                    continue
            time.sleep(0.02)
            continue
        if ahead:  # (however old: the write re-checks what may have changed, see DecodePipeline._finish)
            _logged(partition, pipeline.write_ahead, ahead.pop(0))
            continue
        if clock is not None:
            seen = clock.value
        n = _logged(partition, pipeline.run_once, batch)
        if n is not None:
            database_outage.succeeded()
        if not n:
            _idle_wait(stopping, clock, seen)
    db.dispose()


class PipelineProcesses:
    """Decode workers in their own processes (partition k of n each): decoding is CPU work, and in
    the serving process it would compete with the HTTP ingest for the GIL. A worker exits when
    the server process dies (even by SIGKILL).

    `workers` run at normal priority; with `fill_cores` (default) more are added, at a lower
    priority (nice +IDLE_WORKER_NICENESS), until every core has one: the serving process needs
    its core (and on SQLite the write lock) while uplinks arrive, so these only decode ahead
    then, and once ingest pauses the backlog is written and decoded on all cores."""

    def __init__(
        self,
        url: str,
        master_key: bytes,
        *,
        workers: int,
        meter_timezone: str = "UTC",
        batch: int = 1000,
        log_level: str = "warning",
        fill_cores: bool = True,
        node: tuple[int, int] = (0, 1),
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._args = (url, master_key, meter_timezone, batch)
        self._parent, self._log_level = os.getpid(), log_level
        self._clock = ingest_clock(self._context)
        self.normal = workers
        self.workers = max(workers, os.cpu_count() or 1) if fill_cores and workers > 0 else workers
        # Work divided by design across nodes too (docs/deploy.md): node j of m takes the telegrams
        # with id % m == j, its worker k those with id % (m * workers) == j + m * k. Nodes with other
        # worker counts overlap or leave gaps; the helping of select_new (a worker whose share is
        # done takes the newest of the others', skipping locked rows) closes them.
        self.node = node
        self.processes = [self._new(k) for k in range(self.workers)]
        self._stopping = False

    def _new(self, k: int):
        url, master_key, meter_timezone, batch = self._args
        idle_core = k >= self.normal
        return self._context.Process(
            target=_process_main,
            name=f"omshub-decode-{k}",
            daemon=True,
            args=(
                url,
                master_key,
                meter_timezone,
                batch,
                self.partition(k),
                self._parent,
                self._log_level,
                IDLE_WORKER_NICENESS if idle_core else 0,
                self._clock,
                idle_core,
            ),
        )

    def partition(self, k: int) -> tuple[int, int]:
        """Worker k's share: telegrams with id % n == its k (DecodePipeline.partition)."""
        return self.node[0] + self.node[1] * k, self.node[1] * self.workers

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

    def alive(self) -> int:
        """How many of the worker processes are running."""
        return sum(1 for p in self.processes if p.is_alive())

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

    def __init__(
        self,
        pipeline: DecodePipeline | None,
        *,
        batch: int = 1000,
        idle_s: float = 0.2,
        processes: PipelineProcesses | None = None,
    ) -> None:
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

    def health(self) -> dict:
        """Is it decoding: the thread running and (with processes) how many of them are alive."""
        out: dict = {"running": self.is_alive() and not self.stopping.is_set()}
        if self.processes is not None:
            out["processes"] = self.processes.workers
            out["processes_alive"] = self.processes.alive()
            out["partitions"] = ["{}/{}".format(*self.processes.partition(k)) for k in range(self.processes.workers)]
        return out

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        self.join(timeout)
        if self.processes is not None:
            self.processes.stop(timeout)
