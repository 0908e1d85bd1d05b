"""Telegram states and re-queueing: which telegrams go back to `new` to be decoded again.

States: new | decoded | no_key | wrong_key | unknown_meter (heard, not registered in the tenant) |
invalid (not decodable; `error` says why) | duplicate (the same transmission again). no_key,
wrong_key and unknown_meter wait: `requeue_waiting` sets them back to `new` after a key import or
a meter registration; `requeue_states` after a decoder upgrade.
"""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from omshub.cloud.store.database import BulkSql
from omshub.cloud.store.models import REDECODABLE_SQL, REDECODABLE_STATES, Telegram

WAITING_STATES = ("no_key", "wrong_key", "unknown_meter")
CHUNK = 500  # ids per IN list


def requeue_waiting(session: Session, tenant_id: int, meters: list[tuple[str | None, str]] | None = None) -> int:
    """Telegrams of the tenant waiting in no_key / unknown_meter / wrong_key (only those of `meters`,
    given as (manufacturer | None, meter id), or all) go back to `new`. -> how many."""
    base = (
        update(Telegram)
        .where(Telegram.tenant_id == tenant_id, text(REDECODABLE_SQL), Telegram.state.in_(WAITING_STATES))
        .values(state="new", error=None)
        .execution_options(synchronize_session=False)
    )
    if meters is None:
        return session.execute(base).rowcount or 0  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
    ids = sorted({meter_id.upper() for _man, meter_id in meters})
    sql = BulkSql(session, session.get_bind().dialect.name == "sqlite")
    waiting = ", ".join(f"'{state}'" for state in WAITING_STATES)
    total = 0
    for i in range(0, len(ids), CHUNK):
        # the id alone selects (a different manufacturer's meter with the same id just waits again);
        # REDECODABLE_SQL: through the index of such telegrams, not the meters' whole history
        isin, params = sql.isin("meter_id", ids[i : i + CHUNK])
        total += (
            sql.conn.exec_driver_sql(
                f"UPDATE telegrams SET state = 'new', error = NULL WHERE tenant_id = {sql.mark} "
                f"AND {REDECODABLE_SQL} AND state IN ({waiting}) AND {isin}",
                (tenant_id, *params),
            ).rowcount
            or 0
        )
    return total


def requeue_states(session: Session, tenant_id: int, states: tuple[str, ...] = REDECODABLE_STATES) -> int:
    """Telegrams of the tenant in `states` (never `decoded`/`duplicate`: they have their reading)
    back to `new`, e.g. after a decoder upgrade learned a format. -> how many."""
    bad = set(states) - set(REDECODABLE_STATES)
    if bad:
        raise ValueError(
            f"only {', '.join(REDECODABLE_STATES)} telegrams can be decoded again, not {', '.join(sorted(bad))}"
        )
    return (
        session.execute(  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
            update(Telegram)
            .where(Telegram.tenant_id == tenant_id, text(REDECODABLE_SQL), Telegram.state.in_(states))
            .values(state="new", error=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )


def requeue_unknown_formats(sql: BulkSql, tenant_id: int, meter_ids: list[str], dialect: str) -> None:
    """Compact frames of these meters that came before any full frame of theirs (`invalid`,
    unknown_format) go back to `new`: their format has just been learned. Found through the index
    of telegrams to decode again (REDECODABLE_SQL)."""
    like = "unknown_format:%" if dialect == "sqlite" else "unknown_format:%%"
    ids = sorted(set(meter_ids))
    for i in range(0, len(ids), CHUNK):
        isin, params = sql.isin("meter_id", ids[i : i + CHUNK])
        sql.conn.exec_driver_sql(
            f"UPDATE telegrams SET state = 'new', error = NULL WHERE {REDECODABLE_SQL} AND state = 'invalid' "
            f"AND tenant_id = {sql.mark} AND {isin} AND error LIKE '{like}'",
            (tenant_id, *params),
        )
