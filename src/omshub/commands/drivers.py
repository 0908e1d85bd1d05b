"""`omshub drivers`: the driver test kit on the command line.

``omshub drivers check FILE...`` validates each driver file (TOML, the schema of
codec/drivers/schema.py) and decodes the test telegrams it carries (``[[test]]`` tables) with
that file in place of the packaged file of the same name; it prints every field each telegram
decodes to and every mismatch, and exits 1 when any file fails. ``omshub drivers check --packaged``
checks the files shipped with omshub. See CONTRIBUTING.md, "Adding a meter".
"""

from __future__ import annotations

from pathlib import Path

import typer

drivers_app = typer.Typer(
    help="Driver files: check a new meter's driver against its test telegrams.", no_args_is_help=True
)


@drivers_app.command("check")
def check(
    files: list[Path] | None = typer.Argument(None, metavar="[FILE]...", help="Driver files (TOML) to check."),
    packaged: bool = typer.Option(False, "--packaged", help="Check the driver files shipped with omshub."),
) -> None:
    """Validate driver files and decode their test telegrams; print what each field decodes to."""
    # the codec is imported here, not at module level: `omshub --help` starts without it
    from omshub.codec import driver_kit
    from omshub.codec.drivers import packaged_texts

    texts: list[tuple[str, str]] = []
    for path in files or ():
        try:
            texts.append((path.name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"{path}: cannot read: {exc}", err=True)
            raise typer.Exit(2) from None
    if packaged:
        texts.extend(sorted(packaged_texts().items()))
    if not texts:
        typer.echo("give driver files, or --packaged", err=True)
        raise typer.Exit(2)
    failed = 0
    for name, text in texts:
        result = driver_kit.check_text(name, text)
        typer.echo(driver_kit.report(result))
        failed += not result.ok
    if failed:
        typer.echo(f"{failed} of {len(texts)} files failed", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(drivers_app, name="drivers")
