"""`omshub decode`: telegrams (hex, arguments or one per stdin line) -> JSON lines / JSON / a table.

The streaming core :func:`decode_stream` is what the benchmark measures; ``--workers N`` splits
large inputs into chunks decoded by N processes, keeping output order and letting compact frames
use formats learned from full frames earlier in the input (also across chunks).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # the codec is imported inside the commands: `omshub --help` starts without it
    import typer

    from omshub.codec import DecodeError

from omshub.commands.parallel_decode import (
    MAX_LINE,
    _clean,
    _out_fd,
    auto_workers,
    decode_parallel,
)

# JSON lines per write: fewer write calls, while output of a slow live input still flows
# (the stream's own buffer holds a few lines anyway)
WRITE_BATCH = 32


def decode_stream(
    lines: Iterable[str], write: Callable[[bytes], object], *, keys=None, formats=None, crc: str = "auto"
) -> tuple[int, int]:
    """Decode one telegram per line and ``write`` JSON lines, in order.

    Output goes out in batches of up to WRITE_BATCH lines (one ``write`` call each; every call
    ends with a complete line). Returns (decoded, failed). Failures are written as
    ``{"error": {...}, "input": "..."}``.
    """
    import orjson

    from omshub.codec import DecodeError, FormatCache, decode, parse_hex

    if formats is None:
        formats = FormatCache()
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE  # (no copy of the JSON to add the line end)
    fromhex = bytes.fromhex
    join = b"".join
    batch: list[bytes] = []
    append = batch.append
    ok = failed = 0
    for line in lines:
        text = line.strip()
        if not text or text[0] == "#":
            continue
        try:
            if len(text) > MAX_LINE:
                raise DecodeError("too_long", f"input line of {len(text)} characters exceeds {MAX_LINE}")
            try:
                raw = fromhex(text)  # plain hex: the common case, without parse_hex's checks
            except ValueError:
                raw = parse_hex(text)  # separators, or a clear error
            result = decode(raw, keys=keys, formats=formats, crc=crc)
        except DecodeError as exc:
            failed += 1
            append(
                dumps({"error": {"code": exc.code, "message": exc.message}, "input": text[:MAX_LINE]}, option=newline)
            )
        else:
            ok += 1
            append(dumps(result, option=newline))
        if len(batch) >= WRITE_BATCH:
            write(join(batch))
            batch.clear()
    if batch:
        write(join(batch))
    return ok, failed


def iter_results(
    lines: Iterable[str], *, keys=None, formats=None, crc: str = "auto"
) -> Iterator[tuple[str, dict | None, DecodeError | None]]:
    """(input text, result or None, DecodeError or None) per telegram line, in order."""
    from omshub.codec import DecodeError, FormatCache, decode, parse_hex

    if formats is None:
        formats = FormatCache()
    for line in lines:
        text = _clean(line)
        if text is None:
            continue
        try:
            if len(text) > MAX_LINE:
                raise DecodeError("too_long", f"input line of {len(text)} characters exceeds {MAX_LINE}")
            yield text, decode(parse_hex(text), keys=keys, formats=formats, crc=crc), None
        except DecodeError as exc:
            yield text, None, exc


# ---------------------------------------------------------------- parallel decoding: omshub.commands.parallel_decode


def _workers_option(text: str) -> int | None:
    """``--workers`` value: None for auto, else a number of processes 1..256; exit status 2 otherwise."""
    if text == "auto":
        return None
    if text.isdigit() and 1 <= int(text) <= 256:
        return int(text)
    _usage_error(f"omshub decode: --workers must be auto or a number from 1 to 256, not {text!r}")


# ---------------------------------------------------------------- output for people


def _echo(text: str) -> None:
    # what typer.echo does for plain text (this module runs without typer: see standalone_main)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _usage_error(message: str) -> NoReturn:
    """A usage error: the message on standard error, exit status 2 (as typer.Exit(2) gives)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _render_table(results: list[tuple[str, dict | None, DecodeError | None]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for text, result, error in results:
        if error is not None:
            console.print(f"[red]error[/red] {error.code}: {error.message}")
            console.print(f"  input: {text}", highlight=False, markup=False)
            continue
        assert result is not None  # a line without an error has a result
        meter = result["meter"]
        security = result["security"]
        title = (
            f"{meter['manufacturer']} {meter['id']} v{meter['version']} {meter['device_type']} "
            f"(type {meter['device_type_code']}), security mode {security['mode']}"
        )
        if result["transmitter"]:
            tx = result["transmitter"]
            title += f", via {tx['manufacturer']} {tx['id']}"
        if result["access_number"] is not None:
            title += f", access {result['access_number']}"
        table = Table(title=title, title_justify="left")
        for column in ("quantity", "value", "unit", "storage", "tariff", "subunit", "function", "dif_vif"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for record in result["records"]:
            value = record.get("value")
            table.add_row(
                str(record.get("quantity", "")),
                "" if value is None else str(value),
                str(record.get("unit") or ""),
                str(record.get("storage", "")),
                str(record.get("tariff", "")),
                str(record.get("subunit", "")),
                str(record.get("function", "")),
                str(record.get("dif_vif", "")),
            )
        console.print(table)
        if result.get("fields"):
            console.print("fields: " + ", ".join(f"{k}={v}" for k, v in result["fields"].items()), markup=False)


def _load_keys(key: str | None, keys_file: Path | None):
    """KeyRing from --key / --keys; exit status 2 with a message on bad input."""
    from omshub.codec import KeyRing

    default = None
    if key is not None:
        cleaned = key.strip().replace(" ", "")
        try:
            default = bytes.fromhex(cleaned)
        except ValueError:
            default = None
        if default is None or len(default) not in (8, 16):
            _usage_error(
                f"omshub decode: --key must be 32 hex digits (an AES-128 key), got {len(cleaned)} characters"
                + ("" if default is not None else " that are not all hex digits")
            )
    if keys_file is None:
        return KeyRing(default)
    try:
        text = keys_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _usage_error(f"omshub decode: cannot read key file {keys_file}: {exc}")
    try:
        return KeyRing.from_csv(text, default)
    except ValueError as exc:
        _usage_error(f"omshub decode: bad key file {keys_file}: {exc}")


def _explain(lines: Iterable[str], ring, crc: str) -> int:
    """Print the byte-range explanation of each telegram; the number that did not decode."""
    from omshub.codec import DecodeError, FormatCache, parse_hex
    from omshub.codec.explain import explain, render

    formats = FormatCache()  # compact frames after their full frame, as in a decode run
    failed = 0
    for number, line in enumerate(lines, 1):
        text = _clean(line)
        if text is None:
            continue
        try:
            frame = parse_hex(text)
        except DecodeError as exc:
            _echo(f"telegram {number}: {exc.code}: {exc.message}")
            failed += 1
            continue
        result, error, spans = explain(frame, keys=ring, formats=formats, crc=crc)
        meter = (result or (error.partial if error is not None else None) or {}).get("meter") or {}
        who = f"{meter.get('manufacturer')} {meter.get('id')}" if meter.get("id") else "?"
        _echo(f"telegram {number} ({who}, {len(frame)} bytes):")
        _echo(render(result, error, spans))
        failed += error is not None
    return failed


def run_decode(
    telegrams: list[str] | None,
    key: str | None,
    keys_file: Path | None,
    output_format: str,
    workers_text: str,
    crc: str,
    explain: bool,
) -> int:
    """The ``decode`` command: its exit code (0 all decoded, 1 some failed); SystemExit(2) on usage errors."""
    if output_format not in ("jsonl", "json", "table"):
        _usage_error(f"omshub decode: --format must be jsonl, json or table, not {output_format!r}")
    if crc not in ("auto", "A", "B", "none"):
        _usage_error(f"omshub decode: --crc must be auto, A, B or none, not {crc!r}")
    workers = _workers_option(workers_text)
    ring = _load_keys(key, keys_file)
    if not telegrams or telegrams == ["-"]:
        if hasattr(sys.stdin, "reconfigure"):
            # bytes that are not UTF-8 become U+FFFD: the line then fails with invalid_hex (a
            # surrogate escape would reach the JSON of the error line, which cannot hold it)
            sys.stdin.reconfigure(errors="replace")
        lines: Iterable[str] = sys.stdin
        if workers is None:
            workers = auto_workers(sys.stdin)
    else:
        if "-" in telegrams:
            _usage_error("omshub decode: '-' (stdin) cannot be mixed with telegram arguments")
        lines = telegrams
    if explain:
        failed = _explain(lines, ring, crc)
    elif output_format == "jsonl":
        out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
        write = out.write if out is not None else (lambda data: sys.stdout.write(data.decode()))
        try:
            if workers is not None and workers > 1:
                sys.stdout.flush()
                ok, failed = decode_parallel(lines, write, keys=ring, workers=workers, crc=crc, out_fd=_out_fd(out))
            else:
                ok, failed = decode_stream(lines, write, keys=ring, crc=crc)
            sys.stdout.flush()
        except BrokenPipeError:
            # the reader stopped reading (`| head`): no traceback; stdout to /dev/null, so that
            # the interpreter's final flush does not fail again
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    else:
        results = list(iter_results(lines, keys=ring, crc=crc))
        failed = sum(1 for _, _, error in results if error is not None)
        if output_format == "json":
            import orjson

            items = [
                result if error is None else {"error": {"code": error.code, "message": error.message}, "input": text}
                for text, result, error in results
            ]
            document = items[0] if len(items) == 1 else items
            _echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        else:
            _render_table(results)
    return 1 if failed else 0


def register(app: typer.Typer) -> None:
    import typer

    @app.command("decode")
    def decode_command(
        telegrams: list[str] | None = typer.Argument(
            None, metavar="[TELEGRAM]...", help="Telegrams in hex; none or '-' reads one per line from stdin."
        ),
        key: str | None = typer.Option(None, "--key", help="AES-128 key (32 hex digits) for all meters."),
        keys_file: Path | None = typer.Option(
            None, "--keys", help="CSV file of keys: header row, columns id, key, optional manufacturer."
        ),
        output_format: str = typer.Option("jsonl", "--format", help="jsonl | json | table"),
        workers_text: str = typer.Option(
            "auto",
            "--workers",
            help="Processes (jsonl): auto = one per core when stdin is a file of 4 MiB or more, else 1; "
            "or a number 1..256 (output and its order are the same).",
        ),
        crc: str = typer.Option(
            "auto",
            "--crc",
            help="Link-layer CRCs in the input: auto | A | B | none "
            "(none/A/B when the receiver's behaviour is known; skips the detection).",
        ),
        explain: bool = typer.Option(
            False,
            "--explain",
            help="Per byte range: which layer and rule read it, and what is kept as hex and why (instead of JSON).",
        ),
    ) -> None:
        """Decode wireless / wired M-Bus and OMS telegrams into the uniform record format."""
        raise typer.Exit(run_decode(telegrams, key, keys_file, output_format, workers_text, crc, explain))


# options with a value, by the name of run_decode's parameter
_VALUE_OPTIONS = {
    "--key": "key",
    "--keys": "keys_file",
    "--format": "output_format",
    "--workers": "workers_text",
    "--crc": "crc",
}


def parse_plain_args(args: list[str]) -> dict | None:
    """run_decode's arguments from a plain command line (``--opt value``, ``--opt=value``,
    ``--explain``, telegrams), or None for anything else (help, unknown or incomplete options,
    ``--``): typer handles those, with its own messages."""
    options: dict = {"telegrams": [], "key": None, "keys_file": None, "output_format": "jsonl"}
    options.update(workers_text="auto", crc="auto", explain=False)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--explain":
            options["explain"] = True
        elif arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if name not in _VALUE_OPTIONS:
                return None
            if not equals:
                if i >= len(args) or args[i].startswith("--"):
                    return None
                value = args[i]
                i += 1
            options[_VALUE_OPTIONS[name]] = value  # the last one counts, as with typer
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            options["telegrams"].append(arg)
    if options["keys_file"] is not None:
        options["keys_file"] = Path(options["keys_file"])
    options["telegrams"] = options["telegrams"] or None
    return options


def standalone_main(args: list[str]) -> None:
    """``omshub decode ARGS`` (see omshub.__main__): a plain command line runs without building a
    typer app (whose parameter types import pydantic: a third of the start-up); anything else goes
    through :func:`standalone_app`."""
    options = parse_plain_args(args)
    if options is None:
        standalone_app()(["decode", *args])
        return
    sys.exit(run_decode(**options))


def standalone_app() -> typer.Typer:
    """An `omshub` app with only this command; its options, help and errors are those of the full
    app's ``decode``."""
    import typer

    app = typer.Typer(name="omshub", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """omshub: remote reading of OMS / wireless M-Bus meters."""

    register(app)
    return app
