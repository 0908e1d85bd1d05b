"""`omshub demo`: the whole system on one machine — head-end, simulated meters, real gateway agents.

Starts `omshub serve` on SQLite in the data directory, creates a demo tenant with an admin user and
an API token, generates a fleet with the simulator, registers its gateways and imports its meters
and keys through the API, then runs every gateway agent (in this process, on one accelerated
simulated clock) until the simulated period reaches today; shows progress, prints where to look and
keeps the head-end running until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from omshub.commands import fail, say


def _fail(message: str, code: int = 2) -> NoReturn:
    fail("omshub demo", message, code)


def demo(
    gateways: int = typer.Option(20, "--gateways", min=1, max=2000, help="simulated gateways (one building each)"),
    meters: int = typer.Option(1000, "--meters", min=1, max=100_000, help="simulated meters (at most 250 per gateway)"),
    days: float = typer.Option(28.0, "--days", min=0.1, max=366, help="simulated days, ending today"),
    speed: float = typer.Option(
        0.0,
        "--speed",
        min=0,
        help="simulated seconds per real second; 0 (default): as fast as the "
        "machine can (discrete-event time). High speeds cut listen windows "
        "short when the simulator cannot keep up",
    ),
    data_dir: Path = typer.Option(Path("omshub-demo"), "--data-dir", help="where the database, fleet and logs go"),
    host: str = typer.Option("127.0.0.1", "--host", help="head-end bind address"),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="head-end HTTP port"),
    seed: int = typer.Option(1, "--seed", min=0, help="fleet seed (same seed, same fleet)"),
    fresh: bool = typer.Option(False, "--fresh", help="delete an earlier demo in --data-dir first"),
    exit_when_done: bool = typer.Option(
        False, "--exit-when-done", help="stop the head-end when the simulation is done (for tests)"
    ),
) -> None:
    """Run the demo: `pip install .` and `omshub demo` is all it takes."""
    from omshub.demo import DemoError, DemoOptions, port_free  # lazy: start-up cost (see _run)

    if meters > gateways * 250:
        _fail(
            say(
                f"{meters} meters need at least {-(-meters // 250)} gateways (a gateway listens to at most 250)",
                f"{meters} Zähler brauchen mindestens {-(-meters // 250)} Gateways (ein Gateway hört höchstens 250)",
            )
        )
    if (data_dir / "omshub.db").exists():
        if not fresh:
            _fail(
                say(
                    f"{data_dir}/ holds an earlier demo; run with --fresh to start over or pick another --data-dir",
                    f"{data_dir}/ enthält eine frühere Demo; mit --fresh neu beginnen "
                    "oder ein anderes --data-dir wählen",
                )
            )
        shutil.rmtree(data_dir)
    if not port_free(host, port):
        _fail(
            say(
                f"port {port} on {host} is in use; pick another with --port",
                f"Port {port} auf {host} ist belegt; mit --port einen anderen wählen",
            )
        )
    opts = DemoOptions(
        data_dir=data_dir.resolve(),
        gateways=gateways,
        meters=meters,
        days=days,
        speed=speed,
        host=host,
        port=port,
        seed=seed,
        exit_when_done=exit_when_done,
        fresh=fresh,
    )
    try:
        _run(opts)
    except DemoError as exc:
        _fail(str(exc), 1)


def _run(opts) -> None:
    # lazy: start-up cost — `omshub` imports this module for every command, omshub.demo (httpx, the
    # gateway agent, the simulator) takes about a second to import (python -X importtime)
    from omshub.demo import HeadEnd, ServeProcess, bootstrap_tenant, prepare_fleet, provision
    from omshub.demo_billing import provision_master_data
    from omshub.demo_customers import provision_customer

    console = Console()
    live_display = console.is_terminal  # else (a pipe, a log file) plain progress lines every few seconds

    def step(message: str):
        if live_display:
            return console.status(message)
        console.print(f"{message} ...")
        return contextlib.nullcontext()

    _private_data_dir(opts.data_dir)
    database_url = f"sqlite:///{(opts.data_dir / 'omshub.db').as_posix()}"
    with step("generating the fleet"):
        fleet_path, fleet = prepare_fleet(opts)
    console.print(
        f"fleet: {len(fleet.gateways)} gateways, {len(fleet.meters)} meters "
        f"({len(fleet.foreign)} foreign neighbour meters) -> {fleet_path}"
    )
    password = secrets.token_urlsafe(12)
    tenant = bootstrap_tenant(database_url, "demo", username="admin", password=password)
    server = ServeProcess(data_dir=opts.data_dir, host=opts.host, port=opts.port)
    with step(f"starting the head-end on port {opts.port}"):
        server.start()
    headend = HeadEnd(server.base_url, tenant.token, timeout_s=120)
    try:
        with step("registering gateways, importing meters and keys through the API"):
            gateways = provision(headend, fleet)
        console.print(
            f"head-end: {server.base_url} — {len(gateways)} gateways registered, "
            f"{len(fleet.meters)} meters and keys imported"
        )
        start, end = _simulate(opts, console, live_display, fleet, gateways, server, database_url, tenant)
        with step("billing master data: properties, units, the weather station's daily means"):
            master = provision_master_data(headend, fleet, start, end)
        console.print(f"billing: {master['properties']} properties, {master['units']:,} units, a weather station")
        with step("closing the simulated months for billing"):
            closed = _close_months(headend, start, end)
        for result in closed:
            console.print(
                f"billing: closed {result['period']} — {result['points']:,} metering points, "
                f"{result['findings_open']:,} findings in the review queue"
            )
        with step("customer information: a demo occupant, the monthly records, a portal invitation"):
            customer = provision_customer(headend, server.base_url, tenant.slug, start, [r["period"] for r in closed])
        _where_to_look(console, headend, server.base_url, tenant, password, start, end, opts.data_dir)
        console.print(
            f"  customer portal:    {customer['portal_url']}\n"
            f"  portal login:       e-mail [bold]{customer['email']}[/bold], "
            f"password [bold]{customer['password']}[/bold] ({customer['records']} information records)",
            soft_wrap=True,
        )
        if not opts.exit_when_done:
            _keep_serving(console, server)
    finally:
        headend.close()
        server.stop()


def _simulate(
    opts, console, live_display: bool, fleet, gateways, server, database_url: str, tenant
) -> tuple[float, float]:
    """Run the gateway agents over the simulated period, then wait for the decoder: (start, end)."""
    # lazy: start-up cost (see _run)
    from omshub.demo import DAY, FleetProgress, demo_agents, run_fleet, telegram_states
    from omshub.gateway.clock import SimClock

    end = math.floor(time.time() / DAY) * DAY  # the simulated period ends at today's midnight UTC
    start = end - round(opts.days * DAY)
    clock = SimClock(start, opts.speed)
    agents, counters = demo_agents(
        fleet, gateways, server=server.base_url, state_root=opts.data_dir / "gateways", clock=clock
    )
    progress = FleetProgress(agents, counters, start, end, clock, {})
    how = "as fast as the machine can" if opts.speed == 0 else f"{opts.speed:g}x real time"
    console.print(
        f"simulating {opts.days:g} day{'' if opts.days == 1 else 's'} ({_date(start)} to {_date(end)}) "
        f"at {how}; gateways collect at 02:00 and upload at 03:30 (Europe/Berlin, spread over 30 min)",
        soft_wrap=True,
    )
    last_poll, last_line = [0.0], [time.monotonic()]

    def tick():
        if time.monotonic() - last_poll[0] > 1.0:
            progress.states = telegram_states(database_url, tenant.id)
            last_poll[0] = time.monotonic()
        if live_display:
            live.update(_table(progress))
        elif time.monotonic() - last_line[0] >= PROGRESS_LINE_S:
            console.print(_line(progress), soft_wrap=True)
            last_line[0] = time.monotonic()

    t0 = time.monotonic()
    with (
        Live(_table(progress), console=console, refresh_per_second=4, transient=False)
        if live_display
        else contextlib.nullcontext()
    ) as live:
        asyncio.run(run_fleet(agents, clock, end, on_tick=tick))
        sim_s = time.monotonic() - t0
        if not live_display:
            console.print(_line(progress) + " — simulation finished, waiting for the decoder", soft_wrap=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            progress.states = telegram_states(database_url, tenant.id)
            if live is not None:
                live.update(_table(progress, finished=True))
            if not progress.states.get("new"):
                break
            time.sleep(0.5)
    states = progress.states
    console.print(
        f"\ndone in {time.monotonic() - t0:.0f} s (simulation {sim_s:.0f} s): "
        f"{progress.uploaded():,} telegrams uploaded, {states.get('decoded', 0):,} decoded"
        + (f", {states['new']:,} still waiting for the decoder" if states.get("new") else "")
    )
    return start, end


def _keep_serving(console, server) -> None:
    """Until Ctrl-C (or SIGTERM), or the head-end stops by itself."""
    console.print("\n[bold]the head-end keeps running; press Ctrl-C to stop it[/bold]")
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
        console.print(f"the head-end stopped unexpectedly; see {server.log_path}")
    except KeyboardInterrupt:
        console.print("stopping the head-end")


PROGRESS_LINE_S = 5.0  # without a terminal: one progress line every 5 s of real time


def _private_data_dir(path: Path) -> None:
    """The demo's directory holds the master key, the meter keys and the gateways' credentials:
    only its owner may read it, and git never takes it in (a `.gitignore` of `*`)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# omshub demo: keys, credentials and the master key live here; never commit them\n*\n")


def _line(p) -> str:
    """The progress table as one line (for logs and pipes)."""
    now = min(p.clock.now(), p.end)
    s = p.states
    return (
        f"simulated {datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M} UTC "
        f"(day {(now - p.start) / 86_400:.1f} of {(p.end - p.start) / 86_400:g}): "
        f"{p.contacted()}/{len(p.agents)} gateways uploaded, {p.collected():,} telegrams collected, "
        f"{p.uploaded():,} uploaded, {s.get('decoded', 0):,} decoded"
    )


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo like Ctrl-C: the head-end is shut down cleanly


def _date(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _table(p, finished: bool = False):
    now = min(p.clock.now(), p.end)
    day = (now - p.start) / 86_400
    t = Table(title="omshub demo" + (" — simulation finished" if finished else ""), show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row(
        "simulated time",
        datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
        + f"  (day {min(day, (p.end - p.start) / 86_400):.1f} of {(p.end - p.start) / 86_400:g})",
    )
    t.add_row("gateways that uploaded", f"{p.contacted()} / {len(p.agents)}")
    t.add_row("telegrams collected", f"{p.collected():,}")
    t.add_row("  waiting in gateway spools", f"{p.spooled():,}")
    t.add_row("telegrams uploaded", f"{p.uploaded():,}")
    s = p.states
    t.add_row("telegrams decoded", f"{s.get('decoded', 0):,}")
    others = {k: v for k, v in s.items() if k not in ("decoded",) and v}
    if others:
        t.add_row("  other states", ", ".join(f"{k} {v:,}" for k, v in sorted(others.items())))
    return t


def _close_months(headend, start: float, end: float) -> list[dict]:
    """Close every month that ended within the simulation (and the one before the first, whose end
    values the meters stored themselves), the way a billing clerk would (docs/billing.md)."""
    first = datetime.fromtimestamp(start, UTC)
    last = datetime.fromtimestamp(end, UTC)
    year, month = (first.year, first.month - 1) if first.month > 1 else (first.year - 1, 12)
    out = []
    while (year, month) < (last.year, last.month):
        out.append(headend.call("POST", "/api/v1/billing/close", json={"period": f"{year:04d}-{month:02d}"}))
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return out


def _where_to_look(
    console, headend, base_url: str, tenant, password: str, start: float, end: float, data_dir: Path
) -> None:
    points = headend.call("GET", "/api/v1/metering-points", params={"limit": 1}).get("items") or []
    # from the second simulated day: the meters (imported without installation dates) count from
    # their first reading, so the period is covered from its start and the value is complete
    frm = datetime.fromtimestamp(start + 86_400 if end - start > 86_400 else start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    to = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    auth = f'-H "Authorization: Bearer {tenant.token}"'
    console.print(
        f"""
[bold]Where to look[/bold]
  console:            {base_url}/
  API and its docs:   {base_url}/docs
  log in:             tenant [bold]demo[/bold], user [bold]admin[/bold], password [bold]{password}[/bold]
                      curl -X POST {base_url}/api/v1/auth/login -H 'Content-Type: application/json' \\
                           -d '{{"username": "admin", "password": "{password}"}}'
  API token (admin):  {tenant.token}
  files:              {data_dir} (fleet.toml, keys.csv, meters.csv, serve.log, gateways/)

[bold]Try[/bold]
  latest readings:    curl {auth} '{base_url}/api/v1/readings/latest?limit=5'
  gateways:           curl {auth} '{base_url}/api/v1/gateways'
  alarms:             curl {auth} '{base_url}/api/v1/alarms'""",
        soft_wrap=True,
    )
    if points:
        pid = points[0]["id"]
        console.print(
            f"  consumption of metering point {points[0].get('ref', pid)}:\n"
            f"                      curl {auth} '{base_url}/api/v1/metering-points/{pid}/consumption"
            f"?from={frm}&to={to}'\n"
            f"  billing values (boundary values with their origin):\n"
            f"                      curl {auth} '{base_url}/api/v1/metering-points/{pid}/billing-values'\n"
            f"  review queue:       curl {auth} '{base_url}/api/v1/review'",
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
