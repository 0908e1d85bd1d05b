"""Alembic migrations of the head-end schema (applied by ``Database.migrate`` on start)."""
