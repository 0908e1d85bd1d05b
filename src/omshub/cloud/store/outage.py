"""One log line per database outage, not a traceback per failed attempt.

While the database is unreachable every worker loop, request and uplink fails, many times a
second. Each of those places hands its exception to :data:`database_outage`
(``if not database_outage.failed(exc): log.exception(...)``): a database connection error is
counted and logged as one ERROR line when the outage starts ("database unreachable since …"),
one more per `interval_s` while it lasts ("… (N failures)") and one WARNING when something
succeeds again ("database reachable again after …"); any other exception returns False and is
logged by the caller as before. One instance per process (every decode worker process has its
own, so each process logs its own line).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import exc as sa_exc

from omshub.times import utcnow

log = logging.getLogger("omshub.database")


def is_unreachable(exc: BaseException) -> bool:
    """A failure to reach or keep a database connection (also the SQLite file unopenable or a
    pool exhausted by hung connections), as opposed to a bad statement, a constraint or a deadlock."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate:  # PostgreSQL: connection exceptions, out of resources, shut down, database gone
        return sqlstate[:2] in ("08", "53") or (sqlstate[:2] == "57" and sqlstate != "57014") or sqlstate == "3D000"
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return (text[0] if text else type(original).__name__)[:300]


class OutageLog:
    """Rate-limited logging of a database outage (clocks injectable for tests)."""

    def __init__(
        self,
        interval_s: float = 60.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
        logger: logging.Logger = log,
    ) -> None:
        self.interval_s = interval_s
        self._monotonic, self._wall, self._log = monotonic, wall, logger
        self._lock = threading.Lock()
        self._since: datetime | None = None  # wall time of the outage's first failure
        self._started = 0.0  # monotonic, same moment
        self._last_logged = 0.0
        self.failures = 0  # in the current outage

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> bool:
        """Count `exc` if it is a database connection error (-> True; logs at most one line per
        `interval_s`), else False (the caller logs it as any other error)."""
        if not is_unreachable(exc):
            return False
        now = self._monotonic()
        with self._lock:
            if self._since is None:
                self._since, self._started, self.failures = self._wall(), now, 0
                self._last_logged = now - self.interval_s  # the first failure is logged at once
            self.failures += 1
            if now - self._last_logged < self.interval_s:
                return True
            self._last_logged = now
            since, failures = self._since, self.failures
        self._log.error(
            "database unreachable since %s (%d failure%s so far; next report in %.0f s): %s",
            since.isoformat(timespec="seconds"),
            failures,
            "" if failures == 1 else "s",
            self.interval_s,
            _first_line(exc),
        )
        return True

    def succeeded(self) -> None:
        """Something reached the database: ends an outage (one WARNING line)."""
        if self._since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._since is None:
                return
            since, failures, seconds = self._since, self.failures, self._monotonic() - self._started
            self._since, self.failures = None, 0
        self._log.warning(
            "database reachable again (unreachable since %s, %.0f s, %d failure%s)",
            since.isoformat(timespec="seconds"),
            seconds,
            failures,
            "" if failures == 1 else "s",
        )


database_outage = OutageLog()
