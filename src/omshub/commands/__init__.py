"""The `omshub` subcommands, one module each (registered by `omshub.cli`)."""

from __future__ import annotations

from typing import NoReturn


def fail(command: str, message: str, code: int) -> NoReturn:
    """End a command: `command: message` on standard error, exit status `code` (2: usage)."""
    import typer  # here: `omshub decode` imports this package and runs without typer

    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(code)
