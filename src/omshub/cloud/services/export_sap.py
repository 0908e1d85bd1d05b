"""The SAP IS-U upload (domain/exports/sap.py) of a period: the v1 rows (services/exports_v1.py)
turned into BAPIEABLU rows, the swaps of the period read from the installations; and each tenant's
code mappings (`GET/PUT /api/v1/exports/sap-mapping`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.domain.exports import sap
from omshub.cloud.domain.exports.v1 import COL, DELIVERY, EXPORT_ID, POINT, PREVIOUS_EXPORT_ID, RECORD, RUNS, ZONE
from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import Database
from omshub.cloud.store.models import Installation, Meter
from omshub.cloud.store.models_exports import ExportSettings


def mapping_of(session: Session, tenant_id: int) -> dict:
    """The tenant's SAP mapping over the defaults."""
    row = session.scalar(select(ExportSettings).where(ExportSettings.tenant_id == tenant_id))
    return sap.merged(row.sap if row else None)


def set_mapping(session: Session, tenant_id: int, mapping: dict, *, actor: str, now: datetime) -> dict:
    """Replace the tenant's own entries (what differs from the defaults); audited."""
    try:
        sap.check(mapping)
    except sap.MappingError as exc:
        raise Invalid(str(exc), german=exc.german, field=exc.field) from None
    row = session.scalar(select(ExportSettings).where(ExportSettings.tenant_id == tenant_id))
    before = dict(row.sap) if row else {}
    if row is None:
        row = ExportSettings(tenant_id=tenant_id, sap={}, changed_at=now)
        session.add(row)
    row.sap, row.changed_at, row.changed_by = mapping, now, actor
    audit(session, tenant_id, actor, "export_sap_mapping", {"before": before, "after": mapping})
    return sap.merged(mapping)


EXTRA = sap.EXTRA


def sap_lines(
    db: Database, tenant_id: int, batches: Iterable[list[list]], mapping: dict, ext: str
) -> Iterator[list[str]]:
    """Per batch of v1 rows, the upload's rows as text — CSV lines ("csv", with CRLF) or JSON
    objects ("json"), byte for byte what v1.table_csv / v1.table_json_lines write of the rows as
    lists (sap.COLUMNS + EXTRA), made from fragments (domain/exports/sap.UploadLines): a reading
    per boundary value, a removal and an installation reading per swap (from the consumption rows
    whose period has several meters). Each upload row ends with the delivery bookkeeping of its
    v1 row."""
    lines = sap.UploadLines(mapping, ext)
    for batch in batches:
        swaps = [r for r in batch if r[RECORD] == "consumption" and len(r[RUNS] or []) > 1]
        if not swaps:
            yield lines.readings(batch)
            continue
        installs = _installations(db, tenant_id, [r[POINT] for r in swaps])
        swap_ids = {id(r) for r in swaps}
        out: list[str] = []
        for row in batch:
            if row[RECORD] == "boundary_value":
                out += lines.readings([row])
            elif id(row) in swap_ids:
                for made in _swap(row, installs.get(row[POINT], []), mapping):
                    out.append(lines.row(made + [row[EXPORT_ID] or None, row[DELIVERY], row[PREVIOUS_EXPORT_ID]]))
        yield out


def _installations(db: Database, tenant_id: int, points: list[int]) -> dict[int, list]:
    with db.session() as session:
        found = session.execute(
            select(
                Installation.metering_point_id,
                Installation.installed_at,
                Installation.removed_at,
                Meter.manufacturer,
                Meter.meter_id,
            )  # fmt: skip
            .join(Meter, Meter.id == Installation.meter_pk)
            .where(Installation.tenant_id == tenant_id, Installation.metering_point_id.in_(points))
            .order_by(Installation.installed_at)
        ).all()
    out: dict[int, list] = {}
    for point, installed, removed, manufacturer, meter_id in found:
        out.setdefault(point, []).append((f"{manufacturer} {meter_id}", meter_id, installed, removed))
    return out


def _swap(row: list, installs: list, mapping: dict) -> list[list]:
    """Per pair of consecutive runs: the first meter's removal, the second's installation."""
    start = datetime.fromisoformat(row[COL["period_start_utc"]].replace("Z", "+00:00"))
    end = datetime.fromisoformat(row[COL["period_end_utc"]].replace("Z", "+00:00"))
    out: list[list] = []
    runs = row[RUNS]
    for old, new in zip(runs, runs[1:], strict=False):
        removed = next((i for i in installs if i[0] == old["meter"] and i[3] and start <= i[3] <= end), None)
        installed = next((i for i in installs if i[0] == new["meter"] and start <= i[2] <= end), None)
        if removed is None or installed is None:
            continue  # runs without a dated swap (e.g. a meter counted from its first reading)
        out += sap.swap_rows(
            removed[1], installed[1], row[COL["register"]], (removed[3], old["end"]), (installed[2], new["start"]),
            mapping, row[ZONE],
        )  # fmt: skip
    return out
