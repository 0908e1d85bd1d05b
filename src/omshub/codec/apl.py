"""The application layer (EN 13757-3 data records, docs/protocol.md §8): decode and encode.

The public face of the record layer for callers outside it; the work is done below, and neither
half imports this module or the other half:

- :mod:`omshub.codec.tables` — DIF/VIF tables and :class:`HeaderInfo`, shared by both halves;
- :mod:`omshub.codec.headers` — record headers: where one ends, what it means (memoised);
- :mod:`omshub.codec.values` — data-field codings (BCD, dates, real32, LVAR sizes);
- :mod:`omshub.codec.records` — the record decoder, fronted by the layout memo
  (:mod:`omshub.codec.layouts`);
- :mod:`omshub.codec.apl_encode` — the encoder.
"""

from __future__ import annotations

from omshub.codec.apl_encode import encode_records
from omshub.codec.headers import header_end, header_info
from omshub.codec.records import (
    LAYOUTS,
    decode_general,
    decode_records,
    decode_records_ex,
    more_records_follow,
    undecoded_record,
)
from omshub.codec.tables import FUNCTIONS, MAX_APL, MAX_EXTENSIONS, HeaderInfo
from omshub.codec.values import lvar_size

__all__ = [
    "decode_records",
    "decode_records_ex",
    "decode_general",
    "more_records_follow",
    "undecoded_record",
    "encode_records",
    "header_end",
    "header_info",
    "lvar_size",
    "HeaderInfo",
    "FUNCTIONS",
    "MAX_APL",
    "MAX_EXTENSIONS",
    "LAYOUTS",
]
