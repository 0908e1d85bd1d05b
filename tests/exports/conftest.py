"""Fixtures of the export tests: the head-end's database fixtures (tests/cloud/conftest.py) and a
small fixed billing data set (fleet.py)."""

import pytest

from tests.cloud.conftest import (  # noqa: F401
    _migrated_template,
    app,
    client,
    data_dir,
    database_url,
    db,
    hub,
    keystore,
    pipeline,
    pytest_configure,
    settings,
)


@pytest.fixture(autouse=True)
def loopback_webhooks(monkeypatch):
    """The receivers of these tests listen on loopback, which the SSRF guard refuses by default."""
    monkeypatch.setenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", "127.0.0.0/8")
