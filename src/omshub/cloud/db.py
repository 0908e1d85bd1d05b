"""Database access: one :class:`Database` per process (engine + session factory + migrations).

SQLite runs in WAL mode with ``synchronous=NORMAL`` (a committed transaction survives the
process being killed; only an OS crash / power loss may lose the last ones), foreign keys on and a
busy timeout. Writers on SQLite start with ``BEGIN IMMEDIATE`` (``session(write=True)``) so two
writers queue on the busy timeout instead of failing on a stale read snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _json_dumps(value) -> str:
    # orjson: several times faster than json for the readings' record dicts; NaN/inf become null
    # (valid JSON, which PostgreSQL's json type insists on)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
BUSY_TIMEOUT_MS = 60_000


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                           pool_size=20, max_overflow=20, pool_timeout=60, **_JSON)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # We issue BEGIN ourselves (below); the driver's implicit transactions would be deferred.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("omshub_write") else "BEGIN")

    return engine


class Database:
    """Engine and sessions for one database URL (``sqlite:///path`` or ``postgresql+psycopg://…``)."""

    def __init__(self, url: str) -> None:
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True, **_JSON)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(omshub_write=True),
                                            expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def session(self, write: bool = False) -> Session:
        """A new session (use as a context manager). `write=True`: on SQLite the transaction takes
        the write lock at its start (use it for anything that reads then writes)."""
        return (self._write_sessions if write else self._sessions)()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Session]:
        """A session whose transaction commits at the end of the block (rolls back on error)."""
        with self.session(write=write) as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        import logging

        from alembic import command
        from alembic.config import Config

        logging.getLogger("alembic").setLevel(logging.WARNING)  # no per-start chatter in the server log
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database now (PASSIVE: never waits for
        readers or writers). The decode pipeline calls it after each batch, outside its write
        lock; otherwise SQLite's automatic checkpoint runs inside whichever commit fills the log
        past 1,000 pages, while the head-end's bulk writers queue behind that commit."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def dispose(self) -> None:
        self.engine.dispose()


def get_db(request: Request) -> Database:
    """FastAPI dependency: the app's Database."""
    return request.app.state.db


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, committed when the handler succeeds.
    Requests other than GET/HEAD take the SQLite write lock at their first statement."""
    db: Database = request.app.state.db
    with db.session(write=request.method not in ("GET", "HEAD", "OPTIONS")) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
