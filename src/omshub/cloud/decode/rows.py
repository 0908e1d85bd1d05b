"""Rows from decoded telegrams, written in the batch's write transaction: each telegram's outcome
(its state), duplicates, the readings and the telegrams' updates; the meters' bookkeeping (last
heard, key status, latest reading) is meter_bookkeeping.py's.

States: decoded | no_key | wrong_key | unknown_meter (heard, not registered in the tenant) |
invalid (not decodable; `error` says why) | duplicate (the same transmission again: same meter,
access number and plaintext, within DUPLICATE_WINDOW — another gateway or a repeater heard it).

A meter's key_status follows its telegrams: `present` after an encrypted good decode (or a key
import), `missing` on no_key, and on wrong_key: `suspect` (no alarm) when the key has decrypted its
telegrams before — a single corrupted CRC-less frame fails the same way — else, or when already
`suspect`, `wrong` with a wrong_key alarm.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omshub.cloud.decode.caches import Caches
from omshub.cloud.domain.alarms import error_causes
from omshub.cloud.domain.meter_time import ZoneRules, meter_clock, telegram_model
from omshub.cloud.domain.registers import registers
from omshub.cloud.store.database import BulkSql, db_json, db_time, db_time_set, json_text, time_to_db
from omshub.cloud.store.meter_zones import load_rules
from omshub.cloud.store.models import CompactFormat, Telegram
from omshub.cloud.store.reading_values import VALUE_COLUMNS, latest_view_json, typed_values
from omshub.codec import DecodeError

DUPLICATE_WINDOW = timedelta(hours=1)
FINGERPRINT_SIZE = 8  # bytes kept: compared only among one meter's readings within the window
CHUNK = 500  # ids per IN list
_WRONG_KEY_CODES = ("wrong_key", "mac_error")
_VALUE_COLUMNS = (*VALUE_COLUMNS.values(), "error_flags", "status", "meter_clock", "meter_version", "stored")
_READING_COLUMNS: tuple[str, ...] = ("id", "tenant_id", "meter_pk", "telegram_id", "timestamp", "received_at")
_READING_COLUMNS += ("fingerprint", *_VALUE_COLUMNS)
_READING_TYPES: tuple[str, ...] = ("bigint", "bigint", "bigint", "bigint", "timestamptz", "timestamptz", "bytea")
_READING_TYPES += ("float8",) * len(VALUE_COLUMNS) + ("bigint", "smallint", "varchar", "smallint", "bytea")
# The fingerprint hashes the records in the form readings stored them before migration 0007_store (a list of
# values for a record with exactly these keys), so a repeat across the upgrade is still found.
_RECORD_KEYS = ("quantity", "unit", "value", "storage", "tariff", "subunit", "function", "dif_vif")


class NewTelegram:
    """A telegram row selected for decoding."""

    __slots__ = ("id", "tenant_id", "gateway_id", "received_at", "received_db", "raw", "manufacturer", "meter_id")
    COLUMNS = "id, tenant_id, gateway_id, received_at, raw, manufacturer, meter_id"

    def __init__(self, row) -> None:
        (self.id, self.tenant_id, self.gateway_id, received_at, raw, self.manufacturer, self.meter_id) = row
        self.received_at = db_time_set(received_at)
        self.received_db = received_at  # as the driver gives it back: written back unchanged
        self.raw = bytes(raw)


def _record_rows(records):
    if type(records) is not list:
        return records
    rows = []
    for r in records:
        if type(r) is not dict:
            return records
        rows.append(list(r.values()) if tuple(r) == _RECORD_KEYS else r)
    return rows


def _fingerprint(access_number, records, manufacturer_data) -> bytes:
    """Same transmission <=> same access number and plaintext content."""
    body = orjson.dumps([access_number, _record_rows(records), manufacturer_data], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=16).digest()[:FINGERPRINT_SIZE]


class Prepared:
    """What a decoded telegram's reading needs that does not depend on the database: made while
    decoding, so that on SQLite the write transaction (which holds the one write lock) only
    writes. Times also as the driver stores them (`_db`). The decoded dict itself is not kept: a
    batch holding a thousand of them (~100 objects each) made every later allocation miss the
    CPU cache — the codec ran at half its speed. The alarm hooks that read it (rare) get it back
    from `data_json`."""

    __slots__ = (
        "fingerprint",
        "timestamp",
        "timestamp_db",
        "received_db",
        "fields_json",
        "data_json",
        "view_json",
        "reports_error",
        "registers",
        "encrypted",
        "clock",
        "model",
        "values",
    )

    def __init__(self, result: dict, row: NewTelegram) -> None:
        self.fingerprint = _fingerprint(
            result.get("access_number"), result.get("records"), result.get("manufacturer_data")
        )
        # the meter's own date-time, converted once its meter's zone is known (time_readings)
        self.clock = meter_clock(result)
        self.model = telegram_model(result)
        self.timestamp, self.timestamp_db = row.received_at, row.received_db
        self.received_db = row.received_db
        self.fields_json = json_text(result.get("fields") or {})
        self.data_json = json_text(result)
        # what meters.last_data keeps of it when it is its meter's latest (reading_values)
        self.view_json = latest_view_json(result)
        self.reports_error = bool(error_causes(result)[0])
        self.registers = registers(result)
        self.encrypted = bool((result.get("security") or {}).get("encrypted"))
        values = typed_values(result)
        self.values = tuple(values[c] for c in _VALUE_COLUMNS)


@dataclass(slots=True)
class Decoded:
    """A telegram of a batch as decoding left it: the address it decoded to (else the header
    peek's), and its reading's makings or the decode error."""

    row: NewTelegram
    error: DecodeError | None
    manufacturer: str | None
    meter_id: str | None
    prepared: Prepared | None


class MeterState:
    """A meter row as the batch sees and changes it (written back in one bulk UPDATE)."""

    __slots__ = (
        "id",
        "tenant_id",
        "manufacturer",
        "meter_id",
        "last_heard_at",
        "last_reading_id",
        "key_status",
        "last_reading_at",
        "last_registers",
        "last_heard_db",
        "last_reading_db",
        "dirty",
        "key_proven",
        "meter_timezone",
    )
    COLUMNS = (
        "id, tenant_id, manufacturer, meter_id, last_heard_at, last_reading_id, key_status, "
        "last_reading_at, last_registers, meter_timezone"
    )

    def __init__(self, row) -> None:
        (
            self.id,
            self.tenant_id,
            self.manufacturer,
            self.meter_id,
            last_heard_at,
            self.last_reading_id,
            self.key_status,
            last_reading_at,
            last_registers,
            self.meter_timezone,
        ) = row
        self.last_heard_at, self.last_heard_db = db_time(last_heard_at), last_heard_at
        self.last_reading_at, self.last_reading_db = db_time(last_reading_at), last_reading_at
        self.last_registers = db_json(last_registers)
        self.dirty = False
        self.key_proven: bool | None = None  # has its current key decrypted a telegram? (None: not looked up)


@dataclass(slots=True)
class Outcome:
    """What a decoded telegram becomes in the write transaction: its state (and error text), the
    meter it belongs to (None: not registered) and the address it is filed under."""

    row: NewTelegram
    state: str
    message: str | None
    meter: MeterState | None
    manufacturer: str | None
    meter_id: str | None
    prepared: Prepared | None

    def reading_parts(self) -> tuple[MeterState, Prepared]:
        """The meter and the reading's makings of a telegram decoded for a registered meter
        (state `decoded`: both are set)."""
        if self.meter is None or self.prepared is None:
            raise ValueError(f"telegram {self.row.id} ({self.state}) has no reading")
        return self.meter, self.prepared


class StoredReading:
    """A reading row just inserted, as passed to the alarm hooks (attribute names as `Reading`).
    `fields` and `data` may be given as their stored JSON, parsed when first read."""

    __slots__ = (
        "id",
        "tenant_id",
        "meter_pk",
        "telegram_id",
        "timestamp",
        "received_at",
        "_fields",
        "_data",
        "fingerprint",
        "reports_error",
        "registers",
        "_fields_json",
        "_data_json",
        "view_json",
    )

    def __init__(
        self,
        id: int,
        tenant_id: int,
        meter_pk: int,
        telegram_id: int | None,  # `id`: the column's name
        timestamp: datetime,
        received_at: datetime | None,
        fields: dict | None,
        data: dict | None,
        fingerprint: bytes | None,
        reports_error: bool | None = None,
        registers: dict | None = None,
        *,
        fields_json: str | None = None,
        data_json: str | None = None,
        view_json: str | None = None,
    ) -> None:
        self.id, self.tenant_id, self.meter_pk, self.telegram_id = id, tenant_id, meter_pk, telegram_id
        self.timestamp, self.received_at, self._fields, self._data = timestamp, received_at, fields, data
        self.fingerprint, self.reports_error, self.registers = fingerprint, reports_error, registers
        self._fields_json, self._data_json = fields_json, data_json
        self.view_json = view_json  # (reading_values.latest_view_json)

    @property
    def fields(self) -> dict:
        if self._fields is None:
            self._fields = orjson.loads(self._fields_json) if self._fields_json is not None else {}
        return self._fields

    @property
    def data(self) -> dict | None:
        """The decoded telegram (None: a summary of a reading stored earlier, see update_meters)."""
        if self._data is None and self._data_json is not None:
            self._data = orjson.loads(self._data_json)
        return self._data

    def register_map(self) -> dict[str, float]:
        """domain.registers.registers of the data (worked out once)."""
        if self.registers is None:
            self.registers = registers(self.data)
        return self.registers


@dataclass(slots=True)
class ReadingCall:
    """A stored reading for the alarm hooks: its meter and the meter's reading before it."""

    meter: MeterState
    reading: StoredReading
    previous: StoredReading | None


# --- states ---


def outcomes_of(decoded: list[Decoded], meters: dict) -> list[Outcome]:
    """Each telegram's state with the meters as they are now (in the write transaction)."""
    out = []
    for d in decoded:
        meter = meters.get((d.row.tenant_id, d.manufacturer, d.meter_id)) if d.manufacturer and d.meter_id else None
        error = d.error
        if d.prepared is not None or error is None:
            state, message = ("decoded", None) if meter is not None else ("unknown_meter", None)
        elif error.code == "no_key":
            state, message = ("no_key" if meter is not None else "unknown_meter"), error.message
        elif error.code in _WRONG_KEY_CODES:
            state, message = ("wrong_key" if meter is not None else "unknown_meter"), error.message
        else:
            state, message = "invalid", f"{error.code}: {error.message}"
        out.append(Outcome(d.row, state, message, meter, d.manufacturer, d.meter_id, d.prepared))
    return out


def retry_keys_changed_meanwhile(sql: BulkSql, outcomes: list[Outcome], seen: dict) -> None:
    """A telegram decoded without a key (or with the old one) while a key import for its meter
    committed would wait in no_key / wrong_key for good (the import's re-queue ran while it
    was still `new`): where the meter's key rows now differ from those the decoding read
    (`seen`: (tenant, meter id) -> [KeyRow]), it goes round again (`new`). Only those outcomes
    are checked, so a normal batch asks nothing."""
    waiting = [o for o in outcomes if o.state in ("no_key", "wrong_key")]
    if not waiting:
        return
    by_tenant: dict[int, set[str]] = {}
    for o in waiting:
        if o.meter_id is not None:  # (a meter's outcome: it has an address)
            by_tenant.setdefault(o.row.tenant_id, set()).add(o.meter_id)
    now_rows: dict[tuple[int, str], set] = {}
    for tenant, id_set in by_tenant.items():
        ids = sorted(id_set)
        for i in range(0, len(ids), CHUNK):
            for man, meter_id, nonce in sql.lookup(
                "manufacturer, meter_id, nonce",
                "meter_keys",
                "tenant_id = {m}",
                (tenant,),
                "meter_id",
                ids[i : i + CHUNK],
            ):
                now_rows.setdefault((tenant, meter_id), set()).add((man, bytes(nonce)))
    for o in waiting:
        key = (o.row.tenant_id, o.meter_id or "")
        before = {(k.manufacturer, k.nonce) for k in seen.get(key) or ()}
        if now_rows.get(key, set()) != before:
            o.state, o.message = "new", None


def retry_formats_learned_meanwhile(session: Session, decoded: list[Decoded]) -> None:
    """A compact frame decoded from a snapshot taken before another worker committed its
    meter's format would stay `invalid` (that worker's re-queue ran before this row was
    written): re-check in this write transaction and send such rows round again."""
    waiting: dict[tuple[int, str, str, int], list[int]] = {}
    for d in decoded:
        if d.error is not None and d.error.code == "unknown_format" and d.manufacturer and d.meter_id:
            compact = ((d.error.partial or {}).get("frame") or {}).get("compact") or {}
            try:
                signature = int(compact.get("signature", ""), 16)
            except ValueError:
                continue
            waiting.setdefault((d.row.tenant_id, d.manufacturer, d.meter_id, signature), []).append(d.row.id)
    for (tenant, manufacturer, meter_id, signature), ids in waiting.items():
        known = session.scalar(
            select(CompactFormat.id).where(
                CompactFormat.tenant_id == tenant,
                CompactFormat.manufacturer == manufacturer,
                CompactFormat.meter_id == meter_id,
                CompactFormat.signature == signature,
            )
        )
        if known is not None:
            session.execute(
                update(Telegram)
                .where(Telegram.id.in_(ids), Telegram.state == "invalid")
                .values(state="new", error=None)
                .execution_options(synchronize_session=False)
            )


def time_readings(session: Session, outcomes: list[Outcome], caches: Caches, server_zone: str) -> None:
    """The timestamps of the batch's readings: each meter clock converted with its meter's zone
    (meter > model > tenant > server setting, see domain/meter_time.py); the tenants' zone
    settings are read in this transaction, so a change applies from the next batch on."""
    timed = [o for o in outcomes if o.prepared is not None and o.meter is not None and o.prepared.clock is not None]
    if not timed:
        return
    rules = load_rules(session, {o.row.tenant_id for o in timed}, server_zone)
    for o in timed:
        meter, prep = o.reading_parts()
        if prep.clock is None:  # (filtered above)
            continue
        tenant_rules = rules.get(o.row.tenant_id) or ZoneRules(server_zone)
        zone = tenant_rules.zone_for(meter.meter_timezone, *prep.model)
        prep.timestamp, prep.timestamp_db = caches.meter_time(prep.clock, zone, o.row.received_at)


# --- duplicates ---


def _stored_fingerprints(sql: BulkSql, keys: list[tuple[int, datetime]], is_sqlite: bool) -> dict:
    """{(meter pk, fingerprint): [receive times]} of the stored readings of these meters within
    DUPLICATE_WINDOW of these times (a repeat of a transmission carries the same meter clock, so
    the same timestamp; without a clock its timestamp is its receive time, within the window).
    Through the (meter_pk, timestamp) index: no index of random fingerprints to keep."""
    seen: dict[tuple[int, bytes], list[datetime]] = {}
    to_db = time_to_db(is_sqlite)
    windows = sorted({(m, to_db(t - DUPLICATE_WINDOW), to_db(t + DUPLICATE_WINDOW)) for m, t in keys})
    # one index range per reading (SQLite: a VALUES list joined; PostgreSQL: a LATERAL look-up per
    # key, fenced by OFFSET 0 — as a plain join the planner may hash all readings)
    for i in range(0, len(windows), CHUNK):
        chunk = windows[i : i + CHUNK]
        if is_sqlite:
            query = (
                f"WITH k(meter_pk, lo, hi) AS (VALUES {', '.join(['(?, ?, ?)'] * len(chunk))}) "
                "SELECT DISTINCT r.id, r.meter_pk, r.fingerprint, r.received_at FROM k JOIN readings r "
                'ON r.meter_pk = k.meter_pk AND r."timestamp" >= k.lo AND r."timestamp" <= k.hi'
            )
            params: tuple = tuple(v for window in chunk for v in window)
        else:
            query = (
                "SELECT DISTINCT r.id, r.meter_pk, r.fingerprint, r.received_at FROM unnest(%s::bigint[], "
                "%s::timestamptz[], %s::timestamptz[]) AS k(m, lo, hi) CROSS JOIN LATERAL (SELECT id, meter_pk, "
                'fingerprint, received_at FROM readings WHERE meter_pk = k.m AND "timestamp" >= k.lo '
                'AND "timestamp" <= k.hi OFFSET 0) r'
            )
            params = ([w[0] for w in chunk], [w[1] for w in chunk], [w[2] for w in chunk])
        for _id, meter_pk, fingerprint, received_at in sql.rows(query, params):
            if fingerprint is not None:
                key = (meter_pk, bytes(fingerprint)[:FINGERPRINT_SIZE])
                seen.setdefault(key, []).append(db_time_set(received_at))
    return seen


def mark_duplicates(sql: BulkSql, outcomes: list[Outcome], is_sqlite: bool) -> None:
    decoded = [(o, *o.reading_parts()) for o in outcomes if o.state == "decoded"]
    if not decoded:
        return
    # a meter without a latest reading has none stored at all: nothing to ask
    keys = [(m.id, prep.timestamp) for _o, m, prep in decoded if m.last_reading_id is not None]
    seen = _stored_fingerprints(sql, keys, is_sqlite)
    for o, m, prep in decoded:
        rx = o.row.received_at
        times = seen.setdefault((m.id, prep.fingerprint), [])
        if any(abs(rx - t) <= DUPLICATE_WINDOW for t in times):
            o.state, o.message = "duplicate", "same transmission already decoded (another gateway or a repeat)"
        else:
            times.append(rx)


# --- writing ---


def write_readings_and_telegrams(
    writer: BulkSql, outcomes: list[Outcome], now: datetime
) -> list[tuple[Outcome, StoredReading]]:
    """The readings of the decoded telegrams and every telegram's new state. -> the readings."""
    decoded = [o for o in outcomes if o.state == "decoded"]
    readings: list[tuple[Outcome, StoredReading]] = []
    if decoded:
        rows = []
        for o, reading_id in zip(decoded, writer.new_ids("readings", len(decoded)), strict=True):
            row, (meter, prep) = o.row, o.reading_parts()
            stored = StoredReading(
                reading_id,
                row.tenant_id,
                meter.id,
                row.id,
                prep.timestamp,
                row.received_at,
                None,
                None,
                prep.fingerprint,
                prep.reports_error,
                prep.registers,
                fields_json=prep.fields_json,
                data_json=prep.data_json,
                view_json=prep.view_json,
            )
            readings.append((o, stored))
            rows.append(
                (
                    reading_id,
                    row.tenant_id,
                    meter.id,
                    row.id,
                    prep.timestamp_db,
                    prep.received_db,
                    prep.fingerprint,
                    *prep.values,
                )
            )
        writer.insert("readings", _READING_COLUMNS, _READING_TYPES, rows)
    at = writer.time(now)
    writer.update(
        "telegrams",
        ("state", "error", "decoded_at", "meter_pk"),
        ("varchar", "text", "timestamptz", "bigint"),
        [
            (
                o.state,
                o.message,
                at if o.state != "new" else None,
                o.meter.id if o.meter is not None else None,
                o.row.id,
                o.row.received_db,
            )
            for o in outcomes
        ],
        time_key="received_at",  # (PostgreSQL: the partition of each telegram, store/partitions.py)
    )
    # the address as decoded, where the header peek read another (a long TPL's): a separate
    # statement, since SQLite rewrites the (tenant, manufacturer, id) index entry of every row
    # whose UPDATE names these columns, changed or not
    writer.update(
        "telegrams",
        ("manufacturer", "meter_id"),
        ("varchar", "varchar"),
        [
            (o.manufacturer, o.meter_id, o.row.id, o.row.received_db)
            for o in outcomes
            if o.manufacturer != o.row.manufacturer or o.meter_id != o.row.meter_id
        ],
        time_key="received_at",
    )
    return readings
