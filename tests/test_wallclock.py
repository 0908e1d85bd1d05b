"""The date lanes of scripts/test move the wall clock of every Python process of a test run; this
checks that the mechanism (tests/wallclock/sitecustomize.py) does what the lanes rely on."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WALLCLOCK = Path(__file__).parent / "wallclock"
CHILD = """
import datetime, json, time, subprocess, sys
t0 = time.monotonic(); time.sleep(0.05)
grandchild = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], capture_output=True, text=True)
print(json.dumps({"time": time.time(), "now": datetime.datetime.now(datetime.timezone.utc).timestamp(),
                  "slept": time.monotonic() - t0, "grandchild": float(grandchild.stdout)}))
"""


@pytest.mark.subprocess  # starts other processes: not in the fast lane
def test_the_wall_clock_of_child_processes_moves_by_the_shift():
    shift = 400 * 86_400.0
    ours = float(os.environ.get("OMSHUB_TEST_CLOCK_SHIFT") or 0)  # a date lane moves this process too
    env = {
        **os.environ,
        "OMSHUB_TEST_CLOCK_SHIFT": str(shift),
        "PYTHONPATH": os.pathsep.join([str(WALLCLOCK), os.environ.get("PYTHONPATH", "")]),
    }
    before = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
    after = time.time()
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    for name in ("time", "now", "grandchild"):  # grandchildren inherit the shift
        assert before - ours + shift - 1 <= seen[name] <= after - ours + shift + 1, (name, seen[name] - before)
    assert 0.04 <= seen["slept"] < 5  # the monotonic clock is not moved: timeouts keep working
