"""End-to-end fixtures: a small simulated fleet, a running head-end (`omshub serve`), real gateway
agents, and the exactly-once check against the head-end's telegrams table.

The head-end fixtures (`database_url`, `db`, `live_server` …) are the head-end tests' own
(tests/cloud/conftest.py); each e2e module gets its own database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest

from tests.clock import days_before
from tests.cloud.conftest import _migrated_template, data_dir, database_url, live_server  # noqa: F401 - fixtures for the e2e modules

DAY = 86_400


def serials_for(tag: str) -> tuple[str, str]:
    """Gateway serials unique to one test module (MQTT topics on a shared broker must not collide)."""
    return (f"GW-{tag}-1", f"GW-{tag}-2")


def fleet_toml(tag: str, *, corrupt_rate: float = 0.0, repeat_rate: float = 0.05, seed: int = 7) -> str:
    """2 gateways x 20 meters: ELL heat meters with compact frames (C1), mode 7 heat meters and
    mode 5 water meters (T1); 2 foreign neighbour meters per gateway (filtered out)."""
    parts = [
        f'[fleet]\nname = "e2e"\nseed = {seed}\nepoch = "2025-01-01T00:00:00Z"\n',
        f"[radio]\ncorrupt_rate = {corrupt_rate}\nrepeat_rate = {repeat_rate}\n",
    ]
    for i, serial in enumerate(serials_for(tag)):
        parts.append(f"""
[[sites]]
name = "site-{i + 1}"
address = "E2E Street {i + 1}"
position = [{i * 120.0}, 0.0]

[[sites.gateways]]
serial = "{serial}"
neighbours = 2

[[sites.gateways.meters]]
kind = "heat"
count = 7
manufacturers = ["KAM"]
security = "ell"
link_mode = "C1"
interval_s = 64
compact_every = 4
monthly = 2
distance_m = [2.0, 15.0]

[[sites.gateways.meters]]
kind = "heat"
count = 6
manufacturers = ["EFE"]
security = "7"
link_mode = "T1"
interval_s = 96
distance_m = [2.0, 15.0]

[[sites.gateways.meters]]
kind = "water"
count = 7
manufacturers = ["DME"]
security = "5"
link_mode = "T1"
interval_s = 128
distance_m = [2.0, 15.0]
""")
    return "\n".join(parts)


def day_start(days_ago: int) -> float:
    """Noon UTC ``days_ago`` days before the tests' fixed epoch (tests/clock.py), never the wall clock's day."""
    return days_before(days_ago)


def mqtt_broker() -> str | None:
    """The test broker's host:port, or None when it does not answer."""
    addr = os.environ.get("OMSHUB_TEST_MQTT", "127.0.0.1:1883")
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return f"{host or '127.0.0.1'}:{port}"
    except (OSError, ValueError):
        return None


class RecordingTransport:
    """Wraps a transport; remembers every telegram of every uplink body it was asked to send (the
    gateway's collected set: what it spooled ends up in some uplink attempt)."""

    def __init__(self, inner, sent: set) -> None:
        self.inner, self.sent = inner, sent
        self.attempts = 0

    @property
    def name(self):
        return self.inner.name

    @property
    def cred_in_envelope(self):
        return self.inner.cred_in_envelope

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        from omshub.protocol.envelope import decode_envelope

        self.attempts += 1
        self.sent.update((t["raw"], int(t["rx"])) for t in decode_envelope(body, content_type)["telegrams"])
        return await self.inner.send(body, content_type)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class E2E:
    """One module's world: fleet, tenant, API client, provisioned gateways, what each gateway sent."""

    path: Path
    fleet: object
    tenant_id: int
    token: str
    gateways: dict
    headend: object
    database_url: str
    serials: tuple
    sent: dict = field(default_factory=dict)

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def agent(
        self,
        serial: str,
        clock,
        *,
        server: str,
        state_dir: Path,
        transport: str = "https",
        link=None,
        config: dict | None = None,
        timeout_s: float = 20.0,
    ):
        from omshub.demo import make_agent

        sent = self.sent.setdefault(serial, set())

        def wrap(inner):
            recorded = RecordingTransport(inner, sent)
            return link(recorded) if link else recorded

        return make_agent(
            self.fleet,
            serial,
            self.gateways[serial].credential,
            server=server,
            state_dir=state_dir,
            clock=clock,
            transport=transport,
            config=config,
            wrap=wrap,
            timeout_s=timeout_s,
        )


def run_agent(agent, until: float) -> int:
    """Run the agent to clock time ``until``, close it; returns its spool depth at the end."""

    async def main():
        try:
            await agent.run(until=until)
            return agent.spool.rows
        finally:
            await agent.close()

    return asyncio.run(main())


def make_world(tmp_path: Path, database_url: str, server, *, tag: str, corrupt_rate: float = 0.0) -> E2E:
    from omshub.demo import HeadEnd, bootstrap_tenant, provision
    from omshub.sim.fleet import load_fleet

    path = tmp_path / "fleet.toml"
    path.write_text(fleet_toml(tag, corrupt_rate=corrupt_rate))
    fleet = load_fleet(path)
    tenant = bootstrap_tenant(database_url, f"e2e-{tag.lower()}")
    headend = HeadEnd(server.base_url, tenant.token)
    gateways = provision(headend, fleet)
    return E2E(path, fleet, tenant.id, tenant.token, gateways, headend, database_url, serials_for(tag))


def wait_decoded(world: E2E, timeout_s: float = 60.0) -> dict:
    """Until the head-end's pipeline has no telegram left in state `new`; the states then."""
    from omshub.demo import telegram_states

    deadline = time.monotonic() + timeout_s
    while True:
        states = telegram_states(world.database_url, world.tenant_id)
        if not states.get("new"):
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"telegrams still undecoded after {timeout_s} s: {states}")
        time.sleep(0.2)


def sim_frames(world: E2E, serial: str, rx_times) -> tuple[set, set]:
    """(clean, corrupted) frame bytes the simulated radio delivered to ``serial`` around the given
    receive times (only the listen windows are simulated again, not whole days)."""
    from omshub.sim.radio import iter_events

    clean, damaged = set(), set()
    times = sorted(rx_times)
    spans: list[list[float]] = []
    for t in times:
        if spans and t - spans[-1][1] < 3600:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    for lo, hi in spans:
        for tx in iter_events(world.fleet, lo - 10, hi + 10, gateways=[serial]):
            for rec in tx.receptions:
                (damaged if rec.corrupted else clean).add(rec.raw)
    return clean, damaged


def check_exactly_once(world: E2E, *, min_per_gateway: int = 20) -> dict:
    """Every telegram each gateway sent is stored exactly once (same bytes and receive time, no
    extra rows), and every clean (uncorrupted) transmission among them is decoded exactly once."""
    from sqlalchemy import select

    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models import Telegram

    states = wait_decoded(world)
    db = Database(world.database_url)
    try:
        with db.session() as s:
            rows = s.execute(
                select(Telegram.gateway_id, Telegram.raw, Telegram.received_at, Telegram.state, Telegram.error).where(
                    Telegram.tenant_id == world.tenant_id
                )
            ).all()
    finally:
        db.dispose()
    by_gw: dict[int, list] = {}
    for r in rows:
        by_gw.setdefault(r.gateway_id, []).append(r)
    report = {"states": states}
    for serial in world.serials:
        gw = world.gateways[serial]
        mine = by_gw.get(gw.id, [])
        stored = Counter(
            (r.raw, int(r.received_at.replace(tzinfo=r.received_at.tzinfo or UTC).timestamp())) for r in mine
        )
        dupes = {k: n for k, n in stored.items() if n > 1}
        assert not dupes, f"{serial}: {len(dupes)} telegrams stored more than once"
        sent = world.sent.get(serial, set())
        assert len(sent) >= min_per_gateway, f"{serial}: only {len(sent)} telegrams collected"
        missing, extra = sent - set(stored), set(stored) - sent
        assert not missing, f"{serial}: {len(missing)} of {len(sent)} collected telegrams never stored"
        assert not extra, f"{serial}: {len(extra)} stored telegrams the gateway never sent"
        clean, damaged = sim_frames(world, serial, [rx for _, rx in sent])
        decoded = Counter(r.raw for r in mine if r.state == "decoded")
        problems, damaged_states = [], Counter()
        for r in mine:
            if r.raw in damaged and r.raw not in clean:
                # damaged on the air: stored once (checked above); decoding it is the codec's call
                damaged_states[r.state] += 1
                continue
            assert r.raw in clean, f"{serial}: stored a frame the simulator never sent: {r.raw.hex()}"
            if r.state not in ("decoded", "duplicate"):
                problems.append(f"{r.state}: {r.error}")
        assert not problems, f"{serial}: clean telegrams not decoded: {Counter(problems).most_common(5)}"
        twice = {raw: n for raw, n in decoded.items() if n > 1}
        assert not twice, f"{serial}: {len(twice)} transmissions decoded more than once"
        clean_sent = {raw for raw, _ in sent if raw in clean}
        undecoded = clean_sent - set(decoded)
        assert not undecoded, (
            f"{serial}: {len(undecoded)} of {len(clean_sent)} clean transmissions have no "
            f"decoded copy (each was stored; its copies are duplicates only)"
        )
        report.setdefault("damaged", Counter()).update(damaged_states)
        report[serial] = {"sent": len(sent), "decoded": len(decoded)}
    return report


def toml_value(v) -> str:
    """A value as TOML (dicts as inline tables): enough for gateway settings files."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"no TOML for {type(v).__name__}")


def write_gateway_toml(path: Path, values: dict) -> Path:
    path.write_text("\n".join(f"{k} = {toml_value(v)}" for k, v in values.items()) + "\n")
    return path
