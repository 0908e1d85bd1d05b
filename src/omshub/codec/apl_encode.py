"""EN 13757-3 record encoder: uniform record dicts -> DIF/DIFE/VIF/VIFE + data bytes.

The inverse of :func:`omshub.codec.records.decode_records` (``apl.encode_records`` is this module's
:func:`encode_records`). Every header it writes is read back through ``headers.header_info``, so
the encoder and the decoder share one interpretation of each header; both build on the public
tables of :mod:`omshub.codec.tables`, neither imports the other. This module chooses the headers;
the data codings and the VIF scale candidates are in :mod:`omshub.codec.encode_values`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from omshub.codec import vif as _vif
from omshub.codec.encode_values import (
    CANDIDATES,
    NOISE,
    UNIT_SCALE,
    Scale,
    date_field,
    encode_data,
    encode_date,
    encode_error,
    int_field_for,
    is_pow10,
    raw_of,
    to_raw,
)
from omshub.codec.errors import DecodeError
from omshub.codec.headers import header_info
from omshub.codec.tables import FUNCTIONS, MAX_APL, MAX_EXTENSIONS, HeaderInfo
from omshub.codec.units import QUANTITIES, to_canonical

_FUNCTION_BITS = {name: n for n, name in enumerate(FUNCTIONS)}
_QUALIFIER_CODES = {name: code for code, name in _vif.QUALIFIER_VIFE.items()}
_RAW_VIFS = {
    entry.quantity: prefix + bytes([code])
    for prefix, table in ((b"", _vif.PRIMARY), (b"\xfb", _vif.FB), (b"\xfd", _vif.FD))
    for code, entry in table.items()
    if entry.kind == "raw"
}
_DATE_VIFS = {
    "date": b"\x6c",
    "datetime": b"\x6d",
    "time": b"\x6d",
    "tariff_start": b"\xfd\x30",
    "battery_change_datetime": b"\xfd\x70",
}
_ERROR_CODES = {name: code for code, name in _vif.RECORD_ERRORS.items()}
_PHASE_CODES = {name: code for code, name in _vif.FC_PHASES.items()}


def encode_records(records: list[dict[str, Any]]) -> bytes:
    """Records in the uniform format -> EN 13757-3 bytes (inverse of :func:`decode_records`).

    A record's ``dif_vif`` forces its exact header; otherwise DIF/DIFE/VIF/VIFE are chosen for
    quantity, unit, qualifiers, storage, tariff, subunit and function, with the coarsest VIF
    scale that represents the value exactly and the smallest integer data field.
    """
    out = bytearray()
    for index, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise encode_error(index, "not a dict")
        if rec.get("derived_from"):
            continue  # a value the decoder took out of another record (compact profile)
        if rec.get("quantity") == "undecoded":  # bytes the decoder could not place: as they were
            try:
                out += bytes.fromhex(rec["value"])
            except (KeyError, ValueError, TypeError):
                raise encode_error(index, f"undecoded value {rec.get('value')!r} is not hex") from None
            if len(out) > MAX_APL:
                raise DecodeError("too_long", f"encoded records exceed {MAX_APL} bytes", layer="apl")
            continue
        rec = _with_canonical_value(rec, index)
        dif_vif = rec.get("dif_vif")
        if dif_vif:
            known = _FORCED.get(dif_vif) if dif_vif.__class__ is str else None
            if known is None:
                try:
                    hdr = bytes.fromhex(dif_vif)
                except (ValueError, TypeError):
                    raise encode_error(index, f"dif_vif {dif_vif!r} is not hex") from None
                try:
                    info = header_info(hdr)
                except DecodeError as exc:
                    raise encode_error(index, f"dif_vif: {exc.message}") from None
                if dif_vif.__class__ is str:
                    if len(_FORCED) >= _MEMO_LIMIT:
                        _FORCED.clear()
                    _FORCED[dif_vif] = hdr, info
            else:
                hdr, info = known
        elif (fast := _encode_number(rec, index)) is not None:
            out += fast
            if len(out) > MAX_APL:
                raise DecodeError("too_long", f"encoded records exceed {MAX_APL} bytes", layer="apl")
            continue
        else:
            hdr = _choose_header(rec, index)
            info = header_info(hdr)
        out += hdr
        out += encode_data(info, rec, index, 0.0 if dif_vif else NOISE)
        if len(out) > MAX_APL:
            raise DecodeError("too_long", f"encoded records exceed {MAX_APL} bytes", layer="apl")
    return bytes(out)


# ---------------------------------------------------------------------------- memoised choices
#
# Simulators encode the same record shapes (quantity, storage, tariff, subunit, function,
# qualifiers) over and over with new values. For quantities whose VIF scales are all powers of
# ten, the coarsest exact scale follows from the value's shortest decimal form (its power-of-ten
# exponent), so one exactness check replaces the trial of every scale; the header bytes are
# memoised per shape, scale and data field. Anything unusual takes the general path, which makes
# the same choice.

_MEMO_LIMIT = 4096
_FORCED: dict[str, tuple[bytes, HeaderInfo]] = {}  # dif_vif text -> (header, info)
# record shape -> (vifes, {(cand, dfield): header})
_SHAPES: dict[tuple[Any, ...], tuple[list[int], dict[tuple[int, int], bytes]]] = {}
_DATA_LEN = (0, 1, 2, 3, 4, 4, 6, 8)


def _decimal_exponents(cands: list[tuple[bytes, Fraction, bool, Scale]]) -> tuple[int, ...] | None:
    """Power-of-ten exponent of each candidate scale, or None if one is not a power of ten."""
    exps = []
    for _, frac, _, _ in cands:
        num, den = frac.numerator, frac.denominator
        if num == 1 and is_pow10(den):
            exps.append(-(len(str(den)) - 1))
        elif den == 1 and is_pow10(num):
            exps.append(len(str(num)) - 1)
        else:
            return None
    return tuple(exps)


_EXPONENTS = {q: _decimal_exponents(c) for q, c in CANDIDATES.items()}


def _decimal(value: int | float) -> tuple[int, int] | None:
    """(m, e) with value == m * 10**e in the shortest decimal form (m not a multiple of 10; zero
    has a huge e), or None for exponent notation / inf / nan (the general path decides those)."""
    text = repr(value)
    e = 0
    if value.__class__ is float:
        if "e" in text or "n" in text:
            return None
        whole, _, frac = text.partition(".")
        frac = frac.rstrip("0")
        e = -len(frac)
        text = whole + frac
    stripped = text.rstrip("0")
    if stripped == "" or stripped == "-":
        return 0, 1 << 30  # zero: exact at every scale (the coarsest is taken)
    return int(stripped), e + len(text) - len(stripped)


def _encode_number(rec: dict[str, Any], index: int) -> bytes | None:
    """Header + data of a plain number record by the memoised choice, or None (general path)."""
    value: Any = rec.get("value")
    if "of" in rec:
        return None
    quantity: Any = rec.get("quantity")
    if value.__class__ is str:
        base = _DATE_VIFS.get(quantity)
        if base is None or not value:
            return None
        k, dfield = -1, date_field(value)
    else:
        if value.__class__ is not float and value.__class__ is not int:
            return None
        exps = _EXPONENTS.get(quantity)
        if exps is None:
            return None
        decimal = _decimal(value)
        if decimal is None:
            return None
        m, e = decimal
        for k, exp in enumerate(exps):  # noqa: B007 - k names the candidate found, used after the loop
            if exp <= e:
                break
        else:
            return None
        base, _, signed, scale = CANDIDATES[quantity][k]
        raw = m * 10 ** (e - exp) if m else 0
        # the decoder's float must be the value itself (shortest repr: it is, but stay exact)
        if value.__class__ is float and raw * scale.num / scale.den != value:
            return None
        field = int_field_for(raw, signed)
        if field is None:
            return None
        dfield = field
    qualifiers = rec.get("qualifiers")
    vife = rec.get("vife")
    storage, tariff, subunit = rec.get("storage", 0), rec.get("tariff", 0), rec.get("subunit", 0)
    if storage.__class__ is not int or tariff.__class__ is not int or subunit.__class__ is not int:
        return None  # (True == 1 and 1.0 == 1 as keys) the general path checks them
    try:
        key = (
            quantity,
            storage,
            tariff,
            subunit,
            rec.get("function", "instantaneous"),
            tuple(qualifiers) if qualifiers else None,
            rec.get("record_error"),
            tuple(vife) if vife else None,
        )
        shape = _SHAPES.get(key)
    except TypeError:  # unhashable field values: the general path reports them
        return None
    if shape is None:
        if len(_SHAPES) >= _MEMO_LIMIT:
            _SHAPES.clear()
        shape = _SHAPES[key] = (_qualifier_vifes(rec, index), {})
    vifes, headers = shape
    hdr = headers.get((k, dfield))
    if hdr is None:
        hdr = headers[(k, dfield)] = _dif_bytes(rec, dfield, index) + _vif_chain(base, vifes)
    if k < 0:
        return hdr + encode_date(header_info(hdr).decoder, value, bool(rec.get("dst")), index)
    return hdr + raw.to_bytes(_DATA_LEN[dfield], "little", signed=signed)


def _dif_bytes(rec: dict[str, Any], dfield: int, index: int) -> bytes:
    function = rec.get("function", "instantaneous")
    if function not in _FUNCTION_BITS:
        raise encode_error(index, f"unknown function {function!r}")
    storage, tariff, subunit = (rec.get(k, 0) for k in ("storage", "tariff", "subunit"))
    for name, v in (("storage", storage), ("tariff", tariff), ("subunit", subunit)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise encode_error(index, f"{name} {v!r} is not a non-negative integer")
    dif = dfield | (_FUNCTION_BITS[function] << 4) | ((storage & 1) << 6)
    rest = storage >> 1
    difes = []
    while rest or tariff or subunit:
        difes.append((rest & 0x0F) | ((tariff & 3) << 4) | ((subunit & 1) << 6))
        rest >>= 4
        tariff >>= 2
        subunit >>= 1
    if len(difes) > MAX_EXTENSIONS:
        raise encode_error(index, "storage/tariff/subunit need more than 10 DIFEs")
    if difes:
        dif |= 0x80
        difes = [b | 0x80 for b in difes[:-1]] + [difes[-1]]
    return bytes([dif, *difes])


def _vif_chain(base: bytes, vifes: list[int]) -> bytes:
    """Set the extension bits: every byte but the last of VIF..VIFE chain has bit 7."""
    if not vifes:
        return base
    chain = [b | 0x80 for b in vifes[:-1]] + [vifes[-1] & 0x7F]
    return base[:-1] + bytes([base[-1] | 0x80]) + bytes(chain)


def _qualifier_vifes(rec: dict[str, Any], index: int) -> list[int]:
    vifes: list[int] = []
    for name in rec.get("qualifiers") or ():
        if name in _QUALIFIER_CODES:
            vifes.append(_QUALIFIER_CODES[name])
        elif name in _PHASE_CODES:
            vifes += [0x7C, _PHASE_CODES[name]]
        else:
            raise encode_error(index, f"qualifier {name!r} needs an explicit dif_vif")
    if rec.get("record_error"):
        if rec["record_error"] not in _ERROR_CODES:
            raise encode_error(index, f"unknown record_error {rec['record_error']!r}")
        vifes.append(_ERROR_CODES[rec["record_error"]])
    for text in rec.get("vife") or ():
        try:
            vifes.append(int(text, 16) & 0x7F)
        except (ValueError, TypeError):
            raise encode_error(index, f"vife {text!r} is not a hex byte") from None
    return vifes


def _with_canonical_value(rec: dict[str, Any], index: int) -> dict[str, Any]:
    """The record with its value in the canonical unit (a caller may give e.g. Wh or GJ)."""
    quantity: Any = rec.get("quantity")
    if quantity not in QUANTITIES:
        raise encode_error(index, f"unknown quantity {quantity!r}")
    unit = rec.get("unit")
    canon = QUANTITIES[quantity][0]
    if unit is None or unit == canon or unit.startswith(canon + "/") or unit.startswith(canon + "·"):
        return rec  # canonical (qualified rate units such as m3/d keep their value)
    try:
        value = to_canonical(quantity, unit, rec.get("value"))
    except KeyError:
        raise encode_error(index, f"unit {unit!r} is not known for {quantity}") from None
    return {**rec, "unit": canon, "value": value}


def _choose_header(rec: dict[str, Any], index: int) -> bytes:
    quantity: Any = rec.get("quantity")
    value: Any = rec.get("value")
    if "of" in rec:
        raise encode_error(index, f"{quantity} of {rec['of']} needs an explicit dif_vif")
    vifes = _qualifier_vifes(rec, index)
    raw = rec.get("raw")
    if value is None and raw is not None:
        try:
            size = len(bytes.fromhex(raw))
        except (ValueError, TypeError):
            raise encode_error(index, f"raw {raw!r} is not hex") from None
        base = _RAW_VIFS.get(quantity) or _DATE_VIFS.get(quantity)
        if base is None and rec.get("error_value"):  # invalid BCD digits keep the error marker
            raw_field = {1: 9, 2: 0xA, 3: 0xB, 4: 0xC, 6: 0xE}.get(size, 0xD)
        else:
            raw_field = {1: 1, 2: 2, 3: 3, 4: 4, 6: 6, 8: 7}.get(size, 0xD)
        if base is None:
            cands = CANDIDATES.get(quantity)
            if not cands:
                raise encode_error(index, f"{quantity} with raw data needs an explicit dif_vif")
            base = cands[0][0]
        return _dif_bytes(rec, raw_field, index) + _vif_chain(base, vifes)
    if quantity == "custom":
        text = (rec.get("unit_text") or "").encode("latin-1", "replace")[::-1]
        if len(text) > 255:
            raise encode_error(index, "unit_text longer than 255 characters")
        dfield = 0 if value is None else int_field_for(to_raw(value, UNIT_SCALE, index), True)
        if dfield is None:
            raise encode_error(index, f"value {value!r} does not fit 64 bits")
        return _dif_bytes(rec, dfield, index) + _vif_chain(b"\x7c", vifes) + bytes([len(text)]) + text
    if quantity in _DATE_VIFS:
        base = _DATE_VIFS[quantity]
        if value is None:
            return _dif_bytes(rec, 0, index) + _vif_chain(base, vifes)
        if not isinstance(value, str):
            raise encode_error(index, f"{quantity} value {value!r} is not an ISO string")
        return _dif_bytes(rec, date_field(value), index) + _vif_chain(base, vifes)
    cands = CANDIDATES.get(quantity)
    if not cands:
        raise encode_error(index, f"{quantity} needs an explicit dif_vif")
    if value is None:
        return _dif_bytes(rec, 0, index) + _vif_chain(cands[0][0], vifes)
    if isinstance(value, str):
        return _dif_bytes(rec, 0xD, index) + _vif_chain(cands[0][0], vifes)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise encode_error(index, f"value {value!r} is not a number")
    for base, _, signed, scale in cands:
        raw = raw_of(value, scale)
        dfield = None if raw is None else int_field_for(raw, signed)
        if dfield is not None:
            return _dif_bytes(rec, dfield, index) + _vif_chain(base, vifes)
    if not math.isfinite(value):
        raise encode_error(index, f"value {value!r} is not finite")
    # float arithmetic noise (0.1 + 0.2): the finest scale within 1e-9
    base, _, signed, scale = cands[-1]
    raw = raw_of(value, scale, NOISE)
    dfield = None if raw is None else int_field_for(raw, signed)
    if dfield is not None:
        return _dif_bytes(rec, dfield, index) + _vif_chain(base, vifes)
    # not a whole number at any scale: IEEE single at the scale nearest to the canonical unit
    base = min(cands, key=lambda c: abs(math.log10(c[1])))[0]
    return _dif_bytes(rec, 5, index) + _vif_chain(base, vifes)
