"""Decode throughput: `python -m benchmarks.decode [--count N] [--pool N] [--profile]`.

Builds with the encoder a mixed corpus of heat-meter telegrams (12 records each; plain, mode 5,
mode 7, ELL AES-CTR and compact frames; one key per meter), runs it through the exact function
`omshub decode` uses (`decode_stream`: hex line -> decode -> orjson line, into an in-memory sink)
and prints telegrams/s per kind and overall, the peak memory, and for comparison a naive decode
(a fresh cipher per telegram, no key ring, `json.dumps`) of the same telegrams in the same process.

Then it runs the whole `omshub decode` process (start-up included, JSON lines to a pipe) on a
one-meter mode-5 corpus and on a mix of every telegram of the public corpus, ``--process-count``
telegrams each, in the default invocation (``--workers auto``) and with ``--workers 1`` (see
:mod:`benchmarks.decode_process`).

The mixed corpus is also run with `crc="none"` (what `omshub decode --crc none` does when the
receiver is known to strip CRCs): the difference is the cost of format-B detection.

The corpus cycles through a pool of distinct encoded frames (encoding is much slower than
decoding); nothing is cached per frame by the decoder, so repetition does not flatter it. Each
meter is of one of two heat-meter models, i.e. sends fixed record headers (as real meters do;
the decoder's layers memoise per record layout); one more line shows the worst case, a layout
that varies from telegram to telegram (``--varying`` runs everything that way).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time

from benchmarks import decode_process
from omshub.codec import FormatCache, KeyRing, decode, encode_telegram, parse_hex
from omshub.commands.decode import decode_stream

KINDS = ("plain", "mode5", "mode7", "ell", "compact")

# CPU time of this process: rates per core, robust against other load on the machine.
_clock = time.process_time


# Real heat meters send the same record headers telegram after telegram (a model's layout);
# only the values change. Two common layouts (docs/protocol.md §8.4): header per record, in order.
MODEL_LAYOUTS = (
    ("0406", "0414", "042B", "023B", "0259", "025D", "0261", "046D", "01FD17", "426C", "4406", "4414"),
    ("0C06", "0C14", "0A2D", "0B3B", "0A5A", "0A5E", "0A62", "046D", "02FD17", "426C", "4C06", "4C14"),
)


def heat_records(rng: random.Random, model: int | None = None) -> list[dict]:
    """A typical OMS heat meter reading (docs/protocol.md §10.1): 12 records. With ``model`` (an index into
    MODEL_LAYOUTS) every record has that model's fixed header; without, the encoder picks the
    smallest coding per value (so the layout varies from telegram to telegram: a worst case)."""
    energy = rng.randint(1_000, 90_000)
    volume = round(rng.uniform(100, 9_000), 2)
    flow = round(rng.uniform(40, 90), 1)
    back = round(flow - rng.uniform(5, 30), 1)

    def rec(quantity, unit, value, storage=0, function="instantaneous"):
        return {
            "quantity": quantity,
            "unit": unit,
            "value": value,
            "storage": storage,
            "tariff": 0,
            "subunit": 0,
            "function": function,
        }

    records = [
        rec("energy", "kWh", float(energy)),
        rec("volume", "m3", volume),
        rec("power", "kW", round(rng.uniform(0, 30), 1)),
        rec("volume_flow", "m3/h", round(rng.uniform(0, 2), 3)),
        rec("flow_temperature", "°C", flow),
        rec("return_temperature", "°C", back),
        rec("temperature_difference", "K", round(flow - back, 1)),
        rec(
            "datetime",
            "",
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        ),
        rec("error_flags", "", 0),
        rec("date", "", "2025-12-31", storage=1),
        rec("energy", "kWh", float(energy - rng.randint(100, 900)), storage=1),
        rec("volume", "m3", round(volume - rng.uniform(1, 50), 2), storage=1),
    ]
    if model is not None:
        for record, header in zip(records, MODEL_LAYOUTS[model], strict=False):
            record["dif_vif"] = header
    return records


def build_pool(
    size: int, seed: int = 1, varying: bool = False
) -> tuple[dict[str, list[str]], KeyRing, dict[str, bytes]]:
    """``size`` distinct telegrams (hex) per kind, the key ring and each meter's key. Each meter
    is of one model (fixed layout), unless ``varying``: then every telegram's layout may differ."""
    rng = random.Random(seed)
    ring = KeyRing()
    keys: dict[str, bytes] = {}
    pool: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for i in range(size):
        for kind in KINDS:
            if kind == "compact":
                continue
            meter = {
                "manufacturer": "KAM" if kind == "ell" else "EFE",
                "id": f"{10_000_000 + i * 8 + KINDS.index(kind):08d}",
                "version": 1 + KINDS.index(kind),
                "device_type_code": 4,
            }
            key = rng.randbytes(16)
            ring.add(meter["id"], key, meter["manufacturer"])
            keys[meter["id"]] = key
            records = heat_records(rng, None if varying else i % len(MODEL_LAYOUTS))
            access = rng.randint(0, 255)
            if kind == "plain":
                frame = encode_telegram(meter, records, access_number=access)
            elif kind == "mode5":
                frame = encode_telegram(meter, records, mode=5, key=key, access_number=access)
            elif kind == "mode7":
                frame = encode_telegram(
                    meter, records, mode=7, key=key, access_number=access, message_counter=rng.randint(0, 1 << 30)
                )
            else:  # Kamstrup style: ELL 8D (AES-CTR) around CI 78, and its compact CI 79 sibling
                frame = encode_telegram(meter, records, tpl="none", ell="8D", key=key, access_number=access)
                # the next transmission of the same reading, compact (its format = the full frame's)
                pool["compact"].append(
                    encode_telegram(
                        meter, records, tpl="none", ell="8D", key=key, compact=True, access_number=(access + 1) & 0xFF
                    ).hex()
                )
            pool[kind].append(frame.hex())
    return pool, ring, keys


def mixed_corpus(pool: dict[str, list[str]], count: int) -> list[str]:
    """Kinds interleaved; meter j's full ELL frame always precedes its compact frames."""
    size = len(pool["plain"])
    return [pool[KINDS[i % len(KINDS)]][(i // len(KINDS)) % size] for i in range(count)]


class CountingSink:
    """In-memory sink: counts the JSON bytes written, keeps the last write (a batch of lines)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.last = b""

    def write(self, data: bytes) -> None:
        self.bytes += len(data)
        self.last = data


def run_fast(
    lines: list[str], ring: KeyRing, formats: FormatCache | None = None, crc: str = "auto"
) -> tuple[float, CountingSink, int]:
    sink = CountingSink()
    start = _clock()
    ok, failed = decode_stream(lines, sink.write, keys=ring, formats=formats, crc=crc)
    elapsed = _clock() - start
    return elapsed, sink, failed


def run_naive(lines: list[str], keys: dict[str, bytes]) -> float:
    """A straightforward decode: the key looked up in a plain dict, a fresh AES context per
    telegram, json.dumps, a new format cache for nothing reused."""
    formats = FormatCache()
    start = _clock()
    for text in lines:
        raw = parse_hex(text)
        meter_id = raw[7:3:-1].hex().upper()
        try:
            result = decode(raw, key=keys.get(meter_id), formats=formats)
        except Exception as exc:
            result = {"error": str(exc)}
        json.dumps(result)
    return _clock() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="telegrams in the mixed corpus (default 100000)")
    parser.add_argument("--pool", type=int, default=500, help="distinct telegrams per kind (default 500)")
    parser.add_argument("--naive", type=int, default=20_000, help="telegrams for the naive baseline (default 20000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the mixed run")
    parser.add_argument(
        "--process-count",
        type=int,
        default=50_000,
        help="telegrams per corpus for the whole-process runs of `omshub decode` (default 50000; 0 skips them)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="whole-process runs per figure; the best counts")
    parser.add_argument(
        "--varying",
        action="store_true",
        help="every telegram's record layout may differ (worst case; real meters keep theirs)",
    )
    parser.add_argument("--small", action="store_true", help="a quick run: small corpora, one whole-process run each")
    args = parser.parse_args(argv)
    if args.small:
        args.count, args.pool, args.naive, args.process_count, args.repeat = 2_000, 20, 500, 2_000, 1

    t0 = time.perf_counter()
    pool, ring, keys = build_pool(args.pool, varying=args.varying)
    corpus = mixed_corpus(pool, args.count)
    layouts = "varying record layouts" if args.varying else f"{len(MODEL_LAYOUTS)} meter models (fixed layouts)"
    print(
        f"corpus: {len(corpus)} telegrams ({len(KINDS)} kinds, {args.pool} distinct each, {layouts}), "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    print(f"python {sys.version.split()[0]}, one process; rates are per CPU second (process time)\n")

    # per kind (compact needs the formats its ELL full frames teach)
    formats = FormatCache()
    per_kind = max(1, args.count // len(KINDS))
    print(f"{'kind':10s} {'telegrams/s':>12s} {'µs/telegram':>12s}")
    for kind in KINDS:
        lines = [pool[kind][i % len(pool[kind])] for i in range(per_kind)]
        elapsed, sink, failed = run_fast(lines, ring, formats if kind in ("ell", "compact") else None)
        if failed:
            print(f"  {kind}: {failed} telegrams failed; last output {sink.last[-300:]!r}")
            return 1
        print(f"{kind:10s} {per_kind / elapsed:12,.0f} {elapsed / per_kind * 1e6:12.1f}")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        run_fast(corpus, ring)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)

    elapsed, sink, failed = run_fast(corpus, ring)
    overall = len(corpus) / elapsed
    print(
        f"\nmixed     {overall:12,.0f} {elapsed / len(corpus) * 1e6:12.1f}   "
        f"({sink.bytes / len(corpus):.0f} JSON bytes/telegram, {failed} failed)"
    )

    elapsed, sink, failed = run_fast(corpus, ring, crc="none")
    print(
        f"mixed     {len(corpus) / elapsed:12,.0f} {elapsed / len(corpus) * 1e6:12.1f}   "
        "(`--crc none`: receiver known to strip CRCs, no format-B check)"
    )

    if not args.varying:  # the worst case next to it: a layout memo cannot help
        other_pool, other_ring, _ = build_pool(max(1, args.pool // 5), seed=2, varying=True)
        other = mixed_corpus(other_pool, max(1, args.count // 5))
        elapsed, sink, failed = run_fast(other, other_ring)
        print(
            f"mixed     {len(other) / elapsed:12,.0f} {elapsed / len(other) * 1e6:12.1f}   "
            f"(record layout varying from telegram to telegram, {len(other)} telegrams: `--varying`)"
        )

    naive_lines = corpus[: args.naive]
    naive = len(naive_lines) / run_naive(naive_lines, keys)
    fast_same = len(naive_lines) / run_fast(naive_lines, ring)[0]
    print(
        f"naive     {naive:12,.0f}   (fresh cipher per telegram, json.dumps; same {len(naive_lines)} telegrams: "
        f"fast path {fast_same:,.0f}/s = {fast_same / naive:.2f}x)"
    )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS  {peak_kib / 1024:.0f} MiB (whole process incl. the corpus)")

    if args.process_count > 0:
        # the default invocation (--workers auto: a process per core for files this large) and one process
        rows = decode_process.measure(args.process_count, args.repeat, [None, 1], heat_records)
        decode_process.print_rows(rows, args.process_count, args.repeat)
        print(f"(naive in-process baseline above: {naive:,.0f} telegrams per CPU second)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
