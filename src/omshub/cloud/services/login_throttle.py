"""Login throttling: failed logins slow down per (account, address), per address and per account,
without letting an attacker lock a real user out for long.

Three counters, each a row of `login_throttle` (so every head-end process shares them):

* **pair** (account, client address): the first `pair_free` (5) failures cost nothing; after that
  each further attempt waits twice as long as the one before — 1 s, 2 s, 4 s … up to
  `pair_max_delay_s` (15 min), i.e. at most ~100 guesses a day for one account from one address.
  A successful login resets the pair. Failures are forgotten a day after the pair's last attempt.
* **address** (any accounts): `address_limit` (50) failures per `address_window_s` (15 min)
  window, then the address waits for the window's end. Stops password spraying across many
  accounts from one address, and is the only counter that blocks outright — it blocks the
  attacker's own address, nobody else's.
* **account** (from any address): after `account_limit` (20) failures in a 15-minute window from
  addresses that never logged in to the account, such addresses get one attempt per
  `account_pace_s` (60 s) on that account: a distributed guesser gets ~1,400 guesses a day, not
  millions. An address that logged in to the account successfully within `known_address_s` (30
  days) is not subject to this counter at all, so an attack on an account never locks out its user
  at their usual places; from a new address the user waits at most a minute per try while the
  attack lasts.

Every attempt counts as a failure from the moment it starts (the counters are incremented, with a
compare-and-set, before the password is checked, in a transaction of its own), so parallel
requests cannot slip past a limit; a correct password then takes the attempt back. Unknown
usernames are throttled exactly like existing ones, so the throttle tells nothing about which
accounts exist. A refused attempt is not counted (hammering a closed door does not extend the wait).

The table bounds itself: every `purge_every` counted attempts (per process) rows whose relevance
has passed are deleted, and beyond `max_rows` (200,000, some 30 MB) the least recently used
counters go first (remembered successful addresses last). Functions take `now`, so tests run on a
fixed clock.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import TooMany
from omshub.cloud.store.models import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    pair_free: int = 5
    pair_max_delay_s: int = 900
    pair_memory_s: int = 86_400
    address_limit: int = 50
    address_window_s: int = 900
    account_limit: int = 20
    account_window_s: int = 900
    account_pace_s: int = 60
    known_address_s: int = 30 * 86_400
    max_rows: int = 200_000
    purge_every: int = 500


DEFAULT_POLICY = ThrottlePolicy()


class LoginThrottled(TooMany):
    """Too many failed logins: try again in `retry_after_s` seconds (HTTP 429 + Retry-After)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "too many failed logins for this account or from this address; try again in "
            f"{retry_after_s} second{'s' if retry_after_s != 1 else ''}",
            retry_after_s,
            german="Zu viele fehlgeschlagene Anmeldungen für dieses Konto oder von dieser Adresse; bitte "
            f"versuchen Sie es in {retry_after_s} Sekunde{'n' if retry_after_s != 1 else ''} wieder.",
        )


class Contended(Exception):
    """Another attempt changed a counter meanwhile: reserve again in a new transaction."""


@dataclass
class Reservation:
    """The counters an attempt incremented (taken back on success)."""

    pair: bytes
    counted: list[bytes] = field(default_factory=list)  # address (and account) keys


def _key(scope: str, *values: str) -> bytes:
    return hashlib.sha256("\x00".join((scope, *values)).encode("utf-8", "surrogatepass")).digest()


def _state(
    row: LoginThrottle | None, scope: str, now: datetime, policy: ThrottlePolicy
) -> tuple[int, datetime, datetime | None]:
    """(failures that still count, window start, blocked until or None) of a counter now."""
    if row is None:
        return 0, now, None
    if scope == "pair":
        if now - row.last_attempt_at >= timedelta(seconds=policy.pair_memory_s):
            return 0, now, None
        failures = row.failures
        if failures < policy.pair_free:
            return failures, row.window_start, None
        delay = min(2 ** min(failures - policy.pair_free, 30), policy.pair_max_delay_s)
        return failures, row.window_start, row.last_attempt_at + timedelta(seconds=delay)
    window = timedelta(seconds=policy.address_window_s if scope == "address" else policy.account_window_s)
    if now - row.window_start >= window:
        return 0, now, None
    failures = row.failures
    if scope == "address":
        return failures, row.window_start, row.window_start + window if failures >= policy.address_limit else None
    if failures >= policy.account_limit:
        return failures, row.window_start, row.last_attempt_at + timedelta(seconds=policy.account_pace_s)
    return failures, row.window_start, None


_attempts = itertools.count(1)


def reserve(
    session: Session, username: str, address: str, now: datetime, policy: ThrottlePolicy = DEFAULT_POLICY
) -> Reservation:
    """Count this attempt as a failure on its counters, or raise LoginThrottled (nothing counted)
    when one of them is closed now. Contended: a concurrent attempt won the compare-and-set; call
    again in a new transaction. The caller commits before checking the password."""
    keys = {
        "pair": _key("pair", username, address),
        "address": _key("address", address),
        "account": _key("account", username),
    }
    rows = {
        row.key: row for row in session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(list(keys.values()))))
    }
    pair = rows.get(keys["pair"])
    known = (
        pair is not None
        and pair.last_success_at is not None
        and now - pair.last_success_at < timedelta(seconds=policy.known_address_s)
    )
    scopes = ["pair", "address"] + ([] if known else ["account"])
    states = {scope: _state(rows.get(keys[scope]), scope, now, policy) for scope in scopes}
    closed = [until for _, _, until in states.values() if until is not None and until > now]
    if closed:
        raise LoginThrottled(max(1, math.ceil((max(closed) - now).total_seconds())))
    # one lock order for every attempt (by key), so two transactions never wait on each other
    for scope in sorted(scopes, key=keys.__getitem__):
        key, row = keys[scope], rows.get(keys[scope])
        failures, window_start, _ = states[scope]
        if row is None:
            _insert(session, key, scope, now)
            continue
        changed = session.execute(  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
            update(LoginThrottle)
            .where(
                LoginThrottle.id == row.id,
                LoginThrottle.failures == row.failures,
                LoginThrottle.last_attempt_at == row.last_attempt_at,
            )
            .values(failures=failures + 1, window_start=window_start, last_attempt_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            raise Contended()
    if next(_attempts) % policy.purge_every == 0:
        purge(session, now, policy)
    return Reservation(pair=keys["pair"], counted=[keys[s] for s in scopes if s != "pair"])


def _insert(session: Session, key: bytes, scope: str, now: datetime) -> None:
    values = {"key": key, "scope": scope, "failures": 1, "window_start": now, "last_attempt_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    inserted = session.execute(
        insert(LoginThrottle)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(LoginThrottle.id)
    ).first()
    if inserted is None:  # created meanwhile by a concurrent attempt
        raise Contended()


def succeeded(session: Session, reservation: Reservation, now: datetime) -> None:
    """The password was right: the pair starts afresh and remembers the address; the address and
    account counters take the attempt back."""
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == reservation.pair)
        .values(failures=0, last_attempt_at=now, last_success_at=now)
        .execution_options(synchronize_session=False)
    )
    if reservation.counted:
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key.in_(reservation.counted), LoginThrottle.failures > 0)
            .values(failures=LoginThrottle.failures - 1)
            .execution_options(synchronize_session=False)
        )


def purge(session: Session, now: datetime, policy: ThrottlePolicy = DEFAULT_POLICY) -> int:
    """Delete counters that no longer matter, then the least recently used beyond `max_rows`.
    -> rows deleted."""
    stale = now - timedelta(seconds=max(policy.pair_memory_s, policy.address_window_s, policy.account_window_s))
    forgotten = now - timedelta(seconds=policy.known_address_s)
    deleted = session.execute(  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
        delete(LoginThrottle)
        .where(
            LoginThrottle.last_attempt_at < stale,
            (LoginThrottle.last_success_at.is_(None)) | (LoginThrottle.last_success_at < forgotten),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    excess = (session.scalar(select(func.count()).select_from(LoginThrottle)) or 0) - policy.max_rows
    if excess > 0:
        oldest = (
            select(LoginThrottle.id)
            .order_by(LoginThrottle.last_success_at.is_not(None), LoginThrottle.last_attempt_at, LoginThrottle.id)
            .limit(excess)
        )
        ids = list(session.scalars(oldest))
        for i in range(0, len(ids), 1000):
            deleted += session.execute(  # type: ignore[attr-defined]  # DML gives a CursorResult (typed Result)
                delete(LoginThrottle)
                .where(LoginThrottle.id.in_(ids[i : i + 1000]))
                .execution_options(synchronize_session=False)
            ).rowcount
    return deleted
