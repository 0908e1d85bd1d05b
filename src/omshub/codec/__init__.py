"""omshub.codec: sans-IO wireless/wired M-Bus and OMS telegram codec.

``decode`` turns one frame into the uniform record dict of docs/formats.md §1; ``encode_telegram``
builds frames (tests, simulator, benchmarks). The only exception raised is :class:`DecodeError`.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .encode import encode_telegram


def __getattr__(name: str) -> Any:
    # the encoder on first use: `omshub decode` and the head-end's decode workers start without it
    if name == "encode_telegram":
        from .encode import encode_telegram

        return encode_telegram
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
