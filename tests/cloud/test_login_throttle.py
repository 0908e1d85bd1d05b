"""Login throttling (issue 9, item 12): 300 wrong passwords at 16/s must not be followed by a
working right one, yet an attacker must not lock a real user out for long.

The service (`auth.attempt_login`, `login_throttle`) runs on a fixed simulated clock (tests/clock.py):
no test sleeps. The counters live in the database, so several head-end processes share them: two
Database engines stand in for two processes (with threads racing on them), and one test runs two
real `omshub serve` processes on one database.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omshub.cloud.api.errors import http_status
from omshub.cloud.domain.errors import DomainError
from omshub.cloud.store.database import Database

from ..clock import EPOCH

RIGHT = "correct horse"
# the documented numbers (README "Logins and tokens"), which the HTTP tests check as they are
PAIR_FREE, ADDRESS_LIMIT = 5, 50


@pytest.fixture
def P():
    from omshub.cloud.services.login_throttle import DEFAULT_POLICY

    assert (DEFAULT_POLICY.pair_free, DEFAULT_POLICY.address_limit) == (PAIR_FREE, ADDRESS_LIMIT)
    return DEFAULT_POLICY


def _try(db, username, password, address, now, policy=None):
    """'ok', 401 or ('429', retry after s) of one login attempt at simulated time `now`."""
    from omshub.cloud.services.accounts import attempt_login
    from omshub.cloud.services.login_throttle import LoginThrottled

    try:
        attempt_login(db, username, password, address=address, ttl_s=3600, now=now, policy=policy)
        return "ok"
    except LoginThrottled as exc:
        return ("429", exc.retry_after_s)
    except DomainError as exc:
        assert http_status(exc) == 401
        return 401


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


_net = iter(range(1, 10_000))


def _address() -> str:
    """A fresh client address per use (documentation ranges: only strings here, never contacted)."""
    n = next(_net)
    return f"198.51.{n // 250}.{n % 250 + 1}"


def test_300_wrong_passwords_at_16_per_second_then_the_right_one_is_refused(hub, db, P):
    """The finding: 300 wrong passwords at 16/s, then the right one worked."""
    name, address = hub.user(hub.tenant(), "admin"), _address()
    t0 = EPOCH
    outcomes = [_try(db, name, f"guess {i}", address, t0 + _s(i / 16)) for i in range(300)]
    assert outcomes.count(401) < 20, "only a few guesses may reach the password check"
    refused = [o for o in outcomes if o != 401]
    assert refused and all(o[0] == "429" and o[1] >= 1 for o in refused)
    at = t0 + _s(300 / 16)
    right = _try(db, name, RIGHT, address, at)
    assert right[0] == "429", "the right password must not get through during the attack"
    # not locked out for long: after Retry-After the user is in
    assert right[1] <= P.pair_max_delay_s
    assert _try(db, name, RIGHT, address, at + _s(right[1])) == "ok"


def test_the_pairs_delay_doubles_up_to_its_cap_and_a_success_resets_it(hub, db, P):
    name, address = hub.user(hub.tenant(), "viewer"), _address()
    now = EPOCH
    for _ in range(P.pair_free):  # free failures
        assert _try(db, name, "wrong", address, now) == 401
    waits = []
    for _ in range(14):
        refused = _try(db, name, "wrong", address, now)
        assert refused[0] == "429"
        waits.append(refused[1])
        now += _s(refused[1])
        assert _try(db, name, "wrong", address, now) == 401  # allowed exactly when Retry-After says
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900]
    # the right password after the wait resets the pair: 5 free failures again
    now += _s(900)
    assert _try(db, name, RIGHT, address, now) == "ok"
    for _ in range(P.pair_free):
        assert _try(db, name, "wrong", address, now) == 401
    assert _try(db, name, "wrong", address, now)[0] == "429"
    # a day without attempts forgets the failures
    assert _try(db, name, RIGHT, address, now + _s(P.pair_memory_s)) == "ok"


def test_an_address_is_limited_across_accounts(hub, db, P):
    spray, other = _address(), _address()
    t = hub.tenant()
    victims = [hub.user(t, "viewer") for _ in range(3)]
    now = EPOCH
    for i in range(P.address_limit):  # one guess each on many (mostly unknown) accounts
        assert _try(db, f"{victims[i % 3]}-x{i}" if i >= 3 else victims[i], "wrong", spray, now + _s(i)) == 401
    refused = _try(db, victims[0], RIGHT, spray, now + _s(60))
    assert refused[0] == "429" and refused[1] == P.address_window_s - 60
    assert _try(db, victims[0], RIGHT, other, now + _s(60)) == "ok"  # only the spraying address waits
    assert _try(db, victims[1], RIGHT, spray, now + _s(P.address_window_s)) == "ok"  # a new window


def test_a_distributed_attack_on_an_account_spares_addresses_it_logged_in_from(hub, db, P):
    name = hub.user(hub.tenant(), "admin")
    home, new_place = _address(), _address()
    now = EPOCH
    assert _try(db, name, RIGHT, home, now) == "ok"  # the user's usual address
    now += _s(3600)
    for i in range(P.account_limit):  # a botnet: one guess per address
        assert _try(db, name, f"guess {i}", _address(), now + _s(i)) == 401
    now += _s(P.account_limit)
    refused = _try(db, name, "guess", _address(), now)
    assert refused == ("429", P.account_pace_s - 1)
    # the user at home is not affected at all
    assert _try(db, name, RIGHT, home, now) == "ok"
    # from a new address the user waits at most the pace, then gets in
    wait = _try(db, name, RIGHT, new_place, now)
    assert wait[0] == "429" and wait[1] <= P.account_pace_s
    now += _s(wait[1])
    assert _try(db, name, RIGHT, new_place, now) == "ok"
    # while the attack lasts, new addresses get one attempt per pace on the account
    now += _s(P.account_pace_s)
    assert _try(db, name, "guess", _address(), now) == 401
    assert _try(db, name, "guess", _address(), now + _s(1))[0] == "429"


def test_unknown_accounts_are_throttled_exactly_like_real_ones(hub, db):
    real = hub.user(hub.tenant(), "viewer")
    made_up = real + "-nobody"
    now = EPOCH

    def run(name):
        address = _address()
        return [_try(db, name, "wrong", address, now + _s(i // 3)) for i in range(12)]

    assert run(real) == run(made_up)


def test_the_http_answer_is_429_with_retry_after_and_no_store(app, db, hub):
    """(Without the service functions: through HTTP only, on a fixed clock set on the app.)"""
    name = hub.user(hub.tenant(), "viewer")
    address = _address()
    app.state.clock = lambda: EPOCH
    try:
        with TestClient(app, client=(address, 40000)) as browser:

            def post(password):
                return browser.post("/api/v1/auth/login", json={"username": name, "password": password})

            for _ in range(PAIR_FREE):
                r = post("wrong")
                assert r.status_code == 401 and r.headers["cache-control"] == "no-store"
            r = post(RIGHT)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1" and r.headers["cache-control"] == "no-store"
            error = r.json()["error"]
            assert error["code"] == "too_many_attempts" and "try again in 1 second" in error["message"]
            app.state.clock = lambda: EPOCH + _s(1)
            r = post(RIGHT)
            assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    finally:
        del app.state.clock


def test_parallel_attempts_cannot_slip_past_the_limit(hub, database_url, P):
    """20 wrong passwords at the same moment through two engines (as two processes would):
    exactly the free ones reach the password check; the counters are not lost to races."""
    name, address = hub.user(hub.tenant(), "viewer"), _address()
    engines = [Database(database_url), Database(database_url)]
    outcomes: list = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def attempt(i):
        start.wait()
        outcome = _try(engines[i % 2], name, f"wrong {i}", address, EPOCH)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for engine in engines:
        engine.dispose()
    assert len(outcomes) == 20
    assert outcomes.count(401) == P.pair_free, outcomes
    assert all(o[0] == "429" for o in outcomes if o != 401)


@pytest.mark.slow  # fills the throttle table: several seconds, not in the fast lane
def test_the_table_bounds_its_size(db):
    from omshub.cloud.services.login_throttle import ThrottlePolicy, purge
    from omshub.cloud.store.models import LoginThrottle

    policy = ThrottlePolicy(max_rows=60, purge_every=1)
    now = EPOCH + _s(10 * 86_400)  # apart from the other tests' rows
    with db.transaction() as s:
        purge(s, now, policy)
    for i in range(100):  # 100 addresses, 100 usernames: 3 counters each
        _try(db, f"nobody-{i}", "wrong", _address(), now + _s(i), policy)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LoginThrottle)) <= policy.max_rows
    # stale counters go entirely; remembered successful addresses stay for their 30 days
    later = now + _s(policy.pair_memory_s + 200)
    with db.transaction() as s:
        purge(s, later, policy)
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(LoginThrottle).where(LoginThrottle.last_success_at.is_(None)))
            == 0
        )


@pytest.fixture
def two_servers(live_server):
    return live_server(), live_server()


def test_two_head_end_processes_share_the_counters(two_servers, hub):
    """The address limit counted across two real `omshub serve` processes on one database
    (both see the client as 127.0.0.1): the 51st failure in the window is refused by either."""
    a, b = two_servers
    t = hub.tenant()
    with httpx.Client(timeout=30) as http:
        for i in range(ADDRESS_LIMIT):
            server = (a, b)[i % 2]
            r = http.post(
                server.base_url + "/api/v1/auth/login",
                json={"username": f"spray-{t.id}-{i}", "password": "wrong password"},
            )
            assert r.status_code == 401, (i, r.text)
        for server in (a, b):
            r = http.post(
                server.base_url + "/api/v1/auth/login",
                json={"username": f"spray-{t.id}-x", "password": "wrong password"},
            )
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            assert r.json()["error"]["code"] == "too_many_attempts"
