"""The meters' bookkeeping of a decode batch, in its write transaction: the batch's meter rows
read (and on PostgreSQL locked), their last-heard times, key statuses and latest readings updated
in one bulk UPDATE, and the meters' earlier readings the alarm checks compare with. The rows each
telegram becomes (states, duplicates, readings) are rows.py's.
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.decode.rows import CHUNK, Decoded, MeterState, Outcome, ReadingCall, StoredReading
from omshub.cloud.store.database import BulkSql, db_time_set, json_text
from omshub.cloud.store.keystore import applicable_key
from omshub.cloud.store.models import MeterKey, Telegram
from omshub.cloud.store.reading_values import VALUE_COLUMNS, summary_data


def load_meters(sql: BulkSql, decoded: list[Decoded], lock: bool) -> dict[tuple[int, str, str], MeterState]:
    """The batch's meters, read in the write transaction (`lock`: on PostgreSQL, so concurrent
    workers update a meter's latest reading one after the other)."""
    by_tenant: dict[int, set[str]] = {}
    manufacturers: dict[int, set[str]] = {}
    for d in decoded:
        if d.manufacturer and d.meter_id:
            by_tenant.setdefault(d.row.tenant_id, set()).add(d.meter_id)
            manufacturers.setdefault(d.row.tenant_id, set()).add(d.manufacturer)
    meters: dict[tuple[int, str, str], MeterState] = {}
    for tenant, id_set in sorted(by_tenant.items()):
        ids = sorted(id_set)
        in_mans, man_params = sql.isin("manufacturer", sorted(manufacturers[tenant]))
        for i in range(0, len(ids), CHUNK):
            # (tenant, manufacturer, id) is the unique index: all three narrow the look-up;
            # PostgreSQL locks the rows, tenant by tenant in meter-id order (so concurrent workers
            # lock in the same order and never deadlock)
            for m in sql.lookup(
                MeterState.COLUMNS,
                "meters",
                f"tenant_id = {{m}} AND {in_mans}",
                (tenant, *man_params),
                "meter_id",
                ids[i : i + CHUNK],
                lock=lock,
            ):
                meter = MeterState(m)
                meters[(tenant, meter.manufacturer, meter.meter_id)] = meter
    return meters


def _previous_readings(writer: BulkSql, readings: list[tuple[Outcome, StoredReading]]) -> dict[int, StoredReading]:
    """The meters' latest readings as their rows describe them (time, registers); loaded only
    for meters whose row has no registers (latest reading stored before they were kept)."""
    previous_by_id: dict[int, StoredReading] = {}
    to_load = set()
    for o, _r in readings:
        m, _prep = o.reading_parts()
        if m.last_reading_id is not None and m.last_reading_id not in previous_by_id:
            if isinstance(m.last_registers, dict) and m.last_reading_at is not None:
                previous_by_id[m.last_reading_id] = StoredReading(
                    m.last_reading_id,
                    m.tenant_id,
                    m.id,
                    None,
                    m.last_reading_at,
                    None,
                    {},
                    None,
                    None,
                    registers=m.last_registers,
                )
            else:
                to_load.add(m.last_reading_id)
    previous_by_id.update(load_readings(writer, sorted(to_load)))
    return previous_by_id


def _key_statuses(session: Session, outcomes: list[Outcome]) -> list[MeterState]:
    """The meters' last-heard times and key statuses from the outcomes. -> meters whose key is
    now `wrong` (a wrong_key alarm each)."""
    wrong_keys = []
    for o in outcomes:
        meter = o.meter
        if meter is None:
            continue
        if meter.last_heard_at is None or meter.last_heard_at < o.row.received_at:
            meter.last_heard_at, meter.last_heard_db, meter.dirty = o.row.received_at, o.row.received_db, True
        status = meter.key_status
        if o.state == "no_key":
            status = "missing"
        elif o.state == "wrong_key":
            # No CRC survives on stripped frames, so one corrupted frame of a meter whose key has
            # worked looks like a wrong key: first `suspect` (no alarm), `wrong` on a second
            # failure with no good decode between. A key that never decrypted anything is wrong now.
            if status == "present" and key_proven(session, meter):
                status = "suspect"
            else:
                status = "wrong"
                wrong_keys.append(meter)
        elif o.state == "decoded" and o.prepared is not None and o.prepared.encrypted:
            status = "present"
            meter.key_proven = True
        if status != meter.key_status:
            meter.key_status, meter.dirty = status, True
    return wrong_keys


def update_meters(
    session: Session, writer: BulkSql, outcomes: list[Outcome], readings: list[tuple[Outcome, StoredReading]]
) -> tuple[list[MeterState], list[ReadingCall]]:
    """The meters' bookkeeping (last heard, key status, latest reading), in one bulk UPDATE.
    -> (meters whose key turned wrong, the readings with the reading before each: for the alarms)."""
    previous_by_id = _previous_readings(writer, readings)
    wrong_keys = _key_statuses(session, outcomes)
    latest: dict[int, StoredReading | None] = {}
    calls = []
    for o, reading in readings:
        meter, prep = o.reading_parts()
        if meter.id not in latest:
            latest[meter.id] = previous_by_id.get(meter.last_reading_id)
        previous = latest[meter.id]
        # a late (spooled) reading is stored and compared, but the meter's latest stays the newer one
        if previous is None or reading.timestamp >= previous.timestamp:
            meter.last_reading_id, meter.dirty = reading.id, True
            meter.last_reading_at, meter.last_registers = reading.timestamp, reading.register_map()
            meter.last_reading_db = prep.timestamp_db
            latest[meter.id] = reading
        calls.append(ReadingCall(meter, reading, previous))
    changed = {m.id: m for m in (o.meter for o in outcomes) if m is not None and m.dirty}
    writer.update(
        "meters",
        ("last_heard_at", "last_reading_id", "key_status", "last_reading_at", "last_registers"),
        ("timestamptz", "bigint", "varchar", "timestamptz", "json"),
        [
            (
                m.last_heard_db,
                m.last_reading_id,
                m.key_status,
                m.last_reading_db,
                json_text(m.last_registers) if m.last_registers is not None else None,
                m.id,
            )
            for m in changed.values()
        ],
    )
    # the latest reading's view (reading_values.latest_view_json), for "latest of every meter"
    # without decoding again
    writer.update(
        "meters",
        ("last_data",),
        ("json",),
        [(r.view_json, meter_id) for meter_id, r in latest.items() if r is not None and r.view_json is not None],
    )
    return wrong_keys, calls


_SUMMARY_COLUMNS = (*VALUE_COLUMNS.values(), "error_flags", "status")


def load_readings(writer: BulkSql, ids: list[int]) -> dict[int, StoredReading]:
    """Stored readings by id, with what the alarm checks read of them: `data` is the summary of
    their typed columns (store/reading_values.py), not their fields."""
    out = {}
    columns = ", ".join(_SUMMARY_COLUMNS)
    for i in range(0, len(ids), CHUNK):
        isin, params = writer.isin("id", ids[i : i + CHUNK])
        for r in writer.rows(
            f'SELECT id, tenant_id, meter_pk, telegram_id, "timestamp", received_at, fingerprint, {columns} '
            f"FROM readings WHERE {isin}",
            params,
        ):
            data = summary_data(SimpleNamespace(**dict(zip(_SUMMARY_COLUMNS, r[7:], strict=True))))
            out[r[0]] = StoredReading(r[0], r[1], r[2], r[3], db_time_set(r[4]), db_time_set(r[5]), {}, data, r[6])
    return out


def key_proven(session: Session, meter: MeterState) -> bool:
    """Has the meter's current key (the one its telegrams are opened with) decrypted one of its
    telegrams? `present` alone does not say so: a key import sets it too. Asked only on a
    wrong_key outcome (rare), so the query costs nothing in normal batches."""
    if meter.key_proven is None:
        keys = dict(
            session.execute(
                select(MeterKey.manufacturer, MeterKey.created_at).where(
                    MeterKey.tenant_id == meter.tenant_id, MeterKey.meter_id == meter.meter_id
                )
            ).all()
        )
        since = applicable_key(keys, meter.manufacturer)
        meter.key_proven = (
            since is not None
            and session.scalar(
                select(Telegram.id)
                .where(
                    Telegram.meter_pk == meter.id,
                    Telegram.state.in_(("decoded", "duplicate")),
                    Telegram.decoded_at >= since,
                )
                .limit(1)
            )
            is not None
        )
    return meter.key_proven
