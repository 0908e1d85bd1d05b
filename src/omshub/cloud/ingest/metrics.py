"""Prometheus counters of the ingest (docs/deploy.md), on the head-end's own registry (served at
`/metrics` by cloud/api/health.py): uplinks, telegrams and bytes by transport, and the refused
uplinks by reason. Counted in the serving process, where every transport (HTTP, CoAP, MQTT) takes
its uplinks; what the decode workers (other processes) do is read from the database at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)

UPLINKS = Counter("omshub_uplinks", "Uplinks taken (acknowledged) by transport", ["transport"], registry=REGISTRY)
UPLINK_BYTES = Counter(
    "omshub_uplink_bytes", "Bytes of uplink bodies taken, by transport", ["transport"], registry=REGISTRY
)
TELEGRAMS = Counter(
    "omshub_telegrams_ingested", "Telegrams of taken uplinks by outcome (stored, duplicate, rejected)",
    ["transport", "outcome"], registry=REGISTRY,
)  # fmt: skip
REFUSED = Counter(
    "omshub_uplinks_refused", "Uplinks refused as a whole, by transport and error code", ["transport", "code"],
    registry=REGISTRY,
)  # fmt: skip


def uplink_taken(transport: str, size: int, response: dict) -> None:
    UPLINKS.labels(transport).inc()
    UPLINK_BYTES.labels(transport).inc(size)
    TELEGRAMS.labels(transport, "stored").inc(response.get("stored") or 0)
    TELEGRAMS.labels(transport, "duplicate").inc(response.get("duplicates") or 0)
    TELEGRAMS.labels(transport, "rejected").inc(len(response.get("rejected") or ()))


def uplink_refused(transport: str, code: str) -> None:
    REFUSED.labels(transport, code).inc()
