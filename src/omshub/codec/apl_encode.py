"""EN 13757-3 record encoder: uniform record dicts -> DIF/DIFE/VIF/VIFE + data bytes.

The inverse of :func:`omshub.codec.records.decode_records` (``apl.encode_records`` is this module's
:func:`encode_records`). Every header it writes is read back through ``headers.header_info``, so
the encoder and the decoder share one interpretation of each header; both build on the public
tables of :mod:`omshub.codec.tables`, neither imports the other.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import Any, NamedTuple

from omshub.codec import vif as _vif
from omshub.codec.errors import DecodeError
from omshub.codec.headers import header_info
from omshub.codec.tables import (
    D_BCD,
    D_DATE_F,
    D_DATE_G,
    D_DATETIME_F,
    D_INT,
    D_LVAR,
    D_NONE,
    D_RAW,
    D_REAL,
    D_TIME_J,
    D_UINT,
    FUNCTIONS,
    M_ONE,
    M_ROUND,
    MAX_APL,
    MAX_EXTENSIONS,
    HeaderInfo,
    scale_mode,
)
from omshub.codec.units import QUANTITIES, to_canonical
from omshub.codec.values import F32, real32

_FUNCTION_BITS = {name: n for n, name in enumerate(FUNCTIONS)}


class _Scale(NamedTuple):
    """A VIF scale as the decoder applies it (tables.scale_mode)."""

    num: int
    den: int
    mode: int
    ndigits: int


def _scale_of(scale: Fraction) -> _Scale:
    mode, num, den, ndigits = scale_mode(scale)
    return _Scale(scale.numerator, scale.denominator, mode, ndigits)


_UNIT_SCALE = _Scale(1, 1, M_ONE, 0)
# float arithmetic noise (0.1 + 0.2) tolerated when the encoder picks the scale itself
_NOISE = 1e-9


def _candidates() -> dict[str, list[tuple[bytes, Fraction, bool, _Scale]]]:
    """quantity -> [(VIF bytes, scale, signed, scale as applied)] to choose from, preferred first."""
    out: dict[str, list[tuple[bytes, Fraction, bool]]] = {}
    for prefix, table in ((b"", _vif.PRIMARY), (b"\xfb", _vif.FB), (b"\xfd", _vif.FD)):
        for code in sorted(table, key=lambda c: -table[c].scale):
            entry = table[code]
            if entry.kind in ("num", "uint"):
                out.setdefault(entry.quantity, []).append((prefix + bytes([code]), entry.scale, entry.kind == "num"))
    for quantity, cands in out.items():
        # decimal steps (and whole seconds for durations); odd factors only when nothing else
        plain = [
            c
            for c in cands
            if (c[1].numerator == 1 and _is_pow10(c[1].denominator))
            or (c[1].denominator == 1 and (_is_pow10(c[1].numerator) or QUANTITIES[quantity][0] == "s"))
        ]
        if plain:
            out[quantity] = plain
    return {q: [(base, frac, signed, _scale_of(frac)) for base, frac, signed in cands] for q, cands in out.items()}


def _is_pow10(x: int) -> bool:
    while x % 10 == 0:
        x //= 10
    return x == 1


_CANDIDATES = _candidates()
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
_INT_FIELDS = ((1, 1), (2, 2), (3, 3), (4, 4), (6, 6), (8, 7))  # (bytes, data field)


def _enc_err(index: int, message: str) -> DecodeError:
    return DecodeError("invalid_record", f"record {index}: {message}", layer="apl")


def encode_records(records: list[dict[str, Any]]) -> bytes:
    """Records in the uniform format -> EN 13757-3 bytes (inverse of :func:`decode_records`).

    A record's ``dif_vif`` forces its exact header; otherwise DIF/DIFE/VIF/VIFE are chosen for
    quantity, unit, qualifiers, storage, tariff, subunit and function, with the coarsest VIF
    scale that represents the value exactly and the smallest integer data field.
    """
    out = bytearray()
    for index, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise _enc_err(index, "not a dict")
        if rec.get("derived_from"):
            continue  # a value the decoder took out of another record (compact profile)
        if rec.get("quantity") == "undecoded":  # bytes the decoder could not place: as they were
            try:
                out += bytes.fromhex(rec["value"])
            except (KeyError, ValueError, TypeError):
                raise _enc_err(index, f"undecoded value {rec.get('value')!r} is not hex") from None
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
                    raise _enc_err(index, f"dif_vif {dif_vif!r} is not hex") from None
                try:
                    info = header_info(hdr)
                except DecodeError as exc:
                    raise _enc_err(index, f"dif_vif: {exc.message}") from None
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
        out += _encode_data(info, rec, index, 0.0 if dif_vif else _NOISE)
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


def _decimal_exponents(cands: list[tuple[bytes, Fraction, bool, _Scale]]) -> tuple[int, ...] | None:
    """Power-of-ten exponent of each candidate scale, or None if one is not a power of ten."""
    exps = []
    for _, frac, _, _ in cands:
        num, den = frac.numerator, frac.denominator
        if num == 1 and _is_pow10(den):
            exps.append(-(len(str(den)) - 1))
        elif den == 1 and _is_pow10(num):
            exps.append(len(str(num)) - 1)
        else:
            return None
    return tuple(exps)


_EXPONENTS = {q: _decimal_exponents(c) for q, c in _CANDIDATES.items()}


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
        k, dfield = -1, _date_field(value)
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
        base, _, signed, scale = _CANDIDATES[quantity][k]
        raw = m * 10 ** (e - exp) if m else 0
        # the decoder's float must be the value itself (shortest repr: it is, but stay exact)
        if value.__class__ is float and raw * scale.num / scale.den != value:
            return None
        field = _int_field_for(raw, signed)
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
        return hdr + _encode_date(header_info(hdr).decoder, value, bool(rec.get("dst")), index)
    return hdr + raw.to_bytes(_DATA_LEN[dfield], "little", signed=signed)


def _dif_bytes(rec: dict[str, Any], dfield: int, index: int) -> bytes:
    function = rec.get("function", "instantaneous")
    if function not in _FUNCTION_BITS:
        raise _enc_err(index, f"unknown function {function!r}")
    storage, tariff, subunit = (rec.get(k, 0) for k in ("storage", "tariff", "subunit"))
    for name, v in (("storage", storage), ("tariff", tariff), ("subunit", subunit)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _enc_err(index, f"{name} {v!r} is not a non-negative integer")
    dif = dfield | (_FUNCTION_BITS[function] << 4) | ((storage & 1) << 6)
    rest = storage >> 1
    difes = []
    while rest or tariff or subunit:
        difes.append((rest & 0x0F) | ((tariff & 3) << 4) | ((subunit & 1) << 6))
        rest >>= 4
        tariff >>= 2
        subunit >>= 1
    if len(difes) > MAX_EXTENSIONS:
        raise _enc_err(index, "storage/tariff/subunit need more than 10 DIFEs")
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
            raise _enc_err(index, f"qualifier {name!r} needs an explicit dif_vif")
    if rec.get("record_error"):
        if rec["record_error"] not in _ERROR_CODES:
            raise _enc_err(index, f"unknown record_error {rec['record_error']!r}")
        vifes.append(_ERROR_CODES[rec["record_error"]])
    for text in rec.get("vife") or ():
        try:
            vifes.append(int(text, 16) & 0x7F)
        except (ValueError, TypeError):
            raise _enc_err(index, f"vife {text!r} is not a hex byte") from None
    return vifes


def _with_canonical_value(rec: dict[str, Any], index: int) -> dict[str, Any]:
    """The record with its value in the canonical unit (a caller may give e.g. Wh or GJ)."""
    quantity: Any = rec.get("quantity")
    if quantity not in QUANTITIES:
        raise _enc_err(index, f"unknown quantity {quantity!r}")
    unit = rec.get("unit")
    canon = QUANTITIES[quantity][0]
    if unit is None or unit == canon or unit.startswith(canon + "/") or unit.startswith(canon + "·"):
        return rec  # canonical (qualified rate units such as m3/d keep their value)
    try:
        value = to_canonical(quantity, unit, rec.get("value"))
    except KeyError:
        raise _enc_err(index, f"unit {unit!r} is not known for {quantity}") from None
    return {**rec, "unit": canon, "value": value}


def _choose_header(rec: dict[str, Any], index: int) -> bytes:
    quantity: Any = rec.get("quantity")
    value: Any = rec.get("value")
    if "of" in rec:
        raise _enc_err(index, f"{quantity} of {rec['of']} needs an explicit dif_vif")
    vifes = _qualifier_vifes(rec, index)
    raw = rec.get("raw")
    if value is None and raw is not None:
        try:
            size = len(bytes.fromhex(raw))
        except (ValueError, TypeError):
            raise _enc_err(index, f"raw {raw!r} is not hex") from None
        base = _RAW_VIFS.get(quantity) or _DATE_VIFS.get(quantity)
        if base is None and rec.get("error_value"):  # invalid BCD digits keep the error marker
            raw_field = {1: 9, 2: 0xA, 3: 0xB, 4: 0xC, 6: 0xE}.get(size, 0xD)
        else:
            raw_field = {1: 1, 2: 2, 3: 3, 4: 4, 6: 6, 8: 7}.get(size, 0xD)
        if base is None:
            cands = _CANDIDATES.get(quantity)
            if not cands:
                raise _enc_err(index, f"{quantity} with raw data needs an explicit dif_vif")
            base = cands[0][0]
        return _dif_bytes(rec, raw_field, index) + _vif_chain(base, vifes)
    if quantity == "custom":
        text = (rec.get("unit_text") or "").encode("latin-1", "replace")[::-1]
        if len(text) > 255:
            raise _enc_err(index, "unit_text longer than 255 characters")
        dfield = 0 if value is None else _int_field_for(_to_raw(value, _UNIT_SCALE, index), True)
        if dfield is None:
            raise _enc_err(index, f"value {value!r} does not fit 64 bits")
        return _dif_bytes(rec, dfield, index) + _vif_chain(b"\x7c", vifes) + bytes([len(text)]) + text
    if quantity in _DATE_VIFS:
        base = _DATE_VIFS[quantity]
        if value is None:
            return _dif_bytes(rec, 0, index) + _vif_chain(base, vifes)
        if not isinstance(value, str):
            raise _enc_err(index, f"{quantity} value {value!r} is not an ISO string")
        return _dif_bytes(rec, _date_field(value), index) + _vif_chain(base, vifes)
    cands = _CANDIDATES.get(quantity)
    if not cands:
        raise _enc_err(index, f"{quantity} needs an explicit dif_vif")
    if value is None:
        return _dif_bytes(rec, 0, index) + _vif_chain(cands[0][0], vifes)
    if isinstance(value, str):
        return _dif_bytes(rec, 0xD, index) + _vif_chain(cands[0][0], vifes)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _enc_err(index, f"value {value!r} is not a number")
    for base, _, signed, scale in cands:
        raw = _raw_of(value, scale)
        dfield = None if raw is None else _int_field_for(raw, signed)
        if dfield is not None:
            return _dif_bytes(rec, dfield, index) + _vif_chain(base, vifes)
    if not math.isfinite(value):
        raise _enc_err(index, f"value {value!r} is not finite")
    # float arithmetic noise (0.1 + 0.2): the finest scale within 1e-9
    base, _, signed, scale = cands[-1]
    raw = _raw_of(value, scale, _NOISE)
    dfield = None if raw is None else _int_field_for(raw, signed)
    if dfield is not None:
        return _dif_bytes(rec, dfield, index) + _vif_chain(base, vifes)
    # not a whole number at any scale: IEEE single at the scale nearest to the canonical unit
    base = min(cands, key=lambda c: abs(math.log10(c[1])))[0]
    return _dif_bytes(rec, 5, index) + _vif_chain(base, vifes)


def _date_field(value: str) -> int:
    """The data field (date type) for an ISO date/time string."""
    if value.startswith("--"):
        return 2
    if len(value) == 8:
        return 3
    if len(value) == 10:  # type G holds years 1981-2080, type F up to 2299
        return 2 if value[:4].isdigit() and 1981 <= int(value[:4]) <= 2080 else 4
    return 6 if len(value) > 16 else 4


def _raw_of(value: int | float, scale: _Scale, rel_tol: float = 0.0) -> int | None:
    """The transmitted integer that decodes to exactly ``value`` (for a float: to the same
    float), or within ``rel_tol``; None if there is none."""
    num, den, mode, ndigits = scale
    if isinstance(value, int):
        q, rem = divmod(value * den, num)
        return q if rem == 0 else None
    if not math.isfinite(value):
        return None
    p, q = value.as_integer_ratio()  # exact: float products would lose the low digits
    r = (2 * p * den + q * num) // (2 * q * num)
    # beyond 2^50 several integers decode to the same float: try the neighbours too
    for candidate in (r, r - 1, r + 1, r - 2, r + 2, r - 3, r + 3, r - 4, r + 4)[: 1 if -(2**50) < r < 2**50 else 9]:
        decoded = candidate * num / den
        if mode == M_ROUND:
            decoded = round(decoded, ndigits)
        if decoded == value:
            return candidate
    if rel_tol and abs(r * num / den - value) <= rel_tol * abs(value):
        return r
    return None


def _to_raw(value: Any, scale: _Scale, index: int, *, rel_tol: float = 0.0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _enc_err(index, f"value {value!r} is not a number")
    raw = _raw_of(value, scale, rel_tol)
    if raw is None:
        raise _enc_err(index, f"value {value!r} is not a whole multiple of the VIF scale {scale.num}/{scale.den}")
    return raw


def _int_field_for(raw: int, signed: bool) -> int | None:
    """Smallest integer data field holding ``raw`` (type B signed or C unsigned), or None."""
    for size, dfield in _INT_FIELDS:
        if signed and -(1 << (8 * size - 1)) <= raw < (1 << (8 * size - 1)):
            return dfield
        if not signed and 0 <= raw < (1 << (8 * size)):
            return dfield
    return None


def _encode_data(info: HeaderInfo, rec: dict[str, Any], index: int, rel_tol: float = 0.0) -> bytes:
    dec = info.decoder
    value: Any = rec.get("value")
    if dec == D_NONE:
        return b""
    if (
        value is None
        or dec == D_RAW
        or (dec == D_LVAR and info.lvar_raw and not isinstance(value, str))
        or (dec == D_DATE_F and rec.get("raw"))
    ):  # a date with a time of day: the bytes as sent
        raw = rec.get("raw")
        if raw is None:
            raise _enc_err(index, "no value and no raw bytes to encode")
        try:
            b = bytes.fromhex(raw)
        except (ValueError, TypeError):
            raise _enc_err(index, f"raw {raw!r} is not hex") from None
        if dec == D_LVAR:
            return _lvar_prefix(b, info, bool(rec.get("error_value")), index) + b
        if len(b) != info.dlen:
            raise _enc_err(index, f"raw has {len(b)} bytes, the data field needs {info.dlen}")
        return b
    scale = _Scale(info.num, info.den, info.mode, info.ndigits)
    if dec in (D_INT, D_UINT):
        raw = _to_raw(value, scale, index, rel_tol=rel_tol)
        try:
            return raw.to_bytes(info.dlen, "little", signed=dec == D_INT)
        except OverflowError:
            raise _enc_err(index, f"value {value!r} does not fit {info.dlen} bytes") from None
    if dec == D_BCD:
        raw = _to_raw(value, scale, index)
        digits = 2 * info.dlen
        text = str(raw) if raw >= 0 else "f" + str(-raw).rjust(digits - 1, "0")
        if len(text) > digits:
            raise _enc_err(index, f"value {value!r} does not fit {digits} BCD digits")
        return bytes.fromhex(text.rjust(digits, "0"))[::-1]
    if dec == D_REAL:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _enc_err(index, f"value {value!r} is not a number")
        x = value * scale.den / scale.num
        try:
            if not math.isfinite(x):
                raise OverflowError
            packed = F32.pack(x)
        except (OverflowError, struct.error):
            raise _enc_err(index, f"value {value!r} does not fit an IEEE single") from None
        return _nearest_real(packed, value, scale)
    if dec == D_LVAR:
        if isinstance(value, str) and info.lvar_dates is not None:  # a date as an LVAR binary number
            raw = rec.get("raw")
            if raw and len(raw) == 8 and 4 in info.lvar_dates:  # type F with a time of day, as sent
                return b"\xe4" + bytes.fromhex(raw)
            size = _date_field(value)  # data fields 2/3/4/6 hold 2/3/4/6 bytes
            spec = info.lvar_dates.get(size) or info.lvar_dates.get(4)
            if spec is None:
                raise _enc_err(index, f"{value!r} has no date type under this VIF")
            data = _encode_date(spec[0], value, bool(rec.get("dst")), index)
            return bytes([0xE0 + len(data)]) + data
        if isinstance(value, str):
            encoded = value.encode("latin-1", "replace")[::-1]
            if len(encoded) >= 0xC0:
                raise _enc_err(index, "text longer than 191 characters")
            return bytes([len(encoded)]) + encoded
        raw = _to_raw(value, scale, index)
        size = max(1, (raw.bit_length() + (8 if info.signed else 7)) // 8)
        if size > 8 or (raw < 0 and not info.signed):
            raise _enc_err(index, f"value {value!r} does not fit an LVAR binary number")
        return bytes([0xE0 + size]) + raw.to_bytes(size, "little", signed=info.signed)
    if not isinstance(value, str):
        raise _enc_err(index, f"date/time value {value!r} is not a string")
    return _encode_date(dec, value, bool(rec.get("dst")), index)


def _real_value(packed: bytes, scale: _Scale) -> float | None:
    """What the decoder makes of these IEEE single bytes (records.decode_general, D_REAL)."""
    r = real32(packed)
    if r is None:
        return None
    x, digits = r
    return float(f"{(x if scale.mode == M_ONE else x * scale.num / scale.den):.{digits}g}")


def _nearest_real(packed: bytes, value: float, scale: _Scale) -> bytes:
    """The single that decodes to ``value`` itself: the one nearest to value/scale, or a
    neighbour a few steps away (the decoder rounds a scaled single to the single's own
    significant digits, so the nearest single can read back one digit short)."""
    if _real_value(packed, scale) == value:
        return packed
    bits = int.from_bytes(packed, "little")
    for step in (1, -1, 2, -2, 3, -3):
        candidate = ((bits + step) & 0xFFFFFFFF).to_bytes(4, "little")
        if _real_value(candidate, scale) == value:
            return candidate
    return packed


def _lvar_prefix(b: bytes, info: HeaderInfo, error_value: bool, index: int) -> bytes:
    """The LVAR byte for raw data: invalid BCD stays BCD, big binary numbers stay binary."""
    size = len(b)
    if error_value and size <= 9:
        return bytes([0xC0 + size])
    if not error_value and not info.lvar_raw:
        if size <= 15:
            return bytes([0xE0 + size])
        code = {16: 0xF0, 20: 0xF1, 24: 0xF2, 28: 0xF3, 32: 0xF4, 48: 0xF5, 64: 0xF6}.get(size)
        if code is not None:
            return bytes([code])
    if size >= 0xC0:
        raise _enc_err(index, "raw LVAR data longer than 191 bytes")
    return bytes([size])


def _parse_iso(text: str, index: int) -> tuple[int, ...]:
    try:
        date, _, clock = text.partition("T")
        y, mo, d = (int(x) for x in date.split("-"))
        parts = [int(x) for x in clock.split(":")] if clock else []
    except ValueError:
        raise _enc_err(index, f"{text!r} is not an ISO date/time") from None
    h, mi, s = (parts + [0, 0, 0])[:3]
    if not (1 <= mo <= 12 and 1 <= d <= 31 and 0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59):
        raise _enc_err(index, f"{text!r} is out of range")
    return y, mo, d, h, mi, s


def _encode_date(dec: int, text: str, dst: bool, index: int) -> bytes:
    if dec == D_TIME_J:
        try:
            h, mi, s = (int(x) for x in text.split(":"))
        except ValueError:
            raise _enc_err(index, f"{text!r} is not HH:MM:SS") from None
        if not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59):
            raise _enc_err(index, f"{text!r} is out of range")
        return bytes([s, mi, h])
    if dec == D_DATE_G and text.startswith("--"):  # periodic date (year 127)
        try:
            month, day = (0, int(text[3:])) if text.startswith("---") else map(int, text[2:].split("-"))
        except ValueError:
            raise _enc_err(index, f"{text!r} is not a periodic ISO date") from None
        if not (0 <= month <= 12 and 1 <= day <= 31):
            raise _enc_err(index, f"{text!r} is out of range")
        return bytes([0xE0 | day, 0xF0 | month])
    y, mo, d, h, mi, s = _parse_iso(text, index)
    if dec in (D_DATETIME_F, D_DATE_F):
        if 2000 <= y <= 2299:
            hundred, yy = divmod(y - 1900, 100)
        elif 1981 <= y <= 1999:
            hundred, yy = 0, y - 1900
        else:
            raise _enc_err(index, f"year {y} cannot be coded in type F")
        return bytes([mi, (0x80 if dst else 0) | (hundred << 5) | h, ((yy & 7) << 5) | d, ((yy >> 3) << 4) | mo])
    if not 1981 <= y <= 2080:
        raise _enc_err(index, f"year {y} cannot be coded in a two-digit year")
    yy = y % 100
    if dec == D_DATE_G:
        return bytes([((yy & 7) << 5) | d, ((yy >> 3) << 4) | mo])
    return bytes([(0x40 if dst else 0) | s, mi, h, ((yy & 7) << 5) | d, ((yy >> 3) << 4) | mo, 0])
