"""omshub.codec: sans-IO wireless/wired M-Bus and OMS telegram codec.

``decode`` turns one frame into the uniform record dict of docs/formats.md §1; ``encode_telegram``
builds frames (tests, simulator, benchmarks). The only exception raised is :class:`DecodeError`.
"""

from .encode import encode_telegram
from .errors import DecodeError
from .keys import FormatCache, KeyRing
from .telegram import decode, decode_hex, parse_hex, peek_address, peek_header

__all__ = [
    "DecodeError",
    "decode",
    "decode_hex",
    "parse_hex",
    "peek_address",
    "peek_header",
    "KeyRing",
    "FormatCache",
    "encode_telegram",
]
