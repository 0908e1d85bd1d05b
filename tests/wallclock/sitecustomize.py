"""Moves this Python process's wall clock by ``OMSHUB_TEST_CLOCK_SHIFT`` seconds.

``scripts/test`` puts this directory on PYTHONPATH for its date lanes, so every Python process of
the run — pytest, its xdist workers, the `omshub serve` and gateway processes the tests start —
sees the same shifted wall clock (time-machine; the monotonic clock, which timeouts use, is not
moved). The shift is relative, computed once by scripts/test, so processes started later agree
with those started earlier. Without the variable nothing happens.
"""

import os

_shift = os.environ.get("OMSHUB_TEST_CLOCK_SHIFT")
if _shift:
    import time

    import time_machine

    _traveller = time_machine.travel(time.time() + float(_shift), tick=True)
    _traveller.start()
    time.time()  # time-machine's clock ticks from the first reading: make that now, not later
