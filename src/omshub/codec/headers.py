"""Record headers (DIF [DIFE…] VIF [VIFE…]): where one ends, and what it means (docs/protocol.md §8.1–8.2).

:func:`header_end` delimits a header in an APL; :func:`header_info` interprets a complete header
once and memoises the result in :data:`HEADERS`, a bounded memo of a pure function (the result
depends only on the header bytes): telegram after telegram a meter sends the same headers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from omshub.codec import vif as _vif
from omshub.codec.errors import DecodeError
from omshub.codec.tables import (
    D_BCD,
    D_DATE_F,
    D_DATE_G,
    D_DATETIME_F,
    D_DATETIME_I,
    D_INT,
    D_LVAR,
    D_RAW,
    D_TIME_J,
    D_UINT,
    DATA_LEN,
    FUNCTIONS,
    MAX_EXTENSIONS,
    HeaderInfo,
    Record,
    decoder_for,
    scale_mode,
)
from omshub.codec.units import QUANTITIES

HEADER_CACHE_LIMIT = 4096  # header memo entries; cleared when full
HEADERS: dict[bytes, HeaderInfo] = {}

# why the record grammar could not place bytes (``reason`` of an undecoded record, docs/formats.md §1.2)
R_TRUNCATED = "truncated"  # a record runs past the end of the APL
R_TOO_MANY_EXTENSIONS = "too_many_extensions"  # more than 10 DIFEs or VIFEs
R_RESERVED_LVAR = "reserved_lvar"  # LVAR F7-FF: the data length is not defined
R_RESERVED_DIF = "reserved_dif"  # special DIF 3F-6F or 7F (no record follows)


def grammar_error(
    message: str,
    offset: int,
    records: list[Record] | None = None,
    reason: str = R_TRUNCATED,
    header_end: int | None = None,
) -> DecodeError:
    """A record grammar error; ``partial`` carries the records before it (when given), the
    reason code and, when the record's header could be delimited, where it ends."""
    extra: dict[str, Any] = {"reason": reason}
    if records is not None:
        extra["records"] = records
    if header_end is not None:
        extra["header_end"] = header_end
    return DecodeError("invalid_record", message, layer="apl", offset=offset, partial=extra)


def _extensions_end(data: bytes, i: int, j: int, n: int, what: str, limit: int) -> int:
    """End of the DIFE/VIFE chain of the record at ``i`` whose first extension is at ``j``."""
    count = 0
    while True:
        if j >= n:
            raise grammar_error(f"record at offset {i}: {what} expected at offset {j}, APL ends (truncated)", i)
        b = data[j]
        j += 1
        count += 1
        if not b & 0x80:
            return j
        if count >= limit:
            raise grammar_error(
                f"record at offset {i}: more than {MAX_EXTENSIONS} {what}s", i, reason=R_TOO_MANY_EXTENSIONS
            )


def header_end(data: bytes, i: int, n: int) -> int:
    """End offset of the record header starting at ``data[i]`` (a DIF that is not 0x?F).

    Raises ``DecodeError`` when the header runs past ``n`` or has too many extensions.
    """
    j = i + 1
    if data[i] & 0x80:
        j = _extensions_end(data, i, j, n, "DIFE", MAX_EXTENSIONS)
    if j >= n:
        raise grammar_error(f"record at offset {i}: VIF expected at offset {j}, APL ends (truncated)", i)
    vif = data[j]
    j += 1
    if vif & 0x80:  # FB/FD code byte + up to 10 combinable VIFEs
        j = _extensions_end(data, i, j, n, "VIFE", MAX_EXTENSIONS + 1)
    if vif & 0x7F == 0x7C:  # plain-text VIF: length byte + text follow the VIFEs
        if j >= n:
            raise grammar_error(
                f"record at offset {i}: plain-text VIF length expected at offset {j}, APL ends (truncated)", i
            )
        j += 1 + data[j]
        if j > n:
            raise grammar_error(f"record at offset {i}: plain-text VIF unit text runs past the APL end (truncated)", i)
    return j


def header_info(hdr: bytes) -> HeaderInfo:
    """Interpret one complete record header (memoised). ``DecodeError`` if it is malformed."""
    info = HEADERS.get(hdr)
    if info is None:
        if not hdr or hdr[0] & 0x0F == 0x0F:
            raise grammar_error(f"{hdr.hex()!r} is not a data record header", 0)
        if header_end(hdr, 0, len(hdr)) != len(hdr):
            raise grammar_error(f"{hdr.hex()!r} has bytes after the record header", 0)
        info = _interpret(hdr)
        if len(HEADERS) >= HEADER_CACHE_LIMIT:
            HEADERS.clear()
        HEADERS[hdr] = info
    return info


@dataclass
class _Meaning:
    """What a header says, built up from its VIF and then changed by each VIFE."""

    quantity: str
    scale: Fraction
    kind: str
    extra: dict[str, Any] = field(default_factory=dict)
    qualifiers: list[str] = field(default_factory=list)
    raw_vifes: list[str] = field(default_factory=list)
    unit_suffix: str = ""
    lvar_raw: bool = False


def _dif_fields(hdr: bytes) -> tuple[int, int, int, int, int]:
    """(data field, storage, tariff, subunit, offset of the VIF) of the DIF and its DIFEs."""
    dif = hdr[0]
    storage = (dif >> 6) & 1
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
    return dif & 0x0F, storage, tariff, subunit, p


def _vif_part(hdr: bytes, p: int) -> tuple[_vif.VifEntry, list[int], str | None]:
    """(table entry of the VIF, its VIFEs, plain-text unit or None) of the VIF at ``hdr[p]``."""
    vif = hdr[p]
    p += 1
    code = vif & 0x7F
    vifes: list[int] = []
    unit_text = None
    if vif in (0xFB, 0xFD, 0xEF):  # the next byte is a code of that table (EF: reserved, none known)
        table_code = hdr[p]
        p += 1
        entry = (
            _vif.FB.get(table_code & 0x7F, _vif.UNKNOWN)
            if vif == 0xFB
            else (_vif.FD.get(table_code & 0x7F, _vif.UNKNOWN) if vif == 0xFD else _vif.UNKNOWN)
        )
        ext = table_code & 0x80
    else:
        entry = _vif.PRIMARY.get(code, _vif.UNKNOWN) if code != 0x7C else _vif.VifEntry("custom", Fraction(1), "num")
        ext = vif & 0x80
    while ext:
        b = hdr[p]
        vifes.append(b)
        ext = b & 0x80
        p += 1
    if code == 0x7C and vif not in (0xFB, 0xFD):
        length = hdr[p]
        unit_text = hdr[p + 1 : p + 1 + length][::-1].decode("latin-1")
    return entry, vifes, unit_text


_DURATION_UNITS = (1, 60, 3600, 86400)  # nn of a duration VIFE: s, min, h, d


def _of_quantity(m: _Meaning, c: int) -> bool:
    """VIFEs that turn the record into a count, duration or date of the VIF's quantity
    (limit exceeds, events); False when ``c`` is none of them."""
    lower_upper = "upper_limit" if c & 0x08 else "lower_limit"
    first_last = "last" if c & 0x04 else "first"
    if c in (0x41, 0x49):
        m.qualifiers.append(lower_upper)
        quantity, scale, kind = "limit_exceed_count", Fraction(1), "uint"
    elif 0x42 <= c <= 0x4F:  # E100 u f 1 b: date(/time) of begin/end of first/last exceed
        m.qualifiers += [lower_upper, first_last]
        quantity, scale, kind = ("limit_exceed_end" if c & 1 else "limit_exceed_begin"), Fraction(1), "anydate"
    elif 0x50 <= c <= 0x5F:  # E101 u f nn: duration of first/last lower/upper exceed
        m.qualifiers += [lower_upper, first_last]
        quantity, scale, kind = "limit_exceed_duration", Fraction(_DURATION_UNITS[c & 3]), "num"
    elif 0x60 <= c <= 0x67:  # E110 0 f nn: duration of first/last (event)
        m.qualifiers.append(first_last)
        quantity, scale, kind = "event_duration", Fraction(_DURATION_UNITS[c & 3]), "num"
    elif c in (0x6A, 0x6B, 0x6E, 0x6F):  # E110 f 1 b: date(/time) of first/last begin/end
        m.qualifiers.append(first_last)
        quantity, scale, kind = ("event_end" if c & 1 else "event_begin"), Fraction(1), "anydate"
    else:
        return False
    m.extra["of"] = m.quantity
    m.quantity, m.scale, m.kind = quantity, scale, kind
    return True


def _scale_vife(m: _Meaning, c: int) -> bool:
    """VIFEs that change the scale or make the quantity a rate; False when ``c`` is none of them."""
    if 0x70 <= c <= 0x77:
        m.scale = m.scale * Fraction(10) ** (c - 0x76)
    elif c == 0x7D:
        m.scale = m.scale * 1000
    elif 0x78 <= c <= 0x7B:
        m.qualifiers.append("additive_correction")
        m.scale = m.scale * Fraction(10) ** ((c & 3) - 3)
    elif c in _vif.PER_TIME:
        name, suffix, to_hour = _vif.PER_TIME[c]
        rate = _vif.RATE_OF.get(m.quantity)
        if rate is not None and to_hour is not None and not m.unit_suffix:
            m.quantity, m.scale = rate, m.scale * to_hour
        else:
            m.qualifiers.append(name)
            m.unit_suffix += "/" + suffix
    elif c in _vif.PER_UNIT:
        name, suffix = _vif.PER_UNIT[c]
        m.qualifiers.append(name)
        m.unit_suffix += suffix
    else:
        return False
    return True


def _apply_vifes(m: _Meaning, vifes: list[int]) -> None:
    """Let each VIFE change the meaning (docs/protocol.md §8.2); unknown ones are kept as hex."""
    if m.quantity == "manufacturer_specific":
        m.raw_vifes = [f"{b:02x}" for b in vifes]
        return
    idx = 0
    while idx < len(vifes):
        b = vifes[idx]
        c = b & 0x7F
        idx += 1
        if c == 0x00:
            continue  # record error "none"
        if c in _vif.RECORD_ERRORS:
            m.extra["record_error"] = _vif.RECORD_ERRORS[c]
        elif c in _vif.QUALIFIER_VIFE:
            m.qualifiers.append(_vif.QUALIFIER_VIFE[c])
            if c in _vif.PROFILE_VIFES:
                m.lvar_raw = True
        elif _scale_vife(m, c) or _of_quantity(m, c):
            pass
        elif c == 0x7C and idx < len(vifes):  # combinable extension table ("FC")
            nxt = vifes[idx] & 0x7F
            idx += 1
            if nxt in _vif.FC_PHASES:
                m.qualifiers.append(_vif.FC_PHASES[nxt])
            else:
                m.raw_vifes += [f"{b:02x}", f"{vifes[idx - 1]:02x}"]
        elif c == 0x7F:  # manufacturer-specific VIFEs follow: all kept verbatim
            m.raw_vifes += [f"{x:02x}" for x in vifes[idx - 1 :]]
            break
        else:
            m.raw_vifes.append(f"{b:02x}")


def _lvar_dates(m: _Meaning) -> dict[int, tuple[int, str]]:
    """A date VIF on an LVAR field: binary LVAR (E0-EF) size -> (date decoder, quantity)."""
    quantity = m.quantity
    if m.kind == "date":
        return {2: (D_DATE_G, quantity), 4: (D_DATE_F, quantity)}
    renamed = m.kind == "datetime" and quantity == "datetime"
    return {
        2: (D_DATE_G, "date" if renamed else quantity),
        3: (D_TIME_J, "time" if renamed else quantity),
        4: (D_DATETIME_F, quantity),
        6: (D_DATETIME_I, quantity),
    }


def _template(hdr: bytes, m: _Meaning, dif: tuple[int, int, int, int, int], unit_text: str | None) -> Record:
    """The record dict of a header, without its value."""
    _, storage, tariff, subunit, _ = dif
    template: Record = {
        "quantity": m.quantity,
        "unit": QUANTITIES[m.quantity][0] + m.unit_suffix,
        "value": None,
        "storage": storage,
        "tariff": tariff,
        "subunit": subunit,
        "function": FUNCTIONS[(hdr[0] >> 4) & 3],
        "dif_vif": hdr.hex(),
    }
    if m.qualifiers:
        template["qualifiers"] = m.qualifiers
    template.update(m.extra)
    if m.raw_vifes:
        template["vife"] = m.raw_vifes
    if unit_text is not None:
        template["unit_text"] = unit_text
    return template


def _interpret(hdr: bytes) -> HeaderInfo:
    dif = _dif_fields(hdr)
    dfield = dif[0]
    entry, vifes, unit_text = _vif_part(hdr, dif[4])
    m = _Meaning(entry.quantity, entry.scale, entry.kind, lvar_raw=entry.kind == "raw")
    _apply_vifes(m, vifes)

    # which value decoder the data field needs for this kind of quantity
    decoder = decoder_for(m.kind, dfield)
    if m.kind == "datetime" and m.quantity == "datetime":
        if decoder == D_TIME_J:
            m.quantity = "time"
        elif decoder == D_DATE_G:
            m.quantity = "date"
    lvar_dates = None
    if decoder == D_LVAR and m.kind in ("date", "datetime", "anydate"):
        m.lvar_raw = True  # type M compound date (layout not established), BCD: kept raw
        lvar_dates = _lvar_dates(m)  # a binary LVAR of a date type's size is that date type
    template = _template(hdr, m, dif, unit_text)

    mode, num, den, nd = scale_mode(m.scale)
    dlen = DATA_LEN[dfield]
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}.get(dlen) if decoder in (D_INT, D_UINT, D_BCD) else None
    if fmt and decoder != D_INT:
        fmt = fmt.upper()  # unsigned (BCD digits are read as one unsigned number)
    unpack = struct.Struct("<" + fmt).unpack_from if fmt else None
    record_error = "record_error" in m.extra
    inverse_profile = (
        decoder == D_LVAR
        and m.kind in ("num", "uint")
        and not record_error
        and "inverse_compact_profile" in m.qualifiers
    )
    return HeaderInfo(
        dlen,
        decoder,
        template,
        mode,
        num,
        den,
        nd,
        QUANTITIES[m.quantity][1] == "float",
        m.lvar_raw,
        bool(m.qualifiers or m.raw_vifes),
        record_error,
        unpack,
        m.kind != "uint",
        inverse_profile,
        m.quantity == "unknown" and decoder != D_RAW,
        lvar_dates,
    )
