"""Domain errors become HTTP answers in one place (api/errors.py): status by kind, the one body shape."""

import json
from datetime import UTC, datetime

from omshub.cloud.api.errors import domain_error_response, http_status
from omshub.cloud.domain.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, TooMany, Unauthorized
from omshub.cloud.services.login_throttle import LoginThrottled
from omshub.cloud.services.operations import ConfigChangeError, PendingChanges, UnknownGateway


def test_each_kind_has_its_status():
    assert [
        http_status(e)
        for e in (
            Invalid("x"),
            NotFound("x"),
            Conflict("x"),
            Unauthorized("x"),
            Forbidden("x"),
            TooMany("x", 3),
            DomainError("x"),
        )
    ] == [422, 404, 409, 401, 403, 429, 400]
    assert http_status(ConfigChangeError("invalid_config", "x")) == 422
    assert http_status(UnknownGateway(7)) == 404 and http_status(LoginThrottled(2)) == 429


def test_body_headers_and_details():
    r = domain_error_response(Unauthorized("who are you"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert json.loads(r.body) == {"error": {"code": "unauthorized", "message": "who are you"}}
    r = domain_error_response(LoginThrottled(1))
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert json.loads(r.body)["error"]["message"].endswith("try again in 1 second")
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    r = domain_error_response(PendingChanges([{"gateway": "GW-1", "created_at": at}]))
    body = json.loads(r.body)["error"]
    assert r.status_code == 409 and body["code"] == "pending_changes"
    assert body["conflicts"] == [{"gateway": "GW-1", "created_at": "2026-01-02T03:04:05Z"}]
