"""The one `omshub` command. Subcommands live in `omshub.commands.*` and import their heavy
dependencies lazily, so `omshub decode` starts fast."""

from __future__ import annotations

import typer

from omshub.commands import admin_ops, billing, cloud, customers, decode, demo, drivers, exports, gateway, sim

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
    # A callback keeps every command a subcommand (`omshub decode`, not a bare `omshub`).


# Each command module registers its commands; they import their heavy dependencies inside the
# commands (docs/architecture.md, "Commands"), so importing all of them here stays cheap.
for _module in (decode, drivers, cloud, admin_ops, billing, customers, exports, gateway, sim, demo):
    _module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
