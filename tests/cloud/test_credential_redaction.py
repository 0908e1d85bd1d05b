"""Gateway credentials never stored in clear; the head-end's and the gateway's files owner-only
(issue 9 item 8).

CoAP and MQTT envelopes carry the gateway credential (`cred`); the stored raw body has its bytes
overwritten with `*` and every other byte as received. Migration 0005 scrubs bodies stored before.
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import cbor2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from omshub.cloud.ingest.redaction import redact_credential
from omshub.cloud.ingest.uplink import handle_uplink
from omshub.cloud.store.models import Uplink
from omshub.cloud.store.uplink_bodies import full_body

from ..clock import EPOCH
from .conftest import _pg_connect, _postgres_admin_url, batch_envelope, encode

T0 = int(EPOCH.timestamp())


def _stored(db, gateway_id: int) -> list[Uplink]:
    """The uplink rows, each with `body` as full_body puts it back together (frames included)."""
    with db.session() as s:
        rows = list(s.scalars(select(Uplink).where(Uplink.gateway_id == gateway_id).order_by(Uplink.id)))
        for row in rows:
            s.expunge(row)
            row.body = full_body(s, row)
        return rows


def _differs_only_in(original: bytes, stored: bytes, spans: list[list[int]]) -> bool:
    if len(original) != len(stored):
        return False
    mask = bytearray(len(original))
    for start, length in spans:
        if stored[start : start + length] != b"*" * length:
            return False
        mask[start : start + length] = b"\x01" * length
    return all(a == b for a, b, m in zip(original, stored, mask, strict=False) if not m)


@pytest.mark.parametrize("as_json", [False, True], ids=["cbor", "json"])
def test_envelope_credential_overwritten_everything_else_kept(hub, db, as_json):
    t = hub.tenant()
    gw = hub.gateway(t)
    env = batch_envelope(gw.serial, 1, [encode("22000001"), encode("22000002")], t0=T0, cred=gw.credential)
    if as_json:
        env["batch"]["data"] = env["batch"]["data"].hex()
        env["batch"]["rssi"] = list(env["batch"]["rssi"])
        body, ctype = orjson.dumps(env), "application/json"
    else:
        body, ctype = cbor2.dumps(env), "application/cbor"
    answer = handle_uplink(db, body, content_type=ctype, transport="mqtt", credential=None)
    assert answer["stored"] == 2
    [row] = _stored(db, gw.id)
    assert gw.credential.encode() not in row.body
    assert row.body_redactions and _differs_only_in(body, row.body, row.body_redactions)
    stored_env = orjson.loads(row.body) if as_json else cbor2.loads(row.body)
    assert stored_env == {**env, "cred": "*" * len(gw.credential)}
    # a retry of the same uplink is still recognised (the credential is no part of its content)
    again = handle_uplink(db, body, content_type=ctype, transport="coap", credential=None)
    assert again["stored"] == 2 and len(_stored(db, gw.id)) == 1


@pytest.mark.subprocess  # starts another process: not in the fast lane
def test_https_body_without_credential_is_stored_verbatim(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    env = batch_envelope(gw.serial, 1, [encode("22100001")], t0=T0)
    assert hub.post_uplink(gw, env).status_code == 200
    [row] = _stored(db, gw.id)
    assert row.body == cbor2.dumps(env) and row.body_redactions is None


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _database_bytes(db) -> bytes:
    """Everything the database holds, as bytes: the SQLite files, or a pg_dump of PostgreSQL."""
    if db.is_sqlite:
        db.checkpoint()
        path = Path(db.engine.url.database)
        return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    url = db.engine.url.set(drivername="postgresql")
    return subprocess.run(
        ["pg_dump", "--no-owner", url.render_as_string(hide_password=False)],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout


def test_no_credential_anywhere_in_the_database(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    for seq, transport, as_json in ((1, "coap", False), (2, "mqtt", False), (3, "mqtt", True)):
        env = {
            "v": 1,
            "gw": gw.serial,
            "seq": seq,
            "cfg": 0,
            "cred": gw.credential,
            "status": {"battery_pct": 80},
            "telegrams": [{"rx": T0 + seq, "mode": "T1", "hex": encode(f"2220000{seq}").hex()}],
        }
        body = orjson.dumps(env) if as_json else cbor2.dumps(env)
        handle_uplink(
            db,
            body,
            content_type="application/json" if as_json else "application/cbor",
            transport=transport,
            credential=None,
        )
    everything = _database_bytes(db)
    assert gw.serial.encode() in everything  # the search sees the uplinks' rows
    secret = gw.credential.encode()
    assert secret not in everything and secret.hex().encode() not in everything.lower()


# --- migration 0005 scrubs what was stored before ---


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """Another empty database of this run's kind (SQLite file or PostgreSQL database)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin = _postgres_admin_url()
    name = "omshub_test_" + uuid.uuid4().hex[:12]
    with _pg_connect(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{database_url.rsplit('/', 1)[0]}/{name}"
    with _pg_connect(admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_0005_scrubs_stored_credentials(empty_database_url):
    from alembic import command
    from alembic.config import Config

    from omshub.cloud.store.database import MIGRATIONS, Database

    db = Database(empty_database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
            conn.commit()
        cred = "omg_" + "Q" * 39
        cbor_body = cbor2.dumps({"v": 1, "gw": "GW-OLD", "seq": 1, "cfg": 0, "cred": cred, "status": {}})
        json_body = orjson.dumps({"v": 1, "gw": "GW-OLD", "seq": 2, "cfg": 0, "cred": cred})
        clean_body = cbor2.dumps({"v": 1, "gw": "GW-OLD", "seq": 3, "cfg": 0})
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (slug, name, created_at) VALUES ('old', 'Old', :at)"), {"at": EPOCH})
            conn.execute(
                text(
                    "INSERT INTO gateways (tenant_id, serial, name, credential_hash, created_at, status, "
                    "applied_config_version, desired_config_version) "
                    "VALUES (1, 'GW-OLD', '', :h, :at, '{}', 0, 0)"
                ),
                {"h": b"\x01" * 32, "at": EPOCH},
            )
            for seq, ctype, body, transport in (
                (1, "application/cbor", cbor_body, "coap"),
                (2, "application/json", json_body, "mqtt"),
                (3, "application/cbor", clean_body, "https"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO uplinks (tenant_id, gateway_id, seq, received_at, transport, "
                        "content_type, body, telegram_count, response) "
                        "VALUES (1, 1, :seq, :at, :tr, :ct, :body, 0, '{}')"
                    ),
                    {"seq": seq, "at": EPOCH, "tr": transport, "ct": ctype, "body": body},
                )
        db.migrate()
        with db.session() as s:
            rows = {u.seq: u for u in s.scalars(select(Uplink))}
        assert cbor2.loads(rows[1].body)["cred"] == "*" * len(cred)
        assert orjson.loads(rows[2].body)["cred"] == "*" * len(cred)
        assert _differs_only_in(cbor_body, rows[1].body, rows[1].body_redactions)
        assert _differs_only_in(json_body, rows[2].body, rows[2].body_redactions)
        assert rows[3].body == clean_body and rows[3].body_redactions is None
        assert all(r.content_hash is None for r in rows.values())
        assert cred.encode() not in _database_bytes(db)
    finally:
        db.dispose()


# --- the redaction itself, for any envelope ---

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "cred"), _values, max_size=6),
    st.text(min_size=1, max_size=60),
    st.booleans(),
    st.integers(0, 6),
)
def test_redaction_keeps_every_other_byte(other, cred, as_json, position):
    items = list(other.items())
    items.insert(min(position, len(items)), ("cred", cred))
    env = dict(items)
    body = orjson.dumps(env) if as_json else cbor2.dumps(env)
    redacted, spans = redact_credential(body, "application/json" if as_json else "application/cbor")
    assert spans and _differs_only_in(body, redacted, spans)
    decoded = orjson.loads(redacted) if as_json else cbor2.loads(redacted)
    assert set(decoded["cred"]) == {"*"}
    assert {k: v for k, v in decoded.items() if k != "cred"} == (
        orjson.loads(orjson.dumps(other)) if as_json else cbor2.loads(cbor2.dumps(other))
    )


def test_redaction_of_unusual_encodings():
    # the key and the credential as indefinite-length text strings, a self-described CBOR tag
    chunked = (
        b"\xd9\xd9\xf7\xbf"
        + b"\x7f"
        + cbor2.dumps("cr")
        + cbor2.dumps("ed")
        + b"\xff"
        + b"\x7f"
        + cbor2.dumps("secret-")
        + cbor2.dumps("credential")
        + b"\xff"
        + cbor2.dumps("v")
        + b"\x01\xff"
    )
    redacted, spans = redact_credential(chunked, "application/cbor")
    assert cbor2.loads(redacted) == {"cred": "*" * 17, "v": 1} and b"secret" not in redacted
    # value sharing (tags 28/29): a value cbor2 cannot decode on its own is walked instead
    shared = (
        b"\xa3"
        + cbor2.dumps("a")
        + b"\xd8\x1c\x81\x01"
        + cbor2.dumps("cred")
        + cbor2.dumps("secret-cred")
        + cbor2.dumps("b")
        + b"\xd8\x1d\x00"
    )
    assert cbor2.loads(redact_credential(shared, "application/cbor")[0]) == {"a": [1], "cred": "*" * 11, "b": [1]}
    # JSON: an escaped key, escapes in the credential, a credential that is not text
    body = b'{"v":1,"\\u0063red":"ab\\"c\\\\d","x":{"cred":"kept"}}'
    redacted, _ = redact_credential(body, "application/json; charset=utf-8")
    assert orjson.loads(redacted) == {"v": 1, "cred": "*" * 8, "x": {"cred": "kept"}}
    redacted, _ = redact_credential(b'{"cred": ["a-b", {"k": "c"}], "v": 1}', "application/json")
    assert orjson.loads(redacted) == {"cred": ["***", {"*": "*"}], "v": 1}
    # the known credential is overwritten wherever else it appears; garbage is left alone
    secret = "omg_" + "z" * 40
    redacted, spans = redact_credential(
        cbor2.dumps({"v": 1, "status": {"firmware": secret}}), "application/cbor", (secret,)
    )
    assert secret.encode() not in redacted and len(spans) == 1
    assert redact_credential(b"\xff\x00garbage", "application/cbor") == (b"\xff\x00garbage", None)


# --- file modes ---


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_head_end_files_are_owner_only(tmp_path):
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import load_master_key

    data = tmp_path / "omshub-data"
    with _umask(0o022):
        load_master_key(None, data)
        db = Database(f"sqlite:///{data / 'omshub.db'}")
        try:
            db.migrate()
            with db.transaction() as s:
                s.execute(text("SELECT 1"))
            files = {p.name: _mode(p) for p in data.iterdir()}
        finally:
            db.dispose()
    assert _mode(data) == 0o700
    assert {"master.key", "omshub.db", "omshub.db-wal", "omshub.db-shm"} <= set(files)
    assert files["master.key"] == files["omshub.db"] == files["omshub.db-wal"] == files["omshub.db-shm"] == 0o600


def test_existing_database_readable_by_others_is_tightened(tmp_path):
    from omshub.cloud.store.database import Database

    path = tmp_path / "old.db"
    with _umask(0o022):
        db = Database(f"sqlite:///{path}")
        db.migrate()
        db.dispose()
        for p in tmp_path.iterdir():
            os.chmod(p, 0o644)
        db = Database(f"sqlite:///{path}")
        db.migrate()
        db.dispose()
    assert all(_mode(p) == 0o600 for p in tmp_path.iterdir() if p.name.startswith("old.db")), {
        p.name: oct(_mode(p)) for p in tmp_path.iterdir()
    }


def test_gateway_state_dir_and_spool_are_owner_only(tmp_path, caplog):
    from omshub.gateway.agent import Agent
    from omshub.gateway.settings import settings_from_dict

    credential_file = tmp_path / "gateway.credential"
    with _umask(0o022):
        credential_file.write_text("omg_" + "c" * 40 + "\n")
        settings = settings_from_dict(
            {
                "serial": "GW-MODES",
                "credential_file": str(credential_file),
                "server": "http://127.0.0.1:9",
                "source": "hexfile:/unused",
                "state_dir": str(tmp_path / "state"),
            }
        )
        agent = Agent(settings)
        agent.spool.put(encode("22300001"), T0, -70, "T1")
        agent.spool._db.close()
        settings.secret()
    state = tmp_path / "state"
    assert _mode(state) == 0o700
    spool_files = [p for p in state.iterdir() if p.name.startswith("spool.sqlite3")]
    assert spool_files and all(_mode(p) == 0o600 for p in spool_files)
    assert "readable by other users" in caplog.text and "chmod 600" in caplog.text
