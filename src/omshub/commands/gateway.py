"""`omshub gateway run|init|status`: the gateway agent on the command line (docs/gateway.md).

The gateway's own modules are imported inside the commands that use them ("lazy" below): every
`omshub` command line registers this module, and importing the agent costs ~0.3 s
(python -X importtime), the simulator and the codec it brings ~0.6 s more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer

from omshub.commands import fail, say

gateway_app = typer.Typer(
    help="The gateway agent: collect wM-Bus telegrams, spool them, upload them.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str, code: int = 2) -> NoReturn:
    fail("omshub gateway", message, code)


def _load(config: Path) -> Any:
    from omshub.gateway.settings import SettingsError, load_settings  # lazy

    try:
        return load_settings(config)
    except SettingsError as exc:
        _fail(str(exc))


def _setup_logging(level: str, secret: str, clock: Any = None) -> None:
    class Redact(logging.Filter):
        """Belt and braces: the credential never reaches a log line, whatever a message says.
        With a simulated clock, log lines carry the simulated time."""

        def filter(self, record: logging.LogRecord) -> bool:
            msg = record.getMessage()
            if secret and secret in msg:
                record.msg, record.args = msg.replace(secret, "***"), None
            if clock is not None:
                record.created = clock.now()
                record.msecs = (record.created % 1) * 1000
            return True

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiocoap", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@gateway_app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help="gateway.toml (see `omshub gateway init`)"),
    until: float = typer.Option(None, help="stop at this clock time (Unix s; for simulations)"),
) -> None:
    """Run the agent until SIGTERM/SIGINT: listen windows, spool, uplink contacts."""
    # lazy, all of them; importing omshub.sim.radio registers the "sim:" radio source
    import omshub.sim.radio  # noqa: F401
    from omshub.gateway.agent import Agent, make_clock
    from omshub.gateway.clock import SimClock
    from omshub.gateway.frames import SourceError
    from omshub.gateway.settings import SettingsError
    from omshub.gateway.spool import SpoolError
    from omshub.sim.battery import battery_from_settings

    settings = _load(config)
    try:
        secret = settings.secret()
    except SettingsError as exc:
        _fail(str(exc))
    clock = make_clock(settings)
    _setup_logging(settings.log_level, secret, clock if isinstance(clock, SimClock) else None)
    log = logging.getLogger("omshub.gateway")

    async def main() -> None:
        # the battery in the status is the simulator's model (the settings' [battery] section)
        agent = Agent(settings, clock=clock, battery=battery_from_settings(settings.battery))
        _ = agent.source  # open the receiver now: a wrong device is reported at once
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        log.info(
            "gateway %s started: source %s, transport %s, configuration version %d, spool %d",
            settings.serial,
            settings.source,
            settings.transport,
            agent.config.version,
            agent.spool.rows,
        )
        try:
            await agent.run(until=until)
        except asyncio.CancelledError:
            log.info("stopping (signal): spool %d telegrams kept for the next contact", agent.spool.rows)
        finally:
            await agent.close()

    try:
        asyncio.run(main())
    except (SourceError, SpoolError, SettingsError, ValueError) as exc:
        _fail(str(exc).replace(secret, "***") if secret else str(exc), 1)


@gateway_app.command("init")
def init(
    path: Path = typer.Argument(
        None,
        help="where to write the example settings; without it they go to "
        "standard output (`omshub gateway init > gateway.toml`)",
    ),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Print (or write) an example gateway.toml to edit."""
    from omshub.gateway.settings import EXAMPLE  # lazy

    if path is None:
        sys.stdout.write(EXAMPLE)
        return
    if path.exists() and not force:
        _fail(say(f"{path} exists (use --force to overwrite)", f"{path} existiert schon (mit --force überschreiben)"))
    path.write_text(EXAMPLE, encoding="utf-8")
    typer.echo(f"wrote {path}: set serial, credential, server and source, then `omshub gateway run -c {path}`")


@gateway_app.command("status")
def status(config: Path = typer.Option(..., "--config", "-c")) -> None:
    """Show the spool, the uplink sequence and the configuration of a (stopped or running) gateway."""
    from omshub.gateway.spool import Spool, SpoolError  # lazy

    settings = _load(config)
    db = Path(settings.state_dir) / "spool.sqlite3"
    if not db.exists():
        _fail(
            say(
                f"no spool at {db} (the agent has not run yet)",
                f"kein Zwischenspeicher unter {db} (der Agent lief noch nicht)",
            ),
            1,
        )
    try:
        sp = Spool(db, max_rows=settings.spool.max_rows, max_bytes=settings.spool.max_bytes)
    except SpoolError as exc:
        _fail(str(exc), 1)
    cfg_path = Path(settings.state_dir) / "config.json"
    cfg_version = (
        json.loads(cfg_path.read_text())["version"] if cfg_path.exists() else settings.initial_config().version
    )
    out = {
        "serial": settings.serial,
        "spool": sp.rows,
        "spool_bytes": sp.bytes,
        "spool_full": sp.full,
        "last_seq": sp.last_seq,
        "inflight_seq": sp.inflight_seq(),
        "config_version": cfg_version,
        "cfg_error": json.loads(sp.get_state("cfg_error") or "null"),
        "battery_consumed_mah": float(sp.get_state("battery_mah", "0") or 0),
    }
    sp.close()
    typer.echo(json.dumps(out, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
