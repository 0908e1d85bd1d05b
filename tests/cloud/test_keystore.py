"""Key store: encrypted at rest, never returned or logged, imports/exports audited, CLI."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from omshub.cli import app as cli_app
from omshub.cloud.store.keystore import (
    KeyStore,
    KeyStoreError,
    applicable_key,
    load_master_key,
    parse_key_csv,
    parse_master_key,
    parse_meter_list,
)
from omshub.cloud.store.models import AuditEntry, MeterKey

from .conftest import MASTER_KEY_HEX, encode

SECRET = bytes.fromhex("A1B2C3D4E5F60718293A4B5C6D7E8F90")


def _csv(*rows: str, header: str = "id,key,manufacturer") -> str:
    return "\n".join([header, *rows]) + "\n"


def test_keys_are_encrypted_at_rest_and_bound_to_tenant_and_meter(hub, db, keystore):
    t, other = hub.tenant(), hub.tenant()
    hub.keys(t, {"30000001": SECRET}, manufacturer="KAM")
    with db.session() as s:
        row = s.scalar(select(MeterKey).where(MeterKey.tenant_id == t.id))
    assert SECRET not in bytes(row.ciphertext) and SECRET.hex() not in bytes(row.ciphertext).hex()
    assert len(row.nonce) == 12
    assert keystore.open(t.id, "KAM", "30000001", row.nonce, row.ciphertext) == SECRET
    with pytest.raises(KeyStoreError):  # the same ciphertext under another tenant or meter does not open
        keystore.open(other.id, "KAM", "30000001", row.nonce, row.ciphertext)
    with pytest.raises(KeyStoreError):
        keystore.open(t.id, "KAM", "30000002", row.nonce, row.ciphertext)
    with pytest.raises(KeyStoreError):
        KeyStore(bytes(32)).open(t.id, "KAM", "30000001", row.nonce, row.ciphertext)


def test_import_api_never_returns_or_logs_keys(hub, client, db, pipeline, caplog):
    caplog.set_level(logging.DEBUG)
    t = hub.tenant()
    op = hub.headers(t, "operator")
    gw = hub.gateway(t)
    hub.meter(t, "30000011")
    r = client.post(
        "/api/v1/keys/import",
        content=_csv(f"30000011,{SECRET.hex()},KAM", f"30000012,{SECRET.hex()},"),
        headers={**op, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["imported"] == 2
    hub.send(gw, 1, [encode("30000011", key=SECRET)])
    pipeline.run_until_idle()
    assert [x.state for x in hub.telegrams(gw)] == ["decoded"]
    listing = client.get("/api/v1/keys", headers=op)
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert {(i["manufacturer"], i["meter_id"], i["present"]) for i in items} == {
        ("KAM", "30000011", True),
        (None, "30000012", True),
    }
    responses = [r, listing, client.get("/api/v1/meters", headers=op), client.get("/api/v1/telegrams", headers=op)]
    for response in responses:
        assert SECRET.hex().lower() not in response.text.lower()
    logged = "\n".join(rec.getMessage() + str(rec.args) for rec in caplog.records).lower()
    assert SECRET.hex().lower() not in logged
    with db.session() as s:
        audit = s.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == t.id, AuditEntry.action == "keys.import")
        ).all()
    assert len(audit) == 1 and audit[0].details["count"] == 2 and SECRET.hex() not in str(audit[0].details).lower()


def test_import_replaces_and_validation_names_the_line(hub, client):
    t = hub.tenant()
    op = hub.headers(t, "operator")
    headers = {**op, "Content-Type": "text/csv"}
    assert client.post("/api/v1/keys/import", content=_csv(f"30000021,{SECRET.hex()},"), headers=headers).json() == {
        "imported": 1,
        "replaced": 0,
        "requeued": 0,
    }
    assert (
        client.post("/api/v1/keys/import", content=_csv(f"30000021,{'00' * 16},"), headers=headers).json()["replaced"]
        == 1
    )
    bad = _csv("30000022," + "00" * 16 + ",", "30000023,XYZ,", "30000024," + "00" * 16 + ",")
    r = client.post("/api/v1/keys/import", content=bad, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith(
        "line 3: column key must hold 32 hex digits"
    )
    assert "XYZ" not in r.text  # a rejected key's value is not echoed either
    r = client.post("/api/v1/keys/import", content="meter,key\n1,2\n", headers=headers)
    assert r.status_code == 422 and "line 1" in r.json()["error"]["message"]
    r = client.post("/api/v1/keys/import", content=_csv("1234," + "00" * 16 + ","), headers=headers)
    assert r.status_code == 422 and "line 2: column id must hold the meter id" in r.json()["error"]["message"]
    # nothing of a bad file is stored
    ids = [i["meter_id"] for i in client.get("/api/v1/keys", headers=op).json()["items"]]
    assert ids == ["30000021"]
    assert (
        client.post(
            "/api/v1/keys/import",
            content=_csv("30000025," + "00" * 16 + ","),
            headers={**hub.headers(t, "viewer"), "Content-Type": "text/csv"},
        ).status_code
        == 403
    )


def test_multipart_import(hub, client):
    t = hub.tenant()
    r = client.post(
        "/api/v1/keys/import",
        headers=hub.headers(t, "admin"),
        files={"file": ("keys.csv", _csv(f"30000031,{SECRET.hex()},KAM").encode(), "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 1


def test_export_is_admin_only_and_audited(hub, client, db):
    t, other = hub.tenant(), hub.tenant()
    hub.keys(t, {"30000041": SECRET, "30000042": bytes(16)}, manufacturer="KAM")
    hub.keys(other, {"30000043": SECRET})
    body = {"meters": ["30000041", "KAM:30000042"]}
    assert client.post("/api/v1/keys/export", json=body, headers=hub.headers(t, "operator")).status_code == 403
    r = client.post("/api/v1/keys/export", json=body, headers=hub.headers(t, "admin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == [
        "id,key,manufacturer",
        f"30000041,{SECRET.hex().upper()},KAM",
        f"30000042,{'00' * 16},KAM",
    ]
    # the exported file imports again
    assert len(parse_key_csv(r.text)) == 2
    # another tenant's meter is not found
    r = client.post("/api/v1/keys/export", json={"meters": ["30000043"]}, headers=hub.headers(t, "admin"))
    assert r.status_code == 404
    with db.session() as s:
        exports = s.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == t.id, AuditEntry.action == "keys.export")
        ).all()
    assert len(exports) == 1 and exports[0].details["count"] == 2


def test_master_key_file_is_created_0600_and_reused(tmp_path):
    key = load_master_key(None, tmp_path / "data")
    path = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(None, tmp_path / "data") == key and len(key) == 32
    assert load_master_key(MASTER_KEY_HEX, tmp_path / "data") == bytes.fromhex(MASTER_KEY_HEX)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        load_master_key(None, tmp_path / "data")
    import base64

    assert parse_master_key(base64.b64encode(b"k" * 32).decode()) == b"k" * 32
    with pytest.raises(KeyStoreError):
        parse_master_key("abcd")


def test_meter_list_parsing():
    assert parse_meter_list("12345678, kam:1234ABCD") == [(None, "12345678"), ("KAM", "1234ABCD")]
    with pytest.raises(KeyStoreError, match="must be ID"):
        parse_meter_list("12345678,oops")


def test_cli_import_and_export(hub, db, database_url, tmp_path, monkeypatch):
    t = hub.tenant()
    monkeypatch.setenv("OMSHUB_MASTER_KEY", MASTER_KEY_HEX)
    keyfile = tmp_path / "keys.csv"
    keyfile.write_text(_csv(f"30000051,{SECRET.hex()},KAM", f"30000052,{'11' * 16},"))
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        [
            "keys",
            "import",
            str(keyfile),
            "--tenant",
            t.slug,
            "--database",
            database_url,
            "--json",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"imported": 2' in result.output and SECRET.hex() not in result.output.lower()
    out = tmp_path / "owner.csv"
    result = runner.invoke(
        cli_app,
        [
            "keys",
            "export",
            "--tenant",
            t.slug,
            "--meters",
            "30000051,30000052",
            "--out",
            str(out),
            "--database",
            database_url,
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert f"30000051,{SECRET.hex().upper()},KAM" in out.read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("id,key\n30000053,nothex\n")
    result = runner.invoke(
        cli_app,
        ["keys", "import", str(bad), "--tenant", t.slug, "--database", database_url, "--data-dir", str(tmp_path)],
    )
    assert result.exit_code == 1 and "line 2" in result.output
    with db.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.tenant_id == t.id)).all()
    assert actions.count("keys.import") == 1 and actions.count("keys.export") == 1


def test_the_key_bound_to_the_manufacturer_applies_before_the_one_for_any():
    """The one key-choice rule (decoding, export and key status all ask it)."""
    assert applicable_key({"KAM": "bound", None: "any"}, "KAM") == "bound"
    assert applicable_key({"KAM": "bound", None: "any"}, "ABB") == "any"
    assert applicable_key({"KAM": "bound"}, "ABB") is None
    assert applicable_key({}, "KAM") is None
    assert applicable_key({None: "any"}, None) == "any"
