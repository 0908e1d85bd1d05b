"""Remote configuration operations: state machine and expected next contact (omshub.cloud.services.operations)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from omshub.cloud.services import operations as ops
from omshub.cloud.store.models import GatewayConfigVersion, Operation
from omshub.protocol.config import spread_offset

from .domain_fixtures import T0, FakePrincipal, gateway, tenant

CFG = {"timezone": "UTC", "upload": {"cron": "0 30 3 * * *", "max_batch": 1000}, "spread_s": 0}


def _state(s, op):
    s.flush()
    s.expire(op)  # read back what was written
    return op.state


def test_expected_next_contact_cron_and_spread():
    class G:
        serial = "GW-1"

    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    # no spread: next 03:30:00 UTC after noon is tomorrow
    assert ops.expected_next_contact(G, CFG, now) == datetime(2026, 3, 11, 3, 30, tzinfo=UTC)
    # the spread offset shifts the firing; a firing that is late today by the offset counts
    cfg = {**CFG, "spread_s": 1800}
    off = spread_offset("GW-1", 1800)
    nxt = ops.expected_next_contact(G, cfg, datetime(2026, 3, 10, 3, 30, tzinfo=UTC))
    assert nxt == datetime(2026, 3, 10, 3, 30, tzinfo=UTC) + timedelta(seconds=off)
    # in the config's time zone (Berlin is UTC+1 in winter, UTC+2 in summer)
    berlin = {**CFG, "timezone": "Europe/Berlin"}
    assert ops.expected_next_contact(G, berlin, datetime(2026, 1, 10, 12, tzinfo=UTC)) == datetime(
        2026, 1, 11, 2, 30, tzinfo=UTC
    )
    assert ops.expected_next_contact(G, berlin, datetime(2026, 7, 10, 12, tzinfo=UTC)) == datetime(
        2026, 7, 11, 1, 30, tzinfo=UTC
    )
    local = ops.expected_next_contact(G, berlin, now).astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 30)
    # seconds field and an every-15-minutes schedule
    quarter = {**CFG, "upload": {"cron": "15 */15 * * * *"}}
    assert ops.expected_next_contact(G, quarter, now) == datetime(2026, 3, 10, 12, 0, 15, tzinfo=UTC)
    # factory default configuration when none is known; always strictly in the future
    d = ops.expected_next_contact(G, None, now)
    assert d > now and d - now <= timedelta(days=1, seconds=1800)
    assert ops.expected_next_contact(G, {"upload": {"cron": "bad"}}, now) is None


def test_pending_delivered_successful(s):
    t = tenant(s)
    g = gateway(s, t)
    p = FakePrincipal(t.id, name="alice")
    [op] = ops.set_desired_config(s, p, [g.id], CFG, now=T0)
    assert op.state == "PENDING" and op.config_version == 1 and op.created_by == "alice"
    assert op.expected_contact_at is not None and op.expected_contact_at > T0
    assert g.desired_config_version == 1
    stored = s.query(GatewayConfigVersion).filter_by(gateway_id=g.id, version=1).one()
    assert stored.config["version"] == 1 and stored.config["upload"]["max_batch"] == 1000
    # next uplink: the gateway still runs version 0 -> config delivered
    cfg = ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0 + timedelta(hours=1))
    assert cfg is not None and cfg["version"] == 1 and cfg["upload"]["cron"] == "0 30 3 * * *"
    assert _state(s, op) == "DELIVERED" and op.delivered_at is not None
    # the response got lost: the gateway retries with version 0, gets it again, still DELIVERED
    again = ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0 + timedelta(hours=2))
    assert again == cfg and _state(s, op) == "DELIVERED"
    # the gateway reports version 1 applied
    assert ops.on_uplink(s, g, applied_version=1, cfg_error=None, now=T0 + timedelta(hours=3)) is None
    assert _state(s, op) == "SUCCESSFUL" and op.finished_at is not None
    assert g.next_contact_at is not None


def test_failed_with_reason_is_not_resent(s):
    t = tenant(s)
    g = gateway(s, t)
    [op] = ops.set_desired_config(s, FakePrincipal(t.id), [g.id], CFG, now=T0)
    assert ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0) is not None
    err = {"version": 1, "message": "filters.meters: too many entries"}
    assert ops.on_uplink(s, g, applied_version=0, cfg_error=err, now=T0 + timedelta(hours=1)) is None
    assert _state(s, op) == "FAILED" and op.error == "filters.meters: too many entries"
    # later uplinks without cfg_error do not resend the refused version
    assert ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0 + timedelta(hours=2)) is None
    assert _state(s, op) == "FAILED"
    # a new configuration gets a new version and is delivered
    [op2] = ops.set_desired_config(s, FakePrincipal(t.id), [g.id], {**CFG, "spread_s": 60}, now=T0)
    assert op2.config_version == 2 and _state(s, op) == "FAILED"  # finished ones are not superseded
    cfg = ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0 + timedelta(hours=3))
    assert cfg["version"] == 2 and cfg["spread_s"] == 60


def test_superseded(s):
    t = tenant(s)
    g = gateway(s, t)
    pr = FakePrincipal(t.id)
    [a] = ops.set_desired_config(s, pr, [g.id], CFG, now=T0)
    ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0)
    assert _state(s, a) == "DELIVERED"
    [b] = ops.set_desired_config(s, pr, [g.id], {**CFG, "spread_s": 10}, now=T0)
    [c] = ops.set_desired_config(s, pr, [g.id], {**CFG, "spread_s": 20}, now=T0)
    assert _state(s, a) == "SUPERSEDED" and a.superseded_by == b.id
    assert _state(s, b) == "SUPERSEDED" and b.superseded_by == c.id
    assert c.state == "PENDING" and c.config_version == 3
    # the gateway reports the delivered (superseded) version 1: c still goes out
    cfg = ops.on_uplink(s, g, applied_version=1, cfg_error=None, now=T0 + timedelta(hours=1))
    assert cfg["version"] == 3 and _state(s, a) == "SUPERSEDED" and _state(s, c) == "DELIVERED"
    ops.on_uplink(s, g, applied_version=3, cfg_error=None, now=T0 + timedelta(hours=2))
    assert _state(s, c) == "SUCCESSFUL"


def test_many_gateways_at_once(s):
    t = tenant(s)
    gws = [gateway(s, t) for _ in range(40)]
    ops_ = ops.set_desired_config(s, FakePrincipal(t.id), [g.id for g in gws], CFG, now=T0)
    assert len(ops_) == 40 and {o.gateway_id for o in ops_} == {g.id for g in gws}
    assert all(o.state == "PENDING" and o.config_version == 1 for o in ops_)
    for g in gws[:10]:
        ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0)
    for g in gws[:5]:
        ops.on_uplink(s, g, applied_version=1, cfg_error=None, now=T0)
    states = [o.state for o in s.query(Operation).order_by(Operation.gateway_id)]
    assert states.count("SUCCESSFUL") == 5 and states.count("DELIVERED") == 5 and states.count("PENDING") == 30


def test_invalid_config_and_unknown_gateway_are_refused(s):
    t, other = tenant(s), tenant(s, "b")
    g = gateway(s, t)
    foreign = gateway(s, other)
    with pytest.raises(ops.ConfigChangeError) as e:
        ops.set_desired_config(s, FakePrincipal(t.id), [g.id], {"upload": {"cron": "* * *"}})
    assert e.value.code == "invalid_config" and "upload.cron" in str(e.value)
    for ids in ([g.id, foreign.id], [g.id, 2**63], [0]):
        with pytest.raises(ops.UnknownGateway) as e:
            ops.set_desired_config(s, FakePrincipal(t.id), ids, CFG)
        assert e.value.gateway_id == ids[-1]
    assert s.query(Operation).count() == 0


# --- partial changes (JSON merge patch onto the desired configuration) and bulk conflicts ---

BERLIN = {
    "timezone": "Europe/Berlin",
    "spread_s": 600,
    "filters": {"mode": "blacklist", "meters": [{"manufacturer": "KAM", "id": "12345678"}]},
}


def _one(s, principal, g, patch):
    """One gateway's change, as PUT and PATCH make it (superseding an unfinished one)."""
    [result] = ops.change_config(s, principal, [g.id], patch, on_conflict="supersede", now=T0)
    return result


def _desired(s, g) -> dict:
    s.flush()
    return s.query(GatewayConfigVersion).filter_by(gateway_id=g.id, version=g.desired_config_version).one().config


def _audits(s, tenant_id):
    from omshub.cloud.store.models import AuditEntry

    s.flush()
    return s.query(AuditEntry).filter_by(tenant_id=tenant_id, action="gateway.config").order_by(AuditEntry.id).all()


def test_a_change_touches_only_what_it_names(s):
    t = tenant(s)
    g = gateway(s, t)
    pr = FakePrincipal(t.id)
    first = _one(s, pr, g, BERLIN)
    assert first.outcome == "created" and first.version == 1
    # the README's example: only the upload time
    second = _one(s, pr, g, {"upload": {"cron": "0 0 4 * * *"}})
    cfg = _desired(s, g)
    assert second.version == 2 and cfg["version"] == 2
    assert cfg["timezone"] == "Europe/Berlin" and cfg["spread_s"] == 600
    assert cfg["filters"] == {**_desired_defaults()["filters"], **BERLIN["filters"]}
    assert cfg["upload"] == {"cron": "0 0 4 * * *", "max_batch": 5000}
    assert second.config == cfg
    # null: back to the default; an array replaces the old one whole
    _one(s, pr, g, {"timezone": None, "filters": {"meters": []}})
    cfg = _desired(s, g)
    assert cfg["timezone"] == "UTC" and cfg["filters"]["meters"] == [] and cfg["filters"]["mode"] == "blacklist"
    assert cfg["upload"]["cron"] == "0 0 4 * * *"


def _desired_defaults() -> dict:
    from omshub.protocol.config import GatewayConfig

    return GatewayConfig().model_dump(mode="json")


def test_a_change_merges_onto_a_pending_change_and_supersedes_it(s):
    t = tenant(s)
    g = gateway(s, t)
    a = _one(s, FakePrincipal(t.id, name="alice"), g, {"timezone": "Europe/Berlin"})
    assert a.operation.state == "PENDING"
    b = _one(s, FakePrincipal(t.id, name="bob"), g, {"spread_s": 60})
    assert b.outcome == "superseded" and [o.id for o in b.superseded] == [a.operation.id]
    assert _state(s, a.operation) == "SUPERSEDED" and a.operation.superseded_by == b.operation.id
    # alice's pending time zone is not lost: it is part of bob's version
    assert _desired(s, g)["timezone"] == "Europe/Berlin" and _desired(s, g)["spread_s"] == 60
    delivered = ops.on_uplink(s, g, applied_version=0, cfg_error=None, now=T0 + timedelta(hours=1))
    assert delivered["version"] == 2 and delivered["timezone"] == "Europe/Berlin"


def test_a_change_that_changes_nothing_makes_no_version(s):
    t = tenant(s)
    g = gateway(s, t)
    pr = FakePrincipal(t.id)
    # the first change always makes version 1: the gateway's own initial configuration is unknown here
    first = _one(s, pr, g, {})
    assert first.outcome == "created" and first.version == 1
    for patch in ({}, {"timezone": "UTC"}, {"upload": {"max_batch": 5000}}, {"version": 7}, {"keep": None}):
        same = _one(s, pr, g, patch)
        assert same.outcome == "unchanged" and same.version == 1 and same.superseded == []
        assert same.operation.id == first.operation.id
    assert s.query(Operation).filter_by(gateway_id=g.id).count() == 1
    assert g.desired_config_version == 1 and _state(s, first.operation) == "PENDING"
    assert [a.details["gateways"][0]["outcome"] for a in _audits(s, t.id)] == ["created"] + ["unchanged"] * 5


def test_an_invalid_result_or_patch_changes_nothing(s):
    t = tenant(s)
    g = gateway(s, t)
    pr = FakePrincipal(t.id)
    _one(s, pr, g, BERLIN)
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    for patch, code, text in (
        ({"upload": {"max_batch": 0}}, "invalid_config", "upload.max_batch"),
        ({"radio_power_dbm": 14}, "invalid_config", "radio_power_dbm"),
        ({"collection": []}, "invalid_config", "collection"),
        (deep, "invalid_config", "nested"),
        ([1], "invalid_config", "JSON object"),
    ):
        with pytest.raises(ops.ConfigChangeError) as e:
            _one(s, pr, g, patch)
        assert e.value.code == code and text in str(e.value), (patch, str(e.value))
    with pytest.raises(ops.ConfigChangeError) as e:
        ops.change_config(s, pr, [g.id], {}, on_conflict="overwrite", now=T0)
    assert e.value.code == "invalid_request" and "on_conflict" in str(e.value)
    assert g.desired_config_version == 1 and s.query(Operation).filter_by(gateway_id=g.id).count() == 1


def test_bulk_change_with_a_pending_change_needs_a_decision(s):
    t = tenant(s)
    free, busy, done = gateway(s, t), gateway(s, t), gateway(s, t)
    alice, bob = FakePrincipal(t.id, name="alice"), FakePrincipal(t.id, name="bob")
    for g in (free, busy, done):
        ops.change_config(s, alice, [g.id], {"timezone": "Europe/Berlin"}, now=T0)
        ops.on_uplink(s, g, applied_version=1, cfg_error=None, now=T0)
    [pending] = ops.change_config(
        s, alice, [busy.id], {"upload": {"cron": "0 0 5 * * *"}}, now=T0 + timedelta(minutes=5)
    )
    ops.change_config(s, alice, [done.id], {"spread_s": 30}, now=T0)
    ops.on_uplink(s, done, applied_version=2, cfg_error=None, now=T0)  # applied: no longer pending
    before = s.query(Operation).count()
    ids = [free.id, busy.id, done.id]

    with pytest.raises(ops.PendingChanges) as e:
        ops.change_config(s, bob, ids, {"spread_s": 60}, now=T0 + timedelta(hours=1))
    [c] = e.value.conflicts
    assert c["gateway_id"] == busy.id and c["gateway"] == busy.serial
    assert c["operation_id"] == pending.operation.id and c["config_version"] == 2 and c["state"] == "PENDING"
    assert c["changes"] == {"upload": {"cron": "0 0 5 * * *"}}
    assert c["created_by"] == "alice" and c["created_at"] == T0 + timedelta(minutes=5)
    assert "1 gateway" in str(e.value) and busy.serial in str(e.value)
    assert s.query(Operation).count() == before and busy.desired_config_version == 2  # nothing changed
    # a change that would not change the busy gateway is no conflict
    [unchanged] = [
        r for r in ops.change_config(s, bob, ids, {"timezone": "Europe/Berlin"}, now=T0) if r.gateway.id == busy.id
    ]
    assert unchanged.outcome == "unchanged" and _state(s, pending.operation) == "PENDING"

    skipped = {
        r.gateway.id: r
        for r in ops.change_config(s, bob, ids, {"spread_s": 60}, on_conflict="skip", now=T0 + timedelta(hours=1))
    }
    assert [skipped[i].outcome for i in ids] == ["created", "skipped", "created"]
    assert skipped[busy.id].operation.id == pending.operation.id and _state(s, pending.operation) == "PENDING"
    assert busy.desired_config_version == 2 and _desired(s, busy)["spread_s"] == 1800
    # each gateway keeps its own other settings
    assert _desired(s, done)["spread_s"] == 60 and _desired(s, free)["timezone"] == "Europe/Berlin"

    superseded = {
        r.gateway.id: r
        for r in ops.change_config(s, bob, ids, {"keep": "all"}, on_conflict="supersede", now=T0 + timedelta(hours=2))
    }
    new = superseded[busy.id]
    assert new.outcome == "superseded" and [o.id for o in new.superseded] == [pending.operation.id]
    assert _state(s, pending.operation) == "SUPERSEDED" and pending.operation.superseded_by == new.operation.id
    assert _desired(s, busy)["upload"]["cron"] == "0 0 5 * * *" and _desired(s, busy)["keep"] == "all"
    # the free gateway's change from the skip run was pending too: superseded, its content kept
    assert superseded[free.id].outcome == "superseded" and _desired(s, free)["spread_s"] == 60

    # the audit log says who chose what
    last = _audits(s, t.id)[-1]
    assert last.actor == "bob" and last.details["on_conflict"] == "supersede"
    assert last.details["patch"] == {"keep": "all"}
    row = {g["gateway_id"]: g for g in last.details["gateways"]}[busy.id]
    assert row == {
        "gateway_id": busy.id,
        "outcome": "superseded",
        "from_version": 2,
        "version": 3,
        "operation_id": new.operation.id,
        "superseded_operations": [pending.operation.id],
    }
    skip_audit = _audits(s, t.id)[-2]
    assert skip_audit.details["on_conflict"] == "skip"
    assert {g["gateway_id"]: g["outcome"] for g in skip_audit.details["gateways"]}[busy.id] == "skipped"


@pytest.mark.slow  # thousands of gateways: several seconds, not in the fast lane
def test_bulk_change_over_more_gateways_than_one_query_takes(s):
    """Selections are read in chunks of 500: conflicts, unchanged and skipped gateways are found
    across chunk borders."""
    t = tenant(s)
    gws = [gateway(s, t) for _ in range(520)]
    pr = FakePrincipal(t.id)
    ops.change_config(s, pr, [g.id for g in gws], {"timezone": "Europe/Berlin"}, now=T0)
    for g in gws[::2]:
        ops.on_uplink(s, g, applied_version=1, cfg_error=None, now=T0)  # every other one applied it
    with pytest.raises(ops.PendingChanges) as e:
        ops.change_config(s, pr, [g.id for g in gws], {"spread_s": 5}, now=T0)
    assert sorted(c["gateway_id"] for c in e.value.conflicts) == sorted(g.id for g in gws[1::2])
    assert {c["changes"]["timezone"] for c in e.value.conflicts} == {"Europe/Berlin"}
    results = ops.change_config(s, pr, [g.id for g in gws], {"spread_s": 5}, on_conflict="skip", now=T0)
    assert [r.outcome for r in results] == ["created", "skipped"] * 260
    again = ops.change_config(s, pr, [g.id for g in gws[::2]], {"spread_s": 5}, now=T0)
    assert {r.outcome for r in again} == {"unchanged"} and all(r.operation.config_version == 2 for r in again)
