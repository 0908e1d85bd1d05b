"""The head-end application: FastAPI app, error rendering, background workers.

`create_app()` wires the Database, KeyStore and DecodePipeline onto `app.state`; with
`workers=True` (as `omshub serve` runs it) its lifespan also starts the decode pipeline worker,
the periodic alarm evaluation and — when configured — the CoAP and MQTT uplink servers.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from starlette.datastructures import MutableHeaders

from omshub.cloud.api import (
    alarms,
    auth,
    billing,
    charts,
    console_tasks,
    customers,
    exports,
    gateways,
    health,
    keys,
    metering_points,
    meters,
    operations,
    portal,
    properties,
    readings,
    telegrams,
    tenant_time,
    uplink,
    weather,
    webhooks,
)
from omshub.cloud.api.errors import ERROR_RESPONSES, install_error_handlers
from omshub.cloud.api.guard import BodyLimits, RequestGuard
from omshub.cloud.decode.pipeline import DecodePipeline, PipelineProcesses, PipelineWorker, tune_gc
from omshub.cloud.services import alarms as alarm_rules
from omshub.cloud.services import maintenance
from omshub.cloud.services.delivery_worker import DeliveryWorker
from omshub.cloud.settings import Settings, load_settings
from omshub.cloud.store.database import Database
from omshub.cloud.store.keystore import KeyStore, load_master_key
from omshub.cloud.store.outage import database_outage
from omshub.cloud.web import console
from omshub.cloud.web import portal as portal_pages
from omshub.times import utcnow

log = logging.getLogger(__name__)

# the API's routers, in the order of the documentation, then the console
ROUTERS = [
    health.router,
    auth.router,
    gateways.router,
    uplink.router,
    keys.router,
    meters.router,
    metering_points.router,
    properties.router,
    weather.router,
    billing.router,
    customers.router,
    portal.router,
    readings.router,
    telegrams.router,
    operations.router,
    alarms.router,
    charts.router,
    tenant_time.router,
    console_tasks.router,
    exports.router,
    webhooks.router,
    console.router,
    portal_pages.router,
]


class AlarmWorker(threading.Thread):
    """Calls alarms.evaluate every `interval_s` (gateways that missed their contact, silent meters)."""

    def __init__(self, db: Database, interval_s: float, silent_days: int) -> None:
        super().__init__(name="omshub-alarms", daemon=True)
        self.db, self.interval_s, self.silent_days = db, interval_s, silent_days
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                with self.db.transaction() as session:
                    alarm_rules.evaluate(session, utcnow(), silent_days=self.silent_days)
                database_outage.succeeded()
            except Exception as exc:
                if not database_outage.failed(exc):
                    log.exception("periodic alarm evaluation failed")

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class MaintenanceWorker(threading.Thread):
    """Runs the maintenance tasks (services/maintenance.py) every `interval_s`, the first time one
    interval after the start (a restart of every head-end must not vacuum all at once)."""

    def __init__(self, db: Database, interval_s: float) -> None:
        super().__init__(name="omshub-maintenance", daemon=True)
        self.db, self.interval_s = db, interval_s
        self.stopping = threading.Event()
        self.last: list[dict] = []

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                self.last = [r.as_dict() for r in maintenance.run_maintenance(self.db, utcnow())]
                failed = [r["task"] for r in self.last if not r["ok"]]
                if failed:
                    log.error("maintenance tasks failed: %s", ", ".join(failed))
            except Exception:
                log.exception("maintenance failed")

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def warn_autovacuum(db: Database) -> None:
    """At start: PostgreSQL's autovacuum must be on (services/maintenance.py says why)."""
    try:
        status = maintenance.autovacuum_status(db)
    except Exception as exc:  # the database is unreachable at start: the outage log says so (store/outage.py)
        log.debug("autovacuum not checked at start: %s", exc)
        return
    if status["message"]:
        log.warning("%s", status["message"])


class SecurityHeaders:
    """Headers on every response unless the route set its own: no MIME sniffing, no referrer, a
    Content-Security-Policy that allows nothing (HTML pages — console, docs — bring theirs), and
    `Cache-Control: no-store` on the API (answers carry tenant data, tokens, credentials)."""

    DEFAULTS = (
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("content-security-policy", "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    )

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.DEFAULTS:
                    headers.setdefault(name, value)
                if api:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _start_transports(app: FastAPI, settings: Settings, db: Database) -> list:
    started: list = []  # the transports (each with its stop())
    if settings.coap_port is not None:
        # start-up cost: aiocoap adds ~0.2 s to every start (python -X importtime); only when configured
        from omshub.cloud.ingest.coap import CoapServer

        server = CoapServer.for_database(
            db,
            host=settings.coap_host,
            port=settings.coap_port,
            max_body=settings.max_uplink_body,
            max_pending=settings.coap_max_pending,
        )
        await server.start()
        started.append(server)
    if settings.mqtt_url:
        # start-up cost: aiomqtt and paho add ~0.5 s to every start (python -X importtime); only when configured
        from omshub.cloud.ingest.mqtt import MqttBridge

        bridge = MqttBridge.for_database(
            db,
            settings.mqtt_url,
            prefix=settings.mqtt_prefix,
            shared_group=settings.mqtt_shared_group,
            max_body=settings.max_uplink_body,
        )
        await bridge.start()
        started.append(bridge)
    app.state.transports = started
    return started


def _start_pipeline(app: FastAPI, settings: Settings, db: Database, pipeline: DecodePipeline):
    """The decode worker: in this process, or `pipeline_workers` processes of their own."""
    if settings.pipeline_workers:
        processes = PipelineProcesses(
            db.url,
            load_master_key(settings.master_key, settings.data_dir),
            workers=settings.pipeline_workers,
            meter_timezone=settings.meter_timezone,
            batch=settings.pipeline_batch,
            log_level=settings.log_level,
            node=(settings.node_index, settings.node_count),
        )
        worker = PipelineWorker(None, processes=processes)
    else:
        worker = PipelineWorker(pipeline, batch=settings.pipeline_batch)
        app.state.pipeline_wakeup = worker.wakeup.set
    worker.start()
    app.state.pipeline_worker = worker
    return worker


def _lifespan(settings: Settings, db: Database, pipeline: DecodePipeline, workers: bool):
    """Starts (with `workers`) the decode worker, the alarm evaluation and the transports; stops them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threads, transports = [], []
        if workers:
            tune_gc()  # the serving process: uplinks of thousands of rows, decode batches in-thread
            if settings.pipeline:
                threads.append(_start_pipeline(app, settings, db, pipeline))
            alarm_worker = AlarmWorker(db, settings.alarm_interval_s, settings.silent_days)
            alarm_worker.start()
            threads.append(alarm_worker)
            warn_autovacuum(db)
            maintenance.ensure_partitions_at_start(db)
            # one head-end of several runs the maintenance (it is for the whole database)
            if settings.maintenance_interval_s and settings.node_index == 0:
                maintenance_worker = MaintenanceWorker(db, settings.maintenance_interval_s)
                maintenance_worker.start()
                threads.append(maintenance_worker)
            if settings.delivery_interval_s and settings.node_index == 0:  # webhooks and export jobs
                delivery_worker = DeliveryWorker(db, app.state.keystore, settings.delivery_interval_s)
                delivery_worker.start()
                threads.append(delivery_worker)
            transports = await _start_transports(app, settings, db)
        try:
            yield
        finally:
            for transport in transports:
                await transport.stop()
            for thread in threads:
                thread.stop()

    return lifespan


def _add_health(app: FastAPI, db: Database) -> None:
    @app.get("/api/v1/health", tags=["service"])
    def health() -> dict:
        """Liveness: the service answers and its database is reachable."""
        with db.session() as session:
            session.execute(text("SELECT 1"))
        database_outage.succeeded()
        return {"status": "ok", "database": db.dialect}


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    keystore: KeyStore | None = None,
    workers: bool = False,
    migrate: bool = True,
) -> FastAPI:
    """The FastAPI app. `workers=True` starts the background workers and transports with the app."""
    settings = settings or load_settings()
    if db is None:
        db = Database(settings.database_url, settings.database_read_url)
    if migrate:
        db.migrate()
    if keystore is None:
        keystore = KeyStore(load_master_key(settings.master_key, settings.data_dir))
    pipeline = DecodePipeline(
        db, keystore, meter_timezone=settings.meter_timezone, partition=(settings.node_index, settings.node_count)
    )
    app = FastAPI(
        title="omshub head-end",
        version="1",
        lifespan=_lifespan(settings, db, pipeline, workers),
        docs_url=None,
        redoc_url=None,  # web/console.py serves both pages with local assets
        description="Multi-tenant head-end for OMS / wireless M-Bus meters: gateway uplinks, "
        "key store, decode pipeline, meters, readings, consumption, alarms.",
    )
    # bodies authenticated before and bounded while they are read, on every route (cloud/api/guard.py)
    app.add_middleware(RequestGuard, limits=BodyLimits.from_settings(settings))
    app.add_middleware(SecurityHeaders)
    app.state.settings = settings
    app.state.db = db
    app.state.keystore = keystore
    app.state.pipeline = pipeline
    app.state.pipeline_wakeup = None
    app.state.pipeline_worker = None
    install_error_handlers(app)
    health.install_request_metrics(app)
    _add_health(app, db)
    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)
    return app
