"""The alarms of a written batch (store/alarm_rows.py): a wrong_key alarm per meter whose key
turned wrong, and `on_reading` for the stored readings that can change an alarm. Alarm
evaluation is secondary: its failure is logged and never stops decoding."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from omshub.cloud.decode.meter_bookkeeping import load_readings
from omshub.cloud.decode.rows import CHUNK, MeterState, ReadingCall, StoredReading
from omshub.cloud.domain.alarms import backwards_register, error_causes
from omshub.cloud.store import alarm_rows
from omshub.cloud.store.database import BulkSql
from omshub.cloud.store.models import Meter

log = logging.getLogger(__name__)


def raise_batch_alarms(
    session: Session, is_sqlite: bool, wrong_keys: list[MeterState], calls: list[ReadingCall], now: datetime
) -> None:
    for meter in wrong_keys:
        _hook(alarm_rows.on_decode_failure, session, session.get(Meter, meter.id), "wrong_key", now)
    if calls:
        _reading_alarms(session, is_sqlite, calls, now)


def _reading_alarms(session: Session, is_sqlite: bool, calls: list[ReadingCall], now: datetime) -> None:
    """alarm_rows.on_reading for the stored readings. Its per-reading queries would dominate the
    batch, so it is called only where it can change something: the meter has an active alarm, or
    the reading may raise one (may_alarm: the same rules on_reading applies)."""
    meter_ids = sorted({c.meter.id for c in calls})
    tenants = sorted({c.meter.tenant_id for c in calls})
    active: set[int] = set()
    sql = BulkSql(session, is_sqlite)
    true = "1" if is_sqlite else "true"
    in_tenants, tenant_params = sql.isin("tenant_id", tenants)
    for i in range(0, len(meter_ids), CHUNK):
        in_meters, meter_params = sql.isin("subject_id", meter_ids[i : i + CHUNK])
        # tenant and active first: the (tenant_id, active) index answers it
        active.update(
            r[0]
            for r in sql.rows(
                f"SELECT subject_id FROM alarms WHERE {in_tenants} AND active = {true} "
                f"AND subject_type = 'meter' AND {in_meters}",
                (*tenant_params, *meter_params),
            )
        )
    for c in calls:
        if c.meter.id in active or may_alarm(c.reading, c.previous):
            previous = c.previous
            if previous is not None and previous.data is None:  # the meter row's summary: the hook reads it all
                previous = load_readings(sql, [previous.id]).get(previous.id)
            active.add(c.meter.id)  # it may have raised one: later readings must be seen too
            _hook(alarm_rows.on_reading, session, session.get(Meter, c.meter.id), c.reading, previous, now)


def may_alarm(reading: StoredReading, previous: StoredReading | None) -> bool:
    """Could alarm_rows.on_reading raise something for this reading of a meter without active
    alarms? Asks the rules it applies (domain/alarms.py), on the registers worked out already."""
    if reading.reports_error if reading.reports_error is not None else error_causes(reading.data)[0]:
        return True
    if previous is None:
        return False
    earlier, later = (previous, reading) if previous.timestamp <= reading.timestamp else (reading, previous)
    return backwards_register(earlier.register_map(), later.register_map()) is not None


def _hook(fn, *args) -> None:
    """Alarm evaluation is secondary: its failure must not stop decoding."""
    try:
        fn(*args)
    except Exception:
        log.exception("alarm hook %s failed", getattr(fn, "__name__", fn))
