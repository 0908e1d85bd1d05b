"""HeizkostenV §6b in the customer portal: an occupant's account is locked a while after the last
move-out and removed later (account, sessions, read log), by the maintenance task `omshub serve` runs
daily and `omshub admin maintenance --task portal_accounts`; audited. Consent to export a
customer's history to a named energy-service provider (FFVAV §5(4)): recorded, withdrawn, and the
export refused without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from omshub.cloud.services.customer_portal import accept, invite, log_read, new_session
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.services.maintenance import TASKS, run_maintenance
from omshub.cloud.store.models import AuditEntry
from omshub.cloud.store.models_customers import PortalAccount, PortalRead, PortalSession
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW

CARL_OUT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)  # Carl left WE03 on 15 Nov 2026


def _accounts(db, tenant_id):
    with db.transaction() as s:
        sc = customer_scenario.build(s, tenant_id)
        ids = {}
        for name in ("Carl", "Anna"):
            account, token = invite(s, tenant_id, sc.occupants[name], actor="t", now=NOW)
            accept(s, token, "lange genug 123", NOW)
            new_session(s, account, NOW)
            log_read(s, account, "months", NOW)
            ids[name] = account.id
    return sc, ids


def _state(db, account_id):
    with db.session() as s:
        account = s.get(PortalAccount, account_id)
        sessions = s.scalar(
            select(func.count()).select_from(PortalSession).where(PortalSession.account_id == account_id)
        )
        reads = s.scalar(select(func.count()).select_from(PortalRead).where(PortalRead.account_id == account_id))
        if account is None:
            return None, sessions, reads
        return account.locked_at, sessions, reads


def test_accounts_are_locked_then_removed_after_moving_out_by_the_maintenance(db, hub):
    assert "portal_accounts" in [name for name, _ in TASKS]  # what `omshub serve` runs daily
    t = hub.tenant()
    sc, ids = _accounts(db, t.id)
    with db.transaction() as s:
        update_settings(s, t.id, {"lock_after_days": 30, "remove_after_days": 100}, actor="t", now=NOW)

    def run(at):
        (result,) = run_maintenance(db, at, ["portal_accounts"])
        assert result.ok, result.error
        return result.details["tenants"].get(t.id)

    assert run(NOW) is None  # Carl left 20 days ago
    assert _state(db, ids["Carl"]) == (None, 1, 1)
    later = CARL_OUT + timedelta(days=32)
    assert run(later) == {"locked": 1, "removed": 0}
    assert _state(db, ids["Carl"]) == (later, 0, 1)  # locked, logged out; the read log still there
    assert run(later + timedelta(days=1)) is None  # nothing twice
    removal = CARL_OUT + timedelta(days=102)
    assert run(removal) == {"locked": 0, "removed": 1}
    assert _state(db, ids["Carl"]) == (None, 0, 0)  # account, sessions, reads gone
    assert _state(db, ids["Anna"]) == (None, 1, 1)  # still living there: untouched
    with db.session() as s:
        entries = s.scalars(
            select(AuditEntry).where(
                AuditEntry.tenant_id == t.id, AuditEntry.action.in_(["portal.lock", "portal.remove"])
            )
        ).all()
        assert [(e.action, e.details["account_id"]) for e in entries] == [
            ("portal.lock", ids["Carl"]),
            ("portal.remove", ids["Carl"]),
        ]
        assert entries[1].details == {
            "account_id": ids["Carl"],
            "occupant_id": sc.occupants["Carl"],
            "moved_out": "2026-11-15",
            "reads_removed": 1,
        }


def test_retention_days_are_checked(client, hub):
    h = hub.headers(hub.tenant(), "admin")
    r = client.patch("/api/v1/customer-info/settings", json={"remove_after_days": -1}, headers=h)
    assert r.status_code == 422
    r = client.patch("/api/v1/customer-info/settings", json={"remove_after_days": 30}, headers=h)
    assert r.status_code == 200 and r.json()["remove_after_days"] == 30
    defaults = client.get("/api/v1/customer-info/settings", headers=hub.headers(hub.tenant(), "admin")).json()
    assert (defaults["lock_after_days"], defaults["remove_after_days"]) == (60, 90)
