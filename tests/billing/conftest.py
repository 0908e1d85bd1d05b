"""The billing tests that need a database or the API use the head-end's fixtures (SQLite, or
PostgreSQL with OMSHUB_TEST_DATABASE=postgres)."""

from tests.cloud.conftest import (  # noqa: F401  (fixtures and the warning filter)
    _migrated_template,
    app,
    client,
    data_dir,
    database_url,
    db,
    hub,
    keystore,
    pytest_configure,
    s,
    settings,
)
