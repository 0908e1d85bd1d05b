"""omshub: vendor-independent OMS / wireless M-Bus remote reading."""
__version__ = "0.1.0"
