"""Fixtures for the head-end tests (shared by the core and domain tests).

Database: a SQLite file per test module by default; with `OMSHUB_TEST_DATABASE=postgres` a fresh
PostgreSQL database per test module on `OMSHUB_TEST_POSTGRES` (dropped afterwards; the tests skip
with the reason when the server is unreachable); with `OMSHUB_TEST_READ_REPLICA=1` too, the API's
read routes use a read-only second connection URL to it (a read replica's setting).

`hub` (a :class:`Hub`) makes tenants, users, tokens, gateways, meters, keys and uplinks quickly;
names are unique per call, so tests sharing a module database do not collide.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cbor2
import httpx
import pytest

from tests.clock import EPOCH, unix


def pytest_configure(config):
    # starlette's TestClient nags about httpx (still what FastAPI documents); not our concern here
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


MASTER_KEY_HEX = "5a" * 32
KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
_counter = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}{uuid.uuid4().hex[:6]}"


# --- database ---


def _postgres_admin_url() -> str:
    return os.environ.get("OMSHUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory):
    """One migrated database per test process, copied for each module: running the migrations
    costs about a second per database (two on PostgreSQL), a copy a few milliseconds. Yields the
    SQLite file's path, or the PostgreSQL template database's name (None where unreachable)."""
    from omshub.cloud.store.database import Database

    if os.environ.get("OMSHUB_TEST_DATABASE", "sqlite") != "postgres":
        path = tmp_path_factory.mktemp("template") / "omshub.db"
        database = Database(f"sqlite:///{path}")
        database.migrate()
        database.dispose()
        yield path
        return
    admin = _postgres_admin_url()
    try:
        conn = _pg_connect(admin)
    except Exception:
        yield None  # database_url skips each module with the reason
        return
    name = "omshub_template_" + uuid.uuid4().hex[:12]
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0].split("://", 1)[1]
    database = Database(f"postgresql+psycopg://{base}/{name}")
    database.migrate()
    database.dispose()  # a template may have no open connections while it is copied
    yield name
    with _pg_connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def database_url(tmp_path_factory, _migrated_template) -> str:
    """URL of a database for this test module, already migrated to the newest revision (a copy of
    the session's template; `db` still runs the migrations, which then find nothing to do)."""
    if os.environ.get("OMSHUB_TEST_DATABASE", "sqlite") != "postgres":
        path = tmp_path_factory.mktemp("db") / "omshub.db"
        shutil.copyfile(_migrated_template, path)
        yield f"sqlite:///{path}"
        return
    admin = _postgres_admin_url()
    try:
        conn = _pg_connect(admin)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {admin}: {exc}")
    name = "omshub_test_" + uuid.uuid4().hex[:12]
    with conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_migrated_template}"')
    base = admin.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with _pg_connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """Another empty database of this run's kind (SQLite file or PostgreSQL database): for tests
    that migrate from an old revision."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin = _postgres_admin_url()
    name = "omshub_test_" + uuid.uuid4().hex[:12]
    with _pg_connect(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{database_url.rsplit('/', 1)[0]}/{name}"
    with _pg_connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def settings(database_url, data_dir):
    from omshub.cloud.settings import load_settings

    return load_settings(None, environ={}, database=database_url, data_dir=str(data_dir), master_key=MASTER_KEY_HEX)


@pytest.fixture(scope="module")
def db(database_url):
    """The migrated Database of this module."""
    from omshub.cloud.store.database import Database

    # OMSHUB_TEST_READ_REPLICA=1 (PostgreSQL): the API's read routes go through a second,
    # read-only connection URL to the same database, as with a read replica (docs/deploy.md)
    replica = os.environ.get("OMSHUB_TEST_READ_REPLICA") == "1" and not database_url.startswith("sqlite")
    database = Database(database_url, read_url=database_url if replica else None)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def s(db):
    """A session on this module's database (SQLite or PostgreSQL), rolled back afterwards."""
    session = db.session()
    yield session
    session.rollback()
    session.close()


@pytest.fixture(scope="module")
def keystore():
    from omshub.cloud.store.keystore import KeyStore

    return KeyStore(bytes.fromhex(MASTER_KEY_HEX))


@pytest.fixture(scope="module")
def app(settings, db, keystore):
    """The FastAPI app without background workers (tests drive the pipeline: `app.state.pipeline`)."""
    from omshub.cloud.app import create_app

    return create_app(settings, db=db, keystore=keystore, workers=False)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def pipeline(app):
    return app.state.pipeline


# --- telegrams ---


def encode(
    meter_id: str = "12345678",
    records: list[dict] | None = None,
    *,
    manufacturer: str = "KAM",
    version: int = 1,
    device_type_code: int = 4,
    mode: int = 5,
    key: bytes | None = KEY,
    energy: float = 165.0,
    **kw,
) -> bytes:
    """A telegram from the codec's encoder; default: a mode 5 heat meter with one energy register."""
    from omshub.codec import encode_telegram

    if records is None:
        records = [
            {
                "quantity": "energy",
                "unit": "kWh",
                "value": energy,
                "storage": 0,
                "tariff": 0,
                "subunit": 0,
                "function": "instantaneous",
            }
        ]
    meter = {"manufacturer": manufacturer, "id": meter_id, "version": version, "device_type_code": device_type_code}
    return encode_telegram(meter, records, mode=mode, key=key if mode or kw.get("ell") == "8D" else None, **kw)


def batch_envelope(
    serial: str,
    seq: int,
    frames: list[bytes],
    *,
    t0: int | None = None,
    cfg: int = 0,
    status: dict | None = None,
    dts: list[int] | None = None,
    cred: str | None = None,
) -> dict:
    t0 = unix(EPOCH) - 3600 if t0 is None else t0
    env = {
        "v": 1,
        "gw": serial,
        "seq": seq,
        "cfg": cfg,
        "status": status or {"battery_pct": 90, "spool": 0},
        "t0": t0,
        "batch": {
            "data": b"".join(frames),
            "len": [len(f) for f in frames],
            "dt": dts if dts is not None else list(range(len(frames))),
            "rssi": bytes([256 - 70] * len(frames)),
            "mode": 1,
        },
    }
    if cred is not None:
        env["cred"] = cred
    return env


@dataclass
class GatewayInfo:
    id: int
    serial: str
    credential: str
    tenant_id: int


@dataclass
class TenantInfo:
    id: int
    slug: str


class Hub:
    """Quick setup of head-end objects straight in the database (and uplinks through the client)."""

    def __init__(self, db, keystore, client=None) -> None:
        self.db, self.keystore, self.client = db, keystore, client

    def tenant(self, slug: str | None = None) -> TenantInfo:
        from omshub.cloud.services.accounts import create_tenant

        with self.db.transaction() as s:
            t = create_tenant(s, slug or _unique("t"), "Test tenant")
            return TenantInfo(t.id, t.slug)

    def token(self, tenant: TenantInfo, role: str = "admin") -> str:
        from omshub.cloud.services.accounts import create_api_token

        with self.db.transaction() as s:
            return create_api_token(s, tenant.id, _unique("tok"), role)[1]

    def headers(self, tenant: TenantInfo, role: str = "admin") -> dict:
        return {"Authorization": f"Bearer {self.token(tenant, role)}"}

    def user(self, tenant: TenantInfo, role: str = "admin", password: str = "correct horse") -> str:
        from omshub.cloud.services.accounts import create_user

        with self.db.transaction() as s:
            return create_user(s, tenant.id, _unique("u"), password, role).username

    def gateway(self, tenant: TenantInfo, serial: str | None = None) -> GatewayInfo:
        from omshub.cloud.services.gateways import register_gateway

        with self.db.transaction() as s:
            g, cred = register_gateway(s, tenant.id, serial or _unique("GW-"))
            return GatewayInfo(g.id, g.serial, cred, tenant.id)

    def meter(self, tenant: TenantInfo, meter_id: str, manufacturer: str = "KAM", device_type: str = "heat") -> int:
        from omshub.cloud.decode.pipeline import requeue_waiting
        from omshub.cloud.services.accounts import utcnow
        from omshub.cloud.store.models import Meter

        with self.db.transaction() as s:
            m = Meter(
                tenant_id=tenant.id,
                manufacturer=manufacturer,
                meter_id=meter_id,
                device_type=device_type,
                created_at=utcnow(),
                key_status="missing",
            )
            s.add(m)
            s.flush()
            requeue_waiting(s, tenant.id, [(manufacturer, meter_id)])
            return m.id

    def keys(self, tenant: TenantInfo, keys: dict[str, bytes], manufacturer: str | None = None) -> dict:
        from omshub.cloud.store.keystore import KeyEntry

        with self.db.transaction() as s:
            return self.keystore.import_keys(
                s, tenant.id, [KeyEntry(mid, manufacturer, k) for mid, k in keys.items()], actor="test", source="test"
            )

    def post_uplink(self, gw: GatewayInfo, envelope: dict, *, as_json: bool = False, credential: str | None = None):
        import orjson

        body = orjson.dumps(envelope) if as_json else cbor2.dumps(envelope)
        ctype = "application/json" if as_json else "application/cbor"
        return self.client.post(
            "/api/v1/uplink",
            content=body,
            headers={"Content-Type": ctype, "Authorization": f"Bearer {credential or gw.credential}"},
        )

    def send(self, gw: GatewayInfo, seq: int, frames: list[bytes], **kw) -> dict:
        response = self.post_uplink(gw, batch_envelope(gw.serial, seq, frames, **kw))
        assert response.status_code == 200, response.content
        return cbor2.loads(response.content)

    def telegrams(self, gw: GatewayInfo) -> list:
        from sqlalchemy import select

        from omshub.cloud.store.models import Telegram

        with self.db.session() as s:
            return list(
                s.execute(
                    select(
                        Telegram.id,
                        Telegram.state,
                        Telegram.error,
                        Telegram.meter_id,
                        Telegram.manufacturer,
                        Telegram.meter_pk,
                    )
                    .where(Telegram.gateway_id == gw.id)
                    .order_by(Telegram.id)
                )
            )


@pytest.fixture
def hub(db, keystore, client) -> Hub:
    return Hub(db, keystore, client)


@pytest.fixture(scope="module")
def module_hub(db, keystore, client) -> Hub:
    """A hub for a whole module (property tests make their tenant and gateway once)."""
    return Hub(db, keystore, client)


# --- a real `omshub serve` process ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`omshub serve` in a subprocess on a free port."""

    def __init__(self, database_url: str, data_dir: Path, extra_env: dict | None = None) -> None:
        self.database_url, self.data_dir = database_url, data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(data_dir) / f"serve-{self.port}.log"

    def start(self, timeout: float = 60.0) -> LiveServer:
        env = {**os.environ, "OMSHUB_MASTER_KEY": MASTER_KEY_HEX, "OMSHUB_ALARM_INTERVAL_S": "2", **self.extra_env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "omshub",
                "serve",
                "--port",
                str(self.port),
                "--database",
                self.database_url,
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"omshub serve exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.base_url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"omshub serve did not become ready in {timeout}s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()


def _env_name(key: str) -> str:
    key = key.upper()
    return key if key.startswith("OMSHUB_") else "OMSHUB_" + key


@pytest.fixture
def live_server(database_url, data_dir):
    """Factory: `live_server()` starts `omshub serve` on this module's database; stopped at teardown."""
    servers: list[LiveServer] = []

    def start(**extra_env) -> LiveServer:
        """`start(coap_port=5683)` sets OMSHUB_COAP_PORT; names already prefixed pass as they are."""
        server = LiveServer(database_url, data_dir, {_env_name(k): str(v) for k, v in extra_env.items()})
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
