"""Exports as files, and the bookkeeping of what was delivered (docs/exports.md §Re-export).

A recorded export (a job's delivery, or one asked for through the API) is an `ExportRun` with a
per-tenant number — its export id "<tenant>-<number>" is in every row — and an `ExportItem` per row it
delivered (the value's version and value, `new` or `changed`, and the earlier run that delivered the
row on the same channel). On a channel in `changes` mode, a run delivers only rows not delivered
before or changed since their last delivery; a changed row says `changed` and names the earlier
export. When the delivery succeeded, the delivered boundary values get `exported_at` (and lose
`export_stale`): billing marks a value changed after that as stale again.

`render` turns rows into the bytes of a format (streamed, constant memory); `pull` is the same
without bookkeeping (the API's paged pull).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from omshub.cloud.domain.errors import Invalid, not_found
from omshub.cloud.domain.exports import sap
from omshub.cloud.domain.exports.v1 import (
    DELIVERY,
    PREVIOUS_EXPORT_ID,
    PREVIOUS_RUN,
    RECORD,
    ROW_ID,
    SCHEMA,
    VALUE,
    VERSION,
    csv_cell,
    json_document,
    utc_text,
    v1_csv,
    v1_json_lines,
)
from omshub.cloud.services import export_sap, exports_v1
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Tenant
from omshub.cloud.store.models_billing import BillingValue
from omshub.cloud.store.models_exports import ExportItem, ExportRun

FORMATS = ("v1-csv", "v1-json", "sap-csv", "sap-json")
SAP_EXTRA = export_sap.EXTRA
MODES = ("all", "changes")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise Invalid(
            f"format {fmt!r}: one of {', '.join(FORMATS)}",
            german=f"Format {fmt!r}: eines von {', '.join(FORMATS)}",
            field="format",
        )


def file_name(fmt: str, period: str, export_id: str) -> str:
    kind, ext = fmt.split("-")
    return f"{kind}_{period.replace(':', '-')}_{export_id}.{ext}"


def render(
    db: Database, tenant_id: int, fmt: str, batches: Iterable[list[list]], head: dict, tail: dict
) -> Iterator[bytes]:
    """The bytes of `fmt` for batches of v1 rows (SAP formats transform them first). `tail` gets
    `row_count` as the rows pass (JSON writes it after the rows)."""
    check_format(fmt)
    kind, ext = fmt.split("-")
    tail.setdefault("row_count", 0)

    def counted(bs: Iterable[list]) -> Iterator[list]:
        for b in bs:
            tail["row_count"] += len(b)
            yield b

    if kind == "sap":
        with db.session() as session:
            mapping = export_sap.mapping_of(session, tenant_id)
        lines = counted(export_sap.sap_lines(db, tenant_id, batches, mapping, ext))
        if ext == "csv":
            header = ",".join(csv_cell(c) for c in sap.COLUMNS + SAP_EXTRA) + "\r\n"
            return itertools.chain((header.encode(),), ("".join(b).encode() for b in lines))
        return json_document(lines, {"format": "sap-isu-bapieablu", **head}, tail)
    out = counted(batches)
    if ext == "csv":
        return (p.encode() for p in v1_csv(out))
    return json_document(v1_json_lines(out), {"schema": SCHEMA, **head}, tail)


@dataclass
class RunResult:
    run_id: int
    export_id: str
    state: str
    rows: int
    path: Path | None  # the file (a temporary file the caller removes), None when nothing was delivered
    file_name: str
    sha256: str
    size: int


def export_id_of(slug: str, number: int) -> str:
    return f"{slug}-{number:06d}"


def start_run(db: Database, tenant_id: int, fmt: str, period: str, channel: str, mode: str, *, actor: str,
              now: datetime, job_id: int | None = None) -> tuple[int, str]:  # fmt: skip
    """A new run (state `running`) with the tenant's next number: (run id, export id)."""
    check_format(fmt)
    exports_v1.check_scope(exports_v1.Scope(period))
    if mode not in MODES:
        raise Invalid(f"mode {mode!r}: all or changes", german=f"Modus {mode!r}: all oder changes", field="mode")
    for attempt in range(5):  # two runs starting at once (PostgreSQL) take the same number: one tries again
        try:
            return _new_run(db, tenant_id, fmt, period, channel, mode, actor, now, job_id)
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _new_run(db, tenant_id, fmt, period, channel, mode, actor, now, job_id) -> tuple[int, str]:
    with db.transaction() as session:
        slug = session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
        if slug is None:
            raise not_found(f"tenant {tenant_id}", f"Mandant {tenant_id}")
        number = (session.scalar(select(func.max(ExportRun.number)).where(ExportRun.tenant_id == tenant_id)) or 0) + 1
        run = ExportRun(
            tenant_id=tenant_id, number=number, channel=channel, job_id=job_id, format=fmt,
            scope={"period": period, "mode": mode}, state="running", started_at=now, actor=actor,
        )  # fmt: skip
        session.add(run)
        session.flush()
        return run.id, export_id_of(slug, number)


def write_run(db: Database, tenant_id: int, run_id: int, export_id: str, now: datetime) -> RunResult:
    """Render the run into a temporary file, recording each delivered row (items of the run)."""
    with db.session() as session:
        run = session.get(ExportRun, run_id)
        assert run is not None and run.tenant_id == tenant_id
        fmt, period, mode, channel = run.format, run.scope["period"], run.scope["mode"], run.channel
    recorder = _Recorder(db, tenant_id, run_id, channel, mode, export_id)
    scope = exports_v1.Scope(period)
    batches = recorder.annotate(exports_v1.rows(db, tenant_id, scope, export_id, extras=fmt.startswith("sap")))
    head = {"export_id": export_id, "period": period, "generated_at": utc_text(now)}
    tail: dict = {}
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(prefix="omshub-export-")
    with os.fdopen(fd, "wb") as f:
        for piece in render(db, tenant_id, fmt, recorder.recording(batches, fmt), head, tail):
            f.write(piece)
            digest.update(piece)
            size += len(piece)
    # rows: the file's rows (SAP: readings and swap rows); "empty" when no row was new or changed
    return RunResult(run_id, export_id, "ok" if recorder.count else "empty", tail["row_count"], Path(name),
                     file_name(fmt, period, export_id), digest.hexdigest(), size)  # fmt: skip


def finish_run(db: Database, tenant_id: int, result: RunResult, *, now: datetime, target: str = "",
               error: str | None = None) -> None:  # fmt: skip
    """Record the outcome: delivered (the file kept gzip-compressed, the values marked exported) or
    failed (the run's items removed: nothing of it counts as delivered)."""
    with db.transaction() as session:
        run = session.get(ExportRun, result.run_id)
        assert run is not None and run.tenant_id == tenant_id
        run.finished_at, run.target = now, target
        if error is not None:
            run.state, run.error = "failed", error[:2000]
            session.execute(delete(ExportItem).where(ExportItem.run_id == run.id))
            return
        run.state, run.rows = result.state, result.rows
        run.file_name, run.sha256, run.size = result.file_name, result.sha256, result.size
        if result.path is not None:
            run.content_gz = gzip.compress(result.path.read_bytes(), 6)
        delivered = select(ExportItem.row_id).where(ExportItem.run_id == run.id, ExportItem.kind == "value")
        session.execute(
            update(BillingValue)
            .where(BillingValue.tenant_id == tenant_id, BillingValue.id.in_(delivered))
            .values(exported_at=now, export_stale=False)
            .execution_options(synchronize_session=False)
        )


def export_now(db: Database, tenant_id: int, fmt: str, period: str, *, channel: str = "manual", mode: str = "all",
               actor: str, now: datetime, deliver: Callable[[RunResult], str] | None = None,
               job_id: int | None = None) -> RunResult:  # fmt: skip
    """One recorded export: start, write, deliver (`deliver(result)` → where to; raises on failure),
    finish. The temporary file is removed afterwards; the run keeps its content."""
    run_id, export_id = start_run(db, tenant_id, fmt, period, channel, mode, actor=actor, now=now, job_id=job_id)
    result = None
    try:
        result = write_run(db, tenant_id, run_id, export_id, now)
        target = deliver(result) if deliver is not None and result.rows else ""
        finish_run(db, tenant_id, result, now=now, target=target)
        return result
    except Exception as exc:
        failed = result or RunResult(run_id, export_id, "failed", 0, None, "", "", 0)
        finish_run(db, tenant_id, failed, now=now, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if result is not None and result.path is not None:
            result.path.unlink(missing_ok=True)


class _Recorder:
    """Per batch: which rows to deliver on the channel and why (`delivery`, `previous_export_id`),
    and the items of what was written."""

    def __init__(self, db: Database, tenant_id: int, run_id: int, channel: str, mode: str, export_id: str) -> None:
        self.db, self.tenant_id, self.run_id, self.channel, self.mode = db, tenant_id, run_id, channel, mode
        self.export_id, self.count = export_id, 0
        self._slug = export_id.rsplit("-", 1)[0]

    def _previous(self, batch: list[list]) -> dict[str, tuple]:
        """(kind:row id) → (version, run number) of its latest successful delivery on the channel."""
        ids: dict[str, list[int]] = {"value": [], "consumption": []}
        for r in batch:
            ids["value" if r[RECORD] == "boundary_value" else "consumption"].append(int(r[ROW_ID][2:]))
        found: dict[str, tuple] = {}
        with self.db.session() as session:
            for kind, row_ids in ids.items():
                if not row_ids:
                    continue
                q = (
                    select(ExportItem.row_id, ExportItem.version, ExportRun.number, ExportRun.id)
                    .join(ExportRun, ExportRun.id == ExportItem.run_id)
                    .where(ExportItem.tenant_id == self.tenant_id, ExportItem.channel == self.channel,
                           ExportItem.kind == kind, ExportItem.row_id.in_(row_ids), ExportRun.state == "ok")
                    .order_by(ExportItem.id)
                )  # fmt: skip
                for row_id, version, number, run_id in session.execute(q):
                    found[f"{kind[0]}:{row_id}"] = (utc_text(version), number, run_id)
        return found

    def annotate(self, batches: Iterable[list[list]]) -> Iterator[list[list]]:
        for batch in batches:
            previous = self._previous(batch)
            out = []
            for r in batch:
                before = previous.get(r[ROW_ID])
                if before is not None and self.mode == "changes" and before[0] == r[VERSION]:
                    continue
                r[DELIVERY] = "new" if before is None else "changed"
                r[PREVIOUS_EXPORT_ID] = None if before is None else export_id_of(self._slug, before[1])
                r[PREVIOUS_RUN] = None if before is None else before[2]
                out.append(r)
            if out:
                yield out

    def recording(self, batches: Iterable[list[list]], fmt: str) -> Iterator[list[list]]:
        """The batches as they are written; their rows recorded as items of the run."""
        for batch in batches:
            self._record(batch)
            yield batch

    def _record(self, batch: list[list]) -> None:
        items = []
        for r in batch:
            kind = "value" if r[RECORD] == "boundary_value" else "consumption"
            items.append({
                "tenant_id": self.tenant_id, "run_id": self.run_id, "channel": self.channel, "kind": kind,
                "row_id": int(r[ROW_ID][2:]), "version": datetime.fromisoformat(r[VERSION].replace("Z", "+00:00")),
                "value": r[VALUE], "reason": r[DELIVERY], "previous_run_id": r[PREVIOUS_RUN],
            })  # fmt: skip
        self.count += len(items)
        with self.db.transaction() as session:
            session.execute(insert(ExportItem), items)
