"""Smoke test of `python -m benchmarks.customers`: a tiny month runs end to end and prints its figures
(the figures themselves are the benchmark's business, not a test's)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_a_tiny_month(capsys):
    from benchmarks.customers import main

    main(["--units", "150", "--pdfs", "5"])
    out = capsys.readouterr().out
    assert "records: 150 new for 150 units" in out
    assert "second run (idempotent): 150 unchanged, 0 changed" in out
    assert "PDFs: 5 letters" in out and "peak memory" in out
