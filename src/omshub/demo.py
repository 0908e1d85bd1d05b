"""The pieces of `omshub demo`, shared with the end-to-end tests and `benchmarks.fleet`.

* :class:`HeadEnd` — a small client of the head-end's REST API (gateways, meter and key import).
* :func:`bootstrap_tenant` — a tenant, an admin user and an API token straight in the database (as
  `omshub admin …` does: there is no API to create a tenant).
* :func:`provision` — registers a simulated fleet's gateways and imports its meters and keys through
  the API; returns each gateway's id and credential.
* :func:`gateway_config` / :func:`make_agent` — a real gateway agent for one gateway of the fleet,
  listening to the simulated radio, whitelisting its own meters.
* :class:`CountingTransport` — wraps a transport and counts acknowledged telegrams (progress).
* :class:`ServeProcess` — `omshub serve` in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import cbor2
import httpx


class DemoError(Exception):
    """Something the demo needs failed; the message says what and why."""


# --- head-end ------------------------------------------------------------------------------------


class HeadEnd:
    """The head-end's REST API with a Bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.base_url, timeout=timeout_s, headers={"Authorization": f"Bearer {token}"}
        )

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201), **kw) -> Any:
        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise DemoError(f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc}") from None
        if r.status_code not in expect:
            raise DemoError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r

    def register_gateway(self, serial: str, name: str = "") -> tuple[int, str]:
        body = self.call("POST", "/api/v1/gateways", json={"serial": serial, "name": name})
        return body["id"], body["credential"]

    def import_meters(self, csv_text: str) -> dict:
        return self.call(
            "POST", "/api/v1/meters/import", content=csv_text.encode(), headers={"Content-Type": "text/csv"}
        )

    def import_keys(self, csv_text: str) -> dict:
        return self.call("POST", "/api/v1/keys/import", content=csv_text.encode(), headers={"Content-Type": "text/csv"})


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    username: str | None
    password: str | None
    token: str


def bootstrap_tenant(
    database_url: str, slug: str, *, username: str | None = None, password: str | None = None
) -> Tenant:
    """Create tenant ``slug`` with an admin API token (and an admin user when ``username`` is given)."""
    # lazy: start-up cost — the head-end's modules take ~1 s to import (python -X importtime); only
    # the steps that touch its database import them, not the agents' and the HTTP client's
    from omshub.cloud.services.accounts import create_api_token, create_tenant, create_user
    from omshub.cloud.store.database import Database

    db = Database(database_url)
    try:
        db.migrate()
        with db.transaction() as s:
            t = create_tenant(s, slug, f"{slug} (omshub demo)")
            if username:
                create_user(s, t.id, username, password or "", "admin")
            token = create_api_token(s, t.id, "demo", "admin", actor="omshub demo")[1]
            return Tenant(t.id, t.slug, username, password, token)
    finally:
        db.dispose()


@dataclass(frozen=True)
class ProvisionedGateway:
    serial: str
    id: int
    credential: str


def provision(headend: HeadEnd, fleet) -> dict[str, ProvisionedGateway]:
    """Register every gateway of ``fleet``, then import its meters (with metering points) and keys."""
    out: dict[str, ProvisionedGateway] = {}
    for serial, info in fleet.gateways.items():
        gid, cred = headend.register_gateway(serial, info.site)
        out[serial] = ProvisionedGateway(serial, gid, cred)
    headend.import_meters(fleet.meters_csv())
    headend.import_keys(fleet.keys_csv())
    return out


# --- gateways --------------------------------------------------------------------------------------


def gateway_config(
    fleet,
    serial: str,
    *,
    timezone: str = "Europe/Berlin",
    spread_s: int = 1800,
    window_cron: str = "0 0 2 * * *",
    window_s: int = 900,
    upload_cron: str = "0 30 3 * * *",
    version: int = 0,
    max_batch: int = 5000,
    filter_mode: str = "blacklist",
) -> dict:
    """A daily listen window for the link modes of the gateway's meters and a daily upload.

    ``filter_mode="blacklist"`` lists the other meters the gateway can hear (neighbours' meters) and
    lets the window run its full length, so every meter's full frame (which compact frames need at
    the head-end) is heard; ``"whitelist"`` lists the gateway's own meters and ends the window as
    soon as each was heard once.
    """
    from omshub.protocol.config import MAX_METERS
    from omshub.sim.radio import link_table

    own = fleet.meters_of(serial)
    if filter_mode == "whitelist":
        listed = own
    elif filter_mode == "blacklist":
        mine = {m.uid for m in own}
        listed = [m for m in link_table(fleet).heard_by[serial] if m.uid not in mine]
    else:
        raise ValueError(f"filter_mode {filter_mode!r} must be 'whitelist' or 'blacklist'")
    if len(listed) > MAX_METERS:
        raise DemoError(f"gateway {serial} would list {len(listed)} meters in its filter; at most {MAX_METERS}")
    modes = sorted({m.link_mode for m in own}) or ["T1", "C1"]
    return {
        "version": version,
        "timezone": timezone,
        "spread_s": spread_s,
        "keep": "newest_per_kind",
        "collection": [{"cron": window_cron, "duration_s": window_s, "link_modes": modes, "max_telegrams": 5000}],
        "upload": {"cron": upload_cron, "max_batch": max_batch},
        "filters": {"mode": filter_mode, "meters": [{"manufacturer": m.manufacturer, "id": m.id} for m in listed]},
    }


def gateway_settings(
    serial: str,
    credential: str,
    *,
    server: str,
    transport: str,
    state_dir: Path,
    config: dict,
    source: str = "sim:unused",
    timeout_s: float = 30.0,
    retry_base_s: float = 300.0,
    retry_max_s: float = 6 * 3600.0,
    mqtt_options: dict | None = None,
):
    from omshub.gateway.settings import settings_from_dict

    return settings_from_dict(
        {
            "serial": serial,
            "credential": credential,
            "server": server,
            "transport": transport,
            "source": source,
            "state_dir": str(state_dir),
            "log_level": "warning",
            "uplink": {
                "timeout_s": timeout_s,
                "retry_base_s": retry_base_s,
                "retry_max_s": retry_max_s,
                "options": mqtt_options or {},
            },
            "spool": {"synchronous": "normal"},
            "config": config,
        }
    )


def make_agent(
    fleet,
    serial: str,
    credential: str,
    *,
    server: str,
    state_dir: Path,
    clock,
    transport: str = "https",
    config: dict | None = None,
    wrap=None,
    seed: int = 0,
    timeout_s: float = 30.0,
):
    """A gateway agent on the simulated radio of ``serial``; ``wrap(transport) -> transport``
    may put a recorder or an emulated link around the real transport."""
    from omshub.gateway.agent import Agent, make_transport
    from omshub.sim.battery import battery_from_settings
    from omshub.sim.radio import SimRadio

    settings = gateway_settings(
        serial,
        credential,
        server=server,
        transport=transport,
        state_dir=state_dir,
        config=config if config is not None else gateway_config(fleet, serial),
        timeout_s=timeout_s,
    )
    inner = make_transport(settings)
    return Agent(
        settings,
        clock=clock,
        source=SimRadio(fleet, serial, clock),
        transport=wrap(inner) if wrap else inner,
        rng=random.Random(seed),
        battery=battery_from_settings(settings.battery),
    )


def telegrams_in(body: bytes) -> int:
    """How many telegrams a CBOR uplink body carries."""
    env = cbor2.loads(body)
    batch = env.get("batch")
    return len(batch["len"]) if batch else len(env.get("telegrams") or [])


class CountingTransport:
    """Counts the telegrams the head-end acknowledged (for progress displays).

    With a jump-mode SimClock shared by several agents, ``hold=clock`` keeps simulated time still
    while an uplink is on the (real) wire: otherwise the clock would jump to another gateway's next
    event meanwhile, and this gateway could miss its next listen window.
    """

    def __init__(self, inner, hold=None) -> None:
        self.inner = inner
        self.hold = hold if getattr(hold, "jump", False) else None
        self.acknowledged = 0
        self.uplinks = 0
        self.failures = 0
        self.bytes_up = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def cred_in_envelope(self) -> bool:
        return self.inner.cred_in_envelope

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        from omshub.protocol.envelope import parse_response

        sending = asyncio.ensure_future(self.inner.send(body, content_type))
        try:
            if self.hold is not None:
                while not sending.done():
                    await asyncio.sleep(0)  # a runnable task: the jump clock does not advance
            answer = await sending
        except BaseException:
            sending.cancel()
            self.failures += 1
            raise
        try:
            if parse_response(answer, content_type)["ack"] == cbor2.loads(body)["seq"]:
                self.acknowledged += telegrams_in(body)
                self.uplinks += 1
                self.bytes_up += len(body)
        except Exception:  # the agent reports a bad answer itself; it just does not count here
            pass
        return answer

    async def close(self) -> None:
        await self.inner.close()


# --- the head-end process ----------------------------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServeProcess:
    """`omshub serve` in a subprocess, its output in ``log_path``."""

    def __init__(
        self,
        *,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8080,
        database: str | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir, self.host, self.port = Path(data_dir), host, port
        self.database = database
        self.extra_args = extra_args or []
        self.env = env or {}
        self.log_path = self.data_dir / "serve.log"
        self.proc: subprocess.Popen | None = None
        self._log: BinaryIO | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 90.0) -> ServeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "omshub",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        if self.database:
            args += ["--database", self.database]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes to it until stop() closes it
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"omshub serve exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise DemoError(f"omshub serve did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


def telegram_states(database_url: str, tenant_id: int | None = None, _cache: dict = {}) -> dict[str, int]:  # noqa: B006
    """Telegrams per decode state, read straight from the head-end's database."""
    # lazy: start-up cost (see bootstrap_tenant)
    from sqlalchemy import func, select

    from omshub.cloud.store.database import Database
    from omshub.cloud.store.models import Telegram

    db = _cache.get(database_url)
    if db is None:
        db = _cache[database_url] = Database(database_url)
    stmt = select(Telegram.state, func.count()).group_by(Telegram.state)
    if tenant_id is not None:
        stmt = stmt.where(Telegram.tenant_id == tenant_id)
    with db.session() as s:
        return dict(s.execute(stmt).all())  # rows of (state, count); a Result itself has keys()


# --- the demo run ------------------------------------------------------------------------------------

DAY = 86_400


@dataclass
class DemoOptions:
    data_dir: Path
    gateways: int = 20
    meters: int = 1000
    days: float = 28.0
    speed: float = 0.0  # simulated seconds per real second; 0 = as fast as possible
    host: str = "127.0.0.1"
    port: int = 8080
    seed: int = 1
    exit_when_done: bool = False
    fresh: bool = False


@dataclass
class FleetProgress:
    """Counters the progress display shows (updated by :func:`run_fleet`)."""

    agents: list
    counters: list
    start: float
    end: float
    clock: Any
    states: dict[str, int]

    def collected(self) -> int:
        return sum(c.acknowledged for c in self.counters) + sum(a.spool.rows for a in self.agents)

    def uploaded(self) -> int:
        return sum(c.acknowledged for c in self.counters)

    def contacted(self) -> int:
        return sum(1 for c in self.counters if c.uplinks)

    def spooled(self) -> int:
        return sum(a.spool.rows for a in self.agents)


async def run_fleet(agents: list, clock, until: float, on_tick=None, tick_s: float = 0.25) -> None:
    """Run every agent until clock time ``until`` on one event loop; ``on_tick()`` every ``tick_s``."""
    tasks = [asyncio.create_task(a.run(until=until), name=a.serial) for a in agents]
    try:
        while True:
            done = [t for t in tasks if t.done()]
            for t in done:
                if t.exception() is not None:
                    raise DemoError(f"gateway {t.get_name()} stopped: {t.exception()!r}")
            if len(done) == len(tasks):
                break
            if on_tick:
                on_tick()
            await asyncio.sleep(tick_s)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for a in agents:
            await a.close()


def prepare_fleet(opts: DemoOptions):
    """Write the fleet file (and its key and meter files, for reference) into the data directory."""
    from omshub.sim.fleet import load_fleet
    from omshub.sim.generate import generate_fleet_toml

    path = opts.data_dir / "fleet.toml"
    path.write_text(generate_fleet_toml(opts.gateways, opts.meters, seed=opts.seed, name="demo"), encoding="utf-8")
    fleet = load_fleet(path)
    fd = os.open(opts.data_dir / "keys.csv", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(fleet.keys_csv())
    (opts.data_dir / "meters.csv").write_text(fleet.meters_csv(), encoding="utf-8")
    return path, fleet


def demo_agents(fleet, gateways: dict[str, ProvisionedGateway], *, server: str, state_root: Path, clock):
    """One real agent per gateway (HTTPS), each counting what the head-end acknowledged."""
    agents, counters = [], []
    for i, (serial, gw) in enumerate(gateways.items()):
        try:
            cfg = gateway_config(fleet, serial)
        except DemoError:  # too many neighbours to blacklist: list the gateway's own meters
            cfg = gateway_config(fleet, serial, filter_mode="whitelist")
        counter: list[CountingTransport] = []

        def wrap(inner, counter=counter):
            counter.append(CountingTransport(inner, hold=clock))
            return counter[0]

        agents.append(
            make_agent(
                fleet,
                serial,
                gw.credential,
                server=server,
                state_dir=state_root / serial,
                clock=clock,
                config=cfg,
                wrap=wrap,
                seed=i,
                timeout_s=60,
            )
        )
        counters.append(counter[0])
    return agents, counters
