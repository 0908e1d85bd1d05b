"""Golden files of the export formats (tests/exports/golden/): reading export v1 as CSV and JSON,
the SAP IS-U upload as CSV and JSON (with a due-date value and a meter swap), from the fixed data
set of fleet.py. Database ids in `row_id` are numbered in order of appearance (they differ between
database runs; everything else is compared byte for byte). OMSHUB_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from omshub.cloud.services import export_runs, exports_v1

from . import fleet

GOLDEN = Path(__file__).parent / "golden"
EXPORT_ID = "sw-golden-000042"
GENERATED = "2026-01-05T06:30:00Z"


@pytest.fixture(scope="module")
def tenant_id(db) -> int:
    with db.transaction() as s:
        return fleet.build(s, "sw-golden").id


def _normalise(text: str) -> str:
    seen: dict[str, str] = {}

    def number(m: re.Match) -> str:
        return seen.setdefault(m.group(0), f"{m.group(1)}:{len(seen) + 1}")

    return re.sub(r"\b([vc]):(\d+)\b", number, text)


def _render(db, tenant_id: int, fmt: str) -> str:
    batches = exports_v1.rows(db, tenant_id, exports_v1.Scope(fleet.PERIOD), EXPORT_ID)
    head = {"export_id": EXPORT_ID, "period": fleet.PERIOD, "generated_at": GENERATED}
    return b"".join(export_runs.render(db, tenant_id, fmt, batches, head, {})).decode()


@pytest.mark.parametrize("fmt", export_runs.FORMATS)
def test_golden(db, tenant_id, fmt):
    kind, ext = fmt.split("-")
    path = GOLDEN / f"{kind}_{fleet.PERIOD}.{ext}"
    got = _normalise(_render(db, tenant_id, fmt))
    if os.environ.get("OMSHUB_UPDATE_GOLDEN") == "1":
        path.write_bytes(got.encode())
    assert got == path.read_bytes().decode()


@pytest.mark.parametrize("fmt", ["sap-csv", "sap-json"])
def test_sap_from_swaps_only(db, tenant_id, fmt):
    """The pull and the benchmark fetch only the consumption rows with a swap for the SAP upload:
    the same file as from all rows (the golden one)."""
    batches = exports_v1.rows(db, tenant_id, exports_v1.Scope(fleet.PERIOD), EXPORT_ID, swaps_only=True)
    head = {"export_id": EXPORT_ID, "period": fleet.PERIOD, "generated_at": GENERATED}
    got = _normalise(b"".join(export_runs.render(db, tenant_id, fmt, batches, head, {})).decode())
    assert got == (GOLDEN / f"sap_{fleet.PERIOD}.{fmt.split('-')[1]}").read_bytes().decode()
