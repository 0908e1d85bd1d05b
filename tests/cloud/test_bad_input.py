"""Bad input gets a 4xx that says what, where and why — never a 500 (issue 9, item 10).

The classes found by attacking a running head-end: integers beyond what Python prints (CBOR
bignums in uplinks, over HTTPS, CoAP and MQTT) or what the database holds (>= 2**63 in paths,
queries and bodies), times at the edges of the calendar, and NUL characters in text (PostgreSQL
refuses them). Run on SQLite and on PostgreSQL (OMSHUB_TEST_DATABASE=postgres).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import uuid

import cbor2
import pytest

from omshub.gateway.transport_mqtt import make_client
from omshub.protocol.topics import parse_broker_url
from tests.clock import EPOCH, unix

API = "/api/v1"
HUGE = 10**5000  # more digits than Python converts to text (4,300)
BEYOND_INT64 = 2**63
BROKER = os.environ.get("OMSHUB_TEST_MQTT", "")


def _error(response, status: int = 422) -> dict:
    assert response.status_code == status, response.content[:500]
    body = cbor2.loads(response.content) if "cbor" in response.headers["content-type"] else response.json()
    # `fields`: a validation error's problems per field, in plain words (docs/console.md)
    assert set(body) == {"error"} and set(body["error"]) - {"fields"} == {"code", "message"}, body
    return body["error"]


@pytest.fixture(scope="module")
def tenant(module_hub):
    return module_hub.tenant()


@pytest.fixture(scope="module")
def admin(module_hub, tenant):
    return module_hub.headers(tenant, "admin")


@pytest.fixture(scope="module")
def gw(module_hub, tenant):
    return module_hub.gateway(tenant)


# --- CBOR integers beyond 64 bits in uplinks ---


def _envelopes(serial: str) -> dict[str, dict]:
    t0 = unix(EPOCH)
    return {
        "v": {"v": HUGE, "gw": serial, "seq": 1, "cfg": 0},
        "gw": {"v": 1, "gw": HUGE, "seq": 1, "cfg": 0},
        "seq": {"v": 1, "gw": serial, "seq": HUGE, "cfg": 0},
        "batch.len": {
            "v": 1,
            "gw": serial,
            "seq": 1,
            "cfg": 0,
            "t0": t0,
            "batch": {"data": b"\x00" * 12, "len": [HUGE], "dt": [0]},
        },
        "batch.dt": {
            "v": 1,
            "gw": serial,
            "seq": 1,
            "cfg": 0,
            "t0": t0,
            "batch": {"data": b"\x00" * 12, "len": [12], "dt": [-HUGE]},
        },
        "status": {"v": 1, "gw": serial, "seq": 1, "cfg": 0, "status": {"spool": HUGE}},
        "telegrams.rx": {"v": 1, "gw": serial, "seq": 1, "cfg": 0, "telegrams": [{"rx": HUGE, "hex": "00" * 12}]},
    }


@pytest.mark.parametrize("where", list(_envelopes("x")))
@pytest.mark.parametrize("authenticated", [False, True], ids=["no-credential", "credential"])
def test_cbor_bignum_in_an_uplink_is_refused_with_the_reason(client, gw, where, authenticated):
    headers = {"Content-Type": "application/cbor"}
    if authenticated:
        headers["Authorization"] = f"Bearer {gw.credential}"
    r = client.post(f"{API}/uplink", content=cbor2.dumps(_envelopes(gw.serial)[where]), headers=headers)
    if not authenticated and r.status_code == 401:  # a head-end that authenticates before it reads: fine too
        return
    error = _error(r)
    assert error["code"] == "invalid_uplink" and "beyond 64 bits" in error["message"]


def test_cbor_bignum_over_coap_is_a_4_00_with_the_reason(db, gw):
    from omshub.cloud.ingest.coap import CoapServer
    from omshub.gateway.transport_coap import CoapTransport
    from omshub.protocol.envelope import UplinkRejected

    async def main():
        server = CoapServer.for_database(db, host="127.0.0.1", port=0)
        await server.start()
        transport = CoapTransport(f"coap://127.0.0.1:{server.port}/u", timeout_s=10)
        refusals = []
        try:
            for where in ("v", "seq"):
                envelope = {**_envelopes(gw.serial)[where], "cred": gw.credential}
                with pytest.raises(UplinkRejected) as refused:
                    await transport.send(cbor2.dumps(envelope))
                refusals.append(refused.value)
        finally:
            await transport.close()
            await server.stop()
        return refusals

    for refused in asyncio.run(asyncio.wait_for(main(), 60)):
        assert refused.status == 400  # 4.00 Bad Request, the reason in the diagnostic payload
        assert "invalid_uplink" in str(refused) and "beyond 64 bits" in str(refused)


def _broker_reachable() -> bool:
    import socket

    if not BROKER:
        return False
    address = parse_broker_url(BROKER)
    try:
        with socket.create_connection((address.host, address.port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(
    not _broker_reachable(),
    reason=f"no MQTT broker: set OMSHUB_TEST_MQTT=host:port to a running Mosquitto (scripts/test does); got {BROKER!r}",
)
def test_cbor_bignum_over_mqtt_is_answered_and_logged_in_one_line(db, gw, caplog):
    from omshub.cloud.ingest.mqtt import MqttBridge

    prefix = f"omshub-test-{uuid.uuid4().hex[:10]}"

    async def main():
        bridge = MqttBridge.for_database(db, BROKER, prefix=prefix)
        await bridge.start()
        assert bridge.ready
        answers = []
        try:
            async with make_client(parse_broker_url(BROKER), identifier=f"test-{uuid.uuid4().hex}") as client:
                await client.subscribe(f"{prefix}/down/{gw.serial}", qos=1)
                for where in ("gw", "seq"):
                    envelope = {**_envelopes(gw.serial)[where], "cred": gw.credential}
                    await client.publish(f"{prefix}/up/{gw.serial}", cbor2.dumps(envelope), qos=1)
                    async with asyncio.timeout(15):  # before the fix: no answer to a bignum gw, ever
                        message = await anext(aiter(client.messages))
                    answers.append(cbor2.loads(message.payload))
        finally:
            await bridge.stop()
        return answers

    with caplog.at_level(logging.INFO, logger="omshub.cloud.ingest.mqtt"):
        answers = asyncio.run(asyncio.wait_for(main(), 60))
    for answer in answers:
        assert answer["seq"] is None  # no seq of the uplink's own to echo
        assert answer["error"]["status"] == 422 and answer["error"]["code"] == "invalid_uplink"
        assert "beyond 64 bits" in answer["error"]["message"]
    bridge_lines = [r for r in caplog.records if r.name == "omshub.cloud.ingest.mqtt" and r.levelno >= logging.WARNING]
    assert len(bridge_lines) == 2, [r.getMessage() for r in bridge_lines]  # one line per refused uplink
    for record in bridge_lines:
        assert record.levelno == logging.WARNING and record.exc_info is None  # a line, not a traceback
        assert "refused: 422 invalid_uplink" in record.getMessage()


# --- integers the database cannot hold (>= 2**63) ---


def _cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"id:{value}".encode()).decode()


@pytest.mark.parametrize(
    "method,url,body,where",
    [
        ("GET", f"{API}/meters/{BEYOND_INT64}", None, "meter_pk"),
        ("PATCH", f"{API}/meters/{BEYOND_INT64}", {}, "meter_pk"),
        ("GET", f"{API}/gateways/{BEYOND_INT64}/config", None, "gateway_id"),
        ("GET", f"{API}/telegrams/{BEYOND_INT64}", None, "telegram_id"),
        ("GET", f"{API}/alarms/{BEYOND_INT64}", None, "alarm_id"),
        ("GET", f"{API}/users/{BEYOND_INT64}", None, "user_id"),
        ("DELETE", f"{API}/tokens/{BEYOND_INT64}", None, "token_id"),
        (
            "GET",
            f"{API}/metering-points/{BEYOND_INT64}/consumption?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
            None,
            "point_id",
        ),
        ("GET", f"{API}/operations/{BEYOND_INT64}", None, "operation_id"),
        ("GET", f"{API}/console/meters/{BEYOND_INT64}/recent-readings", None, "meter_pk"),
        ("GET", f"{API}/meters?gateway_id={BEYOND_INT64}", None, "gateway_id"),
        ("GET", f"{API}/telegrams?meter={BEYOND_INT64}", None, "meter"),
        ("GET", f"{API}/readings/latest?gateway_id={BEYOND_INT64}", None, "gateway_id"),
        ("GET", f"{API}/alarms?subject_id={BEYOND_INT64}", None, "subject_id"),
        (
            "GET",
            f"{API}/export/readings?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&meter={BEYOND_INT64}",
            None,
            "meter",
        ),
        (
            "POST",
            f"{API}/meters",
            {"manufacturer": "KAM", "meter_id": "12345678", "gateway_id": BEYOND_INT64},
            "gateway_id",
        ),
        ("POST", f"{API}/gateways/config", {"config": {}, "gateway_ids": [BEYOND_INT64]}, "gateway_ids"),
        ("POST", f"{API}/metering-points/1/install", {"meter": BEYOND_INT64}, "meter"),
    ],
)
def test_integers_beyond_64_bits_are_refused_naming_the_parameter(client, admin, method, url, body, where):
    error = _error(client.request(method, url, headers=admin, json=body))
    assert error["code"] == "invalid_request" and where in error["message"], error


@pytest.mark.parametrize("url", [f"{API}/meters", f"{API}/telegrams", f"{API}/telegrams/unregistered"])
def test_a_cursor_beyond_64_bits_is_not_one_the_api_returned(client, admin, url):
    error = _error(client.get(url, params={"cursor": _cursor(BEYOND_INT64)}, headers=admin))
    assert error["code"] == "invalid_cursor"


def test_a_number_python_cannot_read_is_a_clear_400_even_without_credentials(client):
    r = client.post(
        f"{API}/auth/login",
        content=b'{"username": 1' + b"0" * 5000 + b', "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    error = _error(r, 400)
    assert error["code"] == "invalid_body" and "4,300 digits" in error["message"]


# --- times at the edges of the calendar ---

YEAR_1_EAST = "0001-01-01T00:00:00+01:00"  # UTC would be year 0
YEAR_9999_WEST = "9999-12-31T23:59:59-01:00"  # UTC would be year 10000
NO_SUCH_DAY = "2025-02-29T00:00:00Z"  # 2025 is not a leap year


@pytest.fixture(scope="module")
def point_with_meter(module_hub, client, tenant, admin):
    pk = module_hub.meter(tenant, "82000001")
    point = client.post(f"{API}/metering-points", json={"ref": "edge-point"}, headers=admin).json()
    client.post(
        f"{API}/metering-points/{point['id']}/install", json={"meter": pk, "at": "2026-01-01T00:00:00Z"}, headers=admin
    ).raise_for_status()
    return point["id"], pk


@pytest.mark.parametrize(
    "value,reason",
    [
        (YEAR_1_EAST, "outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"),
        (YEAR_9999_WEST, "outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00Z", "outside"),
        (NO_SUCH_DAY, "day is out of range for month"),
    ],
)
def test_calendar_edge_times_in_queries_are_refused_with_the_reason(client, admin, point_with_meter, value, reason):
    point, pk = point_with_meter
    later = "2026-02-01T00:00:00Z"
    for url, params, name in [
        (f"{API}/telegrams", {"from": value}, "from"),
        (f"{API}/meters/{pk}/readings", {"to": value}, "to"),
        (f"{API}/metering-points/{point}/readings", {"from": value}, "from"),
        (f"{API}/metering-points/{point}/consumption", {"from": value, "to": later}, "from"),
        (f"{API}/export/readings", {"from": "2026-01-01T00:00:00Z", "to": value}, "to"),
    ]:
        error = _error(client.get(url, params=params, headers=admin))
        assert error["code"] == "invalid_time", (url, error)
        assert error["message"].startswith(f"{name}: {value!r}") and reason in error["message"], (url, error)


@pytest.mark.parametrize("value", [YEAR_1_EAST, YEAR_9999_WEST, NO_SUCH_DAY])
def test_calendar_edge_times_in_bodies_are_refused_with_the_reason(client, admin, point_with_meter, value):
    point, pk = point_with_meter
    error = _error(client.post(f"{API}/tokens", json={"name": "edge", "expires_at": value}, headers=admin))
    assert error["code"] == "invalid_request" and error["message"].startswith("expires_at: "), error
    for url, body in [
        (
            f"{API}/metering-points/{point}/swap",
            {"at": value, "old_final_values": {}, "new_meter": {"manufacturer": "KAM", "meter_id": "82000002"}},
        ),
        (f"{API}/metering-points/{point}/remove", {"at": value}),
    ]:
        error = _error(client.post(url, json=body, headers=admin))
        assert error["code"] == "invalid_time" and error["message"].startswith(f"at: {value!r}"), (url, error)
    csv = f"manufacturer,id,metering_point,installed_at\nKAM,82000003,edge-point-2,{value}\n"
    error = _error(
        client.post(f"{API}/meters/import", content=csv.encode(), headers={**admin, "Content-Type": "text/csv"})
    )
    assert error["code"] == "invalid_csv" and error["message"].startswith(f"line 2: installed_at: {value!r}"), error


# --- NUL characters in text (PostgreSQL cannot store them) ---

NUL_REASON = "must not contain NUL characters"


@pytest.mark.parametrize(
    "body", [{"username": "ad\x00min", "password": "x"}, {"username": "admin", "password": "pass\x00word"}]
)
def test_nul_in_the_login_is_refused_without_credentials(client, body):
    error = _error(client.post(f"{API}/auth/login", json=body))
    assert error["code"] == "invalid_request" and NUL_REASON in error["message"]
    assert error["message"].startswith(next(k for k, v in body.items() if "\x00" in v))


@pytest.mark.parametrize(
    "url,name",
    [
        (f"{API}/meters?manufacturer=K%00M", "manufacturer"),
        (f"{API}/meters?device_type=%00", "device_type"),
        (f"{API}/telegrams?meter_id=1234%005678", "meter_id"),
        (f"{API}/metering-points?customer_ref=%00", "customer_ref"),
        (f"{API}/keys?meter_id=%00", "meter_id"),
        (f"{API}/readings/latest?device_type=%00", "device_type"),
    ],
)
def test_nul_in_query_text_is_refused(client, admin, url, name):
    error = _error(client.get(url, headers=admin))
    assert error["code"] == "invalid_request" and error["message"].startswith(f"query.{name}: ")
    assert NUL_REASON in error["message"]


@pytest.mark.parametrize(
    "method,url,body,name",
    [
        ("POST", f"{API}/metering-points", {"ref": "p\x00"}, "ref"),
        ("POST", f"{API}/gateways", {"serial": "GW-NUL-1", "name": "roof\x00"}, "name"),
        ("POST", f"{API}/tokens", {"name": "billing\x00"}, "name"),
        ("POST", f"{API}/users", {"username": "nul\x00user", "password": "correct horse battery"}, "username"),
        ("POST", f"{API}/gateways/config", {"config": {}, "filter": {"name_contains": "\x00"}}, "filter.name_contains"),
    ],
)
def test_nul_in_body_text_is_refused(client, admin, method, url, body, name):
    error = _error(client.request(method, url, json=body, headers=admin))
    assert error["code"] == "invalid_request" and error["message"].startswith(f"{name}: ")
    assert NUL_REASON in error["message"]


def test_nul_in_a_metering_point_change_is_refused(client, admin, point_with_meter):
    point, _ = point_with_meter
    error = _error(client.patch(f"{API}/metering-points/{point}", json={"address": "Haupt\x00str"}, headers=admin))
    assert error["message"].startswith("address: ") and NUL_REASON in error["message"]


def test_nul_in_a_meter_csv_is_refused_naming_the_line(client, admin):
    csv = "manufacturer,id,metering_point\nKAM,82000010,ok\nKAM,82000011,p\x00\n"
    error = _error(
        client.post(f"{API}/meters/import", content=csv.encode(), headers={**admin, "Content-Type": "text/csv"})
    )
    assert error["code"] == "invalid_csv" and error["message"].startswith("line 3: a NUL character")


def test_nul_in_text_a_gateway_reports_is_stored_without_it(module_hub, client, tenant, admin, db):
    """Status and configuration error texts: stored with U+FFFD in place of NUL (the raw body keeps the
    original); the uplink and its telegrams are never refused over a gateway's diagnostic text."""
    from omshub.cloud.store.models import Gateway, Operation

    gw = module_hub.gateway(tenant)
    client.put(
        f"{API}/gateways/{gw.id}/config", json={"upload": {"cron": "0 0 3 * * *"}}, headers=admin
    ).raise_for_status()
    version = client.get(f"{API}/gateways/{gw.id}/config", headers=admin).json()["version"]
    envelope = {
        "v": 1,
        "gw": gw.serial,
        "seq": 1,
        "cfg": 0,
        "status": {"firmware": "1.2\x00rc"},
        "cfg_error": {"version": version, "message": "cron\x00 refused"},
    }
    r = module_hub.post_uplink(gw, envelope)
    assert r.status_code == 200, r.content
    with db.session() as s:
        assert s.get(Gateway, gw.id).status["firmware"] == "1.2\ufffdrc"
        errors = [op.error for op in s.query(Operation).filter(Operation.gateway_id == gw.id)]
    assert any(e and "cron\ufffd refused" in e for e in errors), errors


# --- an error of ours ---


def test_an_internal_error_answers_the_error_shape_without_details(tmp_path):
    """A real defect (here: a table gone from under the server) is a 5xx in the API's error shape,
    with nothing of the exception in the body (the server logs it)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from omshub.cloud.app import create_app
    from omshub.cloud.services.accounts import create_api_token, create_tenant
    from omshub.cloud.settings import load_settings
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import KeyStore

    from .conftest import MASTER_KEY_HEX

    url = f"sqlite:///{tmp_path / 'broken.db'}"
    database = Database(url)
    database.migrate()
    try:
        with database.transaction() as s:
            token = create_api_token(s, create_tenant(s, "broken", "Broken").id, "t", "admin")[1]
            s.execute(text("DROP TABLE alarms"))
        settings = load_settings(None, environ={}, database=url, data_dir=str(tmp_path), master_key=MASTER_KEY_HEX)
        app = create_app(settings, db=database, keystore=KeyStore(bytes.fromhex(MASTER_KEY_HEX)), migrate=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            r = client.get(f"{API}/alarms", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code >= 500 and set(r.json()) == {"error"}, r.text
        assert set(r.json()["error"]) == {"code", "message"} and r.json()["error"]["code"].islower(), r.text
        assert "alarms" not in r.text and "Error" not in r.text and "sqlite" not in r.text.lower()
    finally:
        database.dispose()


# --- required values left empty ---


@pytest.mark.parametrize(
    "params,name",
    [({"from": "", "to": "2026-02-01T00:00:00Z"}, "from"), ({"from": "2026-01-01T00:00:00Z", "to": ""}, "to")],
)
def test_an_empty_period_end_is_refused_naming_it(client, admin, point_with_meter, params, name):
    """`from=` / `to=` are required for an export and a consumption (an empty one was a 500)."""
    point, _ = point_with_meter
    for url in (f"{API}/export/readings", f"{API}/metering-points/{point}/consumption"):
        error = _error(client.get(url, params=params, headers=admin))
        assert error["code"] == "invalid_request" and error["message"].startswith(f"query.{name}: "), (url, error)
