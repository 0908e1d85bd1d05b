"""`omshub decode --workers N`: large inputs decoded in chunks by N processes (see
:func:`decode_parallel`), with the line and chunk conventions the sequential decoder shares.

Split from :mod:`omshub.commands.decode` (which re-exports :func:`decode_parallel`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from os import write as os_write

CHUNK_LINES = 2000
# a block of input text per worker task, when reading a file: about CHUNK_LINES telegrams of 100 hex digits
CHUNK_CHARS_PER_LINE = 100
# `--workers auto` (the default) decodes a regular file on stdin of at least this size with one
# process per core: about 25,000 telegrams, where the workers' start (~0.1 s) has paid for itself.
# Pipes and terminals (live input) stay in one process, so every line's JSON follows it at once.
AUTO_PARALLEL_BYTES = 4 << 20
MAX_LINE = 8192  # characters; a wM-Bus frame in hex is at most ~1 KiB


def _clean(line: str) -> str | None:
    """The telegram text of an input line, or None for blank and comment lines."""
    text = line.strip()
    if not text or text[0] == "#":
        return None
    return text


# Set once per worker process by the pool initializer (the key ring is sent to each worker once).
_WORKER_RING = None
_WORKER_CRC = "auto"


# With ``out_fd`` (decode_parallel): the output file descriptor, the number of the chunk whose
# turn it is to be written, and the condition that guards it.
_WORKER_OUT: tuple | None = None


def _worker_init(entries, default, crc, out=None) -> None:
    global _WORKER_RING, _WORKER_CRC, _WORKER_OUT
    from omshub.codec import KeyRing

    _WORKER_OUT = out
    ring = KeyRing(default)
    for meter_id, manufacturer, key in entries:
        ring.add(meter_id, key, manufacturer)
    _WORKER_RING = ring
    _WORKER_CRC = crc


def _decode_chunk(lines: list[str] | str) -> tuple[bytes | list, list, list, int, int]:
    """Decode a chunk in a worker: (output, deferred, learned, failed, decoded).

    ``lines``: the telegram lines, or a block of input text (whole lines; blank and comment lines
    are skipped here, so the parent only cuts the input into blocks).

    ``output`` is the chunk's JSON lines as one bytes object (one pickle and one write for the
    parent), or, when some telegram is a compact frame whose format was unknown in this chunk, a
    list with one JSON line per telegram and None for those (listed in ``deferred`` as (i, text)).
    ``learned`` lists (i, manufacturer, id, signature, format) for every format taught by telegram
    i; ``failed`` counts the error lines, ``decoded`` the others (not counting the deferred)."""
    import orjson

    from omshub.codec import DecodeError, FormatCache, decode, parse_hex

    learned: list = []
    position = [0]

    class Recording(FormatCache):
        def put(self, manufacturer, meter_id, signature, fmt):
            if self._formats.get((manufacturer, meter_id, signature)) == fmt:
                return  # the same format again (every full frame of a meter): replaying it changes nothing
            super().put(manufacturer, meter_id, signature, fmt)
            learned.append((position[0], manufacturer, meter_id, signature, bytes(fmt)))

    if isinstance(lines, str):
        lines = [text for text in map(str.strip, lines.split("\n")) if text and text[0] != "#"]

    formats = Recording()
    outputs: list = []
    deferred: list = []
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    fromhex = bytes.fromhex
    ring, crc = _WORKER_RING, _WORKER_CRC
    failed = 0
    for text in lines:
        position[0] = index = len(outputs)
        try:
            if len(text) > MAX_LINE:
                raise DecodeError("too_long", f"input line of {len(text)} characters exceeds {MAX_LINE}")
            try:
                raw = fromhex(text)  # plain hex: the common case (as decode_stream)
            except ValueError:
                raw = parse_hex(text)
            outputs.append(dumps(decode(raw, keys=ring, formats=formats, crc=crc), option=newline))
        except DecodeError as exc:
            if exc.code == "unknown_format":
                outputs.append(None)
                deferred.append((index, text))
            else:
                failed += 1
                error = {"error": {"code": exc.code, "message": exc.message}, "input": text[:MAX_LINE]}
                outputs.append(dumps(error, option=newline))
    ok = len(outputs) - len(deferred) - failed
    return (outputs if deferred else b"".join(outputs)), deferred, learned, failed, ok


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os_write(fd, view) :]


def _wait_turn(out: tuple, number: int, data: bytes) -> None:
    """Write chunk ``number``'s output to the shared file descriptor once every earlier chunk's is
    written (the turn passes from chunk to chunk). The parent's way: it reads the results in
    order, so when it holds chunk ``number`` every earlier one is written or was its own."""
    fd, turn, condition = out
    with condition:
        condition.wait_for(lambda: turn.value == number)
        _write_all(fd, data)
        turn.value = number + 1
        condition.notify_all()


def _write_if_turn(out: tuple, number: int, data: bytes) -> bool:
    """Write chunk ``number``'s output if it is its turn now (every earlier chunk written) and no
    one else is writing; False otherwise (a worker never waits: it hands the output to the parent,
    which writes it in its turn, and takes the next chunk)."""
    fd, turn, condition = out
    if not condition.acquire(False):
        return False
    try:
        if turn.value != number:
            return False
        _write_all(fd, data)
        turn.value = number + 1
        condition.notify_all()
        return True
    finally:
        condition.release()


def _decode_chunk_direct(task: tuple[int, list[str] | str]) -> tuple[bytes | list | None, list, list, int, int]:
    """:func:`_decode_chunk` of task (number, lines) that writes a complete chunk's output itself
    when it is its turn (output None): most of the JSON does not pass through the parent."""
    number, lines = task
    output, deferred, learned, failed, ok = _decode_chunk(lines)
    if isinstance(output, bytes) and _WORKER_OUT is not None and _write_if_turn(_WORKER_OUT, number, output):
        return None, deferred, learned, failed, ok
    return output, deferred, learned, failed, ok


def _blocks(stream, size: int) -> Iterator[str]:
    """A text stream cut into blocks of about ``size`` characters that end at a line end (the
    last may not): the workers split them into lines, the parent touches no line."""
    rest = ""
    while True:
        data = stream.read(size)
        if not data:
            break
        end = data.rfind("\n")
        if end < 0:
            rest += data
            continue
        yield rest + data[: end + 1]
        rest = data[end + 1 :]
    if rest:
        yield rest


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        text = _clean(line)
        if text is None:
            continue
        chunk.append(text)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _complete(outputs: list, deferred: list, learned: list, formats, keys, crc: str) -> None:
    """Fill in a chunk's deferred compact frames, in input order, with the formats learned by all
    chunks so far (``formats``) and by this chunk's earlier telegrams."""
    import orjson

    from omshub.codec import DecodeError, decode, parse_hex

    events = sorted(
        [(i, 0, item) for i, *item in learned] + [(i, 1, text) for i, text in deferred],
        key=lambda event: (event[0], event[1]),
    )
    for index, kind, item in events:
        if kind == 0:
            manufacturer, meter_id, signature, fmt = item
            formats.put(manufacturer, meter_id, signature, fmt)
            continue
        try:
            outputs[index] = orjson.dumps(decode(parse_hex(item), keys=keys, formats=formats, crc=crc)) + b"\n"
        except DecodeError as exc:
            outputs[index] = orjson.dumps({"error": {"code": exc.code, "message": exc.message}, "input": item}) + b"\n"


def decode_parallel(
    lines: Iterable[str],
    write: Callable[[bytes], object],
    *,
    keys,
    workers: int,
    chunk_lines: int = CHUNK_LINES,
    crc: str = "auto",
    out_fd: int | None = None,
) -> tuple[int, int]:
    """Like :func:`decode_stream` with ``workers`` processes; same output, same order.

    With ``out_fd`` (a file descriptor; ``write`` is then not used) a worker writes its chunk's
    JSON lines to it itself when it is the chunk's turn (every earlier chunk written) and the
    descriptor free; otherwise, without waiting, it hands them to the parent, which writes them in
    turn. Most of the output is then not copied through the parent.
    """
    import multiprocessing

    from omshub.codec import FormatCache
    from omshub.codec.drivers import registry

    registry()  # the driver files parsed once, before the fork: every worker has them without parsing
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    formats = FormatCache()  # replays, in input order, every format learned by any chunk
    ok = failed = 0
    entries = keys.entries() if keys is not None else []
    default = keys.default if keys is not None else None
    # a text file (stdin) is cut into blocks of whole lines, the lines split in the workers
    chunks: Iterator[list[str] | str] = (
        _blocks(lines, chunk_lines * CHUNK_CHARS_PER_LINE)
        if hasattr(lines, "read") and hasattr(lines, "buffer")
        else _chunks(lines, chunk_lines)
    )
    out = None
    if out_fd is not None:
        out = (out_fd, context.RawValue("q", 0), context.Condition())
        numbered: Iterator[tuple[int, list[str] | str]] = enumerate(chunks)
    initargs = (entries, default, crc, out)
    with context.Pool(workers, initializer=_worker_init, initargs=initargs) as pool:
        results = (
            pool.imap(_decode_chunk, chunks, chunksize=1)
            if out is None
            else pool.imap(_decode_chunk_direct, numbered, chunksize=1)
        )
        for number, (output, deferred, learned, chunk_failed, chunk_ok) in enumerate(results):
            if output is None:  # written by the worker
                for _i, manufacturer, meter_id, signature, fmt in learned:
                    formats.put(manufacturer, meter_id, signature, fmt)
                failed += chunk_failed
                ok += chunk_ok
                continue
            if out is not None:
                write = partial(_wait_turn, out, number)
            if isinstance(output, bytes):  # nothing deferred: the chunk is complete
                for _i, manufacturer, meter_id, signature, fmt in learned:
                    formats.put(manufacturer, meter_id, signature, fmt)
                failed += chunk_failed
                ok += chunk_ok
                write(output)
                continue
            _complete(output, deferred, learned, formats, keys, crc)
            lines_out: list[bytes] = output
            for line in lines_out:
                if line.startswith(b'{"error"'):
                    failed += 1
                else:
                    ok += 1
            write(b"".join(lines_out))
    return ok, failed


def _out_fd(stream) -> int | None:
    """The file descriptor of a real output stream (the workers write to it), or None."""
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def auto_workers(stream) -> int:
    """Processes for ``--workers auto``: the usable cores when ``stream`` is a regular file of at
    least AUTO_PARALLEL_BYTES not yet read, else 1 (pipes, terminals, small files)."""
    import os
    import stat

    try:
        fd = stream.fileno()
        info = os.fstat(fd)
        remaining = info.st_size - os.lseek(fd, 0, os.SEEK_CUR)
    except (AttributeError, OSError, ValueError):  # no file descriptor (tests, StringIO), not seekable
        return 1
    if not stat.S_ISREG(info.st_mode) or remaining < AUTO_PARALLEL_BYTES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)
