"""Tenant isolation for EVERY endpoint of the app.

The endpoints are enumerated from the app itself; each must be classified in SPEC (the test fails
for an unclassified one, so a new endpoint cannot slip through). Tenant B's admin then:
* gets 404 for every endpoint addressing one of tenant A's objects by id (and A's object is
  unchanged afterwards);
* never sees any of A's identifying strings in any list, export or own-object response (while A
  does see them in the same lists — so the check can fail);
* cannot reference A's objects when creating things;
* cannot post uplinks as A's gateway with B's gateway credential.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import cbor2
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from omshub.cloud.store.models import Alarm, Operation, Reading, Telegram
from tests.clock import EPOCH

from .conftest import KEY, encode

API = "/api/v1"

# kind: public (no tenant data) | self (the caller's own identity) | list (tenant's collection)
#       | object (one object by id: 404 for another tenant's) | create (refs to A's objects refused)
#       | uplink (gateway credential)
_NEXT = (EPOCH.replace(day=1) + timedelta(days=32)).replace(day=1)
_MONTH_AFTER_EPOCH = f"{_NEXT.year:04d}-{_NEXT.month:02d}"  # the month _billing closes

SPEC: dict[tuple[str, str], dict] = {
    ("GET", "/api/v1/health"): {"kind": "public"},
    # liveness, readiness, metrics (cloud/api/health.py): counts of the whole installation, no tenant's data
    ("GET", "/healthz"): {"kind": "public"},
    ("GET", "/readyz"): {"kind": "public"},
    ("GET", "/metrics"): {"kind": "public"},
    # the console's static pages: no tenant data, the page fetches everything through the API
    ("GET", "/"): {"kind": "public"},
    ("GET", "/console"): {"kind": "public"},
    ("GET", "/console/"): {"kind": "public"},
    ("GET", "/console/{name}"): {"kind": "public"},
    # the API documentation pages and their files (Swagger UI, ReDoc): no tenant data
    ("GET", "/docs"): {"kind": "public"},
    ("GET", "/redoc"): {"kind": "public"},
    ("GET", "/docs/assets/{name}"): {"kind": "public"},
    # the console's dashboard counts are the caller's own tenant's
    ("GET", "/api/v1/console/summary"): {"kind": "self"},
    ("GET", "/api/v1/console/meters/{meter_pk}/recent-readings"): {"kind": "object"},
    ("POST", "/api/v1/auth/login"): {"kind": "public"},
    ("POST", "/api/v1/auth/logout"): {"kind": "self"},
    ("GET", "/api/v1/auth/me"): {"kind": "self"},
    # a user's own language (a service token has no user: refused, tests/cloud/test_error_language.py)
    ("PATCH", "/api/v1/auth/me"): {"kind": "self", "json": lambda c: {"language": "de"}},
    # whether the caller is logged in, and as whom: their own identity only
    ("GET", "/api/v1/auth/session"): {"kind": "self"},
    # the console's search and the audit log: the caller's tenant only (tests/cloud/test_console_tasks.py
    # searches for another tenant's meters, points and gateways and reads its audit log)
    ("GET", "/api/v1/search"): {"kind": "self"},
    ("GET", "/api/v1/audit"): {"kind": "self"},
    ("POST", "/api/v1/tokens"): {"kind": "create", "json": lambda c: {"name": "b-token"}, "expect": {201}},
    ("GET", "/api/v1/tokens"): {"kind": "list"},
    ("DELETE", "/api/v1/tokens/{token_id}"): {"kind": "object"},
    ("GET", "/api/v1/users"): {"kind": "list"},
    ("POST", "/api/v1/users"): {
        "kind": "create",
        "expect": {201},
        "json": lambda c: {"username": "b-" + uuid.uuid4().hex[:8], "password": "x" * 12},
    },
    ("GET", "/api/v1/users/{user_id}"): {"kind": "object"},
    ("PATCH", "/api/v1/users/{user_id}"): {"kind": "object", "json": lambda c: {"disabled": True}},
    ("DELETE", "/api/v1/users/{user_id}"): {"kind": "object"},
    ("POST", "/api/v1/gateways"): {
        "kind": "create",
        "expect": {201},
        "json": lambda c: {"serial": "B-" + uuid.uuid4().hex[:8]},
    },
    ("GET", "/api/v1/gateways"): {"kind": "list"},
    ("GET", "/api/v1/gateways/{gateway_id}"): {"kind": "object"},
    ("GET", "/api/v1/gateways/{gateway_id}/config"): {"kind": "object"},
    ("PUT", "/api/v1/gateways/{gateway_id}/config"): {"kind": "object", "json": lambda c: {"spread_s": 5}},
    ("PATCH", "/api/v1/gateways/{gateway_id}/config"): {"kind": "object", "json": lambda c: {"spread_s": 5}},
    ("POST", "/api/v1/gateways/{gateway_id}/credential"): {"kind": "object"},
    ("POST", "/api/v1/gateways/config"): {
        "kind": "create",
        "expect": {404},
        "json": lambda c: {"config": {}, "gateway_ids": [c["b_gw"], c["gateway_id"]]},
    },
    ("POST", "/api/v1/uplink"): {"kind": "uplink"},
    ("POST", "/api/v1/keys/import"): {
        "kind": "create",
        "expect": {200},
        "content": lambda c: f"id,key\n{c['a_meter']},{'11' * 16}\n".encode(),
    },
    ("GET", "/api/v1/keys"): {"kind": "list"},
    ("POST", "/api/v1/keys/export"): {"kind": "create", "expect": {404}, "json": lambda c: {"meters": [c["a_meter2"]]}},
    ("GET", "/api/v1/meters"): {"kind": "list"},
    ("POST", "/api/v1/meters"): {
        "kind": "create",
        "expect": {404},
        "json": lambda c: {"manufacturer": "KAM", "meter_id": "B7B7B7B7", "gateway_id": c["gateway_id"]},
    },
    ("POST", "/api/v1/meters/import"): {
        "kind": "create",
        "expect": {422},
        "content": lambda c: f"manufacturer,id,gateway\nKAM,B8B8B8B8,{c['a_serial']}\n".encode(),
    },
    ("GET", "/api/v1/meters/{meter_pk}"): {"kind": "object"},
    ("PATCH", "/api/v1/meters/{meter_pk}"): {"kind": "object", "json": lambda c: {"device_type": "water"}},
    ("DELETE", "/api/v1/meters/{meter_pk}"): {"kind": "object"},
    ("GET", "/api/v1/meters/{meter_pk}/readings"): {"kind": "object"},
    ("GET", "/api/v1/metering-points"): {"kind": "list"},
    ("POST", "/api/v1/metering-points"): {
        "kind": "create",
        "expect": {201},
        "json": lambda c: {"ref": "B-" + uuid.uuid4().hex[:8]},
    },
    ("GET", "/api/v1/metering-points/{point_id}"): {"kind": "object"},
    ("PATCH", "/api/v1/metering-points/{point_id}"): {"kind": "object", "json": lambda c: {"address": "B street"}},
    ("DELETE", "/api/v1/metering-points/{point_id}"): {"kind": "object"},
    ("POST", "/api/v1/metering-points/{point_id}/install"): {
        "kind": "object",
        "json": lambda c: {"meter": c["b_meter"]},
    },
    ("POST", "/api/v1/metering-points/{point_id}/swap"): {
        "kind": "object",
        "json": lambda c: {"at": "2030-01-01T00:00:00Z", "old_final_values": {}, "new_meter": c["b_meter"]},
    },
    ("POST", "/api/v1/metering-points/{point_id}/remove"): {"kind": "object", "json": lambda c: {}},
    ("GET", "/api/v1/metering-points/{point_id}/readings"): {"kind": "object"},
    ("GET", "/api/v1/metering-points/{point_id}/consumption"): {
        "kind": "object",
        "params": {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
    },
    ("GET", "/api/v1/readings/latest"): {"kind": "list"},
    # the time settings are the caller's own tenant's (test_time_zones checks A's stay unchanged)
    ("GET", "/api/v1/tenant/time"): {"kind": "self"},
    ("PUT", "/api/v1/tenant/time"): {"kind": "self", "json": lambda c: {"meter_timezone": "UTC"}},
    ("GET", "/api/v1/tenant/time/models"): {"kind": "self"},
    ("PUT", "/api/v1/tenant/time/models"): {
        "kind": "self",
        "json": lambda c: {"models": [{"manufacturer": "KAM", "timezone": "UTC"}]},
    },
    ("POST", "/api/v1/tenant/time/retime"): {
        "kind": "create",
        "expect": {404},
        "json": lambda c: {"meters": [c["meter_pk"]]},
    },
    ("GET", "/api/v1/export/readings"): {
        "kind": "list",
        "params": {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
    },
    ("GET", "/api/v1/telegrams"): {"kind": "list"},
    ("GET", "/api/v1/telegrams/unregistered"): {"kind": "list"},
    ("GET", "/api/v1/telegrams/{telegram_id}"): {"kind": "object"},
    ("GET", "/api/v1/operations"): {"kind": "list"},
    ("GET", "/api/v1/operations/{operation_id}"): {"kind": "object"},
    ("GET", "/api/v1/alarms"): {"kind": "list"},
    ("GET", "/api/v1/alarms/{alarm_id}"): {"kind": "object"},
    ("POST", "/api/v1/alarms/{alarm_id}/acknowledge"): {"kind": "object", "json": lambda c: {"note": "seen"}},
    ("GET", "/api/v1/charts/meters/{meter_pk}/consumption"): {"kind": "object"},
    ("GET", "/api/v1/charts/metering-points/{point_id}/consumption"): {"kind": "object"},
    ("GET", "/api/v1/charts/meters/{meter_pk}/series"): {"kind": "object"},
    ("GET", "/api/v1/charts/gateways/{gateway_id}/history"): {"kind": "object"},
    ("GET", "/api/v1/charts/telegrams"): {"kind": "self"},  # counts of the caller's own tenant
    # billing master data
    ("GET", "/api/v1/properties"): {"kind": "list"},
    ("POST", "/api/v1/properties"): {"kind": "create", "expect": {201}, "json": lambda c: {"ref": c["property_ref"]}},
    ("GET", "/api/v1/properties/{property_id}"): {"kind": "object"},
    ("PATCH", "/api/v1/properties/{property_id}"): {"kind": "object", "json": lambda c: {"city": "B-Stadt"}},
    ("GET", "/api/v1/properties/{property_id}/units"): {"kind": "object"},
    ("POST", "/api/v1/properties/{property_id}/units"): {
        "kind": "object",
        "json": lambda c: {"ref": "B-unit", "area_m2": 50.0},
    },
    ("GET", "/api/v1/units/{unit_id}"): {"kind": "object"},
    ("PATCH", "/api/v1/units/{unit_id}"): {"kind": "object", "json": lambda c: {"area_m2": 1.0}},
    ("POST", "/api/v1/units/{unit_id}/metering-points"): {
        "kind": "object",
        "json": lambda c: {"metering_point_id": c["b_point"]},
    },
    ("GET", "/api/v1/units/{unit_id}/occupancies"): {"kind": "object"},
    ("POST", "/api/v1/units/{unit_id}/occupancies"): {
        "kind": "object",
        "json": lambda c: {"occupant_id": c["b_occupant"], "moved_in": "2026-01-01"},
    },
    ("GET", "/api/v1/occupants"): {"kind": "list"},
    ("POST", "/api/v1/occupants"): {
        "kind": "create",
        "expect": {201},
        "json": lambda c: {"customer_ref": "B-" + uuid.uuid4().hex[:8], "name": "B"},
    },
    ("GET", "/api/v1/occupants/{occupant_id}"): {"kind": "object"},
    ("PATCH", "/api/v1/occupants/{occupant_id}"): {"kind": "object", "json": lambda c: {"name": "B"}},
    ("PATCH", "/api/v1/occupancies/{occupancy_id}"): {"kind": "object", "json": lambda c: {"moved_out": "2030-01-01"}},
    ("POST", "/api/v1/master-data/import/{kind}"): {
        "kind": "create",
        "expect": {422},
        "path": {"kind": "units"},
        "content": lambda c: (
            f"property,ref,area_m2,metering_points\n{c['property_ref']},X,50,{c['point_ref']}\n".encode()
        ),
    },
    ("GET", "/api/v1/weather-stations"): {"kind": "list"},
    ("POST", "/api/v1/weather-stations"): {
        "kind": "create",
        "expect": {201},
        "json": lambda c: {"code": c["station_code"]},
    },
    ("POST", "/api/v1/weather-stations/{station_id}/days"): {
        "kind": "object",
        "content": lambda c: b"date,mean_c\n2026-01-01,30\n",
    },
    ("GET", "/api/v1/weather-stations/{station_id}/degree-days"): {
        "kind": "object",
        "params": {"first": "2026-01-01", "last": "2026-01-31"},
    },
    ("PUT", "/api/v1/properties/{property_id}/weather-station"): {
        "kind": "object",
        "json": lambda c: {"weather_station_id": None},
    },
    # billing values: the close works on the caller's own tenant (A's values stay as they are)
    ("POST", "/api/v1/billing/close"): {"kind": "self", "json": lambda c: {"period": c["billing_period"]}},
    ("GET", "/api/v1/metering-points/{point_id}/billing-values"): {"kind": "object"},
    ("GET", "/api/v1/metering-points/{point_id}/billing-consumption"): {"kind": "object"},
    ("GET", "/api/v1/units/{unit_id}/billing-consumption"): {"kind": "object", "params": {"period": "2026-01"}},
    ("GET", "/api/v1/units/{unit_id}/occupant-consumption"): {"kind": "object", "params": {"period": "2026-01"}},
    ("GET", "/api/v1/occupants/{occupant_id}/billing-consumption"): {
        "kind": "object",
        "params": {"period": "2026-01"},
    },
    ("GET", "/api/v1/properties/{property_id}/billing-consumption"): {
        "kind": "object",
        "params": {"period": "2026-01"},
    },
    ("GET", "/api/v1/review"): {"kind": "list"},
    ("GET", "/api/v1/billing/rules"): {"kind": "self"},
    ("PATCH", "/api/v1/billing/rules"): {"kind": "self", "json": lambda c: {"stale_days": 9}},
    ("POST", "/api/v1/review/{finding_id}"): {"kind": "object", "json": lambda c: {"action": "accept", "note": "B"}},
    ("PUT", "/api/v1/billing-values/{value_id}"): {"kind": "object", "json": lambda c: {"value": 1, "reason": "B"}},
    ("POST", "/api/v1/billing-values/{value_id}/estimate"): {
        "kind": "object",
        "json": lambda c: {"method": "previous_period", "reason": "B"},
    },
    # customer information: A's month is computed in _billing (record_id: A's occupant's record)
    ("POST", "/api/v1/customer-info/records"): {"kind": "self", "json": lambda c: {"month": c["billing_period"]}},
    ("GET", "/api/v1/customer-info/records"): {"kind": "list", "params": {"month": _MONTH_AFTER_EPOCH}},
    ("GET", "/api/v1/customer-info/records/{record_id}"): {"kind": "object"},
    ("GET", "/api/v1/customer-info/records/{record_id}/pdf"): {"kind": "object"},
    ("GET", "/api/v1/customer-info/deliveries"): {"kind": "self", "params": {"month": _MONTH_AFTER_EPOCH}},
    ("GET", "/api/v1/customer-info/completeness"): {"kind": "list", "params": {"month": _MONTH_AFTER_EPOCH}},
    ("GET", "/api/v1/customer-info/settings"): {"kind": "self"},
    ("PATCH", "/api/v1/customer-info/settings"): {"kind": "self", "json": lambda c: {"supplier_name": "B"}},
    ("GET", "/api/v1/customer-info/units/{unit_id}/annual"): {"kind": "object", "params": {"year": "2026"}},
    ("GET", "/api/v1/customer-info/units/{unit_id}/annual/pdf"): {"kind": "object", "params": {"year": "2026"}},
    # consents and history export (A's consent for A's occupant, made in _consent)
    ("GET", "/api/v1/customer-info/consents"): {"kind": "list"},
    ("POST", "/api/v1/customer-info/consents"): {
        "kind": "create",
        "json": lambda c: {
            "occupant_id": c["occupant_id"],
            "provider": "B",
            "scope": {"from": "2026-01", "to": "2026-02"},
            "evidence": "B",
        },
        "expect": (404,),
    },
    ("GET", "/api/v1/customer-info/consents/{consent_id}/export"): {"kind": "object"},
    ("POST", "/api/v1/customer-info/consents/{consent_id}/withdraw"): {"kind": "object"},
    # a bounce naming A's notice with A's correct reference: not B's notice
    ("POST", "/api/v1/customer-info/bounces"): {"kind": "create", "content": lambda c: c["a_bounce"], "expect": (404,)},
    ("POST", "/api/v1/customer-info/runs"): {"kind": "self", "json": lambda c: {"month": c["billing_period"]}},
    ("GET", "/api/v1/customer-info/summary"): {"kind": "self", "params": {"month": _MONTH_AFTER_EPOCH}},
    ("POST", "/api/v1/customer-info/deliveries/{delivery_id}/resend"): {"kind": "object"},
    ("GET", "/api/v1/customer-info/invitations"): {"kind": "list"},
    ("POST", "/api/v1/customer-info/invitations"): {
        "kind": "object",
        "json": lambda c: {"occupant_id": c["occupant_id"], "send": False},
    },
    # the customer portal: its pages carry no data; its API answers only to an occupant's own portal
    # session (no operator credential reaches it): tests/cloud/test_customer_portal.py
    ("GET", "/portal"): {"kind": "public"},
    ("GET", "/portal/"): {"kind": "public"},
    ("GET", "/portal/{name}"): {"kind": "public"},
    ("POST", "/portal/api/accept"): {"kind": "public"},
    ("POST", "/portal/api/login"): {"kind": "public"},
    ("POST", "/portal/api/login-link"): {"kind": "public"},
    ("POST", "/portal/api/link-login"): {"kind": "public"},
    ("POST", "/portal/api/me/password"): {"kind": "public"},
    ("POST", "/portal/api/logout"): {"kind": "public"},
    ("GET", "/portal/api/me"): {"kind": "public"},
    ("PATCH", "/portal/api/me"): {"kind": "public"},
    ("GET", "/portal/api/months"): {"kind": "public"},
    ("GET", "/portal/api/months/{month}"): {"kind": "public"},
    ("GET", "/portal/api/months/{month}/pdf"): {"kind": "public"},
    ("GET", "/portal/api/annual"): {"kind": "public"},
    ("GET", "/portal/api/annual/{year}/pdf"): {"kind": "public"},
    ("GET", "/portal/api/consents"): {"kind": "public"},
    ("POST", "/portal/api/consents"): {"kind": "public"},
    ("POST", "/portal/api/consents/{consent_id}/withdraw"): {"kind": "public"},
    # billing exports (docs/exports.md): pulls and exports of the caller's own tenant
    ("GET", "/api/v1/exports/readings"): {"kind": "list", "params": {"period": "{billing_period}"}},
    ("GET", "/api/v1/exports/sap"): {"kind": "self", "params": {"period": "{billing_period}"}},
    ("POST", "/api/v1/exports"): {
        "kind": "self",
        "json": lambda c: {"format": "v1-csv", "period": c["billing_period"]},
    },
    ("GET", "/api/v1/exports/runs"): {"kind": "list"},
    ("GET", "/api/v1/exports/runs/{run_id}/file"): {"kind": "object"},
    ("GET", "/api/v1/exports/sap-mapping"): {"kind": "self"},
    ("PUT", "/api/v1/exports/sap-mapping"): {"kind": "self", "json": lambda c: {"decimals": 2}},
    ("GET", "/api/v1/export-jobs"): {"kind": "list"},
    ("POST", "/api/v1/export-jobs"): {
        "kind": "create",
        "expect": {422},
        "json": lambda c: {
            "name": "B",
            "format": "v1-csv",
            "cron": "0 6 2 * *",
            "host": "127.0.0.1",
            "username": "b",
            "private_key": "not a key",
        },  # fmt: skip
    },
    ("DELETE", "/api/v1/export-jobs/{job_id}"): {"kind": "object"},
    ("POST", "/api/v1/export-jobs/{job_id}/run"): {"kind": "object"},
    ("POST", "/api/v1/arge/import"): {"kind": "create", "expect": {422}, "content": lambda c: b"M03.10 short\r\n"},
    ("GET", "/api/v1/arge/e898"): {"kind": "self", "params": {"month": "{billing_period}"}},
    ("GET", "/api/v1/webhooks"): {"kind": "list"},
    ("POST", "/api/v1/webhooks"): {
        "kind": "create",
        "expect": {201},
        "json": lambda c: {"url": "http://127.0.0.1:9/b"},
    },
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): {"kind": "object"},
    ("POST", "/api/v1/webhooks/{endpoint_id}/test"): {"kind": "object"},
    ("POST", "/api/v1/webhooks/{endpoint_id}/replay"): {"kind": "object", "json": lambda c: {}},
    ("GET", "/api/v1/webhooks/deliveries"): {"kind": "self"},
}


def _walk(routes):
    """Every API route, also inside included routers (FastAPI nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)


def app_endpoints(app) -> set[tuple[str, str]]:
    found = {(m, r.path) for r in _walk(app.routes) for m in r.methods if m not in ("HEAD", "OPTIONS")}
    # and whatever the OpenAPI schema lists (belt and braces for other route containers)
    for path, item in app.openapi()["paths"].items():
        found.update((m.upper(), path) for m in item if m.upper() not in ("HEAD", "OPTIONS", "PARAMETERS"))
    return found


def test_every_endpoint_is_classified(app):
    endpoints = app_endpoints(app)
    assert len(endpoints) >= 40
    unclassified = sorted(endpoints - set(SPEC))
    assert not unclassified, f"classify these endpoints in test_isolation.SPEC: {unclassified}"
    stale = sorted(set(SPEC) - endpoints)
    assert not stale, f"SPEC lists endpoints the app does not have: {stale}"


@pytest.fixture
def world(hub, client, db, pipeline):
    """Tenant A with one of everything; tenant B with a gateway, a meter and a point of its own."""
    from omshub.cloud.services.accounts import create_api_token

    tag = uuid.uuid4().hex[:6].upper()
    a = hub.tenant()
    a_admin = hub.headers(a, "admin")
    a_user = hub.user(a, "viewer")
    with db.transaction() as s:
        a_token_row, _ = create_api_token(s, a.id, f"iso-a-token-{tag}", "viewer")
        a_token = a_token_row.id
    gw = hub.gateway(a, serial=f"ISO-A-{tag}")
    a_meter, a_meter2, a_unknown = "A1" + tag, "A2" + tag, "A3" + tag
    hub.keys(a, {a_meter: KEY, a_meter2: bytes(16)})
    meter_pk = hub.meter(a, a_meter)
    hub.meter(a, a_meter2)
    ref = f"ISO-A-POINT-{tag}"
    point_id = client.post(f"{API}/metering-points", json={"ref": ref}, headers=a_admin).json()["id"]
    assert (
        client.post(
            f"{API}/metering-points/{point_id}/install",
            json={"meter": meter_pk, "at": "2020-01-01T00:00:00Z"},
            headers=a_admin,
        ).status_code
        == 201
    )
    hub.send(gw, 1, [encode(a_meter, energy=5.0), encode(a_meter2, energy=6.0), encode(a_unknown, energy=7.0)])
    pipeline.run_once()
    op = client.put(f"{API}/gateways/{gw.id}/config", json={}, headers=a_admin).json()
    with db.session() as s:
        telegram_id = s.scalar(select(Telegram.id).where(Telegram.gateway_id == gw.id).limit(1))
        alarm_id = s.scalar(select(Alarm.id).where(Alarm.tenant_id == a.id, Alarm.kind == "wrong_key"))
        assert s.scalar(select(Reading.id).where(Reading.meter_pk == meter_pk)) is not None
    assert alarm_id is not None and telegram_id is not None

    master = _master_data(client, a_admin, tag, point_id) | _billing(client, a_admin, point_id)
    master |= _consent(client, a_admin, tag, master["occupant_id"], a.id, master["delivery_id"], db)
    master["markers"].append(master.pop("consent_marker"))
    master |= _exports(client, a_admin, tag, master["billing_period"])
    master["markers"] += master.pop("export_markers")
    b = hub.tenant()
    b_gw = hub.gateway(b, serial=f"ISO-B-{tag}")
    b_meter = hub.meter(b, "B1" + tag)
    b_headers = hub.headers(b, "admin")
    b_point = client.post(f"{API}/metering-points", json={"ref": f"ISO-B-POINT-{tag}"}, headers=b_headers).json()["id"]
    b_occupant = client.post(
        f"{API}/occupants", json={"customer_ref": f"ISO-B-CUST-{tag}", "name": "B"}, headers=b_headers
    ).json()["id"]
    return master | {
        "a": a,
        "b": b,
        "a_headers": a_admin,
        "b_headers": b_headers,
        "b_point": b_point,
        "b_occupant": b_occupant,
        "point_ref": ref,
        "gw": gw,
        "b_gw_info": b_gw,
        "token_id": a_token,
        "user_id": _user_id(client, a_admin, a_user),
        "gateway_id": gw.id,
        "meter_pk": meter_pk,
        "point_id": point_id,
        "telegram_id": telegram_id,
        "operation_id": op["id"],
        "alarm_id": alarm_id,
        "b_gw": b_gw.id,
        "b_meter": b_meter,
        "a_serial": gw.serial,
        "a_meter": a_meter,
        "a_meter2": a_meter2,
        "markers": [gw.serial, a_meter, a_meter2, a_unknown, ref, a_user, f"iso-a-token-{tag}", *master["markers"]],
    }


def _billing(client, headers, point_id: int) -> dict:
    """Tenant A's month after EPOCH closed: its point's boundary values and a finding (its last reading
    is weeks before the month's end)."""
    nxt = (EPOCH.replace(day=1) + timedelta(days=32)).replace(day=1)
    period = f"{nxt.year:04d}-{nxt.month:02d}"
    assert client.post(f"{API}/billing/close", json={"period": period}, headers=headers).status_code == 200
    values = client.get(f"{API}/metering-points/{point_id}/billing-values", headers=headers).json()["items"]
    findings = client.get(f"{API}/review", headers=headers).json()["items"]
    assert values and findings, (values, findings)
    assert client.post(f"{API}/customer-info/records", json={"month": period}, headers=headers).status_code == 200
    records = client.get(f"{API}/customer-info/records", params={"month": period}, headers=headers).json()["items"]
    record = next(r["id"] for r in records if r["occupant"])
    assert client.post(f"{API}/customer-info/runs", json={"month": period}, headers=headers).status_code == 200
    deliveries = client.get(f"{API}/customer-info/deliveries", params={"month": period}, headers=headers).json()
    return {
        "billing_period": period,
        "value_id": values[0]["id"],
        "finding_id": findings[0]["id"],
        "record_id": record,
        "delivery_id": deliveries["items"][0]["id"],
    }


def _consent(client, headers, tag: str, occupant_id: int, tenant_id: int, delivery_id: int, db) -> dict:
    """Tenant A's recorded consent, and a bounce that names A's notice with its right reference."""
    from omshub.cloud.domain.dsn import notice_tag
    from omshub.cloud.store.models_customers import CustomerDelivery

    body = {
        "occupant_id": occupant_id,
        "provider": f"ISO-A-PROVIDER-{tag}",
        "scope": {"from": "2020-01", "to": "2030-12"},
        "evidence": "form",
    }
    consent = client.post(f"{API}/customer-info/consents", json=body, headers=headers)
    assert consent.status_code == 200, consent.text
    with db.session() as s:
        record_id = s.get(CustomerDelivery, delivery_id).record_id
    ref = f"{delivery_id}-{notice_tag(tenant_id, delivery_id, record_id)}"
    bounce = (
        f"To: a+notice-{ref}@a.example\r\nContent-Type: multipart/report; report-type=delivery-status; "
        'boundary="b"\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n'
        "Final-Recipient: rfc822; a@a.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
    ).encode()
    return {"consent_id": consent.json()["id"], "consent_marker": body["provider"], "a_bounce": bounce}


def _exports(client, headers, tag: str, period: str) -> dict:
    """Tenant A's recorded export, SFTP export job and webhook endpoint (docs/exports.md)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    run = client.post(f"{API}/exports", json={"format": "v1-csv", "period": period}, headers=headers).json()
    job = client.post(f"{API}/export-jobs", headers=headers, json={
        "name": f"ISO-A-JOB-{tag}", "format": "v1-csv", "cron": "0 6 2 * *", "host": "127.0.0.1", "port": 9,
        "username": "a", "private_key": key.decode()}).json()  # fmt: skip
    hook = client.post(f"{API}/webhooks", json={"url": f"http://127.0.0.1:9/iso-a-hook-{tag}"}, headers=headers).json()
    return {"run_id": run["run_id"], "job_id": job["id"], "endpoint_id": hook["id"],
            "export_markers": [run["export_id"], job["name"], hook["url"]]}  # fmt: skip


def _master_data(client, headers, tag: str, point_id: int) -> dict:
    """Tenant A's property with a unit (holding A's metering point), an occupant living there, and a
    weather station with a day."""
    prop = client.post(f"{API}/properties", json={"ref": f"ISO-A-PROP-{tag}"}, headers=headers).json()
    unit = client.post(
        f"{API}/properties/{prop['id']}/units", json={"ref": f"ISO-A-UNIT-{tag}", "area_m2": 70.5}, headers=headers
    ).json()
    client.post(f"{API}/units/{unit['id']}/metering-points", json={"metering_point_id": point_id}, headers=headers)
    occupant = client.post(
        f"{API}/occupants", json={"customer_ref": f"ISO-A-CUST-{tag}", "name": f"Anna A {tag}"}, headers=headers
    ).json()
    stay = client.post(
        f"{API}/units/{unit['id']}/occupancies",
        json={"occupant_id": occupant["id"], "moved_in": "2020-01-01"},
        headers=headers,
    ).json()
    station = client.post(f"{API}/weather-stations", json={"code": f"ISO-A-WS-{tag}"}, headers=headers).json()
    days = client.post(
        f"{API}/weather-stations/{station['id']}/days",
        content=b"date,mean_c\n2026-01-01,1.5\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert days.status_code == 200, days.text
    return {
        "property_id": prop["id"],
        "unit_id": unit["id"],
        "occupant_id": occupant["id"],
        "occupancy_id": stay["id"],
        "station_id": station["id"],
        "property_ref": prop["ref"],
        "station_code": station["code"],
        "markers": [prop["ref"], unit["ref"], occupant["customer_ref"], occupant["name"], station["code"]],
    }


def _user_id(client, headers, username) -> int:
    users = client.get(f"{API}/users", headers=headers).json()["items"]
    return next(u["id"] for u in users if u["username"] == username)


def _request(client, method, path, ctx, spec, headers):
    url = path
    for name in (
        "token_id",
        "user_id",
        "gateway_id",
        "meter_pk",
        "point_id",
        "telegram_id",
        "operation_id",
        "alarm_id",
        "property_id",
        "unit_id",
        "occupant_id",
        "occupancy_id",
        "station_id",
        "finding_id",
        "value_id",
        "record_id",
        "delivery_id",
        "consent_id",
        "run_id",
        "job_id",
        "endpoint_id",
    ):
        url = url.replace("{" + name + "}", str(ctx[name]))
    for name, value in spec.get("path", {}).items():
        url = url.replace("{" + name + "}", value)
    assert "{" not in url, f"no test value for a path parameter of {path}"
    params = {k: v.format(**ctx) for k, v in spec["params"].items()} if spec.get("params") else None
    kw = {"params": params, "headers": dict(headers)}
    if "json" in spec:
        kw["json"] = spec["json"](ctx)
    if "content" in spec:
        kw["content"] = spec["content"](ctx)
        kw["headers"]["Content-Type"] = "text/csv"
    return client.request(method, url, **kw)


def _leaks(text: str, markers: list[str]) -> list[str]:
    return [m for m in markers if m in text]


def test_tenant_b_never_reaches_tenant_a(app, client, hub, world, db):
    ctx = world
    endpoints = sorted(app_endpoints(app))
    failures = []
    by_kind = {}
    for method, path in endpoints:
        by_kind.setdefault(SPEC[(method, path)]["kind"], []).append((method, path))

    # lists first (nothing changed yet): B sees none of A's strings, A sees some of them
    for method, path in by_kind.get("list", []):
        spec = SPEC[(method, path)]
        rb = _request(client, method, path, ctx, spec, ctx["b_headers"])
        ra = _request(client, method, path, ctx, spec, ctx["a_headers"])
        if rb.status_code != 200 or _leaks(rb.text, ctx["markers"]):
            failures.append(f"{method} {path}: B got {rb.status_code}, leaks {_leaks(rb.text, ctx['markers'])}")
        if ra.status_code != 200 or not _leaks(ra.text, ctx["markers"]):
            failures.append(f"{method} {path}: A's own list shows nothing of A ({ra.status_code}) — test is blind")

    for method, path in by_kind.get("self", []):
        if path.endswith("/logout"):
            r = client.post(f"{API}/auth/logout", headers=hub.headers(ctx["b"], "viewer"))
        elif (method, path) == ("PATCH", f"{API}/auth/me"):  # a user's own setting: as a user of B
            login = {"username": hub.user(ctx["b"], "viewer"), "password": "correct horse"}
            session = {"Authorization": "Bearer " + client.post(f"{API}/auth/login", json=login).json()["token"]}
            r = _request(client, method, path, ctx, SPEC[(method, path)], session)
        else:
            r = _request(client, method, path, ctx, SPEC[(method, path)], ctx["b_headers"])
        if r.status_code >= 400 or _leaks(r.text, ctx["markers"]):
            failures.append(f"{method} {path}: {r.status_code} {r.text[:200]}")

    # one object of A by id: 404 (reads before writes, deletes last)
    order = {"GET": 0, "PATCH": 1, "PUT": 1, "POST": 2, "DELETE": 3}
    for method, path in sorted(by_kind.get("object", []), key=lambda e: order[e[0]]):
        r = _request(client, method, path, ctx, SPEC[(method, path)], ctx["b_headers"])
        if r.status_code != 404 or _leaks(r.text, ctx["markers"]):
            failures.append(f"{method} {path}: B got {r.status_code} {r.text[:200]} (expected 404)")

    for method, path in by_kind.get("create", []):
        spec = SPEC[(method, path)]
        r = _request(client, method, path, ctx, spec, ctx["b_headers"])
        sent = repr(spec["json"](ctx)) if "json" in spec else spec["content"](ctx).decode()
        # an error may echo what B itself sent; nothing else of A may appear
        hidden = [m for m in ctx["markers"] if m not in sent]
        if r.status_code not in spec["expect"] or _leaks(r.text, hidden):
            failures.append(f"{method} {path}: B got {r.status_code} {r.text[:200]} (expected {spec['expect']})")

    # uplink: B's gateway credential, A's gateway serial
    env = {
        "v": 1,
        "gw": ctx["gw"].serial,
        "seq": 99,
        "cfg": 0,
        "t0": 1_700_000_000,
        "batch": {"data": encode("C0C0C0C0"), "len": [len(encode("C0C0C0C0"))], "dt": [0], "rssi": b"\x80", "mode": 1},
    }
    for cred in (ctx["b_gw_info"].credential, None):
        body = dict(env, cred=cred) if cred else env
        r = client.post(
            f"{API}/uplink",
            content=cbor2.dumps(body),
            headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {ctx['b_gw_info'].credential}"},
        )
        if r.status_code not in (401, 403):
            failures.append(
                f"POST /api/v1/uplink as A's gateway with B's credential: {r.status_code} {r.content[:200]}"
            )
    assert not failures, "\n".join(failures)

    # A's objects are all still there and unchanged
    a = ctx["a_headers"]
    meter = client.get(f"{API}/meters/{ctx['meter_pk']}", headers=a).json()
    assert meter["device_type"] == "heat" and meter["key_status"] == "present"
    point = client.get(f"{API}/metering-points/{ctx['point_id']}", headers=a).json()
    assert point["address"] == "" and point["installation"]["meter"]["id"] == ctx["meter_pk"]
    assert client.get(f"{API}/users/{ctx['user_id']}", headers=a).json()["disabled"] is False
    tokens = client.get(f"{API}/tokens", headers=a).json()["items"]
    assert not next(t for t in tokens if t["id"] == ctx["token_id"])["revoked"]
    config = client.get(f"{API}/gateways/{ctx['gateway_id']}/config", headers=a).json()
    assert config["version"] == 1 and config["config"]["spread_s"] != 5
    with db.session() as s:
        assert s.get(Operation, ctx["operation_id"]).state == "PENDING"
        assert (
            s.scalar(
                select(Telegram.id).where(Telegram.gateway_id == ctx["gateway_id"], Telegram.meter_id == "C0C0C0C0")
            )
            is None
        )
    # the uplink of A's gateway still works with A's credential
    assert hub.send(ctx["gw"], 2, [encode(ctx["a_meter"], energy=8.0, access_number=1)])["ack"] == 2


def test_bulk_config_by_filter_only_selects_own_gateways(client, world):
    r = client.post(f"{API}/gateways/config", json={"config": {}, "filter": {"all": True}}, headers=world["b_headers"])
    assert r.status_code == 201
    assert [o["gateway_id"] for o in r.json()["operations"]] == [world["b_gw"]]
    r = client.post(
        f"{API}/gateways/config", json={"config": {}, "filter": {"serial_prefix": "ISO-A-"}}, headers=world["b_headers"]
    )
    assert r.status_code == 422  # matches no gateway of B


@pytest.fixture(autouse=True)
def _loopback_webhooks(monkeypatch):
    """The webhook endpoints here point at loopback, which the SSRF guard refuses by default."""
    monkeypatch.setenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", "127.0.0.0/8")
