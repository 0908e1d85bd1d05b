"""Schema-driven fuzzing of the whole HTTP API (`/openapi.json`, schemathesis): every operation with
generated paths, queries and bodies, valid and invalid, once as an admin of a tenant with data and
once without credentials. Checked on every answer: no 5xx; no traceback or exception name in the
body; error bodies are `{"error": {"code", "message"}}`; status code, content type and body conform
to the schema.

The budget is small in CI. The long run (documented in README.md, "Tests"):
`OMSHUB_API_FUZZ_EXAMPLES=150 .venv/bin/python -m pytest -n 0 -s tests/cloud/test_api_fuzz.py`
(and again with `OMSHUB_TEST_DATABASE=postgres`); it prints how many requests it sent.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.clock import DAY, EPOCH, unix

from .conftest import KEY, encode

API = "/api/v1"
EXAMPLES = int(os.environ.get("OMSHUB_API_FUZZ_EXAMPLES", "6"))

# A traceback, a source location or an exception class name (ValueError, IntegrityError,
# psycopg.errors..., sqlalchemy...) in a body means an internal error escaped into the answer.
LEAK = re.compile(r"Traceback|File \"|\b\w*(Error|Exception)\b|sqlalchemy|psycopg|sqlite3|pydantic_core")
CODE = re.compile(r"^[a-z][a-z0-9_]*$")

requests = Counter()


def no_leaked_internals(ctx, response, case):
    """No traceback or exception name in any body; errors in the API's one shape."""
    text = response.content.decode("utf-8", "replace")
    found = LEAK.search(text)
    if found:
        raise AssertionError(f"the body shows an internal error ({found.group(0)!r}): {text[:300]}")
    if response.status_code >= 400 and "json" in response.headers.get("content-type", [""])[0]:
        body = orjson.loads(response.content)
        error = body.get("error") if isinstance(body, dict) else None
        # code and message always; a refusal may add its details (e.g. `problems` of an import)
        assert isinstance(error, dict) and {"code", "message"} <= set(error), f"not the error shape: {text[:300]}"
        assert CODE.match(error["code"]) and error["message"], f"error without stable code or message: {text[:300]}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_leaked_internals,
]


@pytest.fixture(scope="module")
def fuzz_tenant(module_hub, client, app):
    """A tenant with a bit of everything: a gateway with uplinks, meters with keys and readings, a
    metering point with its meter installed, an operation, a user."""
    hub = module_hub
    tenant = hub.tenant()
    gw = hub.gateway(tenant)
    meters = ["81000001", "81000002"]
    hub.keys(tenant, dict.fromkeys(meters, KEY))
    pks = [hub.meter(tenant, mid) for mid in meters]
    t0 = unix(EPOCH) - 10 * DAY
    frames = [encode(mid, energy=100.0 + day, access_number=day) for day in range(3) for mid in meters]
    hub.send(gw, 1, frames, t0=t0, dts=[day * DAY for day in range(3) for _ in meters])
    hub.send(gw, 2, [encode("8100FFFF")], t0=t0)  # heard, not registered
    app.state.pipeline.run_until_idle()
    headers = hub.headers(tenant, "admin")
    point = client.post(
        f"{API}/metering-points", json={"ref": "fuzz-point", "address": "Hauptstr. 1"}, headers=headers
    ).json()
    client.post(
        f"{API}/metering-points/{point['id']}/install",
        json={"meter": pks[0], "at": "2020-01-01T00:00:00Z"},
        headers=headers,
    ).raise_for_status()
    client.put(
        f"{API}/gateways/{gw.id}/config", json={"upload": {"cron": "0 0 3 * * *"}}, headers=headers
    ).raise_for_status()
    hub.user(tenant, "viewer")
    return tenant


@schemathesis.serializer("message/rfc822")
def _raw_mail(ctx, value):
    # a bounce handed in as the raw message (POST /customer-info/bounces): the generated text as is
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
    database=None,
    print_blob=True,
)


class AdminToken:
    """An admin token of the tenant, replaced when the fuzzer has revoked it (DELETE /tokens/{id})."""

    def __init__(self, hub, tenant) -> None:
        self.hub, self.tenant, self._headers = hub, tenant, None

    def __call__(self) -> dict:
        if self._headers is None:
            self._headers = self.hub.headers(self.tenant, "admin")
        return self._headers

    def answered(self, status: int) -> None:
        if status == 401:
            self._headers = None


def _runs(operation, empty_values: bool):
    """(name, strategy) of the runs of one operation: valid data, invalid data and — since
    schemathesis never sends an empty query value as valid data — each query parameter empty."""
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        yield mode.value, operation.as_strategy(generation_mode=mode)
    if empty_values:
        for parameter in operation.query:
            yield f"{parameter.name}=''", operation.as_strategy(query={parameter.name: ""})


def _fuzz(api_schema, headers_for, skip=(), empty_values: bool = False) -> list[str]:
    """Each operation with valid and with invalid data; -> the failures, by operation."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue
        for name, strategy in _runs(operation, empty_values):

            @FUZZ_SETTINGS
            @given(case=strategy)
            def run(case):
                response = case.call(headers=headers_for())
                requests[response.status_code] += 1
                if hasattr(headers_for, "answered"):
                    headers_for.answered(response.status_code)
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
                continue
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({name}): {exc}")
                print(f"\nAPI fuzz failure: {failures[-1]}")  # at once: a long run shows it before it ends
    return failures


@pytest.mark.slow  # schemathesis over every operation: about 30 s, not in the fast lane
def test_api_authenticated(api_schema, module_hub, fuzz_tenant):
    # logging out (it revokes the request's own token) is left to the unauthenticated run
    failures = _fuzz(
        api_schema, AdminToken(module_hub, fuzz_tenant), skip={"POST /api/v1/auth/logout"}, empty_values=True
    )
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow  # schemathesis over every operation: about 15 s, not in the fast lane
def test_api_unauthenticated(api_schema):
    failures = _fuzz(api_schema, dict)
    assert not failures, "\n\n".join(failures)


@pytest.fixture(scope="module", autouse=True)
def _report_requests():
    yield
    total = sum(requests.values())
    if total:
        print(
            f"\nAPI fuzz ({os.environ.get('OMSHUB_TEST_DATABASE', 'sqlite')}): {total} requests, "
            f"by status {dict(sorted(requests.items()))}"
        )
