"""The alarms of a written batch (store/alarm_rows.py, store/alarm_batch.py): a wrong_key alarm per meter whose key
turned wrong, then the batch's stored readings in one `on_readings` call — the active alarms of
all its meters in one query, no meter or reading loaded one by one, and the meter_silent alarms of
the meters heard again cleared. Alarm evaluation is secondary: its failure is logged and never
stops decoding."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from omshub.cloud.decode.rows import MeterState, ReadingCall
from omshub.cloud.store import alarm_batch, alarm_rows

log = logging.getLogger(__name__)


def raise_batch_alarms(
    session: Session,
    wrong_keys: list[MeterState],
    calls: list[ReadingCall],
    now: datetime,
    heard: Iterable[MeterState] = (),
) -> None:
    """`heard`: the meters of the batch's telegrams (their last_heard_at as the batch left it)."""
    for meter in wrong_keys:
        _hook(alarm_rows.on_decode_failure, session, meter, "wrong_key", now)
    events = [(c.meter, c.reading, c.previous) for c in calls]
    heard_once = list({m.id: m for m in heard}.values())
    if events or heard_once:
        _hook(alarm_batch.on_readings, session, events, now, heard=heard_once)


def _hook(fn, *args, **kwargs) -> None:
    """Alarm evaluation is secondary: its failure must not stop decoding."""
    try:
        fn(*args, **kwargs)
    except Exception:
        log.exception("alarm hook %s failed", getattr(fn, "__name__", fn))
