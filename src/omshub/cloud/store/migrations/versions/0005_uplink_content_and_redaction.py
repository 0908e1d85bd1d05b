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

import sqlalchemy as sa
from alembic import op

from omshub.cloud.ingest.redaction import redact_credential

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

NEW_UNIQUE = 'uq_uplinks_gateway_seq_content'
# names SQLite's unnamed constraints by this convention, so the batch copy can drop the old one
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
_PAGE = 500


def _old_unique_name(bind) -> str | None:
    for constraint in sa.inspect(bind).get_unique_constraints('uplinks'):
        if sorted(constraint['column_names']) == ['gateway_id', 'seq']:
            return constraint['name']
    return None


def _scrub(bind) -> None:
    select = sa.text("SELECT id, content_type, body FROM uplinks WHERE id > :after ORDER BY id LIMIT :n")
    update = sa.text("UPDATE uplinks SET body = :body, body_redactions = :spans WHERE id = :id").bindparams(
        sa.bindparam('body', type_=sa.LargeBinary()), sa.bindparam('spans', type_=sa.JSON()))
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
    with op.batch_alter_table('uplinks', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('content_hash', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('body_redactions', sa.JSON(), nullable=True))
        batch_op.drop_constraint(old or 'uq_uplinks_gateway_id_seq', type_='unique')
        batch_op.create_unique_constraint(NEW_UNIQUE, ['gateway_id', 'seq', 'content_hash'])
    _scrub(bind)
    if sqlite:
        bind.exec_driver_sql("PRAGMA secure_delete = OFF")


def downgrade() -> None:
    # fails while a gateway has two uplinks under one seq (it reused its numbers): they stay stored
    with op.batch_alter_table('uplinks', schema=None) as batch_op:
        batch_op.drop_constraint(NEW_UNIQUE, type_='unique')
        batch_op.create_unique_constraint('uplinks_gateway_id_seq_key', ['gateway_id', 'seq'])
        batch_op.drop_column('body_redactions')
        batch_op.drop_column('content_hash')
