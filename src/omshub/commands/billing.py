"""`omshub billing …`: close billing periods from the command line (docs/billing.md).

Like the other head-end commands, it takes `--database`, `--config` and `--data-dir`, applies pending
migrations first and imports the head-end inside the command (start-up cost: commands/cloud.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from omshub.commands.cloud import ConfigOpt, DatabaseOpt, DataDirOpt, JsonOpt, _actor, _api_call, _open_db, _settings
from omshub.times import utcnow

billing_app = typer.Typer(help="Billing values: close periods (boundary values, consumption, validation).")


@billing_app.command("close")
def close(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    period: str = typer.Option(..., "--period", help='a month "2026-11", or a year "2026" (the billing year)'),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compute boundary values, consumption and validation findings for every metering point of the
    tenant in the period. Running it again changes nothing unless data changed."""
    # lazy: start-up cost (module docstring)
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.services.billing_close import close_period

    db = _open_db(_settings(database, config, data_dir))
    console = Console(stderr=True)
    with (
        db.transaction() as session,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar,
    ):
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        task = bar.add_task(f"closing {period} of {t.slug}", total=None)

        def progress(done: int) -> None:
            bar.update(task, description=f"closing {period} of {t.slug}: {done} metering points")

        result = _api_call(lambda: close_period(session, t.id, period, actor=_actor(), now=utcnow(), progress=progress))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.table import Table  # lazy: start-up cost (module docstring)

    table = Table(title=f"Billing period {result['period']} closed", show_header=False)
    labels = {
        "points": "metering points",
        "values_changed": "boundary values new or changed",
        "findings_open": "new findings in the review queue",
        "findings_cleared": "findings no longer found",
        "export_stale": "exported values that changed (to export again)",
        "estimated": "periods estimated automatically (setting auto_estimate)",
    }
    for key, label in labels.items():
        table.add_row(label, f"{result[key]:,}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(billing_app, name="billing")
