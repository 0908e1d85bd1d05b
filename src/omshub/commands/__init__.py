"""The `omshub` subcommands, one module each (registered by `omshub.cli`)."""

from __future__ import annotations

import os
from typing import NoReturn


def cli_language() -> str:
    """The language of the command line's messages: `OMSHUB_LANGUAGE` (de | en), else the locale
    (`LC_ALL`, `LC_MESSAGES`, `LANG`, the first one set): German for de_*, English otherwise."""
    for name in ("OMSHUB_LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").strip().lower()
        if value and value not in ("c", "posix"):
            return "de" if value.startswith("de") else "en"
    return "en"


def say(english: str, german: str) -> str:
    """The message in the command line's language (cli_language)."""
    return german if cli_language() == "de" else english


def fail(command: str, message: str, code: int) -> NoReturn:
    """End a command: `command: message` on standard error, exit status `code` (2: usage)."""
    import typer  # here: `omshub decode` imports this package and runs without typer

    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(code)
