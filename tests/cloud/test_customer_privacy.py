"""HeizkostenV §6b in the customer portal: an occupant's account is locked a while after the last
move-out and removed later (account, sessions, read log), by the maintenance task `omshub serve` runs
daily and `omshub admin maintenance --task portal_accounts`; audited. Consent to export a
customer's history to a named energy-service provider (FFVAV §5(4)): recorded, withdrawn, and the
export refused without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from omshub.cloud.services.customer_portal import accept, invite, log_read, new_session
from omshub.cloud.services.customer_records import build_month
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


def test_history_export_to_a_named_provider_only_with_recorded_consent(client, hub, db):
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        build_month(s, t.id, "2026-10", actor="t", now=NOW)
        build_month(s, t.id, "2026-11", actor="t", now=NOW)
        account, token = invite(s, t.id, sc.occupants["Anna"], actor="t", now=NOW)
        accept(s, token, "lange genug 123", NOW)
    op = hub.headers(t, "operator")
    anna = sc.occupants["Anna"]
    body = {
        "occupant_id": anna,
        "provider": "Energieberatung Nord GmbH",
        "provider_contact": "daten@eb-nord.example",
        "scope": {"from": "2026-11", "to": "2026-11", "kinds": ["heat"]},
        "evidence": "unterschriebenes Formular vom 01.12.2026",
    }
    with time_machine.travel(NOW, tick=False):
        bad = client.post(
            "/api/v1/customer-info/consents", json={**body, "scope": {"from": "2026-13", "to": "x"}}, headers=op
        )
        assert bad.status_code == 422 and "scope.from" in bad.text
        assert (
            client.post("/api/v1/customer-info/consents", json=body, headers=hub.headers(t, "viewer")).status_code
            == 403
        )
        r = client.post("/api/v1/customer-info/consents", json=body, headers=op)
        assert r.status_code == 200, r.text
        given = r.json()
        assert given["given_by"] and given["evidence"] == body["evidence"]
        assert given["in_force"] and given["scope"] == {"from": "2026-11", "to": "2026-11", "kinds": ["heat"]}
        url = f"/api/v1/customer-info/consents/{given['id']}/export"
        data = client.get(url, headers=op).json()
        # only November (the scope), only heat, only Anna's own record
        assert data["rows"] == [
            {
                "month": "2026-11",
                "unit": "WE01",
                "day_from": "2026-11-01",
                "day_to": "2026-11-30",
                "kind": "heat",
                "value": 500.0,
                "unit_of_measure": "kWh",
                "status": "measured",
                "revision": 1,
            }
        ]
        assert data["customer"]["name"] == "Anna" and data["consent"]["provider"] == "Energieberatung Nord GmbH"
        csv_text = client.get(url, params={"format": "csv"}, headers=op)
        assert csv_text.headers["content-type"].startswith("text/csv")
        assert csv_text.text.splitlines() == [
            "month,unit,day_from,day_to,kind,value,unit_of_measure,status,revision",
            "2026-11,WE01,2026-11-01,2026-11-30,heat,500.0,kWh,measured,1",
        ]
        # another tenant's operator finds nothing
        other = hub.headers(hub.tenant(), "operator")
        assert client.get(url, headers=other).status_code == 404

        # the occupant sees and withdraws it in the portal; then no export
        x = {"X-Portal": "1"}
        login = {"tenant": t.slug, "email": "anna@example.de", "password": "lange genug 123"}
        assert client.post("/portal/api/login", json=login, headers=x).status_code == 200
        mine = client.get("/portal/api/consents").json()
        assert [c["id"] for c in mine] == [given["id"]]
        r = client.post(
            "/portal/api/consents",
            json={"provider": "Sparberatung", "scope": {"from": "2026-10", "to": "2026-11"}},
            headers=x,
        )
        assert r.status_code == 200 and r.json()["given_by"] == f"portal:{account.id}"
        assert r.json()["scope"]["kinds"] == ["heat", "hot_water", "hca"]
        r = client.post(f"/portal/api/consents/{given['id']}/withdraw", headers=x)
        assert r.status_code == 200 and r.json()["in_force"] is False
        client.post("/portal/api/logout", headers=x)
        refused = client.get(url, headers=op)
        assert refused.status_code == 409 and "withdrawn" in refused.text
    with db.session() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.tenant_id == t.id, AuditEntry.action.like("customers.%"))
        ).all()
        assert actions.count("customers.export") == 2
        assert "customers.consent" in actions and "customers.consent_withdrawn" in actions
        reads = s.scalars(select(PortalRead.what).where(PortalRead.account_id == account.id)).all()
        assert reads == ["consents"]


def test_an_occupant_cannot_withdraw_anothers_consent(client, hub, db):
    t = hub.tenant()
    with db.transaction() as s:
        sc = customer_scenario.build(s, t.id)
        account, token = invite(s, t.id, sc.occupants["Dora"], actor="t", now=NOW)
        accept(s, token, "lange genug 123", NOW)
    op = hub.headers(t, "operator")
    body = {
        "occupant_id": sc.occupants["Anna"],
        "provider": "EB",
        "scope": {"from": "2026-01", "to": "2026-11"},
        "evidence": "Formular",
    }
    with time_machine.travel(NOW, tick=False):
        cid = client.post("/api/v1/customer-info/consents", json=body, headers=op).json()["id"]
        x = {"X-Portal": "1"}
        login = {"tenant": t.slug, "email": "dora@example.de", "password": "lange genug 123"}
        assert client.post("/portal/api/login", json=login, headers=x).status_code == 200
        assert client.get("/portal/api/consents").json() == []
        assert client.post(f"/portal/api/consents/{cid}/withdraw", headers=x).status_code == 404
