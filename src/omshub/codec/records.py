"""The record decoder: EN 13757-3 data records -> uniform record dicts (docs/protocol.md §8).

:func:`decode_records` walks ``DIF [DIFE…] VIF [VIFE…] data`` records. Each distinct record
header is interpreted once (:mod:`omshub.codec.headers`), so the per-record work is a slice, a
dict lookup, the value and a dict copy; whole APLs whose header bytes sit where an earlier APL's
did are decoded by that APL's layout (:class:`omshub.codec.layouts.LayoutMemo`), the one fast
path (docs/protocol.md §8.4).

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

from omshub.codec.errors import DecodeError
from omshub.codec.headers import (
    HEADERS,
    R_RESERVED_DIF,
    R_RESERVED_LVAR,
    R_TRUNCATED,
    grammar_error,
    header_end,
    header_info,
)
from omshub.codec.layouts import LayoutMemo
from omshub.codec.tables import (
    D_BCD,
    D_INT,
    D_NONE,
    D_RAW,
    D_REAL,
    D_UINT,
    DATA_LEN,
    FUNCTIONS,
    M_DIV,
    M_ONE,
    MAX_APL,
    MAX_EXTENSIONS,
    HeaderInfo,
    Record,
)
from omshub.codec.values import bcd, date_value, lvar_size, real32, scaled

__all__ = [
    "decode_records",
    "decode_records_ex",
    "decode_general",
    "more_records_follow",
    "undecoded_record",
    "LAYOUTS",
]


def undecoded_record(data: bytes, offset: int, end: int, exc: DecodeError) -> Record:
    """The ``undecoded`` record (docs/formats.md §1.2) for ``data[offset:end]``: the bytes from the
    record that ``exc`` (a record grammar error at ``offset``) could not delimit to the end of
    the APL, as hex, with the reason. The grammar has no way to find the next record after
    one it cannot delimit, so everything up to the end goes into this one record. Storage,
    tariff, subunit and function are those of the record's DIF/DIFEs when it has them whole."""
    extra = exc.partial or {}
    rec: Record = {
        "quantity": "undecoded",
        "unit": "",
        "value": bytes(data[offset:end]).hex(),
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
        "dif_vif": "",
        "reason": extra.get("reason", R_TRUNCATED),
        "message": exc.message,
    }
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


def decode_records(data: bytes, start: int = 0, end: int | None = None) -> tuple[list[Record], str | None]:
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
        raise DecodeError(
            "invalid_record",
            f"APL bounds {start}..{end} outside the {len(data)} bytes given",
            layer="apl",
            offset=start,
        )
    if n - start > MAX_APL:
        raise DecodeError("too_long", f"APL of {n - start} bytes exceeds {MAX_APL}", layer="apl", offset=start)
    return _decode_by_layouts(data, start, n)


def decode_records_ex(data: bytes, start: int = 0, end: int | None = None) -> tuple[list[Record], str | None, bool]:
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


def _special_dif(data: bytes, i: int, n: int, records: list[Record]) -> str:
    """The manufacturer data after a 0F/1F DIF at ``i`` (as hex); other special DIFs raise."""
    dif = data[i]
    if dif == 0x0F or dif == 0x1F:
        # 1F (more records follow in the next telegram) vs 0F: the byte before the hex
        return data[i + 1 : n].hex()
    what = "global readout request (downlink only)" if dif == 0x7F else "reserved special function"
    raise grammar_error(f"DIF 0x{dif:02X} at offset {i} is a {what}", i, records, R_RESERVED_DIF)


def decode_general(data: bytes, start: int, n: int) -> tuple[list[Record], str | None]:
    """The record-by-record decoder (every APL the layout memo does not cover).

    Plain binary and BCD numbers in 1/2/4/8-byte fields (most records) are decoded in the loop;
    everything else by :func:`_record` (measured: calling it for every record costs ~15 %)."""
    records: list[Record] = []
    append = records.append
    cache_get = HEADERS.get
    from_bytes = int.from_bytes
    i = start
    while i < n:
        dif = data[i]
        if dif == 0x2F:
            i += 1
            continue
        if dif & 0x0F == 0x0F:
            return records, _special_dif(data, i, n, records)
        # the common DIF+VIF header without extensions needs no grammar walk
        j = i + 1
        if not dif & 0x80 and j < n and not data[j] & 0x80 and data[j] != 0x7C:
            j += 1
        else:
            try:
                j = header_end(data, i, n)
            except DecodeError as exc:
                exc.partial["records"] = records  # type: ignore[index]  # grammar errors carry a dict
                raise
        key = data[i:j]
        info = cache_get(key)
        if info is None:
            info = header_info(key)
        (
            dlen,
            dec,
            template,
            mode,
            num,
            den,
            _,
            is_float,
            _,
            has_lists,
            record_error,
            unpack,
            _,
            profile,
            keep_raw,
            _,
        ) = info
        e = j + dlen
        if e > n or dlen < 0 or has_lists or record_error or profile or keep_raw or dec not in (D_INT, D_UINT, D_BCD):
            i = _record(data, i, j, n, info, records)
            continue
        if dec == D_BCD:
            # the digits read as one LE number print as decimal when every nibble is 0-9
            digits = "%x" % (unpack(data, j)[0] if unpack is not None else from_bytes(data[j:e], "little"))
            if not digits.isdigit():  # a sign nibble or an invalid digit
                i = _record(data, i, j, n, info, records)
                continue
            raw = int(digits)
        else:
            raw = unpack(data, j)[0] if unpack is not None else from_bytes(data[j:e], "little", signed=dec == D_INT)
        rec = template.copy()
        if mode == M_ONE:
            rec["value"] = float(raw) if is_float else raw
        elif mode == M_DIV:
            rec["value"] = raw * num / den
        else:
            rec["value"] = scaled(raw, info)
        append(rec)
        i = e
    return records, None


def _record(data: bytes, i: int, j: int, n: int, info: HeaderInfo, records: list[Record]) -> int:
    """Decode the record at ``i`` whose header ends at ``j`` into ``records``; returns its end."""
    rec = info.template.copy()
    dlen = info.dlen
    if dlen >= 0:
        e = j + dlen
        if e > n:
            raise grammar_error(
                f"record at offset {i} (header {data[i:j].hex()}) needs {dlen} data bytes, "
                f"only {n - j} left (truncated)",
                i,
                records,
                header_end=j,
            )
        _fixed_value(data, j, e, info, rec)
    else:
        if j >= n:
            raise grammar_error(
                f"record at offset {i}: LVAR byte expected at offset {j}, APL ends (truncated)",
                i,
                records,
                header_end=j,
            )
        e = _lvar(data, i, j, n, info, rec, records)
    if info.has_lists:
        for name in ("qualifiers", "vife"):
            if name in rec:
                rec[name] = list(rec[name])
    if info.record_error:
        rec["error_value"] = True
        if rec["value"] is not None:
            # the data bytes (an LVAR's without its length byte, as everywhere else)
            rec["raw"] = data[j if dlen >= 0 else j + 1 : e].hex()
            rec["value"] = None
    records.append(rec)
    if info.inverse_profile and "raw" in rec:
        records += _inverse_profile_records(rec, info, bytes.fromhex(rec["raw"]))
    return e


def _fixed_value(data: bytes, j: int, e: int, info: HeaderInfo, rec: Record) -> None:
    """The value of the fixed-size data field ``data[j:e]`` into ``rec``."""
    dec, unpack = info.decoder, info.unpack
    raw: int | None = None
    if dec in (D_INT, D_UINT):
        if unpack is not None:
            raw = unpack(data, j)[0]
        else:
            raw = int.from_bytes(data[j:e], "little", signed=dec == D_INT)
    elif dec == D_BCD:
        # the digits read as one LE number print as decimal when every nibble is 0-9
        digits = "%x" % (unpack(data, j)[0] if unpack is not None else int.from_bytes(data[j:e], "little"))
        raw = int(digits) if digits.isdigit() else bcd(data[j:e])
        if raw is None:
            rec["error_value"] = True
            rec["raw"] = data[j:e].hex()
    elif dec == D_REAL:
        r = real32(data[j:e])
        if r is None:
            rec["error_value"] = True
            rec["raw"] = data[j:e].hex()
        else:
            x, places = r
            v = x if info.mode == M_ONE else x * info.num / info.den
            rec["value"] = float(f"{v:.{places}g}")
    elif dec == D_RAW:
        rec["raw"] = data[j:e].hex()
    elif dec != D_NONE:
        date_value(dec, data[j:e], rec)
    if raw is not None:
        mode = info.mode
        if mode == M_ONE:
            rec["value"] = float(raw) if info.is_float else raw
        elif mode == M_DIV:
            rec["value"] = raw * info.num / info.den
        else:
            rec["value"] = scaled(raw, info)
    if info.keep_raw and e > j:
        rec["raw"] = data[j:e].hex()


def _lvar(data: bytes, i: int, j: int, n: int, info: HeaderInfo, rec: Record, records: list[Record]) -> int:
    """Decode an LVAR data field (docs/protocol.md §8.3) into ``rec``; returns the record end offset."""
    lv = data[j]
    j += 1
    size = lvar_size(lv)
    if size is None:
        raise grammar_error(
            f"record at offset {i}: reserved LVAR 0x{lv:02X} at offset {j - 1}", i, records, R_RESERVED_LVAR, j - 1
        )
    e = j + size
    if e > n:
        raise grammar_error(
            f"record at offset {i}: LVAR announces {size} bytes, only {n - j} left (truncated)",
            i,
            records,
            header_end=j - 1,
        )
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
            date_value(dec, chunk, rec)
    elif lv < 0xE0:
        raw = bcd(chunk)
        if raw is None or raw < 0:  # sign comes from the LVAR code, not a nibble
            rec["error_value"] = True
            rec["raw"] = chunk.hex()
        else:
            rec["value"] = scaled(raw if lv < 0xD0 else -raw, info)
    elif size <= 8 and not info.lvar_raw:
        rec["value"] = scaled(int.from_bytes(chunk, "little", signed=info.signed), info)
    else:
        rec["raw"] = chunk.hex()  # binary numbers beyond 64 bit stay hex (JSON-safe)
    return e


def _inverse_profile_records(rec: Record, info: HeaderInfo, chunk: bytes) -> list[Record]:
    """The values of an inverse compact profile (VIFE 13, docs/protocol.md §8.2) as records of
    their own: ``chunk`` = spacing control byte (increment mode b7-6, spacing unit b5-4, data
    field b3-0), spacing value, then one value per storage interval going back in time from the
    profile record's storage number. Only absolute values (increment mode 0) in integer or BCD
    fields are expanded; the first invalid BCD element (FF fill) ends the list. The new records
    carry ``dif_vif: ""`` (no header of their own: the telegram's record format stays the header
    sequence) and ``derived_from`` (the profile record's dif_vif); the encoder skips them."""
    if len(chunk) < 2 or chunk[0] >> 6:
        return []
    dfield = chunk[0] & 0x0F
    size = DATA_LEN[dfield]
    if size <= 0 or dfield in (5, 8, 0xD, 0xF):
        return []
    out = []
    storage = rec["storage"]
    base = {
        "quantity": rec["quantity"],
        "unit": rec["unit"],
        "value": None,
        "storage": storage,
        "tariff": rec["tariff"],
        "subunit": rec["subunit"],
        "function": rec["function"],
        "dif_vif": "",
        "derived_from": rec["dif_vif"],
    }
    for k, p in enumerate(range(2, len(chunk) - size + 1, size), 1):
        b = chunk[p : p + size]
        raw: int | None
        if dfield >= 9:
            raw = bcd(b)
            if raw is None:
                break
        else:
            raw = int.from_bytes(b, "little", signed=info.signed)
        r = base.copy()
        r["value"] = scaled(raw, info)
        r["storage"] = storage + k
        out.append(r)
    return out


# the memo of whole-APL layouts in front of the general decoder (bounded; see LayoutMemo)
LAYOUTS = LayoutMemo(decode_general, fixed_value=_fixed_value)
_decode_by_layouts = LAYOUTS.decode
