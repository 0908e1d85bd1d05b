"""Alembic environment: runs on the connection Database.migrate passes in, or on `-x url=...`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from omshub.cloud.store.models import Base, UtcDateTime, include_name

target_metadata = Base.metadata


def render_item(type_, obj, autogen_context):
    """Autogenerate writes our UTC datetime type as the plain column type it stores."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: pass the database with -x url=sqlite:///path or postgresql+psycopg://...")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
