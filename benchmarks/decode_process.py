"""Whole-process `omshub decode` throughput (start-up included, JSON lines to a pipe).

Used by `python -m benchmarks.decode` (and runnable alone: `python -m benchmarks.decode_process
[--count N] [--repeat 3]`). Two corpora, each of ``--count`` telegrams, written to files:

* **one meter, mode 5**: one heat meter (12 records, AES-CBC mode 5, one key given with
  ``--key``), frames with changing values and access numbers;
* **public mix**: every telegram (and every earlier telegram) of
  ``../shared/vectors/wmbusmeters-public.jsonl`` (252 kinds of meter), repeated in file order until
  the count is reached; keys given with ``--keys`` (a CSV of id, key, manufacturer).

Each runs as ``omshub decode < file > pipe`` (the default ``--workers auto``: one process per core,
since the file is large) and as ``omshub decode --workers 1 < file > pipe`` (the pipe is read and counted by this
process, so the JSON is really produced and written); the figure is telegrams per wall-clock
second, best of ``--repeat`` runs (this machine's timings vary a lot with other load). The
package is byte-compiled first, as an installed one is (see :func:`precompile`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from omshub.codec import encode_telegram

# the shared folder next to the checkout, or OMSHUB_SHARED (as the tests find it; a worktree has no neighbour)
SHARED = Path(os.environ.get("OMSHUB_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
PUBLIC = SHARED / "vectors" / "wmbusmeters-public.jsonl"
KEY = bytes(range(16))


def one_meter_corpus(count: int, make_records: Callable[..., list[dict]], distinct: int = 1000) -> list[str]:
    """``count`` mode-5 telegrams of one meter; ``make_records(rng, model)`` gives a reading."""
    rng = random.Random(5)
    meter = {"manufacturer": "EFE", "id": "30100500", "version": 5, "device_type_code": 4}
    frames = [
        encode_telegram(meter, make_records(rng, 0), mode=5, key=KEY, access_number=i & 0xFF).hex()
        for i in range(distinct)
    ]
    return [frames[i % distinct] for i in range(count)]


def public_mix(count: int, path: Path = PUBLIC) -> tuple[list[str], list[tuple[str, str, str]]] | None:
    """The public corpus' telegrams in file order (earlier telegrams first), repeated; its keys."""
    if not path.is_file():
        return None
    lines: list[str] = []
    keys: dict[str, tuple[str, str]] = {}
    for text in path.read_text().splitlines():
        if not text.strip():
            continue
        entry = json.loads(text)
        lines.extend(entry.get("prior_telegrams") or ())
        lines.append(entry["telegram"])
        if entry.get("key"):
            manufacturer = (entry.get("header") or {}).get("mfct") or ""
            keys[entry["meter_id"]] = (entry["key"], manufacturer)
    out = [lines[i % len(lines)] for i in range(count)]
    return out, [(meter_id, key, m) for meter_id, (key, m) in keys.items()]


def omshub_command() -> list[str]:
    script = Path(sys.executable).with_name("omshub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "omshub.cli"]


def precompile() -> None:
    """Byte-compile the omshub package, as installing it does: with PYTHONDONTWRITEBYTECODE set
    (as on the development machines) an editable install otherwise compiles every module from
    source at each start (~0.06 s of CPU per run)."""
    import compileall

    import omshub

    compileall.compile_dir(str(Path(omshub.__file__).parent), quiet=1)


def run_process(args: list[str], data: Path) -> tuple[float, float, int]:
    """Wall seconds and CPU seconds (the child and its workers) of one `omshub decode` run over
    ``data``; the number of JSON lines it wrote."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with data.open("rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.Popen([*omshub_command(), "decode", *args], stdin=stdin, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        lines = 0
        while chunk := proc.stdout.read(1 << 20):
            lines += chunk.count(b"\n")
        proc.wait()
        elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):  # 1: some telegrams did not decode (they get error lines)
        raise RuntimeError(f"omshub decode exited with {proc.returncode}")
    return elapsed, cpu, lines


def measure(
    count: int, repeat: int, workers: list[int | None], make_records: Callable[..., list[dict]]
) -> list[tuple[str, str, float, float]]:
    """(corpus, invocation, best telegrams per wall second, best per CPU second) rows."""
    rows = []
    precompile()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpora: list[tuple[str, Path, list[str]]] = []
        single = folder / "one_meter_mode5.txt"
        single.write_text("\n".join(one_meter_corpus(count, make_records)) + "\n")
        corpora.append(("one meter, mode 5", single, ["--key", KEY.hex()]))
        mix = public_mix(count)
        if mix is not None:
            lines, keys = mix
            (folder / "public.txt").write_text("\n".join(lines) + "\n")
            (folder / "keys.csv").write_text("id,key,manufacturer\n" + "".join(f"{i},{k},{m}\n" for i, k, m in keys))
            corpora.append(("public mix", folder / "public.txt", ["--keys", str(folder / "keys.csv")]))
        for name, path, base in corpora:
            for w in workers:
                args = base + ([] if w is None else ["--workers", str(w)])
                best = best_cpu = 0.0
                for _ in range(repeat):
                    elapsed, cpu, written = run_process(args, path)
                    if written != count:
                        raise RuntimeError(f"{name}: {written} output lines for {count} telegrams")
                    best = max(best, count / elapsed)
                    best_cpu = max(best_cpu, count / cpu) if cpu > 0 else best_cpu
                shown = " ".join(Path(a).name if a.startswith(str(folder)) else a for a in args)
                rows.append((name, f"omshub decode {shown} < {path.name}", best, best_cpu))
    return rows


def print_rows(rows: list[tuple[str, str, float, float]], count: int, repeat: int) -> None:
    print(f"\nwhole process (start-up included), {count} telegrams per corpus, best of {repeat}:")
    print(f"{'corpus':20s} {'per wall s':>11s} {'per CPU s':>10s}  invocation")
    for name, invocation, rate, cpu_rate in rows:
        print(f"{name:20s} {rate:11,.0f} {cpu_rate:10,.0f}  {invocation}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="a quick run: 2,000 telegrams, one run each")
    args = parser.parse_args(argv)
    if args.small:
        args.count, args.repeat = 2_000, 1
    # the default invocation (--workers auto: one process per core for a file this large) and one process
    workers: list[int | None] = [None, 1]
    # imported here: benchmarks.decode imports this module (the same reading shape as its corpus)
    from benchmarks.decode import heat_records

    print_rows(measure(args.count, args.repeat, workers, heat_records), args.count, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
