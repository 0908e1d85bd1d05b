"""uplinks: one row per gateway, seq and content; stored bodies without the gateway credential

A gateway that lost its spool state numbers its uplinks from 1 again. With one row per (gateway,
seq) its new telegrams were acknowledged as a repeat of the old uplink and never stored; now the
row is unique per (gateway, seq, content hash) and only the same content is a repeat
(`content_hash`; NULL in the rows stored before, which ingest hashes from their body when needed).

CoAP and MQTT envelopes carry the gateway credential (`cred`), and bodies were stored verbatim.
The credential's bytes in every stored body are overwritten with `*` here (same length, the body
stays valid CBOR / JSON), the spans recorded in `body_redactions`. That cannot be undone: the
downgrade keeps the redacted bodies. On SQLite the freed pages are zeroed (secure_delete) and
Database.migrate empties the write-ahead log afterwards, so the old bodies leave the files; on
PostgreSQL the replaced row versions stay in the table files until `VACUUM FULL uplinks`.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import io

import cbor2
import orjson
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NEW_UNIQUE = "uq_uplinks_gateway_seq_content"
# names SQLite's unnamed constraints by this convention, so the batch copy can drop the old one
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
_PAGE = 500


# --- the credential redaction as it was when this migration was written -----------------------
# A frozen copy of omshub/cloud/ingest/redaction.py: a migration is history and must
# do tomorrow what it did when it was released, whatever the live module becomes.

MARKER = 0x2A  # "*"
CRED_KEY = "cred"
_MAX_DEPTH = 256


class _Malformed(ValueError):
    pass


# --- CBOR (RFC 8949): only the item boundaries, nothing is decoded but the keys ---


def _cbor_head(buf: bytes, pos: int) -> tuple[int, int, int | None, int]:
    """(major type, additional info, argument or None when indefinite, position after the head)."""
    if pos >= len(buf):
        raise _Malformed("truncated")
    first = buf[pos]
    major, info = first >> 5, first & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(buf):
            raise _Malformed("truncated")
        return major, info, int.from_bytes(buf[pos : pos + size], "big"), pos + size
    if info == 31 and major in (2, 3, 4, 5, 7):
        return major, info, None, pos
    raise _Malformed("reserved additional information")


def _cbor_item(buf: bytes, pos: int, spans: list | None, depth: int = 0) -> int:
    """The end of the item at `pos`; with `spans`, the (start, end) of every string payload in it."""
    if depth > _MAX_DEPTH:
        raise _Malformed("nested too deeply")
    major, info, arg, pos = _cbor_head(buf, pos)
    if major in (0, 1):
        return pos
    if major in (2, 3):
        if arg is not None:
            end = pos + arg
            if end > len(buf):
                raise _Malformed("truncated")
            if spans is not None and arg:
                spans.append((pos, end))
            return end
        while True:  # indefinite length: definite chunks of the same type up to the break
            if pos < len(buf) and buf[pos] == 0xFF:
                return pos + 1
            chunk_major, _info, chunk_len, chunk_pos = _cbor_head(buf, pos)
            if chunk_major != major or chunk_len is None:
                raise _Malformed("bad string chunk")
            pos = _cbor_item(buf, pos, spans, depth + 1)
    if major in (4, 5):
        per_entry = 1 if major == 4 else 2
        if arg is not None:
            for _ in range(arg * per_entry):
                pos = _cbor_item(buf, pos, spans, depth + 1)
            return pos
        while True:
            if pos >= len(buf):
                raise _Malformed("truncated")
            if buf[pos] == 0xFF:
                return pos + 1
            pos = _cbor_item(buf, pos, spans, depth + 1)
    if major == 6:
        return _cbor_item(buf, pos, spans, depth + 1)
    if arg is None:
        raise _Malformed("unexpected break")
    return pos  # simple values and floats: all in the head


def _cbor_text(buf: bytes, start: int, end: int) -> str | None:
    """The text of a text-string item spanning [start, end), else None."""
    if (buf[start] >> 5) != 3:
        return None
    spans: list = []
    _cbor_item(buf, start, spans)
    try:
        return b"".join(buf[a:b] for a, b in spans).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _cbor_cred_spans(buf: bytes) -> list[tuple[int, int]]:
    pos = 0
    while True:  # tags around the envelope (e.g. 55799, "self-described CBOR")
        major, _info, _arg, after = _cbor_head(buf, pos)
        if major != 6:
            break
        pos = after
    major, _info, count, pos = _cbor_head(buf, pos)
    if major != 5:
        return []
    spans: list[tuple[int, int]] = []
    stream = io.BytesIO(buf)
    decoder = cbor2.CBORDecoder(stream)

    def skip(start: int) -> int:
        # the other values (the batch: hundreds of items) are skipped by cbor2's C decoder
        stream.seek(start)
        try:
            decoder.decode()
            return stream.tell()
        except Exception:
            return _cbor_item(buf, start, None)

    seen = 0
    while count is None or seen < count:
        if count is None and pos < len(buf) and buf[pos] == 0xFF:
            break
        key_end = _cbor_item(buf, pos, None)
        if _cbor_text(buf, pos, key_end) == CRED_KEY:
            pos = _cbor_item(buf, key_end, spans)
        else:
            pos = skip(key_end)
        seen += 1
    return spans


# --- JSON (RFC 8259) ---

_WS = b" \t\r\n"


def _json_string_end(buf: bytes, pos: int) -> int:
    """`pos` at an opening quote -> the position of its closing quote."""
    i = pos + 1
    while True:
        quote = buf.find(b'"', i)
        if quote < 0:
            raise _Malformed("unterminated string")
        backslashes = 0
        j = quote - 1
        while j > pos and buf[j] == 0x5C:
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            return quote
        i = quote + 1


def _json_skip_ws(buf: bytes, pos: int) -> int:
    while pos < len(buf) and buf[pos] in _WS:
        pos += 1
    return pos


def _json_value(buf: bytes, pos: int, spans: list | None) -> int:
    """The end of the JSON value at `pos`; with `spans`, the contents of every string in it."""
    depth = 0
    while pos < len(buf):
        c = buf[pos]
        if c == 0x22:  # "
            end = _json_string_end(buf, pos)
            if spans is not None and end > pos + 1:
                spans.append((pos + 1, end))
            pos = end + 1
        elif c in b"[{":
            depth += 1
            pos += 1
        elif c in b"]}":
            if depth == 0:
                return pos
            depth -= 1
            pos += 1
        elif c == 0x2C and depth == 0:  # ,
            return pos
        else:
            pos += 1
        if depth == 0 and c in b'"]}':
            return pos
    return pos


def _json_cred_spans(buf: bytes) -> list[tuple[int, int]]:
    pos = _json_skip_ws(buf, 0)
    if pos >= len(buf) or buf[pos] != 0x7B:  # {
        return []
    pos += 1
    spans: list[tuple[int, int]] = []
    while True:
        pos = _json_skip_ws(buf, pos)
        if pos >= len(buf) or buf[pos] == 0x7D:  # }
            return spans
        if buf[pos] != 0x22:
            raise _Malformed("expected a key")
        end = _json_string_end(buf, pos)
        key = orjson.loads(buf[pos : end + 1])
        pos = _json_skip_ws(buf, end + 1)
        if pos >= len(buf) or buf[pos] != 0x3A:  # :
            raise _Malformed("expected ':'")
        pos = _json_value(buf, _json_skip_ws(buf, pos + 1), spans if key == CRED_KEY else None)
        pos = _json_skip_ws(buf, pos)
        if pos < len(buf) and buf[pos] == 0x2C:
            pos += 1


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


def credential_spans(
    body: bytes, content_type: str | None, secrets: tuple[str, ...] = (), has_cred: bool = True
) -> list[tuple[int, int]]:
    """Byte ranges to overwrite: the string contents of every `cred` value of the envelope, and
    any other place where one of `secrets` (credentials known to be this gateway's, at least 16
    characters) appears verbatim. Sorted, merged. `has_cred=False`: the caller parsed the envelope
    and it has no `cred` key, so only the secrets are looked for."""
    spans: list[tuple[int, int]] = []
    if has_cred:
        try:
            spans = _json_cred_spans(body) if _is_json(content_type) else _cbor_cred_spans(body)
        except (_Malformed, orjson.JSONDecodeError, IndexError):
            spans = []  # not an envelope we can walk (it was refused then, and is not stored)
    for secret in secrets:
        needle = secret.encode("utf-8") if secret else b""
        if len(needle) < 16:
            continue
        at = body.find(needle)
        while at >= 0:
            spans.append((at, at + len(needle)))
            at = body.find(needle, at + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact_credential(
    body: bytes, content_type: str | None, secrets: tuple[str, ...] = (), has_cred: bool = True
) -> tuple[bytes, list[list[int]] | None]:
    """(body with the credential's bytes replaced by `*`, [[offset, length], ...] replaced or
    None when nothing was)."""
    spans = credential_spans(body, content_type, secrets, has_cred)
    if not spans:
        return body, None
    out = bytearray(body)
    for start, end in spans:
        out[start:end] = bytes([MARKER]) * (end - start)
    return bytes(out), [[start, end - start] for start, end in spans]


def _old_unique_name(bind) -> str | None:
    for constraint in sa.inspect(bind).get_unique_constraints("uplinks"):
        if sorted(constraint["column_names"]) == ["gateway_id", "seq"]:
            return constraint["name"]
    return None


def _scrub(bind) -> None:
    select = sa.text("SELECT id, content_type, body FROM uplinks WHERE id > :after ORDER BY id LIMIT :n")
    update = sa.text("UPDATE uplinks SET body = :body, body_redactions = :spans WHERE id = :id").bindparams(
        sa.bindparam("body", type_=sa.LargeBinary()), sa.bindparam("spans", type_=sa.JSON())
    )
    after = 0
    while True:
        rows = bind.execute(select, {"after": after, "n": _PAGE}).fetchall()
        if not rows:
            return
        for uplink_id, content_type, body in rows:
            redacted, spans = redact_credential(bytes(body), content_type)
            if spans:
                bind.execute(update, {"body": redacted, "spans": spans, "id": uplink_id})
        after = rows[-1][0]


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:  # pages freed from here on are zeroed: the old bodies must not linger in free pages
        bind.exec_driver_sql("PRAGMA secure_delete = ON")
    old = _old_unique_name(bind)
    with op.batch_alter_table("uplinks", schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column("body_redactions", sa.JSON(), nullable=True))
        batch_op.drop_constraint(old or "uq_uplinks_gateway_id_seq", type_="unique")
        batch_op.create_unique_constraint(NEW_UNIQUE, ["gateway_id", "seq", "content_hash"])
    _scrub(bind)
    if sqlite:
        bind.exec_driver_sql("PRAGMA secure_delete = OFF")


def downgrade() -> None:
    # fails while a gateway has two uplinks under one seq (it reused its numbers): they stay stored
    with op.batch_alter_table("uplinks", schema=None) as batch_op:
        batch_op.drop_constraint(NEW_UNIQUE, type_="unique")
        batch_op.create_unique_constraint("uplinks_gateway_id_seq_key", ["gateway_id", "seq"])
        batch_op.drop_column("body_redactions")
        batch_op.drop_column("content_hash")
