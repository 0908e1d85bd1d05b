"""Retention: how long each tenant keeps raw uplink bodies, raw telegrams and
readings, and the job that enforces it (`apply_retention`, run by the maintenance command).

Billing data is evidence, so the defaults are long and there are floors no policy goes below:

| kind            | default      | floor        | why |
|-----------------|--------------|--------------|-----|
| `readings`      | 10 years     | 10 years     | billing and the yearly comparisons look back years |
| `telegrams`     | 2 years      | 2 years      | the raw evidence of a billing period (1 year) + 1 year for disputes |
| `uplink_bodies` | 90 days      | 7 days       | the envelope as received; its telegrams are stored on their own |

What retention removes, and what it never removes:
* an uplink body is emptied (`body` = b"", `body_dropped_at` set); the row (seq, times, hash)
  stays, so a retried upload is still recognised; the telegrams whose bytes a kept body leaves to
  them (store/uplink_bodies.py) stay while it is kept;
* a raw telegram is deleted only when it is `decoded` or `duplicate` (a telegram not yet decoded —
  new, waiting for a key, a meter or a format — stays whatever its age) and it is not the telegram
  of a meter's latest reading; readings made from it keep their values (`telegram_id` set NULL;
  the API then shows the typed values only);
* a reading is deleted unless it is a meter's latest reading (`meters.last_reading_id`);
* on PostgreSQL a whole month of telegrams (a partition, store/partitions.py) is dropped at once
  where every row in it may go by these rules for every tenant with rows in it;
* nothing at or after a tenant's protection horizon: the earliest "keep everything since" any
  registered protector asks for (an open billing period, a value not yet exported: billing
  periods arrive with a later issue and register themselves with `register_protector`).

Every run writes one audit entry per tenant with what it removed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Meter, Reading, RetentionPolicy, Telegram, Tenant, Uplink
from omshub.cloud.store.partitions import is_partitioned, partitions

KINDS = ("uplink_bodies", "telegrams", "readings")
DEFAULT_DAYS = {"uplink_bodies": 90, "telegrams": 731, "readings": 3653}
MIN_DAYS = {"uplink_bodies": 7, "telegrams": 731, "readings": 3653}
# telegrams retention may delete: those decoded into a reading or filed as a repeat of one
_FINISHED_STATES = ("decoded", "duplicate")
BATCH = 2000  # rows per statement and transaction: a run never holds a lock for long

# A protector: (session, tenant id, now) -> the time from which the tenant's data must all be
# kept (None: it protects nothing of this tenant)
Protector = Callable[[Session, int, datetime], datetime | None]
_protectors: dict[str, Protector] = {}


class RetentionError(ValueError):
    """A retention policy that is not allowed (unknown kind, below the floor)."""


def register_protector(name: str, protector: Protector) -> None:
    """Register (or replace) a protector under `name`."""
    _protectors[name] = protector


def unregister_protector(name: str) -> None:
    _protectors.pop(name, None)


def protected_since(session: Session, tenant_id: int, now: datetime) -> datetime | None:
    """The earliest time any protector asks to keep for this tenant (None: none asks)."""
    horizons = [h for h in (p(session, tenant_id, now) for p in list(_protectors.values())) if h is not None]
    return min(horizons) if horizons else None


def set_policy(session: Session, tenant_id: int, kind: str, keep_days: int, *, actor: str, now: datetime) -> None:
    """Set how long a tenant keeps one kind (audited). Raises RetentionError below the floor."""
    if kind not in KINDS:
        raise RetentionError(f"retention kind {kind!r}: one of {', '.join(KINDS)}")
    if not isinstance(keep_days, int) or keep_days < MIN_DAYS[kind]:
        raise RetentionError(f"retention of {kind}: at least {MIN_DAYS[kind]} days, not {keep_days!r}")
    row = session.scalar(
        select(RetentionPolicy).where(RetentionPolicy.tenant_id == tenant_id, RetentionPolicy.kind == kind)
    )
    before = row.keep_days if row is not None else None
    if row is None:
        session.add(RetentionPolicy(tenant_id=tenant_id, kind=kind, keep_days=keep_days, updated_at=now))
    else:
        row.keep_days, row.updated_at = keep_days, now
    audit(session, tenant_id, actor, "retention.policy", {"kind": kind, "keep_days": keep_days, "before": before})


def policies(session: Session, tenant_id: int) -> dict[str, int]:
    """{kind: days kept} of a tenant (the defaults where it set none)."""
    out = dict(DEFAULT_DAYS)
    for kind, days in session.execute(
        select(RetentionPolicy.kind, RetentionPolicy.keep_days).where(RetentionPolicy.tenant_id == tenant_id)
    ):
        if kind in out:
            out[kind] = max(days, MIN_DAYS[kind])
    return out


def cutoffs(session: Session, tenant_id: int, now: datetime) -> dict[str, datetime]:
    """{kind: remove what is older than this} for a tenant, with its protection horizon applied."""
    keep = policies(session, tenant_id)
    horizon = protected_since(session, tenant_id, now)
    out = {}
    for kind in KINDS:
        cut = now - timedelta(days=keep[kind])
        out[kind] = min(cut, horizon) if horizon is not None else cut
    return out


def apply_retention(session_factory: Callable[[], Session], *, now: datetime, batch: int = BATCH) -> dict:
    """Enforce every tenant's retention. `session_factory()`: a new Session (a context manager);
    each batch is its own transaction. -> {tenant id: {kind: rows removed or emptied}}."""
    with session_factory() as session:
        tenants = list(session.scalars(select(Tenant.id).order_by(Tenant.id)))
        cuts = {tenant_id: cutoffs(session, tenant_id, now) for tenant_id in tenants}
    # bodies first: a telegram whose frames a kept body leaves to it stays while the body does
    bodies = {t: _drop_bodies(session_factory, t, cuts[t]["uplink_bodies"], now, batch) for t in tenants}
    dropped, partitions = _drop_partitions(session_factory, now)
    result: dict[int, dict[str, int]] = {}
    for tenant_id in tenants:
        cut = cuts[tenant_id]
        counts = {
            "uplink_bodies": bodies[tenant_id],
            "telegrams": dropped.get(tenant_id, 0)
            + _delete_telegrams(session_factory, tenant_id, cut["telegrams"], batch),
            "readings": _delete_readings(session_factory, tenant_id, cut["readings"], batch),
        }
        with session_factory() as session:
            details: dict = {**counts, "cutoffs": {k: v.isoformat() for k, v in cut.items()}}
            if tenant_id in dropped:
                details["partitions_dropped"] = partitions
            audit(session, tenant_id, "retention", "retention.apply", details)
            session.commit()
        result[tenant_id] = counts
    return result


def _in_batches(session_factory, ids_query, apply: Callable[[Session, list[int]], None], batch: int) -> int:
    """Run `apply` on the ids `ids_query` selects, `batch` at a time, each in its own transaction."""
    total = 0
    while True:
        with session_factory() as session:
            ids = list(session.scalars(ids_query.limit(batch)))
            if not ids:
                return total
            apply(session, ids)
            session.commit()
        total += len(ids)
        if len(ids) < batch:
            return total


def _drop_bodies(session_factory, tenant_id: int, cut: datetime, now: datetime, batch: int) -> int:
    query = (
        select(Uplink.id)
        .where(Uplink.tenant_id == tenant_id, Uplink.received_at < cut, Uplink.body_dropped_at.is_(None))
        .order_by(Uplink.id)
    )

    def apply(session: Session, ids: list[int]) -> None:
        session.execute(
            update(Uplink)
            .where(Uplink.id.in_(ids))
            .values(body=b"", body_dropped_at=now, frames_cut_at=None, frames_after_id=None)
        )

    return _in_batches(session_factory, query, apply, batch)


def _drop_partitions(session_factory, now: datetime) -> tuple[dict[int, int], list[str]]:
    """PostgreSQL: whole monthly partitions of telegrams (store/partitions.py) dropped where every
    row in them may go — the month lies before the telegram cutoff of every tenant with rows in
    it (their protection horizons applied), and none of its telegrams waits for a decode, is a
    meter's latest reading's or holds the frames of a kept uplink body. One DROP TABLE instead
    of a delete per row. -> ({tenant id: telegrams dropped}, partition names)."""
    counts: dict[int, int] = {}
    names: list[str] = []
    with session_factory() as session:
        conn = session.connection()
        if conn.dialect.name == "sqlite" or not is_partitioned(conn, "telegrams"):
            return counts, names
        months = [(name, hi) for name, lo, hi in partitions(conn, "telegrams") if hi is not None and hi <= now]
    for name, hi in months:
        with session_factory() as session:
            conn = session.connection()
            per_tenant = dict(
                conn.exec_driver_sql(f'SELECT tenant_id, count(*) FROM "{name}" GROUP BY tenant_id').all()
            )
            if not per_tenant or any(hi > cutoffs(session, t, now)["telegrams"] for t in per_tenant):
                continue
            blocked = conn.exec_driver_sql(
                f'SELECT 1 FROM "{name}" t WHERE t.state <> ALL(%s) OR t.id IN (SELECT r.telegram_id FROM meters m '
                "JOIN readings r ON r.id = m.last_reading_id WHERE r.telegram_id IS NOT NULL) OR EXISTS (SELECT 1 "
                "FROM uplinks u WHERE u.id = t.uplink_id AND u.frames_cut_at IS NOT NULL "
                "AND u.body_dropped_at IS NULL) LIMIT 1",
                (list(_FINISHED_STATES),),
            ).first()
            if blocked:
                continue
            # the readings keep their values; their telegram is gone (the BRIN index of telegram ids)
            conn.exec_driver_sql(
                f'UPDATE readings SET telegram_id = NULL WHERE telegram_id BETWEEN (SELECT min(id) FROM "{name}") '
                f'AND (SELECT max(id) FROM "{name}") AND telegram_id IN (SELECT id FROM "{name}")'
            )
            conn.exec_driver_sql(f'ALTER TABLE telegrams DETACH PARTITION "{name}"')
            conn.exec_driver_sql(f'DROP TABLE "{name}"')
            session.commit()
        names.append(name)
        for tenant_id, n in per_tenant.items():
            counts[tenant_id] = counts.get(tenant_id, 0) + n
    return counts, names


def _delete_telegrams(session_factory, tenant_id: int, cut: datetime, batch: int) -> int:
    latest_telegrams = (
        select(Reading.telegram_id)
        .join(Meter, Meter.last_reading_id == Reading.id)
        .where(Meter.tenant_id == tenant_id, Reading.telegram_id.is_not(None))
    )
    # the frames of a body still kept whole only together with them (store/uplink_bodies.py)
    cut_bodies = select(Uplink.id).where(
        Uplink.id == Telegram.uplink_id, Uplink.frames_cut_at.is_not(None), Uplink.body_dropped_at.is_(None)
    )
    query = (
        select(Telegram.id)
        .where(
            Telegram.tenant_id == tenant_id,
            Telegram.received_at < cut,
            Telegram.state.in_(_FINISHED_STATES),
            Telegram.id.not_in(latest_telegrams),
            ~cut_bodies.exists(),
        )
        .order_by(Telegram.id)
    )

    def apply(session: Session, ids: list[int]) -> None:
        # the readings stay (their own retention is longer): they keep their typed values
        session.execute(
            update(Reading)
            .where(Reading.tenant_id == tenant_id, Reading.telegram_id.in_(ids))
            .values(telegram_id=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(Telegram).where(Telegram.id.in_(ids)).execution_options(synchronize_session=False))

    return _in_batches(session_factory, query, apply, batch)


def _delete_readings(session_factory, tenant_id: int, cut: datetime, batch: int) -> int:
    latest = select(Meter.last_reading_id).where(Meter.tenant_id == tenant_id, Meter.last_reading_id.is_not(None))
    query = (
        select(Reading.id)
        .where(Reading.tenant_id == tenant_id, Reading.timestamp < cut, Reading.id.not_in(latest))
        .order_by(Reading.timestamp, Reading.id)
    )

    def apply(session: Session, ids: list[int]) -> None:
        session.execute(delete(Reading).where(Reading.id.in_(ids)).execution_options(synchronize_session=False))

    return _in_batches(session_factory, query, apply, batch)


def stored_counts(session: Session, tenant_id: int) -> dict[str, int]:
    """How many rows of each kind a tenant holds (uplink bodies: those not emptied)."""
    return {
        "uplink_bodies": session.scalar(
            select(func.count()).where(Uplink.tenant_id == tenant_id, Uplink.body_dropped_at.is_(None))
        )
        or 0,
        "telegrams": session.scalar(select(func.count()).where(Telegram.tenant_id == tenant_id)) or 0,
        "readings": session.scalar(select(func.count()).where(Reading.tenant_id == tenant_id)) or 0,
    }
