"""The billing tests that need a database use the head-end's fixtures (SQLite, or PostgreSQL with
OMSHUB_TEST_DATABASE=postgres)."""

from tests.cloud.conftest import database_url, db, s  # noqa: F401  (fixtures)
