"""Fixtures of the export tests: the head-end's database fixtures (tests/cloud/conftest.py) and a
small fixed billing data set (fleet.py)."""

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
