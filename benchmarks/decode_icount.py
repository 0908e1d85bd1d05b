"""Decode cost in CPU instructions per telegram: `python -m benchmarks.decode_icount [--baseline DIR]`.

`benchmarks.decode` times the decoder in CPU seconds, which swing by a third on a busy machine. This
counts instructions with valgrind's callgrind instead: the same count whatever else the machine does,
so two versions of the code can be compared on a shared machine. Each kind (plain, mode 5, mode 7,
ELL, compact, mixed, varying layouts) is decoded through `decode_stream` (what `omshub decode` runs),
in a process of its own under callgrind; a run that decodes nothing is subtracted, so start-up and the
encoding of the corpus do not count.

`--baseline DIR` runs the same against another checkout's `src/` (e.g. a `git worktree` of an older
commit, whose `benchmarks/decode.py` must have `build_pool`, `mixed_corpus` and `run_fast`) and prints
the ratio. Needs `valgrind` (Debian package). About a minute per kind on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

KINDS = ("plain", "mode5", "mode7", "ell", "compact", "mixed", "varying")

# Runs in the measured process: the decode benchmark's own corpus and decode loop.
CHILD = """
import sys
from benchmarks.decode import build_pool, mixed_corpus, run_fast
from omshub.codec import FormatCache
kind, n = sys.argv[1], int(sys.argv[2])
varying = kind == "varying"
pool, ring, _ = build_pool(40, seed=2 if varying else 1, varying=varying)
formats = FormatCache()
run_fast(pool["ell"], ring, formats)  # the same set-up for every kind: compact needs what ELL teaches
if kind in ("mixed", "varying"):
    lines = mixed_corpus(pool, n)
else:
    lines = [pool[kind][i % len(pool[kind])] for i in range(n)]
if n:
    run_fast(lines, ring, formats if kind in ("ell", "compact") else None)
"""


def instructions(checkout: Path, kind: str, n: int) -> int:
    """Instructions callgrind counts for one child process decoding ``n`` telegrams of ``kind``."""
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{checkout}"}
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", CHILD, kind, str(n)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed for {kind} in {checkout}:\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_telegram(checkout: Path, n: int) -> dict[str, float]:
    base = {seed: instructions(checkout, kind, 0) for seed, kind in (("fixed", "plain"), ("varying", "varying"))}
    out = {}
    for kind in KINDS:
        zero = base["varying" if kind == "varying" else "fixed"]
        out[kind] = (instructions(checkout, kind, n) - zero) / n
        print(f"  {checkout.name or checkout}: {kind:8s} {out[kind]:12,.0f} instructions/telegram", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="telegrams decoded per kind (default 400)")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with (its src/ is imported)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("benchmarks.decode_icount needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parents[1]
    print(f"instructions per telegram through decode_stream ({args.n} telegrams per kind, callgrind)")
    now = per_telegram(here, args.n)
    if args.baseline is None:
        return 0
    before = per_telegram(args.baseline.resolve(), args.n)
    print(f"\n{'kind':8s} {'baseline':>12s} {'this':>12s} {'this/baseline':>14s}")
    for kind in KINDS:
        print(f"{kind:8s} {before[kind]:12,.0f} {now[kind]:12,.0f} {now[kind] / before[kind]:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
