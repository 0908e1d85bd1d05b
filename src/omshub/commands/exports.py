"""`omshub exports …`: billing exports from the command line (docs/exports.md).

* `omshub exports run --tenant T --period 2026-11 --format v1-csv --out FILE` — a recorded export
  (mode `all`, or `changes`), written to FILE;
* `omshub exports deliver` — one round of the delivery worker: webhook events, due webhook
  deliveries and due SFTP jobs (what `omshub serve` does every `delivery_interval_s`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

from omshub.commands.cloud import ConfigOpt, DatabaseOpt, DataDirOpt, _actor, _api_call, _open_db, _settings
from omshub.times import utcnow

exports_app = typer.Typer(help="Billing exports: reading export v1, SAP IS-U upload, SFTP jobs, webhooks.")


@exports_app.command("run")
def run(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    period: str = typer.Option(..., "--period", help='"2026-11" or "year:2026"'),
    fmt: str = typer.Option("v1-csv", "--format", help="v1-csv | v1-json | sap-csv | sap-json"),
    mode: str = typer.Option("all", "--mode", help="all | changes (only rows new or changed since the last)"),
    out: Path = typer.Option(..., "--out", help="file to write"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Export a period now (recorded: its export id is in every row; later exports refer to it)."""
    from omshub.cloud.services import export_runs  # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import tenant_by_slug

    db = _open_db(_settings(database, config, data_dir))
    with db.session() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))

    def write(result) -> str:
        shutil.copyfile(result.path, out)
        return str(out)

    result = _api_call(lambda: export_runs.export_now(db, t.id, fmt, period, channel="cli", mode=mode,
                                                      actor=_actor(), now=utcnow(), deliver=write))  # fmt: skip
    typer.echo(
        f"{result.export_id}: {result.rows} rows" + (f" → {out} (sha256 {result.sha256})" if result.rows else "")
    )


@exports_app.command("deliver")
def deliver(
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """One round of the delivery worker: events, webhook deliveries, export jobs."""
    from omshub.cloud.services.delivery_worker import tick  # lazy: start-up cost (module docstring)
    from omshub.cloud.store.keystore import KeyStore, load_master_key

    settings = _settings(database, config, data_dir)
    db = _open_db(settings)
    keystore = KeyStore(load_master_key(settings.master_key, settings.data_dir))
    typer.echo(json.dumps(tick(db, keystore), indent=2, default=str))


def register(app: typer.Typer) -> None:
    app.add_typer(exports_app, name="exports")
