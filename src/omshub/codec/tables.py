"""Record-layer tables shared by the record decoder and the encoder (docs/protocol.md §8).

The data-field sizes and codings of a DIF, the value decoders a header can call for, the scale
modes of a VIF scale, and :class:`HeaderInfo`, what one record header means. Only data and small
pure functions: the decoder (:mod:`omshub.codec.records`) and the encoder
(:mod:`omshub.codec.apl_encode`) both build on it, neither on the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

MAX_APL = 65535  # bytes; far above any M-Bus/wM-Bus APL, bounds work on hostile input
MAX_EXTENSIONS = 10  # DIFEs / VIFEs per record (docs/protocol.md §8.1)

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")

# data field -> fixed data length (LVAR 0xD is -1; 0xF is special and never looked up)
DATA_LEN = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, 0)

# value decoders
D_NONE, D_INT, D_UINT, D_BCD, D_REAL, D_LVAR, D_DATE_G, D_DATE_F, D_DATETIME_F, D_DATETIME_I, D_TIME_J, D_RAW = range(
    12
)

# scale modes: value = raw | raw*num | raw*num/den | round(raw*num/den, nd)
M_ONE, M_MUL, M_DIV, M_ROUND = range(4)

Record = dict[str, Any]


class HeaderInfo(NamedTuple):
    """What a record header means; ``template`` is the record dict without its value."""

    dlen: int  # fixed data length, -1 for LVAR
    decoder: int  # D_*
    template: Record
    mode: int  # M_*
    num: int
    den: int
    ndigits: int  # decimals kept for non-terminating scales (M_ROUND)
    is_float: bool  # quantity values are always floats
    lvar_raw: bool  # LVAR 00-BF bytes are a container/profile, not text
    has_lists: bool  # template holds lists (copied per record)
    record_error: bool  # a record-error VIFE: the value is not valid
    unpack: Callable[[bytes, int], tuple[Any, ...]] | None  # struct unpack_from for 1/2/4/8-byte
    #                           integer/BCD fields, else None
    signed: bool  # binary numbers are type B (else C/D, unsigned)
    inverse_profile: bool = False  # VIFE 13 on an LVAR: its values also come out as records
    keep_raw: bool = False  # the value is not understood (unknown VIF): the data hex is kept too
    lvar_dates: dict[int, tuple[int, str]] | None = None  # date VIFs: LVAR binary size -> (D_*, quantity)


def decoder_for(kind: str, dfield: int) -> int:
    """The value decoder (D_*) for a VIF of ``kind`` (vif.VifEntry.kind) in data field ``dfield``."""
    if kind == "raw":
        return D_LVAR if dfield == 0xD else (D_NONE if DATA_LEN[dfield] == 0 else D_RAW)
    if kind == "date":
        return {2: D_DATE_G, 4: D_DATE_F, 0: D_NONE, 8: D_NONE, 0xD: D_LVAR}.get(dfield, D_RAW)
    if kind in ("datetime", "anydate"):
        return {2: D_DATE_G, 3: D_TIME_J, 4: D_DATETIME_F, 6: D_DATETIME_I, 0: D_NONE, 8: D_NONE, 0xD: D_LVAR}.get(
            dfield, D_RAW
        )
    if dfield in (0, 8):
        return D_NONE
    if dfield == 5:
        return D_REAL
    if dfield == 0xD:
        return D_LVAR
    if dfield >= 9:
        return D_BCD
    return D_UINT if kind == "uint" else D_INT


def _terminating(den: int) -> bool:
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    return den == 1


def scale_mode(scale: Fraction) -> tuple[int, int, int, int]:
    """(M_* mode, numerator, denominator, decimals kept) of how a VIF scale is applied."""
    num, den = scale.numerator, scale.denominator
    if scale == 1:
        return M_ONE, 1, 1, 0
    if den == 1:
        return M_MUL, num, 1, 0
    if _terminating(den):
        # one correctly rounded division: 12345/1000 prints as 12.345 (12345*0.001 would not)
        return M_DIV, num, den, 0
    # non-decimal conversions (J -> kWh): keep 6 decimals below the resolution of one step
    return M_ROUND, num, den, max(0, math.ceil(-math.log10(float(scale)))) + 6
