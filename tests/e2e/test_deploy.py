"""The scale-out deployment of docs/deploy.md, on loopback: two `omshub serve` head-ends (node 0
and node 1 of 2) on one PostgreSQL behind nginx running the committed deploy/nginx.conf (addresses
and ports replaced). Uplinks go through the balancer — CoAP and HTTP — and one head-end is killed
(SIGKILL) mid-run; every uplink is acknowledged (a gateway sends an unacknowledged one again, as
the agent does), nothing is lost, and every telegram is decoded exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import cbor2
import httpx
import pytest

from tests.cloud.conftest import (
    KEY,
    MASTER_KEY_HEX,
    Hub,
    LiveServer,
    _pg_connect,
    _postgres_admin_url,
    batch_envelope,
    encode,
    free_port,
)

REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
GATEWAYS, METERS, UPLINKS = 6, 40, 8  # uplinks per gateway: 1,920 telegrams


@pytest.fixture
def pg_database():
    admin = _postgres_admin_url()
    try:
        conn = _pg_connect(admin)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {admin}: {exc}")
    name = "omshub_deploy_" + uuid.uuid4().hex[:10]
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0].split("://", 1)[1]
    yield f"postgresql+psycopg://{base}/{name}"
    with _pg_connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def nginx_config(tmp: Path, http_port: int, coap_port: int, heads: list[tuple[int, int]]) -> Path:
    """deploy/nginx.conf on loopback: the head-ends' addresses, the listening ports, pid and logs."""
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    for i, (http, coap) in enumerate(heads, start=1):
        conf = conf.replace(f"omshub-{i}:8080", f"127.0.0.1:{http}").replace(f"omshub-{i}:5683", f"127.0.0.1:{coap}")
    assert not re.search(r"omshub-\d+:", re.sub(r"#.*", "", conf)), "every head-end of the file replaced"
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{http_port};")
    conf = conf.replace("listen 5683 udp;", f"listen 127.0.0.1:{coap_port} udp;")
    conf = conf.replace("pid /run/omshub-nginx.pid;", f"pid {tmp}/nginx.pid;")
    conf = conf.replace("/var/log/nginx/omshub-error.log", f"{tmp}/nginx-error.log")
    conf = conf.replace(
        "http {", f"http {{\n    client_body_temp_path {tmp}/body;\n    proxy_temp_path {tmp}/proxy;", 1
    )
    path = tmp / "nginx.conf"
    path.write_text(conf)
    return path


def send_until_acked(client: httpx.Client, body: bytes, credential: str, attempts: int = 20) -> dict:
    """POST an uplink through the balancer; on any failure send it again (the gateway agent does)."""
    last: object = None
    for _ in range(attempts):
        try:
            r = client.post(
                "/api/v1/uplink",
                content=body,
                headers={"Content-Type": "application/cbor", "Authorization": f"Bearer {credential}"},
            )
            if r.status_code == 200:
                return cbor2.loads(r.content)
            last = (r.status_code, r.text[:200])
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"uplink never acknowledged: {last}")


def taken(base_url: str) -> float:
    """Uplinks a head-end acknowledged, from its own /metrics."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("omshub_uplinks_total{"))


def send_coap(port: int, body: bytes, attempts: int = 5) -> dict:
    """One uplink over CoAP, sent again on a transport error as the gateway agent does (an uplink
    sent twice is stored once)."""
    from omshub.gateway.transport_coap import CoapTransport
    from omshub.protocol.envelope import TransportError

    async def go() -> bytes:
        transport = CoapTransport(f"coap://127.0.0.1:{port}/u", timeout_s=30)
        try:
            return await transport.send(body)
        finally:
            await transport.close()

    for attempt in range(attempts):
        try:
            return cbor2.loads(asyncio.run(go()))
        except TransportError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_two_head_ends_behind_the_balancer_lose_nothing_when_one_dies(pg_database, tmp_path):
    if not (os.access(NGINX, os.X_OK) and STREAM_MODULE.exists()):
        pytest.skip("nginx with its stream module not installed (Debian: nginx libnginx-mod-stream; scripts/test does)")
    from sqlalchemy import text

    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import KeyStore

    db = Database(pg_database)
    db.migrate()
    hub = Hub(db, KeyStore(bytes.fromhex(MASTER_KEY_HEX)))
    tenant = hub.tenant()
    gateways = [hub.gateway(tenant, f"DEPLOY-{g}") for g in range(GATEWAYS)]
    meter_ids = [f"7{g:03d}{i:04d}" for g in range(GATEWAYS) for i in range(METERS)]
    for mid in meter_ids:
        hub.meter(tenant, mid)
    hub.keys(tenant, dict.fromkeys(meter_ids, KEY))

    heads: list[tuple[int, int]] = []
    servers: list[LiveServer] = []
    nginx: subprocess.Popen | None = None
    try:
        for node in range(2):
            http_port, coap_port = free_port(), free_port()
            data = tmp_path / f"node{node}"
            data.mkdir()
            env = {
                "OMSHUB_NODE_INDEX": str(node),
                "OMSHUB_NODE_COUNT": "2",
                "OMSHUB_PIPELINE_WORKERS": "1",
                "OMSHUB_COAP_PORT": str(coap_port),
                "OMSHUB_COAP_HOST": "127.0.0.1",
            }
            server = LiveServer(pg_database, data, env)
            server.port, server.base_url = http_port, f"http://127.0.0.1:{http_port}"
            servers.append(server)  # (stopped at the end whatever happens)
            server.start()
            heads.append((http_port, coap_port))
        lb_http, lb_coap = free_port(), free_port()
        conf = nginx_config(tmp_path, lb_http, lb_coap, heads)
        nginx = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"], start_new_session=True
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{lb_http}", timeout=30) as client:
            for _ in range(50):  # the balancer is up and a head-end is ready behind it
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            assert client.get("/readyz").json()["checks"]["decode_workers"]["ok"]

            def body(g: int, seq: int) -> bytes:
                gw = gateways[g]
                frames = [
                    encode(f"7{g:03d}{i:04d}", energy=float(1000 * seq + i), access_number=(seq * 7 + i) % 256)
                    for i in range(METERS)
                ]
                return cbor2.dumps(batch_envelope(gw.serial, seq, frames, cred=gw.credential))

            stored = 0
            # seq 1 of every gateway over CoAP through the balancer (UDP), then HTTP
            for g in range(GATEWAYS):
                stored += send_coap(lb_coap, body(g, 1))["stored"]
            for seq in range(2, UPLINKS + 1):
                if seq == UPLINKS // 2 + 1:
                    # both head-ends took uplinks so far (each counts its own)
                    assert all(taken(s.base_url) > 0 for s in servers)
                    servers[0].kill()  # node 0 dies mid-run: its uplinks and its share of the decoding
                for g, gw in enumerate(gateways):
                    stored += send_until_acked(client, body(g, seq), gw.credential)["stored"]
        total = GATEWAYS * METERS * UPLINKS
        assert stored == total  # each acknowledged once with its telegrams stored: none lost, none twice

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with db.engine.connect() as conn:
                waiting = conn.execute(text("SELECT count(*) FROM telegrams WHERE state = 'new'")).scalar()
            if waiting == 0:
                break
            time.sleep(0.5)
        with db.engine.connect() as conn:
            states = dict(conn.execute(text("SELECT state, count(*) FROM telegrams GROUP BY state")).all())
            readings = conn.execute(text("SELECT count(*), count(DISTINCT telegram_id) FROM readings")).one()
            uplinks = conn.execute(text("SELECT count(*) FROM uplinks")).scalar()
        assert states == {"decoded": total}, states
        assert tuple(readings) == (total, total)  # one reading per telegram: decoded exactly once
        assert uplinks == GATEWAYS * UPLINKS
        assert servers[1].proc is not None and servers[1].proc.poll() is None  # the survivor served on
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for server in servers:
            server.stop()
        db.dispose()
