"""`omshub customers …`: the monthly consumption information from the command line
(docs/customer-information.md).

Like the other head-end commands, it takes `--database`, `--config` and `--data-dir`, applies pending
migrations first and imports the head-end inside the command (start-up cost: commands/cloud.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from omshub.commands.cloud import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    JsonOpt,
    _actor,
    _api_call,
    _open_db,
    _settings,
)
from omshub.times import utcnow

customers_app = typer.Typer(help="Customer consumption information: monthly records, letters, e-mails, print batch.")

STEPS = {"benchmarks": "benchmarks", "records": "records", "pdfs": "PDF letters", "emails": "e-mails sent"}


@customers_app.command("monthly")
def monthly(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    month: str = typer.Option(..., "--month", help='the closed month, "2026-11"'),
    out: Path | None = typer.Option(
        None, "--out", help="folder for the PDFs (default: DATA_DIR/customer-information/TENANT)"
    ),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compute the month's information records, write a PDF per record, send the e-mail notices and
    print the letters for occupants without a digital channel. Running it again sends nothing twice."""
    # lazy: start-up cost (module docstring)
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.services.customer_run import run_month

    settings = _settings(database, config, data_dir)
    db = _open_db(settings)
    console = Console(stderr=True)
    with db.transaction(write=False) as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        tenant_id, slug = t.id, t.slug
    folder = out or Path(settings.data_dir) / "customer-information" / slug
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task(f"customer information {month} of {slug}", total=None)

        def progress(step: str, done: int) -> None:
            bar.update(task, description=f"customer information {month} of {slug}: {STEPS.get(step, step)} {done:,}")

        result = _api_call(
            lambda: run_month(db, tenant_id, month, out=folder, actor=_actor(), now=utcnow(), progress=progress)
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _table(result)


def _table(result: dict) -> None:
    from rich.console import Console  # lazy: start-up cost (module docstring)
    from rich.table import Table

    r, m = result["records"], result["emails"]
    table = Table(title=f"Customer information {result['month']}", show_header=False)
    table.add_row("units", f"{r['units']:,}")
    table.add_row("records new / changed / unchanged", f"{r['new']:,} / {r['changed']:,} / {r['unchanged']:,}")
    table.add_row("records incomplete (no data, estimated)", f"{r['incomplete']:,}")
    table.add_row("PDF letters", f"{result['pdfs']:,} in {result['folder']}")
    table.add_row("e-mails sent / to retry / failed", f"{m['sent']:,} / {m['retry']:,} / {m['failed']:,}")
    table.add_row(
        "letters printed", f"{result['printed']:,}" + (f" in {result['print_batch']}" if result["print_batch"] else "")
    )
    Console().print(table)


@customers_app.command("send")
def send(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Send the e-mail notices that are due again (a server was down before)."""
    from omshub.cloud.services.accounts import tenant_by_slug  # lazy: start-up cost (module docstring)
    from omshub.cloud.services.customer_delivery import send_due

    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        result = send_due(session, t.id, utcnow(), actor=_actor())
    typer.echo(json.dumps(result))


@customers_app.command("bounce")
def bounce(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    file: Path = typer.Argument(..., help="the raw bounce message (RFC 3464), '-' for standard input"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Record a bounce that arrived after the notice was sent: its notice is marked failed with the reason."""
    import sys

    from omshub.cloud.domain.dsn import MAX_BYTES  # lazy: start-up cost (module docstring)
    from omshub.cloud.domain.errors import Invalid
    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.services.customer_bounces import record_bounce

    def read() -> bytes:
        try:
            with sys.stdin.buffer if str(file) == "-" else file.open("rb") as fh:
                return fh.read(MAX_BYTES + 1)  # one byte more: the parser names the limit
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise Invalid(f"cannot read {file}: {why}", german=f"{file} ist nicht lesbar: {why}") from None

    raw = _api_call(read)
    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        result = _api_call(lambda: record_bounce(session, t.id, raw, actor=_actor(), now=utcnow()))
    typer.echo(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")
