"""The `omshub` program (`python -m omshub` and the installed script).

`omshub decode` is run on large inputs and in pipelines: it starts without the other commands'
imports (rich, asyncio, the head-end's settings) and, for a plain command line, without building a
typer app (omshub.commands.decode.standalone_main): about half of its start-up. Everything else
goes to :mod:`omshub.cli`, which has every command.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["decode"]:
        from omshub.commands.decode import standalone_main

        standalone_main(sys.argv[2:])
        return
    from omshub.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
