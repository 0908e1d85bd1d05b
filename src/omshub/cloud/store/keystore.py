"""Meter keys at rest: AES-256-GCM under a master key, bound to tenant and meter.

The master key comes from `OMSHUB_MASTER_KEY` (hex or base64 of 32 bytes) or a key file
`<data dir>/master.key` created with mode 0600 on first use. Each meter key is stored as
(nonce, ciphertext) with the additional data `omshub-key|<tenant>|<manufacturer>|<meter id>`, so
a ciphertext copied to another tenant's or meter's row does not decrypt. Keys are never logged
and never leave through a read API; import and export are written to the audit log.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import BulkSql, private_dir
from omshub.cloud.store.models import MeterKey
from omshub.cloud.store.telegram_states import requeue_waiting
from omshub.codec.keys import iter_key_csv
from omshub.times import utcnow

MASTER_KEY_FILE = "master.key"
MAX_IMPORT_BYTES = 32 * 1024 * 1024
MAX_IMPORT_ROWS = 500_000
METER_ID_RE = re.compile(r"^[0-9A-Fa-f]{8}$")
MANUFACTURER_RE = re.compile(r"^[A-Za-z]{3}$")
KEY_RE = re.compile(r"^[0-9A-Fa-f]{32}$")
_CHUNK = 500
_LOOKUP = 5000  # ids per look-up (well below SQLite's limit of 32,766 parameters)


class KeyStoreError(ValueError):
    """A key file or master key problem; the message names the line / source."""


_K = TypeVar("_K")


def applicable_key(keys: Mapping[str | None, _K], manufacturer: str | None) -> _K | None:
    """Which of a meter's keys applies to it: the one bound to its manufacturer, else the one
    given for any manufacturer. `keys`: the key rows of one meter id by the manufacturer they
    are bound to (None: not bound). The one rule, used wherever a key is chosen (decoding,
    export, key status)."""
    if manufacturer is not None:
        bound = keys.get(manufacturer)
        if bound is not None:
            return bound
    return keys.get(None)


def has_applicable_key(session: Session, tenant_id: int, manufacturer: str | None, meter_id: str) -> bool:
    """Does a stored key apply to this meter (applicable_key)?"""
    bound = session.scalars(
        select(MeterKey.manufacturer).where(MeterKey.tenant_id == tenant_id, MeterKey.meter_id == meter_id)
    )
    return applicable_key(dict.fromkeys(bound, True), manufacturer) is not None


def parse_master_key(text: str) -> bytes:
    text = text.strip()
    try:
        if len(text) == 64:
            key = bytes.fromhex(text)
        else:
            key = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise KeyStoreError("master key must be 32 bytes as hex (64 digits) or base64") from None
    if len(key) != 32:
        raise KeyStoreError(f"master key must be 32 bytes, got {len(key)}")
    return key


def load_master_key(env_value: str | None, data_dir: Path) -> bytes:
    """The master key from the environment value, else from `<data_dir>/master.key` (created 0600, in a
    data directory created 0700; an existing key file others can read is refused)."""
    if env_value:
        return parse_master_key(env_value)
    path = Path(data_dir) / MASTER_KEY_FILE
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyStoreError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        return parse_master_key(path.read_text())
    private_dir(path.parent)
    key = AESGCM.generate_key(bit_length=256)
    # O_EXCL: two processes starting at once must not both write a (different) key
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_master_key(path.read_text())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


@dataclass(frozen=True)
class KeyEntry:
    meter_id: str
    manufacturer: str | None
    key: bytes

    def __repr__(self) -> str:  # keys never appear in logs or tracebacks
        return f"KeyEntry({self.manufacturer or '*'}:{self.meter_id}, key=<hidden>)"


def parse_key_csv(text: str) -> list[KeyEntry]:
    """CSV with a header naming `id`, `key` and optionally `manufacturer` -> entries.
    KeyStoreError names the line and column of the first problem but never a cell's value: in a
    file with swapped or shifted columns any cell may hold a key, so a message says what is wrong
    by length and kind only."""
    if len(text) > MAX_IMPORT_BYTES:
        raise KeyStoreError(f"key file exceeds {MAX_IMPORT_BYTES // 2**20} MiB")
    entries: list[KeyEntry] = []
    seen: dict[tuple[str | None, str], int] = {}
    try:
        for line, meter_id, key_text, manufacturer in iter_key_csv(text):
            meter_id = meter_id.upper()
            if not METER_ID_RE.match(meter_id):
                hint = " (are the id and key columns swapped?)" if KEY_RE.match(meter_id) else ""
                raise KeyStoreError(
                    f"line {line}: column id must hold the meter id, 8 hex digits; it has {_describe(meter_id)}{hint}"
                )
            if not KEY_RE.match(key_text):
                raise KeyStoreError(
                    f"line {line}: column key must hold 32 hex digits (AES-128); it has {_describe(key_text)}"
                )
            manufacturer = (manufacturer or "").upper()
            if manufacturer and not MANUFACTURER_RE.match(manufacturer):
                raise KeyStoreError(
                    f"line {line}: column manufacturer must hold a 3-letter code; it has {_describe(manufacturer)}"
                )
            ident = (manufacturer or None, meter_id)
            if ident in seen:
                raise KeyStoreError(
                    f"line {line}: the same meter (id and manufacturer) is already given on line {seen[ident]}"
                )
            seen[ident] = line
            entries.append(KeyEntry(meter_id, manufacturer or None, bytes.fromhex(key_text)))
            if len(entries) > MAX_IMPORT_ROWS:
                raise KeyStoreError(f"line {line}: more than {MAX_IMPORT_ROWS:,} keys in one file")
    except ValueError as exc:  # the reader's own errors (header, columns, CSV syntax)
        if isinstance(exc, KeyStoreError):
            raise
        raise KeyStoreError(str(exc)) from None
    return entries


def _describe(cell: str) -> str:
    """What a cell holds, without its value: `32 characters, all hex digits`."""
    if not cell:
        return "nothing"
    kind = "all hex digits" if all(c in "0123456789abcdefABCDEF" for c in cell) else "not only hex digits"
    return f"{len(cell)} character{'s' if len(cell) != 1 else ''}, {kind}"


class KeyStore:
    """Encrypts/decrypts meter keys under the master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise KeyStoreError("master key must be 32 bytes")
        self._aead = AESGCM(master_key)

    def __repr__(self) -> str:
        return "KeyStore(<master key hidden>)"

    @staticmethod
    def _aad(tenant_id: int, manufacturer: str | None, meter_id: str) -> bytes:
        return f"omshub-key|{tenant_id}|{manufacturer or ''}|{meter_id}".encode()

    def seal(self, tenant_id: int, manufacturer: str | None, meter_id: str, key: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, key, self._aad(tenant_id, manufacturer, meter_id))

    def open(self, tenant_id: int, manufacturer: str | None, meter_id: str, nonce: bytes, ciphertext: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, self._aad(tenant_id, manufacturer, meter_id))
        except InvalidTag:
            raise KeyStoreError(
                f"stored key of meter {meter_id} does not open under this master key "
                "(wrong master key, or the row was tampered with)"
            ) from None

    # --- import / export ---

    def import_keys(
        self, session: Session, tenant_id: int, entries: list[KeyEntry], *, actor: str, source: str
    ) -> dict:
        """Store (insert or replace) keys, mark the meters' key status, requeue their waiting
        telegrams, audit. Runs in the caller's transaction. -> {"imported", "replaced", "requeued"}."""
        now = utcnow()
        existing: dict[tuple[str | None, str], int] = {}
        ids = sorted({e.meter_id for e in entries})
        sql = BulkSql(session, session.get_bind().dialect.name == "sqlite")
        for i in range(0, len(ids), _LOOKUP):
            # (one array parameter on PostgreSQL, BulkSql.isin: a bound parameter per id cost
            # more to build and send than the look-up)
            isin, params = sql.isin("meter_id", ids[i : i + _LOOKUP])
            for row_id, manufacturer, meter_id in sql.rows(
                f"SELECT id, manufacturer, meter_id FROM meter_keys WHERE tenant_id = {{m}} AND {isin}",
                (tenant_id, *params),
            ):
                existing[(manufacturer, meter_id)] = row_id
        inserts, updates = [], []
        for e in entries:
            nonce, ct = self.seal(tenant_id, e.manufacturer, e.meter_id, e.key)
            row_id = existing.get((e.manufacturer, e.meter_id))
            if row_id is None:
                inserts.append(
                    {
                        "tenant_id": tenant_id,
                        "manufacturer": e.manufacturer,
                        "meter_id": e.meter_id,
                        "nonce": nonce,
                        "ciphertext": ct,
                        "created_at": now,
                    }
                )
            else:
                updates.append({"id": row_id, "nonce": nonce, "ciphertext": ct, "created_at": now})
        columns = ("tenant_id", "manufacturer", "meter_id", "nonce", "ciphertext", "created_at")
        # one bulk insert (COPY on PostgreSQL)
        sql.insert(
            "meter_keys",
            columns,
            ("bigint", "varchar", "varchar", "bytea", "bytea", "timestamptz"),
            [tuple(sql.time(r[c]) if c == "created_at" else r[c] for c in columns) for r in inserts],
        )
        if updates:
            session.execute(update(MeterKey), updates)
        if sql.sqlite and ids:
            # one statement: the ids as a JSON array, looked up in a temporary index SQLite builds
            # (per 500 ids, each statement walked all the tenant's meters: no index leads with meter_id)
            sql.conn.exec_driver_sql(
                "UPDATE meters SET key_status = 'present' WHERE tenant_id = ? AND key_status <> 'present' "
                "AND meter_id IN (SELECT value FROM json_each(?))",
                (tenant_id, json.dumps(ids)),
            )
        elif ids:
            # PostgreSQL: one statement joining the ids (a hash join); per 500 ids as an IN list or
            # an array it was the slowest part of a large import (a plan per statement that checks
            # every candidate row against the list); rows already `present` are not rewritten
            sql.conn.exec_driver_sql(
                "UPDATE meters AS m SET key_status = 'present' FROM unnest(%s::text[]) AS k(meter_id) "
                "WHERE m.tenant_id = %s AND m.meter_id = k.meter_id AND m.key_status <> 'present'",
                (ids, tenant_id),
            )
        session.expire_all()  # (Meter rows of the session: their key_status was written here)
        requeued = requeue_waiting(session, tenant_id, [(e.manufacturer, e.meter_id) for e in entries])
        audit(
            session,
            tenant_id,
            actor,
            "keys.import",
            {
                "source": source,
                "count": len(entries),
                "replaced": len(updates),
                "meters": [f"{e.manufacturer or ''}:{e.meter_id}" for e in entries[:1000]],
            },
        )
        return {"imported": len(inserts), "replaced": len(updates), "requeued": requeued}

    def export_keys(
        self, session: Session, tenant_id: int, meters: list[tuple[str | None, str]], *, actor: str, source: str
    ) -> str:
        """The CSV key file (`id,key,manufacturer`) for the given meters of the tenant, audited.
        LookupError names the first meter without a key."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "key", "manufacturer"])
        exported = []
        for manufacturer, meter_id in meters:
            stmt = select(MeterKey).where(MeterKey.tenant_id == tenant_id, MeterKey.meter_id == meter_id)
            rows = list(session.scalars(stmt))
            if manufacturer:
                row = applicable_key({r.manufacturer: r for r in rows}, manufacturer)
            else:  # any manufacturer's key of that id
                row = rows[0] if rows else None
            if row is None:
                raise LookupError(f"no key for meter {manufacturer + ':' if manufacturer else ''}{meter_id}")
            key = self.open(tenant_id, row.manufacturer, row.meter_id, row.nonce, row.ciphertext)
            writer.writerow([row.meter_id, key.hex().upper(), row.manufacturer or ""])
            exported.append(f"{row.manufacturer or ''}:{row.meter_id}")
        audit(
            session,
            tenant_id,
            actor,
            "keys.export",
            {"source": source, "count": len(exported), "meters": exported[:1000]},
        )
        return out.getvalue()


def parse_meter_list(text: str | list[str]) -> list[tuple[str | None, str]]:
    """`ID[,ID…]` or `MAN:ID` items -> [(manufacturer | None, meter id)]; KeyStoreError on a bad item."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[tuple[str | None, str]] = []
    for position, item in enumerate(items, 1):
        item = str(item).strip()
        if not item:
            continue
        given, _, meter_id = item.rpartition(":")
        meter_id = meter_id.upper()
        manufacturer = given.upper() or None
        if not METER_ID_RE.match(meter_id) or (manufacturer and not MANUFACTURER_RE.match(manufacturer)):
            # not echoed: a key pasted into the list would otherwise come back in the error
            raise KeyStoreError(
                f"meter {position} of the list must be ID (8 hex digits) or MAN:ID; it has {_describe(item)}"
            )
        out.append((manufacturer, meter_id))
    if not out:
        raise KeyStoreError("no meters given")
    if len(out) > MAX_IMPORT_ROWS:
        raise KeyStoreError(f"more than {MAX_IMPORT_ROWS:,} meters")
    return out
