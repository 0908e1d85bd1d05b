"""The delivery worker `omshub serve` runs (one head-end of several, as the maintenance): every
`interval_s` it turns what happened into webhook events (event_sources.scan), POSTs the webhook
deliveries that are due (webhooks.deliver_due) and runs the export jobs whose time has come
(sftp_jobs.due_jobs), and sends the customer information's e-mail notices that are due, first or
again after a failed attempt (customer_console.send_all_due). Each step's failure is logged and the others still run."""

from __future__ import annotations

import logging
import threading

from omshub.cloud.services import event_sources, sftp_jobs, webhooks
from omshub.cloud.services.customer_console import send_all_due
from omshub.cloud.store.database import Database
from omshub.cloud.store.keystore import KeyStore
from omshub.times import utcnow

log = logging.getLogger(__name__)


def tick(db: Database, keystore: KeyStore) -> dict:
    """One round of the worker's steps (what `omshub exports deliver` runs once)."""
    out: dict = {}
    for name, step in (
        ("events", lambda: event_sources.scan(db, utcnow())),
        ("webhooks", lambda: webhooks.deliver_due(db, keystore, utcnow())),
        ("jobs", lambda: sftp_jobs.due_jobs(db, keystore, utcnow())),
        ("customer_notices", lambda: send_all_due(db, utcnow())),
    ):
        try:
            out[name] = step()
        except Exception:
            log.exception("delivery step %s failed", name)
            out[name] = "failed"
    return out


class DeliveryWorker(threading.Thread):
    def __init__(self, db: Database, keystore: KeyStore, interval_s: float) -> None:
        super().__init__(name="omshub-delivery", daemon=True)
        self.db, self.keystore, self.interval_s = db, keystore, interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            tick(self.db, self.keystore)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
