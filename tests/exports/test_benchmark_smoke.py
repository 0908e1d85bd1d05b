"""The export benchmark runs (a small size): `python -m benchmarks.exports --points 2000`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_runs():
    out = subprocess.run([sys.executable, "-m", "benchmarks.exports", "--points", "2000"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout  # fmt: skip
    assert "v1-csv   export" in out and "6,000 rows" in out and "peak traced memory" in out
