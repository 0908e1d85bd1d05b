"""E898 records of the monthly customer information (docs/exports.md §ARGE): one record per PDF,
document type VDA, keyed by the master data the ARGE import makes (object number = property ref,
user number = unit ref, landlord's key = the occupant's customer ref); golden file; the bundle
holds each PDF under the name its record gives; master data without ARGE numbers is refused clearly."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import timedelta
from pathlib import Path

from omshub.cloud.domain.exports import arge
from omshub.cloud.services.customer_records import build_month
from omshub.cloud.store.models_billing import Property, Unit

from . import fleet

GOLDEN = Path(__file__).parent / "golden" / f"e898_monthly_{fleet.PERIOD}.txt"
NOW = fleet.CLOSED + timedelta(hours=2)


def _month(db, tenant_id: int, arge_numbers: bool) -> None:
    with db.transaction() as s:
        fleet.build(s, "", tenant_id=tenant_id)
        if arge_numbers:  # as the ARGE import names them: object number, user numbers
            s.query(Property).filter_by(tenant_id=tenant_id).update({"ref": "12345"})
            for n, unit in enumerate(s.query(Unit).filter_by(tenant_id=tenant_id).order_by(Unit.ref), 4):
                unit.ref = str(n)
    with db.transaction() as s:
        build_month(s, tenant_id, fleet.PERIOD, actor="run", now=NOW)


def test_e898_of_the_monthly_information_golden(client, hub, db):
    t = hub.tenant()
    _month(db, t.id, arge_numbers=True)
    r = client.get("/api/v1/arge/e898", params={"month": fleet.PERIOD}, headers=hub.headers(t))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain") and "E898_2025-12.txt" in r.headers["content-disposition"]
    if os.environ.get("OMSHUB_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(r.content)
    assert r.content == GOLDEN.read_bytes()
    lines = r.content.decode("latin-1").split("\r\n")[:-1]
    records = client.get("/api/v1/customer-info/records", params={"month": fleet.PERIOD}, headers=hub.headers(t))
    assert len(lines) == len(records.json()["items"]) >= 3
    for n, line in enumerate(lines, 1):
        assert len(line) == 120 and line[:4] == "E898" and line[117:120] == "VDA"
        assert line[4:11] == f"{n:07d}" and line[11:13] == "00" and line[13:22] == "000012345"
        assert line[108:111] == "001"  # one PDF: page 1
        name = line[52:108].rstrip()
        assert name.startswith(f"VDA_000012345_{line[26:30]}") and name.endswith("_2025-12.pdf")


def test_e898_bundle_has_every_pdf_under_its_record_name(client, hub, db):
    t = hub.tenant()
    _month(db, t.id, arge_numbers=True)
    r = client.get("/api/v1/arge/e898", params={"month": fleet.PERIOD, "bundle": "true"}, headers=hub.headers(t))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    text = z.read("E898_2025-12.txt")
    assert text == GOLDEN.read_bytes()
    names = [line[52:108].rstrip() for line in text.decode("latin-1").split("\r\n")[:-1]]
    assert sorted(z.namelist()) == sorted([*names, "E898_2025-12.txt"])
    assert all(z.read(n).startswith(b"%PDF") for n in names)
    for line in text.decode("latin-1").split("\r\n")[:-1]:  # what the records name is what the parser reads
        assert arge.e898(int(line[4:11]), _doc(line)) == line


def _doc(line: str) -> arge.Document:
    from datetime import date

    day = date(2000 + int(line[115:117]), int(line[113:115]), int(line[111:113]))
    return arge.Document(int(line[13:22]), int(line[22:26]), int(line[26:30]), int(line[30]), line[31:51].rstrip(),
                         line[52:108].rstrip(), day, line[117:120], page=int(line[108:111]))  # fmt: skip


def test_master_data_without_arge_numbers_is_refused_in_both_languages(client, hub, db):
    t = hub.tenant()
    _month(db, t.id, arge_numbers=False)
    r = client.get("/api/v1/arge/e898", params={"month": fleet.PERIOD}, headers=hub.headers(t))
    assert r.status_code == 422, r.text
    assert "'LG-100'" in r.text and "ARGE object number" in r.text
    r = client.get("/api/v1/arge/e898", params={"month": fleet.PERIOD},
                   headers={**hub.headers(t), "Accept-Language": "de"})  # fmt: skip
    assert "ARGE-Objektnummer" in r.text
    r = client.get("/api/v1/arge/e898", params={"month": "2099-01"}, headers=hub.headers(t))
    assert r.status_code == 422 and "not over yet" in r.text
