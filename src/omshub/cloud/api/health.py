"""Liveness, readiness and metrics of a head-end (docs/deploy.md):

* `GET /healthz` — liveness: the process answers (no database: a database outage must not get
  every head-end restarted by its supervisor at once);
* `GET /readyz` — readiness, what a load balancer asks before it sends traffic: the database
  answers, its schema is the one this code needs (migrations current), the decode workers run;
  503 with the failed checks otherwise. PostgreSQL's autovacuum is reported (a warning in the
  answer and in the log; not a reason to take every head-end out of the balancer at once);
* `GET /metrics` — Prometheus: the ingest counters (cloud/ingest/metrics.py), request latency by
  route, and, read from the database at each scrape, the decode queue by state and the decode lag
  (age of the oldest telegram waiting to be decoded).

All three need no credential: put them behind the balancer's own rules (deploy/haproxy.cfg keeps
/metrics to the local network).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

from omshub.cloud.ingest.metrics import REGISTRY
from omshub.cloud.services.maintenance import autovacuum_status
from omshub.cloud.store.database import Database

router = APIRouter(tags=["service"])

# the states a telegram waits in (counted through the (state, id) index; decoded and duplicate,
# the bulk of the table, are not counted at each scrape)
WAITING_STATES = ("new", "no_key", "wrong_key", "unknown_meter", "invalid")
_COUNT_CAP = 10_000_000  # a count stops here: a scrape must stay cheap

REQUEST_SECONDS = Histogram(
    "omshub_request_seconds",
    "HTTP request latency by route template and status class",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class QueueCollector:
    """The decode queue, read from the database when scraped (the workers run in other processes
    and on other hosts: the database is where their work is seen)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self):
        depth = GaugeMetricFamily("omshub_telegrams_waiting", "Telegrams by waiting state", labels=["state"])
        lag = GaugeMetricFamily("omshub_decode_lag_seconds", "Age of the oldest telegram not decoded yet")
        up = GaugeMetricFamily("omshub_database_up", "1 when the database answered this scrape")
        try:
            with self.db.session() as s:
                for state in WAITING_STATES:
                    n = s.execute(
                        text(f"SELECT count(*) FROM (SELECT 1 FROM telegrams WHERE state = :s LIMIT {_COUNT_CAP}) x"),
                        {"s": state},
                    ).scalar()
                    depth.add_metric([state], float(n or 0))
                oldest = s.execute(
                    text("SELECT received_at FROM telegrams WHERE state = 'new' ORDER BY id LIMIT 1")
                ).scalar()
            up.add_metric([], 1.0)
        except Exception:  # the scrape still answers: the database being down is the news
            up.add_metric([], 0.0)
            yield up
            return
        lag.add_metric([], _age(oldest))
        yield from (depth, lag, up)


def _age(received_at) -> float:
    if received_at is None:
        return 0.0
    if isinstance(received_at, str):  # (SQLite: naive UTC text)
        received_at = datetime.fromisoformat(received_at)
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    return max(0.0, time.time() - received_at.timestamp())


@router.get("/healthz")
def healthz() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready: the failed checks"}})
def readyz(request: Request, response: Response) -> dict:
    """Readiness: database reachable, migrations current, decode workers running; autovacuum reported."""
    db: Database = request.app.state.db
    checks: dict[str, dict] = {}
    try:
        current, head = db.migration_status()
        checks["database"] = {"ok": True, "dialect": db.dialect}
        checks["migrations"] = {"ok": current == head, "current": current, "expected": head}
        checks["autovacuum"] = {"ok": True, **autovacuum_status(db)}
    except Exception as exc:
        checks["database"] = {
            "ok": False,
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        }
    worker = getattr(request.app.state, "pipeline_worker", None)
    if worker is not None:
        health = worker.health()
        alive = health["running"] and health.get("processes_alive", 1) > 0
        checks["decode_workers"] = {"ok": alive, **health}
    ready = all(c["ok"] for c in checks.values())
    response.status_code = 200 if ready else 503
    warnings = [checks["autovacuum"]["message"]] if checks.get("autovacuum", {}).get("message") else []
    return {"status": "ready" if ready else "not ready", "checks": checks, "warnings": warnings}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    body = generate_latest(REGISTRY) + generate_latest(_QueueRegistry(request.app.state.db))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _QueueRegistry:
    """A one-scrape registry for the database-read gauges (generate_latest takes any object with
    `collect`)."""

    def __init__(self, db: Database) -> None:
        self.collector = QueueCollector(db)

    def collect(self):
        return self.collector.collect()


def install_request_metrics(app: FastAPI) -> None:
    """Request latency by route template (not by path: ids would make a series per meter)."""

    @app.middleware("http")
    async def timed(request: Request, call_next):
        start = time.perf_counter()
        status = "5xx"
        try:
            response = await call_next(request)
            status = f"{response.status_code // 100}xx"
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            REQUEST_SECONDS.labels(request.method, path, status).observe(time.perf_counter() - start)
