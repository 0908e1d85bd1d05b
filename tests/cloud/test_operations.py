"""Remote configuration operations: state machine and expected next contact (omshub.cloud.operations)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from omshub.cloud import operations as ops
from omshub.cloud.models import GatewayConfigVersion, Operation
from omshub.gateway.config import spread_offset

from .domain_fixtures import T0, FakePrincipal, gateway, tenant

CFG = {"timezone": "UTC", "upload": {"cron": "0 30 3 * * *", "max_batch": 1000}, "spread_s": 0}


def _state(s, op):
    s.flush()
    s.expire(op)  # read back what was written
    return op.state


def test_expected_next_contact_cron_and_spread():
    class G:
        serial = "GW-1"
    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    # no spread: next 03:30:00 UTC after noon is tomorrow
    assert ops.expected_next_contact(G, CFG, now) == datetime(2026, 3, 11, 3, 30, tzinfo=timezone.utc)
    # the spread offset shifts the firing; a firing that is late today by the offset counts
    cfg = {**CFG, "spread_s": 1800}
    off = spread_offset("GW-1", 1800)
    nxt = ops.expected_next_contact(G, cfg, datetime(2026, 3, 10, 3, 30, tzinfo=timezone.utc))
    assert nxt == datetime(2026, 3, 10, 3, 30, tzinfo=timezone.utc) + timedelta(seconds=off)
    # in the config's time zone (Berlin is UTC+1 in winter, UTC+2 in summer)
    berlin = {**CFG, "timezone": "Europe/Berlin"}
    assert ops.expected_next_contact(G, berlin, datetime(2026, 1, 10, 12, tzinfo=timezone.utc)) == \
        datetime(2026, 1, 11, 2, 30, tzinfo=timezone.utc)
    assert ops.expected_next_contact(G, berlin, datetime(2026, 7, 10, 12, tzinfo=timezone.utc)) == \
        datetime(2026, 7, 11, 1, 30, tzinfo=timezone.utc)
    local = ops.expected_next_contact(G, berlin, now).astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 30)
    # seconds field and an every-15-minutes schedule
    quarter = {**CFG, "upload": {"cron": "15 */15 * * * *"}}
    assert ops.expected_next_contact(G, quarter, now) == datetime(2026, 3, 10, 12, 0, 15, tzinfo=timezone.utc)
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


def test_invalid_config_and_unknown_gateway_are_api_errors(s):
    from omshub.cloud.api import common
    t, other = tenant(s), tenant(s, "b")
    g = gateway(s, t)
    foreign = gateway(s, other)
    with pytest.raises(common.ApiError) as e:
        ops.set_desired_config(s, FakePrincipal(t.id), [g.id], {"upload": {"cron": "* * *"}})
    assert e.value.status == 422 and "upload.cron" in e.value.message
    with pytest.raises(common.ApiError) as e:
        ops.set_desired_config(s, FakePrincipal(t.id), [g.id, foreign.id], CFG)
    assert e.value.status == 404
    assert s.query(Operation).count() == 0
