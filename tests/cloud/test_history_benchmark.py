"""Smoke test of `python -m benchmarks.history` (not a timed test): a tiny history on SQLite goes
through ingest, decode, the maintenance and every read path, and every figure is printed."""

from __future__ import annotations

import pytest


@pytest.mark.slow  # builds a history through the real pipeline (~10 s)
def test_history_benchmark_smoke(capsys):
    from benchmarks.history import main

    assert main(["--meters", "40", "--days", "3", "--repeat", "1", "--database", "sqlite"]) == 0
    out = capsys.readouterr().out
    for label in (
        "bytes per reading",
        "per table and index",
        "ingest+decode",
        "latest of every meter (40 meters",
        "one meter's readings",
        "consumption of a metering point",
        "rows, CSV",
        "rows, JSON",
    ):
        assert label in out, label
    assert "readings: 120" in out
