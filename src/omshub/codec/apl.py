"""EN 13757-3 application layer: data records <-> uniform record dicts (brief §7).

``decode_records`` walks ``DIF [DIFE…] VIF [VIFE…] data`` records; ``encode_records`` is its
inverse. Each distinct record header (DIF…VIFE bytes, plus the text of a plain-text VIF) is
interpreted once and memoised in a bounded module-level cache (a pure-function cache: the
result depends only on the header bytes), so the per-record hot path is a slice, a dict lookup,
an ``int.from_bytes`` and a dict copy. Above that, whole APLs whose header bytes sit where an
earlier APL's did are decoded by that APL's memoised layout (see "layouts" below).

Record keys: ``quantity unit value storage tariff subunit function dif_vif`` always
(``dif_vif`` = every header byte before the data, incl. a plain-text unit), and only when
relevant: ``qualifiers`` (list, units.QUALIFIERS: forward/backward, limits, phases, per-…),
``of`` (the VIF's quantity when a VIFE made the record a count/duration/date of it),
``record_error`` (error VIFE), ``vife`` (unknown / manufacturer VIFEs, hex as sent),
``unit_text`` (plain-text VIF), ``error_value`` (value null: invalid BCD/date, error VIFE,
NaN), ``raw`` (data hex when the value is not decoded), ``dst`` (summer-time flag of F/I dates).

A record the grammar cannot delimit raises ``DecodeError("invalid_record")`` whose ``partial``
holds the records before it and the ``reason``; the caller turns the rest of the APL into one
``undecoded`` record (:func:`undecoded_record`, docs/formats.md §1.2): no byte is skipped.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from functools import partial
from typing import NamedTuple

from omshub.codec import vif as _vif
from omshub.codec.errors import DecodeError
from omshub.codec.units import QUANTITIES

MAX_APL = 65535          # bytes; far above any M-Bus/wM-Bus APL, bounds work on hostile input
MAX_EXTENSIONS = 10      # DIFEs / VIFEs per record (brief §7)
_CACHE_LIMIT = 4096      # header memo entries; cleared when full

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")

# data field -> fixed data length (LVAR 0xD is -1; 0xF is special and never looked up)
_DATA_LEN = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, 0)

# value decoders
D_NONE, D_INT, D_UINT, D_BCD, D_REAL, D_LVAR, D_DATE_G, D_DATE_F, D_DATETIME_F, D_DATETIME_I, \
    D_TIME_J, D_RAW = range(12)

# scale modes: value = raw | raw*num | raw*num/den | round(raw*num/den, nd)
M_ONE, M_MUL, M_DIV, M_ROUND = range(4)


class HeaderInfo(NamedTuple):
    """What a record header means; ``template`` is the record dict without its value."""
    dlen: int                 # fixed data length, -1 for LVAR
    decoder: int              # D_*
    template: dict
    mode: int                 # M_*
    num: int
    den: int
    ndigits: int              # decimals kept for non-terminating scales (M_ROUND)
    is_float: bool            # quantity values are always floats
    lvar_raw: bool            # LVAR 00-BF bytes are a container/profile, not text
    has_lists: bool           # template holds lists (copied per record)
    record_error: bool        # a record-error VIFE: the value is not valid
    unpack: object            # struct unpack_from for 1/2/4/8-byte integer/BCD fields, else None
    signed: bool              # binary numbers are type B (else C/D, unsigned)
    inverse_profile: bool = False  # VIFE 13 on an LVAR: its values also come out as records
    keep_raw: bool = False    # the value is not understood (unknown VIF): the data hex is kept too
    lvar_dates: dict | None = None  # date VIFs: LVAR binary size -> (D_* date decoder, quantity)


_CACHE: dict[bytes, HeaderInfo] = {}
# the same headers' fast-path view, for plain numbers in 1/2/4/8-byte fields:
# (dlen, template, unpack, num (0 = value is the raw int), den, is BCD)
_FAST: dict[bytes, tuple] = {}


# why the record grammar could not place bytes (``reason`` of an undecoded record, docs/formats.md §1.2)
R_TRUNCATED = "truncated"                      # a record runs past the end of the APL
R_TOO_MANY_EXTENSIONS = "too_many_extensions"  # more than 10 DIFEs or VIFEs
R_RESERVED_LVAR = "reserved_lvar"              # LVAR F7-FF: the data length is not defined
R_RESERVED_DIF = "reserved_dif"                # special DIF 3F-6F or 7F (no record follows)


def _err(message: str, offset: int, records: list | None = None, reason: str = R_TRUNCATED,
         header_end: int | None = None) -> DecodeError:
    """A record grammar error; ``partial`` carries the records before it (when given), the
    reason code and, when the record's header could be delimited, where it ends."""
    extra: dict = {"reason": reason}
    if records is not None:
        extra["records"] = records
    if header_end is not None:
        extra["header_end"] = header_end
    return DecodeError("invalid_record", message, layer="apl", offset=offset, partial=extra)


def undecoded_record(data: bytes, offset: int, end: int, exc: DecodeError) -> dict:
    """The ``undecoded`` record (docs/formats.md §1.2) for ``data[offset:end]``: the bytes from the
    record that ``exc`` (a record grammar error at ``offset``) could not delimit to the end of
    the APL, as hex, with the reason. The grammar has no way to find the next record after
    one it cannot delimit, so everything up to the end goes into this one record. Storage,
    tariff, subunit and function are those of the record's DIF/DIFEs when it has them whole."""
    extra = exc.partial or {}
    rec = {"quantity": "undecoded", "unit": "", "value": bytes(data[offset:end]).hex(), "storage": 0,
           "tariff": 0, "subunit": 0, "function": "instantaneous", "dif_vif": "",
           "reason": extra.get("reason", R_TRUNCATED), "message": exc.message}
    dif = data[offset] if offset < end else 0x0F
    if dif & 0x0F != 0x0F:
        rec["storage"] = (dif >> 6) & 1
        rec["function"] = FUNCTIONS[(dif >> 4) & 3]
        p, k, tariff, subunit = offset + 1, 0, 0, 0
        ext = dif & 0x80
        while ext and p < end and k < MAX_EXTENSIONS:
            b = data[p]
            rec["storage"] |= (b & 0x0F) << (1 + 4 * k)
            tariff |= ((b >> 4) & 3) << (2 * k)
            subunit |= ((b >> 6) & 1) << k
            ext = b & 0x80
            p += 1
            k += 1
        if ext:  # the DIFE chain itself is cut short or too long: nothing of it is certain
            rec["storage"], rec["function"] = 0, "instantaneous"
        else:
            rec["tariff"], rec["subunit"] = tariff, subunit
    header = extra.get("header_end")
    if header is not None and offset < header <= end:
        rec["dif_vif"] = bytes(data[offset:header]).hex()
    return rec


# ---------------------------------------------------------------------------------- grammar

def header_end(data: bytes, i: int, n: int) -> int:
    """End offset of the record header starting at ``data[i]`` (a DIF that is not 0x?F).

    Raises ``DecodeError`` when the header runs past ``n`` or has too many extensions.
    """
    j = i + 1
    if data[i] & 0x80:
        count = 0
        while True:
            if j >= n:
                raise _err(f"record at offset {i}: DIFE expected at offset {j}, APL ends (truncated)", i)
            b = data[j]
            j += 1
            count += 1
            if not b & 0x80:
                break
            if count >= MAX_EXTENSIONS:
                raise _err(f"record at offset {i}: more than {MAX_EXTENSIONS} DIFEs", i,
                           reason=R_TOO_MANY_EXTENSIONS)
    if j >= n:
        raise _err(f"record at offset {i}: VIF expected at offset {j}, APL ends (truncated)", i)
    vif = data[j]
    j += 1
    if vif & 0x80:
        count = 0
        while True:
            if j >= n:
                raise _err(f"record at offset {i}: VIFE expected at offset {j}, APL ends (truncated)", i)
            b = data[j]
            j += 1
            count += 1
            if not b & 0x80:
                break
            if count > MAX_EXTENSIONS:  # FB/FD code byte + up to 10 combinable VIFEs
                raise _err(f"record at offset {i}: more than {MAX_EXTENSIONS} VIFEs", i,
                           reason=R_TOO_MANY_EXTENSIONS)
    if vif & 0x7F == 0x7C:  # plain-text VIF: length byte + text follow the VIFEs
        if j >= n:
            raise _err(f"record at offset {i}: plain-text VIF length expected at offset {j}, "
                       "APL ends (truncated)", i)
        j += 1 + data[j]
        if j > n:
            raise _err(f"record at offset {i}: plain-text VIF unit text runs past the APL end "
                       "(truncated)", i)
    return j


def header_info(hdr: bytes) -> HeaderInfo:
    """Interpret one complete record header (memoised). ``DecodeError`` if it is malformed."""
    info = _CACHE.get(hdr)
    if info is None:
        if not hdr or hdr[0] & 0x0F == 0x0F:
            raise _err(f"{hdr.hex()!r} is not a data record header", 0)
        if header_end(hdr, 0, len(hdr)) != len(hdr):
            raise _err(f"{hdr.hex()!r} has bytes after the record header", 0)
        info = _interpret(hdr)
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
            _FAST.clear()
        _CACHE[hdr] = info
        if (info.unpack is not None and info.mode in (M_ONE, M_DIV) and not info.has_lists
                and not info.record_error and not info.keep_raw):
            plain_int = info.mode == M_ONE and not info.is_float
            _FAST[hdr] = (info.dlen, info.template, info.unpack, 0 if plain_int else info.num,
                          info.den, info.decoder == D_BCD)
    return info


def _interpret(hdr: bytes) -> HeaderInfo:
    dif = hdr[0]
    dfield = dif & 0x0F
    storage = (dif >> 6) & 1
    function = FUNCTIONS[(dif >> 4) & 3]
    tariff = subunit = 0
    p = 1
    k = 0
    ext = dif & 0x80
    while ext:
        b = hdr[p]
        storage |= (b & 0x0F) << (1 + 4 * k)
        tariff |= ((b >> 4) & 3) << (2 * k)
        subunit |= ((b >> 6) & 1) << k
        ext = b & 0x80
        p += 1
        k += 1
    vif = hdr[p]
    p += 1
    code = vif & 0x7F
    vifes: list[int] = []
    unit_text = None
    if vif in (0xFB, 0xFD, 0xEF):  # the next byte is a code of that table (EF: reserved, none known)
        table_code = hdr[p]
        p += 1
        entry = _vif.FB.get(table_code & 0x7F, _vif.UNKNOWN) if vif == 0xFB else (
            _vif.FD.get(table_code & 0x7F, _vif.UNKNOWN) if vif == 0xFD else _vif.UNKNOWN)
        ext = table_code & 0x80
    else:
        entry = _vif.PRIMARY.get(code, _vif.UNKNOWN) if code != 0x7C else _vif.VifEntry(
            "custom", Fraction(1), "num")
        ext = vif & 0x80
    while ext:
        b = hdr[p]
        vifes.append(b)
        ext = b & 0x80
        p += 1
    if code == 0x7C and vif not in (0xFB, 0xFD):
        length = hdr[p]
        unit_text = hdr[p + 1:p + 1 + length][::-1].decode("latin-1")

    quantity, scale, kind = entry
    extra: dict = {}
    qualifiers: list[str] = []
    raw_vifes: list[str] = []
    unit_suffix = ""
    lvar_raw = kind == "raw"
    if quantity == "manufacturer_specific":
        raw_vifes = [f"{b:02x}" for b in vifes]
        vifes = []
    idx = 0
    while idx < len(vifes):
        b = vifes[idx]
        c = b & 0x7F
        idx += 1
        if c == 0x00:
            continue  # record error "none"
        if c in _vif.RECORD_ERRORS:
            extra["record_error"] = _vif.RECORD_ERRORS[c]
        elif c in _vif.QUALIFIER_VIFE:
            qualifiers.append(_vif.QUALIFIER_VIFE[c])
            if c in _vif.PROFILE_VIFES:
                lvar_raw = True
        elif 0x70 <= c <= 0x77:
            scale = scale * Fraction(10) ** (c - 0x76)
        elif c == 0x7D:
            scale = scale * 1000
        elif 0x78 <= c <= 0x7B:
            qualifiers.append("additive_correction")
            scale = scale * Fraction(10) ** ((c & 3) - 3)
        elif c in _vif.PER_TIME:
            name, suffix, to_hour = _vif.PER_TIME[c]
            rate = _vif.RATE_OF.get(quantity)
            if rate is not None and to_hour is not None and not unit_suffix:
                quantity, scale = rate, scale * to_hour
            else:
                qualifiers.append(name)
                unit_suffix += "/" + suffix
        elif c in _vif.PER_UNIT:
            name, suffix = _vif.PER_UNIT[c]
            qualifiers.append(name)
            unit_suffix += suffix
        elif c in (0x41, 0x49):
            extra["of"] = quantity
            qualifiers.append("upper_limit" if c & 0x08 else "lower_limit")
            quantity, scale, kind = "limit_exceed_count", Fraction(1), "uint"
        elif 0x42 <= c <= 0x4F:  # E100 u f 1 b: date(/time) of begin/end of first/last exceed
            extra["of"] = quantity
            qualifiers += ["upper_limit" if c & 0x08 else "lower_limit", "last" if c & 0x04 else "first"]
            quantity, scale, kind = ("limit_exceed_end" if c & 1 else "limit_exceed_begin"), Fraction(1), "anydate"
        elif 0x50 <= c <= 0x5F:  # E101 u f nn: duration of first/last lower/upper exceed
            extra["of"] = quantity
            qualifiers += ["upper_limit" if c & 0x08 else "lower_limit", "last" if c & 0x04 else "first"]
            quantity, scale, kind = "limit_exceed_duration", Fraction((1, 60, 3600, 86400)[c & 3]), "num"
        elif 0x60 <= c <= 0x67:  # E110 0 f nn: duration of first/last (event)
            extra["of"] = quantity
            qualifiers.append("last" if c & 0x04 else "first")
            quantity, scale, kind = "event_duration", Fraction((1, 60, 3600, 86400)[c & 3]), "num"
        elif c in (0x6A, 0x6B, 0x6E, 0x6F):  # E110 f 1 b: date(/time) of first/last begin/end
            extra["of"] = quantity
            qualifiers.append("last" if c & 0x04 else "first")
            quantity, scale, kind = ("event_end" if c & 1 else "event_begin"), Fraction(1), "anydate"
        elif c == 0x7C and idx < len(vifes):  # combinable extension table ("FC")
            nxt = vifes[idx] & 0x7F
            idx += 1
            if nxt in _vif.FC_PHASES:
                qualifiers.append(_vif.FC_PHASES[nxt])
            else:
                raw_vifes += [f"{b:02x}", f"{vifes[idx - 1]:02x}"]
        elif c == 0x7F:  # manufacturer-specific VIFEs follow: all kept verbatim
            raw_vifes += [f"{x:02x}" for x in vifes[idx - 1:]]
            break
        else:
            raw_vifes.append(f"{b:02x}")

    # which value decoder the data field needs for this kind of quantity
    decoder = _decoder_for(kind, dfield)
    if kind == "datetime" and quantity == "datetime":
        if decoder == D_TIME_J:
            quantity = "time"
        elif decoder == D_DATE_G:
            quantity = "date"
    lvar_dates = None
    if decoder == D_LVAR and kind in ("date", "datetime", "anydate"):
        lvar_raw = True  # type M compound date (layout not established), BCD: kept raw
        # a binary LVAR (E0-EF) of a date type's size is that date type
        if kind == "date":
            lvar_dates = {2: (D_DATE_G, quantity), 4: (D_DATE_F, quantity)}
        else:
            renamed = kind == "datetime" and quantity == "datetime"
            lvar_dates = {2: (D_DATE_G, "date" if renamed else quantity),
                          3: (D_TIME_J, "time" if renamed else quantity),
                          4: (D_DATETIME_F, quantity), 6: (D_DATETIME_I, quantity)}
    unit = QUANTITIES[quantity][0] + unit_suffix
    template: dict = {"quantity": quantity, "unit": unit, "value": None, "storage": storage,
                      "tariff": tariff, "subunit": subunit, "function": function,
                      "dif_vif": hdr.hex()}
    if qualifiers:
        template["qualifiers"] = qualifiers
    template.update(extra)
    if raw_vifes:
        template["vife"] = raw_vifes
    if unit_text is not None:
        template["unit_text"] = unit_text

    mode, num, den, nd = _scale_mode(scale)
    dlen = _DATA_LEN[dfield]
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}.get(dlen) if decoder in (D_INT, D_UINT, D_BCD) else None
    if fmt and decoder != D_INT:
        fmt = fmt.upper()  # unsigned (BCD digits are read as one unsigned number)
    unpack = struct.Struct("<" + fmt).unpack_from if fmt else None
    inverse_profile = (decoder == D_LVAR and kind in ("num", "uint") and "record_error" not in extra
                       and "inverse_compact_profile" in qualifiers)
    return HeaderInfo(dlen, decoder, template, mode, num, den, nd,
                      QUANTITIES[quantity][1] == "float", lvar_raw,
                      bool(qualifiers or raw_vifes), "record_error" in extra, unpack, kind != "uint",
                      inverse_profile, quantity == "unknown" and decoder != D_RAW, lvar_dates)


def _decoder_for(kind: str, dfield: int) -> int:
    if kind == "raw":
        return D_LVAR if dfield == 0xD else (D_NONE if _DATA_LEN[dfield] == 0 else D_RAW)
    if kind == "date":
        return {2: D_DATE_G, 4: D_DATE_F, 0: D_NONE, 8: D_NONE, 0xD: D_LVAR}.get(dfield, D_RAW)
    if kind in ("datetime", "anydate"):
        return {2: D_DATE_G, 3: D_TIME_J, 4: D_DATETIME_F, 6: D_DATETIME_I, 0: D_NONE, 8: D_NONE,
                0xD: D_LVAR}.get(dfield, D_RAW)
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


def _scale_mode(scale: Fraction) -> tuple[int, int, int, int]:
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


# ---------------------------------------------------------------------------------- values

def _bcd(b: bytes) -> int | None:
    """Type A: unsigned BCD, LE; top nibble F = negative; any other A-F digit -> None."""
    if not b:
        return 0
    s = b[::-1].hex()
    if s.isdigit():
        return int(s)
    if s[0] == "f" and (len(s) == 1 or s[1:].isdigit()):
        return -int(s[1:] or "0")
    return None


def _year(y: int) -> int:
    return 2000 + y if y <= 80 else 1900 + y


def _date_g(b: bytes) -> str | None:
    if b[0] == 0xFF and b[1] == 0xFF:
        return None
    day, month = b[0] & 0x1F, b[1] & 0x0F
    year = (b[0] >> 5) | ((b[1] & 0xF0) >> 1)
    if year == 127 and 1 <= day <= 31:  # periodic: ISO 8601 "--MM-DD" every year, "---DD" every month
        if month == 0:
            return f"---{day:02d}"
        return f"--{month:02d}-{day:02d}" if month <= 12 else None
    if not (1 <= day <= 31 and 1 <= month <= 12 and year <= 99):
        return None
    return f"{_year(year):04d}-{month:02d}-{day:02d}"


def _datetime_f(b: bytes) -> tuple[str, bool] | None:
    if b[0] & 0x80:
        return None  # IV: invalid
    minute, hour, day, month = b[0] & 0x3F, b[1] & 0x1F, b[2] & 0x1F, b[3] & 0x0F
    year = (b[2] >> 5) | ((b[3] & 0xF0) >> 1)
    hundred = (b[1] >> 5) & 3
    if not (minute <= 59 and hour <= 23 and 1 <= day <= 31 and 1 <= month <= 12 and year <= 99):
        return None
    full_year = 1900 + 100 * hundred + year if hundred else _year(year)
    return f"{full_year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}", bool(b[1] & 0x80)


def _datetime_i(b: bytes) -> tuple[str, bool] | None:
    if b[1] & 0x80:
        return None
    second, minute, hour = b[0] & 0x3F, b[1] & 0x3F, b[2] & 0x1F
    day, month = b[3] & 0x1F, b[4] & 0x0F
    year = (b[3] >> 5) | ((b[4] & 0xF0) >> 1)
    if not (second <= 59 and minute <= 59 and hour <= 23 and 1 <= day <= 31 and 1 <= month <= 12
            and year <= 99):
        return None
    return (f"{_year(year):04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}",
            bool(b[0] & 0x40))


def _time_j(b: bytes) -> str | None:
    second, minute, hour = b[0] & 0x3F, b[1] & 0x3F, b[2] & 0x1F
    if second > 59 or minute > 59 or hour > 23:
        return None
    return f"{hour:02d}:{minute:02d}:{second:02d}"


_F32 = struct.Struct("<f")


def _real32(b: bytes) -> tuple[float, int] | None:
    """IEEE single -> (shortest decimal float that maps back to the same single, digits)."""
    x = _F32.unpack(b)[0]
    if not math.isfinite(x):
        return None
    for digits in (6, 7, 8, 9):
        short = float(f"{x:.{digits}g}")
        if _F32.unpack(_F32.pack(short))[0] == x:
            return short, digits
    return x, 17  # pragma: no cover - 9 digits always round-trip a single


def _scaled(raw: int, info: HeaderInfo):
    mode = info.mode
    if mode == M_ONE:
        return float(raw) if info.is_float else raw
    if mode == M_MUL:
        v = raw * info.num
        # beyond 64 bits an int is not portable JSON (orjson, JavaScript): a float then
        return float(v) if info.is_float or not -(1 << 63) <= v < (1 << 64) else v
    if mode == M_DIV:
        return raw * info.num / info.den
    return round(raw * info.num / info.den, info.ndigits)


# ---------------------------------------------------------------------------------- decode

def decode_records(data: bytes, start: int = 0, end: int | None = None) -> tuple[list[dict], str | None]:
    """EN 13757-3 records in ``data[start:end]`` -> (records, manufacturer data hex or None).

    2F fillers are skipped; ``0F``/``1F`` end the records and the rest is returned as hex
    (``""`` when nothing follows; :func:`decode_records_ex` also tells which of the two it was).
    Raises ``DecodeError("invalid_record")``
    with the offset of the bad record and the records decoded so far in ``partial["records"]``.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data) if end is None else end
    if start < 0 or n > len(data) or start > n:
        raise DecodeError("invalid_record", f"APL bounds {start}..{end} outside the {len(data)} "
                          "bytes given", layer="apl", offset=start)
    if n - start > MAX_APL:
        raise DecodeError("too_long", f"APL of {n - start} bytes exceeds {MAX_APL}", layer="apl",
                          offset=start)
    # whole-APL layout memo: same header bytes at the same places -> decode by one precompiled plan
    # (key: length, the fillers and the first two header bytes, and when the first record is a
    # plain DIF+VIF with fixed-size data, the first two header bytes of the second record)
    i = start
    while i < n and data[i] == 0x2F:
        i += 1
    if i + 1 < n and not (data[i] | data[i + 1]) & 0x80 and data[i + 1] != 0x7C:
        second = i + 2 + _DATA_LEN[data[i] & 0x0F]
        layout_key = (n - start, data[start:i + 2], data[second:second + 2])
    else:
        layout_key = (n - start, data[start:i + 2])
    candidates = _LAYOUTS.get(layout_key)
    if candidates is not None:
        bits = int.from_bytes(data[start:n], "little")
        for k, layout in enumerate(candidates):
            if bits & layout[0] == layout[1]:
                if k:  # the layouts in use move to the front
                    candidates.insert(0, candidates.pop(k))
                build = layout[2]
                if layout[5] is not None:  # interpreted plan: compile it once it proves hot
                    layout[4] += 1
                    if layout[4] == _COMPILE_AFTER and _COMPILED[0] < _COMPILED_LIMIT:
                        _COMPILED[0] += 1
                        build = layout[2] = _compile_layout(*layout[5])
                        layout[5] = None
                if build is not None:
                    records = build(data, start)
                    if records is not None:
                        at = layout[3]
                        return records, (data[at:n].hex() if at >= 0 else None)
                candidates = None  # known layout: nothing to learn from the general path
                break
        else:
            if len(candidates) >= _LAYOUTS_PER_KEY:
                candidates = None
    else:  # a key seen for the first time is only noted: one-off layouts cost no learning
        if len(_LAYOUTS) >= _LAYOUTS_LIMIT:
            _LAYOUTS.clear()
            _COMPILED[0] = 0
        _LAYOUTS[layout_key] = []
    records, mdata = _decode_general(data, start, n)
    if candidates is not None:
        candidates.append(_learn_layout(data, start, n))
    return records, mdata


def decode_records_ex(data: bytes, start: int = 0,
                      end: int | None = None) -> tuple[list[dict], str | None, bool]:
    """:func:`decode_records` plus whether more records follow in the next telegram (the records
    closed with DIF 1F rather than 0F)."""
    records, mdata = decode_records(data, start, end)
    return records, mdata, more_records_follow(data, end, mdata)


def more_records_follow(data: bytes, end: int | None, mdata: str | None) -> bool:
    """True when ``decode_records(data, start, end)`` returned ``mdata`` after a 1F DIF."""
    if mdata is None:
        return False
    n = len(data) if end is None else end
    return data[n - len(mdata) // 2 - 1] == 0x1F


def _decode_general(data: bytes, start: int, n: int) -> tuple[list[dict], str | None]:
    """The record-by-record decoder (every APL the layout memo does not cover)."""
    records: list[dict] = []
    append = records.append
    cache_get = _CACHE.get
    fast_get = _FAST.get
    from_bytes = int.from_bytes
    i = start
    while i < n:
        dif = data[i]
        if dif == 0x2F:
            i += 1
            continue
        if dif & 0x0F == 0x0F:
            if dif == 0x0F or dif == 0x1F:
                # 1F (more records follow in the next telegram) vs 0F: the byte before the hex
                return records, data[i + 1:n].hex()
            what = "global readout request (downlink only)" if dif == 0x7F else "reserved special function"
            raise _err(f"DIF 0x{dif:02X} at offset {i} is a {what}", i, records, R_RESERVED_DIF)
        # fast path for the common DIF+VIF header without extensions
        j = i + 1
        if not dif & 0x80 and j < n and not data[j] & 0x80 and data[j] != 0x7C:
            j += 1
        else:
            try:
                j = header_end(data, i, n)
            except DecodeError as exc:
                exc.partial["records"] = records
                raise
        key = data[i:j]
        fast = fast_get(key)
        if fast is not None:  # plain number in a 1/2/4/8-byte field (most records)
            dlen, template, unpack, num, den, bcd = fast
            e = j + dlen
            if e <= n:
                raw = unpack(data, j)[0]
                if bcd:
                    digits = "%x" % raw
                    raw = int(digits) if digits.isdigit() else None
                if raw is not None:
                    rec = template.copy()
                    rec["value"] = raw if num == 0 else raw * num / den
                    append(rec)
                    i = e
                    continue
        info = cache_get(key)
        if info is None:
            info = header_info(key)
        dlen, dec, template, mode, num, den, _, is_float, _, has_lists, record_error, unpack, _, profile, \
            keep_raw, _ = info
        rec = template.copy()
        if dlen >= 0:
            e = j + dlen
            if e > n:
                raise _err(f"record at offset {i} (header {key.hex()}) needs {dlen} data bytes, "
                           f"only {n - j} left (truncated)", i, records, header_end=j)
            if dec == D_INT or dec == D_UINT:
                if unpack is not None:
                    raw = unpack(data, j)[0]
                else:
                    raw = from_bytes(data[j:e], "little", signed=dec == D_INT)
            elif dec == D_BCD:
                # the digits read as one LE number print as decimal when every nibble is 0-9
                digits = "%x" % (unpack(data, j)[0] if unpack is not None else from_bytes(data[j:e], "little"))
                raw = int(digits) if digits.isdigit() else _bcd(data[j:e])
                if raw is None:
                    rec["error_value"] = True
                    rec["raw"] = data[j:e].hex()
            else:
                raw = None
                if dec == D_REAL:
                    r = _real32(data[j:e])
                    if r is None:
                        rec["error_value"] = True
                        rec["raw"] = data[j:e].hex()
                    else:
                        x, digits = r
                        v = x if mode == M_ONE else x * num / den
                        rec["value"] = float(f"{v:.{digits}g}")
                elif dec == D_RAW:
                    rec["raw"] = data[j:e].hex()
                elif dec != D_NONE:
                    _date_value(dec, data[j:e], rec)
            if raw is not None:
                if mode == M_ONE:
                    rec["value"] = float(raw) if is_float else raw
                elif mode == M_DIV:
                    rec["value"] = raw * num / den
                else:
                    rec["value"] = _scaled(raw, info)
            if keep_raw and dlen:
                rec["raw"] = data[j:e].hex()
        else:
            if j >= n:
                raise _err(f"record at offset {i}: LVAR byte expected at offset {j}, APL ends "
                           "(truncated)", i, records, header_end=j)
            e = _lvar(data, i, j, n, info, rec, records)
        if has_lists:
            for name in ("qualifiers", "vife"):
                if name in rec:
                    rec[name] = list(rec[name])
        if record_error:
            rec["error_value"] = True
            if rec["value"] is not None:
                # the data bytes (an LVAR's without its length byte, as everywhere else)
                rec["raw"] = data[j if dlen >= 0 else j + 1:e].hex()
                rec["value"] = None
        append(rec)
        if profile and "raw" in rec:
            records += _inverse_profile_records(rec, info, bytes.fromhex(rec["raw"]))
        i = e
    return records, None


def _inverse_profile_records(rec: dict, info: HeaderInfo, chunk: bytes) -> list[dict]:
    """The values of an inverse compact profile (VIFE 13, EN 13757-3 annex "compact profile" [S])
    as records of their own: ``chunk`` = spacing control byte (increment mode b7-6, spacing unit
    b5-4, data field b3-0), spacing value, then one value per storage interval going back in time
    from the profile record's storage number. Only absolute values (increment mode 0) in integer
    or BCD fields are expanded; the first invalid BCD element (FF fill) ends the list. The new
    records carry ``dif_vif: ""`` (no header of their own: the telegram's record format stays the
    header sequence) and ``derived_from`` (the profile record's dif_vif); the encoder skips them."""
    if len(chunk) < 2 or chunk[0] >> 6:
        return []
    dfield = chunk[0] & 0x0F
    size = _DATA_LEN[dfield]
    if size <= 0 or dfield in (5, 8, 0xD, 0xF):
        return []
    out = []
    storage = rec["storage"]
    base = {"quantity": rec["quantity"], "unit": rec["unit"], "value": None, "storage": storage,
            "tariff": rec["tariff"], "subunit": rec["subunit"], "function": rec["function"],
            "dif_vif": "", "derived_from": rec["dif_vif"]}
    for k, p in enumerate(range(2, len(chunk) - size + 1, size), 1):
        b = chunk[p:p + size]
        if dfield >= 9:
            raw = _bcd(b)
            if raw is None:
                break
        else:
            raw = int.from_bytes(b, "little", signed=info.signed)
        r = base.copy()
        r["value"] = _scaled(raw, info)
        r["storage"] = storage + k
        out.append(r)
    return out


# ---------------------------------------------------------------------------------- layouts
#
# A meter sends the same records telegram after telegram: only the data bytes change. A layout is
# a whole APL's plan (where every header, filler and 0F/1F byte is, one struct for all data
# fields, one value step per record, compiled into one record-building function), learned from
# the first APL decoded the general way and reused when an APL of the same length has exactly the
# same bytes at all those places (one big-int mask test: the grammar reads no other byte, so the
# walk would be the same). Values the plan cannot take as they are (invalid or negative BCD,
# invalid or summer-time dates, NaN, compact profiles) send the APL to the general decoder, so
# both give the same result. Entries: [mask, expected bits, builder (data, start) -> records | None,
# or None = "decode the general way", offset of the manufacturer data or -1, uses, (struct
# unpacker, steps) while the builder is the interpreted one].

_LAYOUTS: dict[tuple, list[list]] = {}
_COMPILE_AFTER = 32       # uses of a layout before its builder is compiled (compiling costs ~40 decodes)
_COMPILED_LIMIT = 256     # compiled builders until the memo is next cleared (memory bound)
_COMPILED = [0]
_LAYOUTS_LIMIT = 512      # keys (APL length, leading header bytes); cleared when full
_LAYOUTS_PER_KEY = 8      # different layouts behind one key (more are decoded the general way)


# how a layout step gets its value from its struct field v (a, b, c: the step's parameters)
#   K_DIV      v * a / b                              (1/2/4/8-byte binary; a = b = 1 gives a float)
#   K_AS_IS    v                                      (plain integers)
#   K_BCD      BCD digits of v (bytes when c), then * a / b, or as is when b == 0
#   K_INT      int.from_bytes(v, signed=c), then * a / b, or as is when b == 0  (3/6-byte fields)
#   K_CALL     a(v)                                   (dates, real32, other scales)
#   K_RAW      "raw": v.hex()                         K_NONE: no data field
# a value of None from K_BCD/K_CALL sends the APL to the general decoder.
K_DIV, K_AS_IS, K_BCD, K_INT, K_CALL, K_RAW, K_NONE = range(7)
_MEMO_LIMIT = 8192


def _memoised(convert):
    """``convert`` (bytes -> str | None) with a bounded memo: dates repeat from telegram to
    telegram, and formatting them costs more than a lookup."""
    memo: dict[bytes, object] = {}
    get = memo.get
    miss = object()

    def memoised(b):
        v = get(b, miss)
        if v is miss:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            v = memo[b] = convert(b)
        return v
    return memoised


def _date_f_date(b: bytes) -> str | None:
    r = _datetime_f(b)
    # a time of day under a date VIF: the general decoder keeps the bytes as raw too
    return None if r is None or not r[0].endswith("T00:00") else r[0][:10]


def _date_f_datetime(b: bytes) -> str | None:
    r = _datetime_f(b)
    return None if r is None or r[1] else r[0]  # summer-time flag: the general decoder adds "dst"


def _date_i_datetime(b: bytes) -> str | None:
    r = _datetime_i(b)
    return None if r is None or r[1] else r[0]


_DATE_CONVERTERS = {D_DATE_G: _memoised(_date_g), D_TIME_J: _memoised(_time_j),
                    D_DATE_F: _memoised(_date_f_date), D_DATETIME_F: _memoised(_date_f_datetime),
                    D_DATETIME_I: _memoised(_date_i_datetime)}


def _lvar_plan(info: HeaderInfo, lv: int, size: int):
    """(struct code, kind, a, b, c) for an LVAR data field of ``size`` bytes (LVAR byte ``lv``),
    and the record template (a date's quantity may follow from the LVAR size)."""
    code = f"{size}s"
    if info.inverse_profile:
        return None, None  # expanded into records of their own by the general decoder
    if info.lvar_dates is not None and lv >= 0xC0:
        spec = info.lvar_dates.get(size) if lv >= 0xE0 else None
        if spec is None:
            return (code, K_RAW, None, None, None), info.template
        dec, quantity = spec
        template = info.template if quantity == info.template["quantity"] else dict(info.template, quantity=quantity)
        return (code, K_CALL, _DATE_CONVERTERS[dec], None, None), template
    return _lvar_value_plan(info, lv, size, code), info.template


def _lvar_value_plan(info: HeaderInfo, lv: int, size: int, code: str):
    if lv < 0xC0:
        if info.lvar_raw:
            return code, K_RAW, None, None, None
        return code, K_CALL, lambda b: b[::-1].decode("latin-1"), None, None
    if lv < 0xE0:
        negative = lv >= 0xD0

        def bcd(b):
            raw = _bcd(b)
            if raw is None or raw < 0:
                return None  # error value: the general decoder marks it
            return _scaled(-raw if negative else raw, info)
        return code, K_CALL, bcd, None, None
    if size <= 8 and not info.lvar_raw:
        signed = info.signed
        return code, K_CALL, lambda b: _scaled(int.from_bytes(b, "little", signed=signed), info), None, None
    return code, K_RAW, None, None, None


def _field_plan(info: HeaderInfo):
    """(struct code, kind, a, b, c) for a record's fixed-size data field, or None if not plannable."""
    dec, dlen, mode = info.decoder, info.dlen, info.mode
    if info.record_error or dlen < 0 or info.keep_raw:
        return None
    if dec == D_RAW:
        return f"{dlen}s", K_RAW, None, None, None
    if dec == D_NONE:
        return "", K_NONE, None, None, None
    # scale as (a, b): value = raw * a / b, or the raw int itself for b == 0
    if mode == M_ONE:
        a, b = (1, 1) if info.is_float else (1, 0)
    elif mode == M_DIV:
        a, b = info.num, info.den
    else:
        a = b = None
    if dec == D_INT or dec == D_UINT:
        signed = dec == D_INT
        if a is None:
            return (f"{dlen}s", K_CALL,
                    lambda v: _scaled(int.from_bytes(v, "little", signed=signed), info), None, None)
        if info.unpack is None:
            return f"{dlen}s", K_INT, a, b, signed
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[dlen]
        code = code if signed else code.upper()
        return (code, K_AS_IS, None, None, None) if b == 0 else (code, K_DIV, a, b, None)
    if dec == D_BCD:
        code = {1: "B", 2: "H", 4: "I", 8: "Q"}.get(dlen) or f"{dlen}s"
        if a is None:
            def bcd(v):
                digits = "%x" % (v if v.__class__ is int else int.from_bytes(v, "little"))
                return _scaled(int(digits), info) if digits.isdigit() else None
            return code, K_CALL, bcd, None, None
        return code, K_BCD, a, b, code.endswith("s")
    if dec == D_REAL:
        num, den = info.num, info.den

        def real(v):
            r = _real32(v)
            if r is None:
                return None
            x, digits = r
            return float(f"{(x if mode == M_ONE else x * num / den):.{digits}g}")
        return "4s", K_CALL, real, None, None
    return f"{dlen}s", K_CALL, _DATE_CONVERTERS[dec], None, None


def _learn_layout(data: bytes, start: int, n: int) -> list:
    """The layout entry of the (valid) APL ``data[start:n]``, with an interpreted record builder."""
    size = n - start
    mask = bytearray(size)
    fmt = ["<"]
    steps = []
    gap = 0        # bytes since the last data field (struct pad)
    fields = 0
    mdata_at = -1
    plannable = True
    i = start
    while i < n:
        b = data[i]
        if b == 0x2F or b == 0x0F or b == 0x1F:
            mask[i - start] = 0xFF
            gap += 1
            i += 1
            if b != 0x2F:
                mdata_at = i
                break
            continue
        j = header_end(data, i, n)
        info = header_info(data[i:j])
        dlen = info.dlen
        if dlen < 0 and not info.record_error:  # LVAR: its length byte is part of the layout
            lv = data[j]
            dlen = lvar_size(lv)
            plan, template = _lvar_plan(info, lv, dlen)
            j += 1
        else:
            plan, template = _field_plan(info), info.template
        mask[i - start:j - start] = b"\xff" * (j - i)
        if plan is None:
            plannable = False  # a match then just means: decode the general way, learn nothing
            break
        code, kind, a, b, c = plan
        gap += j - i
        if code:
            if gap:
                fmt.append(f"{gap}x")
            fmt.append(code)
            steps.append((template, fields, kind, a, b, c, info.has_lists))
            fields += 1
            gap = 0
        else:
            steps.append((template, 0, kind, a, b, c, info.has_lists))
        i = j + dlen
    mask_int = int.from_bytes(mask, "little")
    expected = int.from_bytes(data[start:n], "little") & mask_int
    if not plannable:
        return [mask_int, expected, None, -1, 0, None]
    plan = (struct.Struct("".join(fmt)).unpack_from, tuple(steps))
    return [mask_int, expected, partial(_run_steps, *plan), mdata_at, 0, plan]


def _run_steps(unpack, steps: tuple, data: bytes, start: int) -> list[dict] | None:
    """The interpreted record builder of a layout (see :func:`_compile_layout`)."""
    values = unpack(data, start)
    records = []
    append = records.append
    for template, index, kind, a, b, c, has_lists in steps:
        rec = template.copy()
        if kind == K_DIV:
            rec["value"] = values[index] * a / b
        elif kind == K_AS_IS:
            rec["value"] = values[index]
        elif kind == K_BCD:
            v = values[index]
            try:
                x = int("%x" % (int.from_bytes(v, "little") if c else v))
            except ValueError:
                return None  # sign nibble or invalid digit: the general decoder decides
            rec["value"] = x * a / b if b else x
        elif kind == K_CALL:
            v = a(values[index])
            if v is None:
                return None
            rec["value"] = v
        elif kind == K_INT:
            v = int.from_bytes(values[index], "little", signed=c)
            rec["value"] = v * a / b if b else v
        elif kind == K_RAW:
            rec["raw"] = values[index].hex()
        if has_lists:
            for name in ("qualifiers", "vife"):
                if name in rec:
                    rec[name] = list(rec[name])
        append(rec)
    return records


def _compile_layout(unpack, steps: tuple):
    """The layout's record builder ``(data, start) -> records | None`` as one generated function:
    no per-record loop, dispatch or parameter lookups (the steps are known when it is learned).
    Only integers (as literals) and names bound to the step objects go into the source."""
    args = {"unpack": unpack, "from_bytes": int.from_bytes}
    lines = ["    v = unpack(data, start)"]
    names = []
    for k, (template, index, kind, a, b, c, has_lists) in enumerate(steps):
        t, r = f"T{k}", f"r{k}"
        args[t] = template
        names.append(r)
        field = f"v[{int(index)}]"
        if kind == K_DIV:
            lines.append(f"    {r} = {t}.copy(); {r}['value'] = {field} * {int(a)} / {int(b)}")
        elif kind == K_AS_IS:
            lines.append(f"    {r} = {t}.copy(); {r}['value'] = {field}")
        elif kind == K_INT:
            number = f"from_bytes({field}, 'little', signed={bool(c)})"
            scaled = f"{number} * {int(a)} / {int(b)}" if b else number
            lines.append(f"    {r} = {t}.copy(); {r}['value'] = {scaled}")
        elif kind == K_BCD:
            # the digits of the LE number, read as decimal; a sign nibble or an invalid digit
            # (hex a-f) makes int() fail: the general decoder then decides
            raw = f"from_bytes({field}, 'little')" if c else field
            lines += ["    try:", f"        x = int('%x' % {raw})", "    except ValueError:",
                      "        return None"]
            scaled = f"x * {int(a)} / {int(b)}" if b else "x"
            lines.append(f"    {r} = {t}.copy(); {r}['value'] = {scaled}")
        elif kind == K_CALL:
            args[f"C{k}"] = a
            lines.append(f"    x = C{k}({field})")
            lines.append("    if x is None: return None")
            lines.append(f"    {r} = {t}.copy(); {r}['value'] = x")
        elif kind == K_RAW:
            lines.append(f"    {r} = {t}.copy(); {r}['raw'] = {field}.hex()")
        else:
            lines.append(f"    {r} = {t}.copy()")
        if has_lists:
            for name in ("qualifiers", "vife"):
                if name in template:
                    lines.append(f"    {r}[{name!r}] = list({r}[{name!r}])")
    params = ", ".join(f"{name}={name}" for name in args)
    source = f"def build(data, start, *, {params}):\n" + "\n".join(lines) + f"\n    return [{', '.join(names)}]\n"
    namespace: dict = {}
    exec(compile(source, "<omshub.codec.apl layout>", "exec"), args, namespace)  # noqa: S102 - own source
    return namespace["build"]


def _date_value(dec: int, b: bytes, rec: dict) -> None:
    if dec == D_DATE_G:
        v = _date_g(b)
    elif dec == D_TIME_J:
        v = _time_j(b)
    else:
        r = _datetime_i(b) if dec == D_DATETIME_I else _datetime_f(b)
        v = None
        if r is not None:
            v, dst = r
            if dec == D_DATE_F:
                if not v.endswith("T00:00"):
                    rec["raw"] = b.hex()  # the time of day has no place in a date: kept, not dropped
                v = v[:10]
            elif dst:
                rec["dst"] = True
    if v is None:
        rec["error_value"] = True
        rec["raw"] = b.hex()
    else:
        rec["value"] = v


def lvar_size(lv: int) -> int | None:
    """Data bytes after an LVAR byte (brief §7.10); None for reserved codes."""
    if lv < 0xC0:
        return lv
    if lv <= 0xC9 or 0xD0 <= lv <= 0xD9:
        return lv & 0x0F
    if 0xE0 <= lv <= 0xEF:
        return lv - 0xE0
    if 0xF0 <= lv <= 0xF4:
        return 4 * (lv - 0xEC)
    return {0xF5: 48, 0xF6: 64}.get(lv)


def _lvar(data: bytes, i: int, j: int, n: int, info: HeaderInfo, rec: dict, records: list) -> int:
    """Decode an LVAR data field (brief §7.10) into ``rec``; returns the record end offset."""
    lv = data[j]
    j += 1
    size = lvar_size(lv)
    if size is None:
        raise _err(f"record at offset {i}: reserved LVAR 0x{lv:02X} at offset {j - 1}", i, records,
                   R_RESERVED_LVAR, j - 1)
    e = j + size
    if e > n:
        raise _err(f"record at offset {i}: LVAR announces {size} bytes, only {n - j} left "
                   "(truncated)", i, records, header_end=j - 1)
    chunk = data[j:e]
    if lv < 0xC0:
        if info.lvar_raw:
            rec["raw"] = chunk.hex()
        else:
            rec["value"] = chunk[::-1].decode("latin-1")
    elif info.lvar_dates is not None:
        spec = info.lvar_dates.get(size) if lv >= 0xE0 else None
        if spec is None:
            rec["raw"] = chunk.hex()  # BCD or a size no date type has: not a date
        else:
            dec, quantity = spec
            rec["quantity"] = quantity
            _date_value(dec, chunk, rec)
    elif lv < 0xE0:
        raw = _bcd(chunk)
        if raw is None or raw < 0:  # sign comes from the LVAR code, not a nibble
            rec["error_value"] = True
            rec["raw"] = chunk.hex()
        else:
            rec["value"] = _scaled(raw if lv < 0xD0 else -raw, info)
    elif size <= 8 and not info.lvar_raw:
        rec["value"] = _scaled(int.from_bytes(chunk, "little", signed=info.signed), info)
    else:
        rec["raw"] = chunk.hex()  # binary numbers beyond 64 bit stay hex (JSON-safe)
    return e


def encode_records(records: list[dict]) -> bytes:
    """Records in the uniform format -> EN 13757-3 bytes (see :mod:`omshub.codec.apl_encode`)."""
    from omshub.codec import apl_encode  # the encoder builds on this module's tables

    return apl_encode.encode_records(records)
