"""omshub: vendor-independent OMS / wireless M-Bus remote reading."""

__version__ = "0.2.0.dev0"  # the only place the version is written (pyproject.toml reads it)
