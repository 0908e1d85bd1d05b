"""`omshub admin maintenance`: the database maintenance of services/maintenance.py, once, now —
vacuum/analyze, autovacuum settings (and partitions and retention where the store has them).
Prints a table per task (or `--json`) and warns when PostgreSQL's autovacuum is off; the exit
status is 1 when a task failed. `omshub serve` runs the same on a schedule."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from omshub.commands.cloud import ConfigOpt, DatabaseOpt, DataDirOpt, JsonOpt, _fail, _open_db, _settings, admin_app


@admin_app.command("maintenance")
def maintenance(
    task: list[str] = typer.Option(None, "--task", help="run only this task (repeatable; default: all)"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Database maintenance: vacuum/analyze, autovacuum settings, partitions, retention."""
    # lazy: start-up cost (commands/cloud.py's docstring)
    from omshub.cloud.services.maintenance import autovacuum_status, dead_rows, run_maintenance
    from omshub.times import utcnow

    db = _open_db(_settings(database, config, data_dir))
    try:
        try:
            results = run_maintenance(db, utcnow(), task or None)
        except ValueError as exc:
            _fail(str(exc), 2)
        autovacuum = autovacuum_status(db)
        tables = dead_rows(db)
    finally:
        db.dispose()
    report = {
        "database": db.dialect,
        "autovacuum": autovacuum,
        "tasks": [r.as_dict() for r in results],
        "tables": tables,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        _print(report)
    if autovacuum["message"]:
        typer.echo(f"omshub: warning: {autovacuum['message']}", err=True)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _print(report: dict) -> None:
    # lazy: start-up cost (commands/cloud.py's docstring)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"maintenance ({report['database']})")
    for col in ("task", "ok", "seconds", "details / error"):
        table.add_column(col)
    for r in report["tasks"]:
        shown = r["error"] or json.dumps(r["details"], default=str)
        table.add_row(r["task"], "yes" if r["ok"] else "FAILED", f"{r['seconds']:.2f}", shown)
    console = Console()
    console.print(table)
    if report["tables"]:
        rows = Table(title="hot tables")
        for col in ("table", "live rows", "dead rows", "last vacuum"):
            rows.add_column(col)
        for name, t in report["tables"].items():
            rows.add_row(name, str(t["live"]), str(t["dead"]), t["last_vacuum"] or "never")
        console.print(rows)
    av = report["autovacuum"]
    if av["applies"]:
        console.print(f"autovacuum: {'on' if av['on'] else 'OFF'}")


def register(app: typer.Typer) -> None:
    """The command is on `admin` (commands/cloud.py registers that group)."""
