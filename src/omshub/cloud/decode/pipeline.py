"""The decode pipeline: telegrams in state `new` -> readings. Where its parts live:

* batch.py   — select a batch and decode it (DecodePipeline: one worker's batches, crash-safe);
* rows.py    — what each decoded telegram becomes: its state, duplicates, readings;
* meter_bookkeeping.py — the meters' rows: last heard, key status, latest reading;
* caches.py  — opened keys, AES contexts, compact-frame formats, meter-clock conversions;
* workers.py — the worker thread and processes, decode-ahead on idle cores;
* alarm_hooks.py — the alarms a written batch raises.

Re-queueing telegrams lives with their states (store/telegram_states.py); the SQLite write gate
and the ingest wake-up, used by ingest too, in store/writegate.py. This module names the
pipeline's public parts for the composition root (app.py) and the commands.
"""

from __future__ import annotations

from omshub.cloud.decode.batch import DecodedBatch, DecodePipeline
from omshub.cloud.decode.rows import DUPLICATE_WINDOW, StoredReading
from omshub.cloud.decode.workers import (
    AHEAD_BATCHES,
    IDLE_POLL_S,
    IDLE_WORKER_NICENESS,
    INGEST_QUIET_S,
    PipelineProcesses,
    PipelineWorker,
    tune_gc,
)
from omshub.cloud.store.telegram_states import WAITING_STATES, requeue_states, requeue_waiting
from omshub.cloud.store.writegate import note_ingest, write_gate

__all__ = [
    "AHEAD_BATCHES",
    "DUPLICATE_WINDOW",
    "IDLE_POLL_S",
    "IDLE_WORKER_NICENESS",
    "INGEST_QUIET_S",
    "WAITING_STATES",
    "DecodePipeline",
    "DecodedBatch",
    "PipelineProcesses",
    "PipelineWorker",
    "StoredReading",
    "note_ingest",
    "requeue_states",
    "requeue_waiting",
    "tune_gc",
    "write_gate",
]
