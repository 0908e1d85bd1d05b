"""Retention (store/retention.py): per tenant and kind, floors, the protection horizon, the latest
reading of each meter and telegrams not yet decoded always kept, audited."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, update

from omshub.cloud.store.models import AuditEntry, Meter, Reading, Telegram, Uplink
from omshub.cloud.store.retention import (
    DEFAULT_DAYS,
    RetentionError,
    apply_retention,
    cutoffs,
    register_protector,
    set_policy,
    stored_counts,
    unregister_protector,
)

from .domain_fixtures import T0, days, gateway, meter, reading, tenant

NOW = T0 + days(12 * 365)  # twelve years after the first reading


def _history(s, t, m, start, n, step):
    """n readings of `m` from `start` every `step`; the meter's latest is the last of them."""
    rows = [reading(s, m, start + step * i, energy=float(i)) for i in range(n)]
    s.execute(update(Meter).where(Meter.id == m.id).values(last_reading_id=rows[-1].id))
    return rows


def _waiting_telegram(s, t, at):
    gw = gateway(s, t)
    up = Uplink(
        tenant_id=t.id,
        gateway_id=gw.id,
        seq=1,
        received_at=at,
        content_type="application/json",
        body=b"{}",
        telegram_count=1,
        response={},
    )
    s.add(up)
    s.flush()
    tg = Telegram(
        tenant_id=t.id,
        gateway_id=gw.id,
        uplink_id=up.id,
        received_at=at,
        raw=b"waiting",
        raw_hash=hashlib.sha256(b"waiting").digest(),
        state="no_key",
    )
    s.add(tg)
    s.flush()
    return tg.id


def test_defaults_and_floors(db):
    with db.transaction() as s:
        t = tenant(s, "floors")
        cut = cutoffs(s, t.id, NOW)
        assert cut["readings"] == NOW - days(DEFAULT_DAYS["readings"]) and DEFAULT_DAYS["readings"] >= 3652
        assert cut["telegrams"] == NOW - days(DEFAULT_DAYS["telegrams"]) and DEFAULT_DAYS["telegrams"] >= 730
        with pytest.raises(RetentionError, match="at least"):
            set_policy(s, t.id, "readings", 365, actor="test", now=NOW)
        with pytest.raises(RetentionError, match="kind"):
            set_policy(s, t.id, "alarms", 9999, actor="test", now=NOW)
        set_policy(s, t.id, "uplink_bodies", 30, actor="test", now=NOW)
        assert cutoffs(s, t.id, NOW)["uplink_bodies"] == NOW - days(30)
        assert s.scalar(select(AuditEntry.details).where(AuditEntry.action == "retention.policy"))["keep_days"] == 30


def test_retention_removes_old_data_but_keeps_latest_waiting_and_other_tenants(db):
    with db.transaction() as s:
        t, other = tenant(s, "ret"), tenant(s, "keep")
        m, quiet = meter(s, t), meter(s, t)
        rows = _history(s, t, m, T0, 12, days(365))  # one reading a year for 12 years
        (old_latest,) = _history(s, t, quiet, T0, 1, days(1))  # a meter silent for 12 years
        waiting = _waiting_telegram(s, t, T0)
        _history(s, other, meter(s, other), T0, 3, days(1))
        tenant_id, other_id = t.id, other.id
        before_other = stored_counts(s, other_id)
    with db.transaction() as s:
        set_policy(s, other_id, "readings", 100 * 365, actor="test", now=NOW)
        set_policy(s, other_id, "telegrams", 100 * 365, actor="test", now=NOW)
        set_policy(s, other_id, "uplink_bodies", 100 * 365, actor="test", now=NOW)
    result = apply_retention(db.session, now=NOW, batch=3)
    with db.session() as s:
        kept = {r.id: r for r in s.scalars(select(Reading).where(Reading.tenant_id == tenant_id))}
        # readings: older than 10 years go, the latest of each meter stays whatever its age
        assert set(kept) == {r.id for r in rows[2:]} | {old_latest.id}
        # telegrams: older than 2 years go (their readings keep their values), except the latest
        # reading's and the one still waiting for a key
        telegrams = set(s.scalars(select(Telegram.id).where(Telegram.tenant_id == tenant_id)))
        assert waiting in telegrams and kept[old_latest.id].telegram_id in telegrams
        assert kept[rows[5].id].telegram_id is None and kept[rows[5].id].energy == 5.0
        assert kept[rows[-1].id].telegram_id in telegrams
        # uplink bodies older than 90 days are emptied, the rows stay
        dropped = s.scalars(select(Uplink).where(Uplink.tenant_id == tenant_id, Uplink.body_dropped_at.is_not(None)))
        assert all(u.body == b"" for u in dropped)
        assert stored_counts(s, other_id) == before_other
        entry = s.scalar(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "retention.apply")
        )
        assert entry.details["readings"] == 2 and entry.details["readings"] == result[tenant_id]["readings"]
        assert result[tenant_id]["telegrams"] == 10  # the readings of years 0-9 (the latest and the waiting one stay)
    assert result[other_id] == {"uplink_bodies": 0, "telegrams": 0, "readings": 0}


def test_a_protector_keeps_everything_since_its_horizon(db):
    with db.transaction() as s:
        t = tenant(s, "protected")
        m = meter(s, t)
        rows = _history(s, t, m, T0, 12, days(365))
        tenant_id = t.id
    # e.g. an open billing period that began with the second reading, or a value not yet exported
    register_protector("open-period", lambda _s, tid, _now: T0 + days(365) if tid == tenant_id else None)
    try:
        result = apply_retention(db.session, now=NOW)
    finally:
        unregister_protector("open-period")
    with db.session() as s:
        ids = set(s.scalars(select(Reading.id).where(Reading.tenant_id == tenant_id)))
        assert ids == {r.id for r in rows[1:]}  # only the first reading was before the horizon
        assert s.scalar(select(Telegram.id).where(Telegram.id == rows[1].telegram_id)) is not None
    assert result[tenant_id]["readings"] == 1 and result[tenant_id]["telegrams"] == 1
