"""``omshub simulate …``: generate a fleet file, export its keys and meters, run its radio.

The simulator's modules are imported inside the commands that use them ("lazy" below): every
`omshub` command line registers this module, and the simulator with the codec it brings costs
~0.6 s to import (python -X importtime); rich's progress bar likewise only when it is drawn.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import NoReturn, TextIO

import orjson
import typer

from omshub.commands import fail, say

sim_app = typer.Typer(
    help="Simulated OMS meter fleets: fleet files, keys, meter lists and telegrams.", no_args_is_help=True
)


class OutputFormat(str, Enum):  # noqa: UP042 - typer reads choices from a str Enum
    hex = "hex"
    jsonl = "jsonl"
    rtlwmbus = "rtlwmbus"


def _fail(message: str, code: int = 2) -> NoReturn:
    fail("omshub simulate", message, code)


def _exists(path) -> NoReturn:
    _fail(say(f"{path} exists; use --force to overwrite it", f"{path} existiert schon; mit --force überschreiben"))


def _cannot_write(path, exc: OSError) -> NoReturn:
    _fail(
        say(f"cannot write {path}: {exc.strerror or exc}", f"{path} lässt sich nicht schreiben: {exc.strerror or exc}")
    )


def _load(path: Path):
    from omshub.sim.fleet import FleetError, load_fleet  # lazy

    try:
        return load_fleet(path)
    except FleetError as exc:
        _fail(str(exc))


def _write(text: str, output: str, force: bool, what: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    if path.exists() and not force:
        _exists(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _cannot_write(path, exc)
    typer.echo(f"wrote {what} to {path}", err=True)


@sim_app.command("init-fleet")
def init_fleet(
    gateways: int = typer.Option(20, "--gateways", min=1, max=100_000, help="number of gateways (one building each)"),
    meters: int = typer.Option(1000, "--meters", min=0, max=1_000_000, help="meters in total"),
    seed: int = typer.Option(1, "--seed", min=0, help="seed of every random choice"),
    name: str = typer.Option("simulated", "--name", help="fleet name"),
    neighbours: int = typer.Option(
        3, "--neighbours", min=0, max=1000, help="foreign meters near each gateway (in no meter list)"
    ),
    output: str = typer.Option("fleet.toml", "-o", "--output", help="fleet file to write ('-' = stdout)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Generate a fleet file with a realistic mix of heat, water and heat cost allocator meters."""
    from omshub.sim.fleet import FleetError, parse_fleet  # lazy
    from omshub.sim.generate import generate_fleet_toml

    try:
        text = generate_fleet_toml(gateways, meters, seed=seed, name=name, neighbours=neighbours)
        parse_fleet(text, "generated fleet")  # never write a file we could not load
    except (ValueError, FleetError) as exc:
        _fail(str(exc))
    _write(text, output, force, f"fleet of {gateways} gateways and {meters} meters")


@sim_app.command("keys")
def keys(
    fleet: Path = typer.Argument(..., help="fleet file"),
    output: str = typer.Option("-", "-o", "--output", help="CSV file to write ('-' = stdout)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write the meters' AES keys in the head-end's import format (id,key,manufacturer)."""
    f = _load(fleet)
    _write(f.keys_csv(), output, force, f"{len(f.meters)} keys")


@sim_app.command("meters")
def meters(
    fleet: Path = typer.Argument(..., help="fleet file"),
    output: str = typer.Option("-", "-o", "--output", help="CSV file to write ('-' = stdout)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write the meter list in the head-end's import format
    (manufacturer,id,device_type,gateway,metering_point,address,customer_ref)."""
    f = _load(fleet)
    _write(f.meters_csv(), output, force, f"{len(f.meters)} meters")


def _parse_start(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        _fail(
            say(
                f"--start {text!r} is not an ISO date or date-time (e.g. 2026-01-01 or 2026-01-01T02:00:00Z)",
                f"--start {text!r} ist kein ISO-Datum und keine ISO-Zeit (z. B. 2026-01-01 oder 2026-01-01T02:00:00Z)",
            )
        )
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _line(fmt: OutputFormat, serial: str, frame, multi: bool) -> str:
    ts = datetime.fromtimestamp(frame.rx_time, UTC)
    if fmt is OutputFormat.hex:  # the gateway's hexfile source format: HEX;RSSI;MODE
        return f"{frame.raw.hex().upper()};{frame.rssi};{frame.link_mode}\n"
    if fmt is OutputFormat.rtlwmbus:
        ident = frame.raw[4:8][::-1].hex().upper() if len(frame.raw) >= 8 else "00000000"
        stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
        magnitude = max(0, min(255, 2 * (frame.rssi + 150)))  # rtl_wmbus RSSI is unitless
        return f"{frame.link_mode};1;1;{stamp};{magnitude};{magnitude};{ident};0x{frame.raw.hex()}\n"
    rec = {
        "rx": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "mode": frame.link_mode,
        "rssi": frame.rssi,
        "hex": frame.raw.hex().upper(),
    }
    if multi:
        rec = {"gw": serial, **rec}
    return orjson.dumps(rec).decode() + "\n"


@sim_app.command("run")
def run(
    fleet: Path = typer.Argument(..., help="fleet file"),
    start: str = typer.Option(..., "--start", help="start (ISO date or date-time; UTC unless a zone is given)"),
    days: float | None = typer.Option(
        None, "--days", min=0.0, max=3660.0, help="simulated days (default 1 unless --hours is given)"
    ),
    hours: float = typer.Option(0.0, "--hours", min=0.0, max=87_840.0, help="simulated hours (added to --days)"),
    gateway: list[str] | None = typer.Option(None, "--gateway", help="gateway serial (repeatable; default all)"),
    fmt: OutputFormat = typer.Option(
        OutputFormat.hex, "--format", help="hex (HEX;RSSI;MODE, the gateway's hexfile source), jsonl, rtlwmbus"
    ),
    output: str = typer.Option("-", "-o", "--output", help="file to write ('-' = stdout)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress on stderr"),
) -> None:
    """Write the telegrams the gateways hear, in receive order."""
    from omshub.sim.fleet import FleetError  # lazy
    from omshub.sim.radio import iter_transmissions

    f = _load(fleet)
    t0 = _parse_start(start)
    if days is None:
        days = 0.0 if hours else 1.0
    t1 = t0 + timedelta(days=days, hours=hours)
    if t1 <= t0:
        _fail(
            say(
                "nothing to simulate: --days/--hours give an empty time range",
                "nichts zu simulieren: --days/--hours ergeben einen leeren Zeitraum",
            )
        )
    serials = gateway or None
    if serials:
        unknown = [s for s in serials if s not in f.gateways]
        if unknown:
            _fail(say(f"no gateway {unknown[0]!r} in fleet {f.name!r}", f"kein Gateway {unknown[0]!r} in {f.name!r}"))
    multi = serials is None or len(serials) > 1
    if fmt is OutputFormat.hex and multi:
        typer.echo(
            "note: hex lines do not say which gateway heard them; use --gateway SERIAL or --format jsonl", err=True
        )
    if output != "-" and Path(output).exists() and not force:
        _exists(output)
    try:
        out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        _cannot_write(output, exc)
    span = (t1 - t0).total_seconds()
    count = 0
    began = time.monotonic()
    try:
        stream = iter_transmissions(f, t0, t1, gateways=serials)
        if progress and sys.stderr.isatty():
            count = _write_with_progress(stream, out, fmt, multi, t0.timestamp(), span)
        else:
            for serial, frame in stream:
                out.write(_line(fmt, serial, frame, multi))
                count += 1
    except (FleetError, ValueError) as exc:  # ValueError: a time range outside the fleet's 30 simulated years
        _fail(str(exc))
    except BrokenPipeError:
        return
    finally:
        if out is not sys.stdout:
            out.close()
    took = time.monotonic() - began
    typer.echo(
        f"{count} telegrams from {t0.isoformat()} to {t1.isoformat()} in {took:.1f} s "
        f"({count / max(took, 1e-9):.0f} telegrams/s)",
        err=True,
    )


def _write_with_progress(stream: Iterator, out: TextIO, fmt: OutputFormat, multi: bool, t0: float, span: float) -> int:
    """Write the stream's lines with a progress bar on standard error; return how many were written."""
    from rich.console import Console  # lazy: rich's progress costs start-up time the plain path does not need
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    count = 0
    with Progress(
        TextColumn("[bold]simulating[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[count]} telegrams"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("sim", total=span, count=0)
        for serial, frame in stream:
            out.write(_line(fmt, serial, frame, multi))
            count += 1
            if count % 500 == 0:
                bar.update(task, completed=min(span, frame.rx_time - t0), count=count)
        bar.update(task, completed=span, count=count)
    return count


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="simulate")
