"""Uplink cost per transport: bytes on the wire per telegram, and the gateway agent's CPU and memory.

    python -m benchmarks.uplink [--meters 250] [--agent-telegrams 1000] [--broker 127.0.0.1:1883]

A day's batch of ``--meters`` heat-meter telegrams (security mode 5, built by the codec's encoder,
without CRCs as receiver dongles deliver them) goes once through each transport into a real head-end
(ingest on SQLite, running in a child process): HTTP and HTTPS (the FastAPI uplink endpoint under
uvicorn), CoAP (the CoAP server, blockwise) and MQTT (through Mosquitto to the bridge). Counting
proxies between the gateway side and the head-end (or broker) measure the payload bytes above
UDP/TCP, both ways, for the whole exchange: connection set-up, TLS handshake, CONNECT/SUBSCRIBE,
blocks and their acknowledgements, the answer, the close. IP/UDP/TCP headers are not included.

Then the real gateway agent (collect from an in-memory radio, durable spool, envelope, CoAP send)
runs simulated days until ``--agent-telegrams`` telegrams were acknowledged, measuring its CPU time
and its peak Python heap (tracemalloc) per 1,000 telegrams.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import heapq
import ipaddress
import logging
import math
import multiprocessing as mp
import os
import random
import resource
import socket
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from omshub.cloud.services.accounts import hash_secret, new_secret
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Gateway, Telegram, Tenant
from omshub.codec import encode_telegram
from omshub.gateway.agent import Agent
from omshub.gateway.clock import SimClock
from omshub.gateway.frames import ReceivedFrame
from omshub.gateway.settings import settings_from_dict
from omshub.gateway.transport_coap import CoapTransport
from omshub.gateway.transport_http import HttpsTransport
from omshub.gateway.transport_mqtt import MqttTransport
from omshub.protocol.envelope import build_envelope, parse_response
from omshub.protocol.topics import parse_broker_url
from omshub.sim.battery import battery_from_settings
from omshub.sim.linkemu import TcpProxy, UdpProxy

T_DAY0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()
WINDOW_START = T_DAY0 + 2 * 3600  # the default collection window: 02:00, 900 s
UPLINK_PATH = "/api/v1/uplink"


# --- telegrams ---------------------------------------------------------------------------------


def _record(quantity, unit, value, dif_vif, storage=0):
    return {
        "quantity": quantity,
        "unit": unit,
        "value": value,
        "storage": storage,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
        "dif_vif": dif_vif,
    }


def heat_meter_frame(rng: random.Random, index: int) -> bytes:
    """One mode 5 heat-meter telegram: current registers, meter time, error flags, the due-date
    values at storage 1, and 0-3 month-end values (so frames vary in length like a real fleet)."""

    energy = rng.randint(2_000, 60_000)
    recs = [
        _record("energy", "kWh", float(energy), "0406"),
        _record("volume", "m3", rng.randint(50_000, 900_000) / 1000, "0413"),
        _record("power", "kW", rng.randint(0, 25_000) / 1000, "042b"),
        _record("volume_flow", "m3/h", rng.randint(0, 1_500) / 1000, "043b"),
        _record("flow_temperature", "°C", rng.randint(3_500, 7_500) / 100, "0259"),
        _record("return_temperature", "°C", rng.randint(2_500, 4_500) / 100, "025d"),
        _record("datetime", "", "2026-01-05T02:07", "046d"),
        _record("error_flags", "", 0, "02fd17"),
        _record("date", "", "2025-12-31", "426c", 1),
        _record("energy", "kWh", float(energy - rng.randint(10, 400)), "4406", 1),
        _record("volume", "m3", rng.randint(50_000, 900_000) / 1000, "4413", 1),
    ]
    for n in range(index % 4):  # month-end energy values at storage 2..
        storage = 2 + n
        dif_vif = f"{0x84 | ((storage & 1) << 6):02x}{storage >> 1:02x}06"
        recs.append(_record("energy", "kWh", float(energy - 300 * (n + 1)), dif_vif, storage))
    meter = {
        "manufacturer": rng.choice(["KAM", "DME", "EFE", "ITW"]),
        "id": f"{30_000_000 + index:08d}",
        "version": rng.randint(1, 0x40),
        "device_type_code": 4,
    }
    return encode_telegram(meter, recs, mode=5, key=rng.randbytes(16), access_number=rng.randrange(256))


def daily_batch(meters: int, seed: int = 1) -> list[ReceivedFrame]:
    rng = random.Random(seed)
    frames = [heat_meter_frame(rng, i) for i in range(meters)]
    return [ReceivedFrame(f, WINDOW_START + rng.randrange(900), -rng.randint(55, 100), "T1") for f in frames]


def gateway_status(spool: int, heard: int) -> dict:
    return {
        "battery_pct": 96,
        "battery_mv": 3580,
        "rssi": -97,
        "firmware": "omshub 0.1.0",
        "uptime_s": 1_234_567,
        "spool": spool,
        "spool_full": False,
        "heard": heard,
        "filtered": 37,
        "time": int(WINDOW_START + 5400),
        "next_contact": int(WINDOW_START + 5400 + 86_400),
    }


# --- the head-end (child process) ----------------------------------------------------------------


def make_database(directory: Path, gateways: dict[str, str]) -> str:
    url = f"sqlite:///{directory / 'headend.sqlite3'}"
    db = Database(url)
    db.migrate()
    now = dt.datetime.now(dt.UTC)
    with db.transaction() as s:
        tenant = Tenant(slug="bench", name="Benchmark", created_at=now)
        s.add(tenant)
        s.flush()
        for serial, credential in gateways.items():
            s.add(
                Gateway(
                    tenant_id=tenant.id,
                    serial=serial,
                    name=serial,
                    credential_hash=hash_secret(credential),
                    created_at=now,
                )
            )
    db.dispose()
    return url


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omshub-bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


def serve_headend(db_url: str, ports: dict, certfile: str, keyfile: str, broker: str | None, ready, stop) -> None:
    """Child process: the head-end's uplink endpoints over one database."""

    logging.basicConfig(level=logging.WARNING)

    async def main():
        # The servers' modules are imported here, in the head-end's own (spawned) process only: the
        # parent process is the gateway being measured, and every module it holds lengthens its
        # garbage collections (these add ~6 % to its tracked objects).
        import uvicorn
        from fastapi import FastAPI

        from omshub.cloud.api.uplink import router
        from omshub.cloud.ingest.coap import CoapServer
        from omshub.cloud.ingest.mqtt import MqttBridge

        db = Database(db_url)
        app = FastAPI()
        app.include_router(router)
        app.state.db = db
        servers = [
            uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=ports["http"], log_level="warning")),
            uvicorn.Server(
                uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=ports["https"],
                    log_level="warning",
                    ssl_certfile=certfile,
                    ssl_keyfile=keyfile,
                )
            ),
        ]
        for server in servers:
            server.install_signal_handlers = lambda: None  # only the parent stops us
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        coap = CoapServer.for_database(db, host="127.0.0.1", port=ports["coap"])
        await coap.start()
        bridge = None
        if broker:
            bridge = MqttBridge.for_database(db, broker)
            await bridge.start()
        while not all(server.started for server in servers):
            await asyncio.sleep(0.05)
        ready.set()
        await asyncio.to_thread(stop.wait)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
        await coap.stop()
        if bridge is not None:
            await bridge.stop()
        db.dispose()

    asyncio.run(main())


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- bytes on the wire ----------------------------------------------------------------------------


@dataclass
class WireResult:
    transport: str
    telegrams: int
    raw: int
    body: int
    up: int
    down: int
    packets: str
    note: str = ""

    @property
    def total(self) -> int:
        return self.up + self.down


async def one_uplink(
    name: str, transport, proxy, serial: str, credential: str, batch: list[ReceivedFrame], note: str = ""
) -> WireResult:

    await proxy.start()
    try:
        body = build_envelope(
            serial=serial,
            seq=1,
            cfg=0,
            telegrams=batch,
            status=gateway_status(len(batch), len(batch)),
            cred=credential if transport.cred_in_envelope else None,
        )
        answer = parse_response(await transport.send(body, "application/cbor"))
        await transport.close()
        await asyncio.sleep(0.3)  # let the close (FIN, DISCONNECT) and any late ACK pass the proxy
    finally:
        await proxy.stop()
    if answer["ack"] != 1 or answer["stored"] + answer["duplicates"] != len(batch) or answer["rejected"]:
        raise RuntimeError(f"{name}: unexpected answer {answer}")
    s = proxy.stats
    kind = "datagrams" if name == "CoAP" else "reads"
    return WireResult(
        name,
        len(batch),
        sum(len(f.raw) for f in batch),
        len(body),
        s.bytes_up,
        s.bytes_down,
        f"{s.packets_up}/{s.packets_down} {kind}",
        note,
    )


async def measure_wire(
    batch: list[ReceivedFrame], ports: dict, creds: dict[str, str], certfile: Path, broker: str | None
) -> list[WireResult]:

    results = []
    proxy = TcpProxy(("127.0.0.1", ports["http"]))
    await proxy.start()
    await proxy.stop()  # learn a port; the proxy restarts on it below
    proxy = TcpProxy(("127.0.0.1", ports["http"]), port=proxy.port)
    results.append(
        await one_uplink(
            "HTTP",
            HttpsTransport(f"http://127.0.0.1:{proxy.port}", creds["GW-HTTP01"]),
            proxy,
            "GW-HTTP01",
            creds["GW-HTTP01"],
            batch,
            "plain TCP, no TLS",
        )
    )

    port = free_port(socket.SOCK_STREAM)
    proxy = TcpProxy(("127.0.0.1", ports["https"]), port=port)
    results.append(
        await one_uplink(
            "HTTPS",
            HttpsTransport(f"https://127.0.0.1:{port}", creds["GW-TLS001"], verify=str(certfile)),
            proxy,
            "GW-TLS001",
            creds["GW-TLS001"],
            batch,
            "TLS 1.3 incl. handshake (ECDSA P-256 cert)",
        )
    )

    port = free_port(socket.SOCK_DGRAM)
    proxy = UdpProxy(("127.0.0.1", ports["coap"]), port=port)
    results.append(
        await one_uplink(
            "CoAP",
            CoapTransport(f"coap://127.0.0.1:{port}/u", timeout_s=60),
            proxy,
            "GW-COAP01",
            creds["GW-COAP01"],
            batch,
            "UDP, no DTLS; Block1 of 1,024 B",
        )
    )

    if broker:
        address = parse_broker_url(broker)
        port = free_port(socket.SOCK_STREAM)
        proxy = TcpProxy((address.host, address.port), port=port)
        results.append(
            await one_uplink(
                "MQTT",
                MqttTransport(f"127.0.0.1:{port}", "GW-MQTT01", timeout_s=60),
                proxy,
                "GW-MQTT01",
                creds["GW-MQTT01"],
                batch,
                "3.1.1, QoS 1, plain TCP; CONNECT..DISCONNECT",
            )
        )
    return results


# --- the gateway agent ------------------------------------------------------------------------------


class FleetRadio:
    """In-memory radio: each meter transmits its frame every ``interval_s`` (T1 heat meters)."""

    def __init__(self, clock, frames: list[bytes], interval_s: float = 128.0):
        self.clock, self.meter_frames, self.interval_s = clock, frames, interval_s
        self.received = 0

    async def set_link_modes(self, modes: list[str]) -> None:
        return None

    async def frames(self):
        rng = random.Random(5)
        now = self.clock.now()
        heap = [(now + rng.uniform(0, self.interval_s), i) for i in range(len(self.meter_frames))]
        heapq.heapify(heap)
        while True:
            t, i = heapq.heappop(heap)
            await self.clock.sleep_until(t)
            heapq.heappush(heap, (t + self.interval_s, i))
            self.received += 1
            yield ReceivedFrame(self.meter_frames[i], t, -70 - i % 30, "T1")

    async def close(self) -> None:
        return None


async def run_agent(state_dir: Path, serial: str, credential: str, coap_port: int, frames: list[bytes], days: int):
    """Run the real agent for ``days`` simulated days (a 02:00 window and a 03:30 upload each)."""
    clock = SimClock(T_DAY0, 0)  # jump time: the agent never waits for real
    settings = settings_from_dict(
        {
            "serial": serial,
            "credential": credential,
            "server": f"coap://127.0.0.1:{coap_port}/u",
            "transport": "coap",
            "source": "hexfile:/unused",
            "state_dir": str(state_dir),
            "uplink": {"contact_on_start": False},
            "config": {
                "timezone": "UTC",
                "spread_s": 0,
                "collection": [{"cron": "0 0 2 * * *", "duration_s": 900, "link_modes": ["T1"], "max_telegrams": 5000}],
                "upload": {"cron": "0 30 3 * * *", "max_batch": 5000},
            },
        }
    )
    radio = FleetRadio(clock, frames)
    agent = Agent(
        settings,
        clock=clock,
        source=radio,
        transport=CoapTransport(f"coap://127.0.0.1:{coap_port}/u", timeout_s=60),
        rng=random.Random(1),
        battery=battery_from_settings(settings.battery),
    )
    try:
        await agent.run(until=T_DAY0 + days * 86_400)
    finally:
        await agent.close()
    if agent.spool.rows:
        raise RuntimeError(f"agent {serial}: {agent.spool.rows} telegrams left in the spool")
    return radio.received


def stored_for(db_url: str, serial: str) -> int:
    db = Database(db_url)
    try:
        with db.session() as s:
            return s.scalar(
                select(func.count(Telegram.id))
                .join(Gateway, Gateway.id == Telegram.gateway_id)
                .where(Gateway.serial == serial)
            )
    finally:
        db.dispose()


async def measure_agent(
    frames: list[bytes], coap_port: int, creds: dict[str, str], telegrams: int, workdir: Path
) -> dict:

    days = max(1, math.ceil(telegrams / len(frames)))
    out: dict = {"days": days, "meters": len(frames)}
    # CPU without tracemalloc (it slows allocation down several times)

    r0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out["received"] = await run_agent(workdir / "agent-cpu", "GW-AGENT1", creds["GW-AGENT1"], coap_port, frames, days)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["user_s"], out["sys_s"] = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    out["cpu_s"], out["wall_s"] = out["user_s"] + out["sys_s"], time.perf_counter() - wall0
    # memory: a second identical run (fresh state, its own gateway) under tracemalloc
    tracemalloc.start()
    try:
        await run_agent(workdir / "agent-mem", "GW-AGENT2", creds["GW-AGENT2"], coap_port, frames, days)
        out["peak_bytes"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.uplink", description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=250, help="telegrams in the daily batch (default 250)")
    parser.add_argument(
        "--agent-telegrams",
        type=int,
        default=1000,
        help="telegrams the agent uploads in the CPU/memory run (default 1000; 0 skips it)",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("OMSHUB_TEST_MQTT", "127.0.0.1:1883"),
        help="MQTT broker host:port ('' skips MQTT); default $OMSHUB_TEST_MQTT or 127.0.0.1:1883",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.meters <= 5000:
        parser.error("--meters must be 1..5000 (an uplink carries at most 5,000 telegrams)")
    if not 0 <= args.agent_telegrams <= 100_000:
        parser.error("--agent-telegrams must be 0..100000")

    broker = args.broker or None
    if broker:
        address = parse_broker_url(broker)
        try:
            socket.create_connection((address.host, address.port), timeout=2).close()
        except OSError as exc:
            print(f"MQTT broker {broker} not reachable ({exc}); MQTT skipped", file=sys.stderr)
            broker = None

    batch = daily_batch(args.meters)
    serials = ["GW-HTTP01", "GW-TLS001", "GW-COAP01", "GW-MQTT01", "GW-AGENT1", "GW-AGENT2"]
    creds = {s: new_secret() for s in serials}
    with tempfile.TemporaryDirectory(prefix="omshub-bench-") as tmp:
        workdir = Path(tmp)
        db_url = make_database(workdir, creds)
        certfile, keyfile = self_signed_cert(workdir)
        ports = {
            "http": free_port(socket.SOCK_STREAM),
            "https": free_port(socket.SOCK_STREAM),
            "coap": free_port(socket.SOCK_DGRAM),
        }
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        child = ctx.Process(
            target=serve_headend, daemon=True, args=(db_url, ports, str(certfile), str(keyfile), broker, ready, stop)
        )
        child.start()
        try:
            if not ready.wait(60):
                raise RuntimeError("the head-end did not start within 60 s")
            wire = asyncio.run(measure_wire(batch, ports, creds, certfile, broker))
            agent = None
            if args.agent_telegrams:
                frames = [f.raw for f in daily_batch(min(args.meters, 250), seed=2)]
                agent = asyncio.run(measure_agent(frames, ports["coap"], creds, args.agent_telegrams, workdir))
                agent["telegrams"] = stored_for(db_url, "GW-AGENT1")
        finally:
            stop.set()
            child.join(20)
            if child.is_alive():
                child.terminate()
                child.join(5)
    report(batch, wire, agent)
    return 0


def report(batch: list[ReceivedFrame], wire: list[WireResult], agent: dict | None) -> None:
    sizes = [len(f.raw) for f in batch]
    print(
        f"daily batch: {len(batch)} heat-meter telegrams, security mode 5, built with "
        f"omshub.codec.encode_telegram (no CRCs), {min(sizes)}-{max(sizes)} bytes, "
        f"mean {sum(sizes) / len(sizes):.1f}"
    )
    print("bytes on the wire = payload above UDP/TCP, both directions, whole exchange (IP/UDP/TCP headers excluded)")
    print()
    head = (
        f"{'transport':<10}{'body B':>9}{'up B':>9}{'down B':>8}{'total B':>9}{'B/telegram':>12}"
        f"{'raw B/tel':>11}{'overhead':>10}  {'packets':<22}notes"
    )
    print(head)
    print("-" * len(head))
    for r in wire:
        per = r.total / r.telegrams
        raw_per = r.raw / r.telegrams
        print(
            f"{r.transport:<10}{r.body:>9,}{r.up:>9,}{r.down:>8,}{r.total:>9,}{per:>12.1f}{raw_per:>11.1f}"
            f"{(r.total - r.raw) / r.raw:>10.1%}  {r.packets:<22}{r.note}"
        )
    coap = next((r for r in wire if r.transport == "CoAP"), None)
    if coap is not None:
        datagrams = sum(int(x) for x in coap.packets.split()[0].split("/"))
        with_ip = coap.total + 28 * datagrams
        print(
            f"\nCoAP incl. IPv4+UDP headers (28 B x {datagrams} datagrams): {with_ip:,} B, "
            f"{with_ip / coap.telegrams:.1f} B/telegram, overhead {(with_ip - coap.raw) / coap.raw:.1%}"
        )
        print(
            f"CoAP target (< 10 % overhead for a daily batch of 250 meters): "
            f"{'met' if (coap.total - coap.raw) / coap.raw < 0.10 else 'NOT met'}"
        )
    if agent is not None:
        n = agent["telegrams"]
        print(
            f"\ngateway agent (omshub.gateway.agent.Agent: collect from an in-memory radio of {agent['meters']} "
            f"T1 meters every 128 s, SQLite spool, envelope, CoAP send, ack) over {agent['days']} simulated days:"
        )
        print(f"  telegrams received {agent['received']:,}, uploaded and acknowledged {n:,}")
        if n:
            per = 1000 / n * 1000
            print(
                f"  CPU time: {agent['cpu_s'] * per:.0f} ms per 1,000 telegrams (user {agent['user_s'] * per:.0f}, "
                f"system {agent['sys_s'] * per:.0f}); "
                f"wall {agent['wall_s']:.2f} s in total"
            )
        print(f"  peak Python heap (tracemalloc): {agent['peak_bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
