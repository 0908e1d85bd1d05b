"""Shared test configuration: hypothesis profiles and the location of ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
# the fast lane (scripts/test --fast): every property still runs, on fewer examples
settings.register_profile("fast", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# `HYPOTHESIS_PROFILE=fuzz pytest tests/codec tests/cloud -k fuzz` is the dedicated long fuzz run.
settings.register_profile("fuzz", max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# the command line speaks the user's locale (omshub.commands.cli_language); the tests read its
# English messages unless a test asks for German, whatever the developer's LANG
os.environ["OMSHUB_LANGUAGE"] = "en"

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OMSHUB_SHARED", REPO.parent / "shared"))
VECTORS = SHARED / "vectors"


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    """Directory of ../shared/vectors; tests needing it skip cleanly when it is absent."""
    if not VECTORS.is_dir():
        pytest.skip(f"shared test vectors not found at {VECTORS} (set OMSHUB_SHARED)")
    return VECTORS


# Fixtures that start other processes (a real `omshub serve`, a browser): their tests are left out of
# the fast lane (`scripts/test --fast`) along with everything under tests/e2e and tests marked slow.
_SUBPROCESS_FIXTURES = {"live_server", "console_server"}
_BROWSER_FIXTURES = {"browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "e2e" in item.path.parts or fixtures & _SUBPROCESS_FIXTURES:
            item.add_marker(pytest.mark.subprocess)
        if fixtures & _BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
