"""The one `omshub` command. Subcommands live in `omshub.commands.*` and import their heavy
dependencies lazily, so `omshub decode` starts fast."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="omshub",
    help="omshub: remote reading of OMS / wireless M-Bus meters (codec, gateway, head-end).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """omshub: remote reading of OMS / wireless M-Bus meters."""
    # A callback keeps every command a subcommand, even if only one module is importable.


# (module, attribute) of each sub-command group or command; each module defines a typer app or
# registers commands via `register(app)`.
_MODULES = [
    "omshub.commands.decode",
    "omshub.commands.cloud",
    "omshub.commands.gateway",
    "omshub.commands.sim",
    "omshub.commands.demo",
]

for _name in _MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a part not built yet must not break the others
        if exc.name != _name:
            raise
        continue
    _mod.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
