"""The head-end application: FastAPI app, error rendering, background workers.

`create_app()` wires the Database, KeyStore and DecodePipeline onto `app.state`; with
`workers=True` (as `omshub serve` runs it) its lifespan also starts the decode pipeline worker,
the periodic alarm evaluation and — when configured — the CoAP and MQTT uplink servers.
"""

from __future__ import annotations

import importlib
import logging
import threading
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from omshub.cloud.api.common import ERROR_RESPONSES, ApiError
from omshub.cloud.store.database import Database
from omshub.cloud.store.keystore import KeyStore, load_master_key
from omshub.cloud.api.guard import BodyLimits, RequestGuard
from omshub.cloud.store.outage import database_outage
from omshub.cloud.decode.pipeline import DecodePipeline, PipelineProcesses, PipelineWorker, tune_gc
from omshub.cloud.settings import Settings, load_settings

log = logging.getLogger(__name__)

# omshub.cloud.api.<name> modules whose `router` is included (missing ones are skipped)
API_MODULES = ["auth", "gateways", "uplink", "keys", "meters", "metering_points", "readings", "telegrams",
               "operations", "alarms", "tenant_time"]


def _routers():
    for name in API_MODULES:
        module_name = f"omshub.cloud.api.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            log.warning("API module %s not present; its endpoints are missing", module_name)
            continue
        yield module.router


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")  # pydantic's wrapping of our own checks
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _unparsable_body_message(exc: StarletteHTTPException) -> str:
    # FastAPI answers 400 for a body its JSON parser raised on with something else than a syntax
    # error: Python refuses integers of more than 4,300 digits.
    if isinstance(exc.__cause__, ValueError) and "digits" in str(exc.__cause__):
        return "the request body holds a number of more than 4,300 digits; numbers here are at most 64-bit"
    return "the request body could not be parsed"


class AlarmWorker(threading.Thread):
    """Calls alarms.evaluate every `interval_s` (gateways that missed their contact, silent meters)."""

    def __init__(self, db: Database, interval_s: float, silent_days: int) -> None:
        super().__init__(name="omshub-alarms", daemon=True)
        self.db, self.interval_s, self.silent_days = db, interval_s, silent_days
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            from omshub.cloud.services import alarms
        except ImportError:
            log.warning("omshub.cloud.services.alarms not present; periodic alarms are off")
            return
        while not self.stopping.wait(self.interval_s):
            try:
                with self.db.transaction() as session:
                    alarms.evaluate(session, datetime.now(timezone.utc), silent_days=self.silent_days)
                database_outage.succeeded()
            except Exception as exc:
                if not database_outage.failed(exc):
                    log.exception("periodic alarm evaluation failed")

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class SecurityHeaders:
    """Headers on every response unless the route set its own: no MIME sniffing, no referrer, a
    Content-Security-Policy that allows nothing (HTML pages — console, docs — bring theirs), and
    `Cache-Control: no-store` on the API (answers carry tenant data, tokens, credentials)."""

    DEFAULTS = (("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"),
                ("content-security-policy", "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"))

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
    started = []
    if settings.coap_port is not None:
        from omshub.cloud.ingest.coap import CoapServer
        server = CoapServer.for_database(db, host=settings.coap_host, port=settings.coap_port,
                                         max_body=settings.max_uplink_body, max_pending=settings.coap_max_pending)
        await server.start()
        started.append(server)
    if settings.mqtt_url:
        from omshub.cloud.ingest.mqtt import MqttBridge
        bridge = MqttBridge.for_database(db, settings.mqtt_url, prefix=settings.mqtt_prefix,
                                         shared_group=settings.mqtt_shared_group, max_body=settings.max_uplink_body)
        await bridge.start()
        started.append(bridge)
    app.state.transports = started
    return started


def create_app(settings: Settings | None = None, *, db: Database | None = None, keystore: KeyStore | None = None,
               workers: bool = False, migrate: bool = True) -> FastAPI:
    """The FastAPI app. `workers=True` starts the background workers and transports with the app."""
    settings = settings or load_settings()
    if db is None:
        db = Database(settings.database_url)
    if migrate:
        db.migrate()
    if keystore is None:
        keystore = KeyStore(load_master_key(settings.master_key, settings.data_dir))
    pipeline = DecodePipeline(db, keystore, meter_timezone=settings.meter_timezone)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threads, transports = [], []
        if workers:
            tune_gc()  # the serving process: uplinks of thousands of rows, decode batches in-thread
            if settings.pipeline:
                if settings.pipeline_workers:
                    processes = PipelineProcesses(
                        db.url, load_master_key(settings.master_key, settings.data_dir),
                        workers=settings.pipeline_workers, meter_timezone=settings.meter_timezone,
                        batch=settings.pipeline_batch, log_level=settings.log_level)
                    worker = PipelineWorker(None, processes=processes)
                else:
                    worker = PipelineWorker(pipeline, batch=settings.pipeline_batch)
                    app.state.pipeline_wakeup = worker.wakeup.set
                worker.start()
                threads.append(worker)
            alarm_worker = AlarmWorker(db, settings.alarm_interval_s, settings.silent_days)
            alarm_worker.start()
            threads.append(alarm_worker)
            transports = await _start_transports(app, settings, db)
        try:
            yield
        finally:
            for transport in transports:
                await transport.stop()
            for thread in threads:
                thread.stop()

    app = FastAPI(title="omshub head-end", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # web.py serves both pages with local assets
                  description="Multi-tenant head-end for OMS / wireless M-Bus meters: gateway uplinks, "
                              "key store, decode pipeline, meters, readings, consumption, alarms.")
    # bodies authenticated before and bounded while they are read, on every route (cloud/api/guard.py)
    app.add_middleware(RequestGuard, limits=BodyLimits.from_settings(settings))
    app.add_middleware(SecurityHeaders)
    app.state.settings = settings
    app.state.db = db
    app.state.keystore = keystore
    app.state.pipeline = pipeline
    app.state.pipeline_wakeup = None

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        return JSONResponse({"error": {"code": "invalid_request", "message": _validation_message(exc)}},
                            status_code=422)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SqlPoolTimeout)
    async def _database(_request: Request, exc: Exception):
        if not database_outage.failed(exc):  # a bad statement is a bug: a 500 with its traceback
            raise exc
        return JSONResponse({"error": {"code": "database_unavailable",
                                       "message": "the database is unreachable; try again later"}},
                            status_code=503, headers={"Retry-After": "10"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, f"http_{exc.status_code}")
        message = str(exc.detail)
        if exc.status_code == 400 and exc.__cause__ is not None:
            code, message = "invalid_body", _unparsable_body_message(exc)
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception):
        # a defect of ours: logged with its traceback by the server; the client gets the error shape, no details
        return JSONResponse({"error": {"code": "internal_error", "message": "internal server error; it is logged"}},
                            status_code=500)

    @app.get("/api/v1/health", tags=["service"])
    def health() -> dict:
        """Liveness: the service answers and its database is reachable."""
        from sqlalchemy import text
        with db.session() as session:
            session.execute(text("SELECT 1"))
        database_outage.succeeded()
        return {"status": "ok", "database": db.dialect}

    for router in _routers():
        app.include_router(router, responses=ERROR_RESPONSES)
    from omshub.cloud.web import console as web  # the operator console: static pages at / that talk to the API above
    app.include_router(web.router, responses=ERROR_RESPONSES)
    return app
