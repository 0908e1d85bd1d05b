"""The upper layers of the telegram decoder: the APL's records (or a compact frame's), and the
drivers' interpretation of them into the result dict (docs/protocol.md §8–10).

Each function works on a :class:`omshub.codec.state.Telegram` the lower layers have filled in.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

from omshub.codec import compact as _compact
from omshub.codec import drivers as _drivers
from omshub.codec import records as _apl
from omshub.codec import tpl as _tpl
from omshub.codec.decrypt import ENCRYPTED, FILLER2, PLAIN_ALREADY
from omshub.codec.drivers.plan import Plan
from omshub.codec.errors import DecodeError
from omshub.codec.frame import crc16
from omshub.codec.keys import FormatCache
from omshub.codec.state import PLAIN, Result, Security, Telegram
from omshub.codec.tables import Record

HEX = tuple(f"{byte:02X}" for byte in range(256))
_DIF_VIF = itemgetter("dif_vif")
_DATA_SIZE = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -1)  # per DIF data field; -1: LVAR / special


class Records(NamedTuple):
    """What the APL layer found: the records, the manufacturer data (hex) after 0F/1F or None,
    and the hex of the bytes from a record error on (None when every byte was placed)."""

    records: list[Record]
    mdata: str | None
    unparsed: str | None = None


# ----------------------------------------------------------------------------- APL


def apl_records(t: Telegram) -> tuple[list[Record], str | None, Result | None]:
    """(records, manufacturer data, application error) of a full (not compact) APL; a record
    error keeps the records before it (see :func:`_records_after_error`)."""
    apl_data, apl_start, apl_end = t.apl_data, t.apl_start, t.apl_end
    if apl_end - apl_start <= 1 and t.ci in _tpl.APPLICATION_ERROR_CIS and not t.security.encrypted:
        # an application error reply: its one byte is the error code, not a data record
        t.formats = None
        return [], None, _tpl.application_error(bytes(apl_data[apl_start:apl_end]))
    if t.plan is not None and t.plan.owns_apl:
        t.formats = None
        return [], None, None  # a driver builds the records from the proprietary APL
    try:
        records, mdata = _apl.decode_records(apl_data, apl_start, apl_end)
    except DecodeError as exc:
        t.formats = None  # records cut short (or from a driver) teach no format
        # only TPL decryption (2F2F, no CRC over the plaintext) leaves the key in doubt
        return _records_after_error(t, exc, t.security.decrypted and t.mode != 0), None, None
    if mdata is not None and _apl.more_records_follow(apl_data, apl_end, mdata):
        t.frame_info["more_records_follow"] = True  # DIF 1F: the next telegram continues
    if t.proof is not None and t.security is PLAIN and _rules_out_format_b(records, mdata, t.data, t.end):
        t.proof.append(True)
    return records, mdata, None


def _records_after_error(t: Telegram, exc: DecodeError, decrypted: bool) -> list[Record]:
    """What to make of a record error: keep the records before an error in the unencrypted tail
    (truncated frames, records the grammar cannot delimit), the bytes from the error on going into
    an ``undecoded`` record (and, as before, ``frame["unparsed"]``); let a driver decode a
    proprietary payload; else wrong_key (error right at the start of decrypted data), the records
    before an error further into decrypted data, or invalid_record (nothing decoded before it)."""
    apl_data, apl_start, apl_end = t.apl_data, t.apl_start, t.apl_end
    partial = t.partial()
    offset = exc.offset if exc.offset is not None else apl_start
    if exc.code != "invalid_record":
        exc.partial = partial
        raise exc
    got = (exc.partial or {}).get("records")
    if got and offset >= t.enc_end:
        return _keep_records(t, got, exc, offset)
    telegram = dict(partial)
    telegram.update(status=None, records=[], fields={}, manufacturer_data=None)
    records = _drivers.decode_proprietary(telegram, bytes(apl_data[apl_start:apl_end]))
    if records is not None:
        return records
    if decrypted and offset < apl_start + 16:
        raise DecodeError(
            "wrong_key",
            f"decrypted data starts with 2F2F but its records do not parse ({exc.message}): wrong key or wrong address",
            layer="security",
            offset=offset,
            partial=partial,
        ) from None
    if got and decrypted:
        # 2F2F and at least 16 bytes of records: the key is right, a record is not understood
        return _keep_records(t, got, exc, offset)
    raise DecodeError(
        "invalid_record",
        f"{exc.message} (records in the {'decrypted ' if decrypted else ''}"
        "payload do not parse: manufacturer-specific layout or corrupted telegram)",
        layer="apl",
        offset=offset,
        partial=partial,
    ) from None


def _keep_records(t: Telegram, got: list[Record], exc: DecodeError, offset: int) -> list[Record]:
    """The records before a record error plus the ``undecoded`` rest of the APL."""
    t.frame_info["unparsed"] = bytes(t.apl_data[offset : t.apl_end]).hex().upper()
    return got + [_apl.undecoded_record(t.apl_data, offset, t.apl_end, exc)]


def _rules_out_format_b(records: list[Record], mdata: str | None, data: bytes, end: int) -> bool:
    """True when the format-B reading of this unencrypted CRC-less frame must fail anyway.

    For frames up to 128 bytes the B reading is the same bytes without the last two (its CRC),
    so its record walk is this one's up to the last record, which it would find cut short: the
    B result then has ``unparsed`` bytes (at least one record before) and loses to this one. That
    holds when the records end exactly at the frame end (no manufacturer data, the last byte is no
    2F filler, so it belongs to the last record) and the last record has at least 3 bytes."""
    if mdata is not None or end > 128 or len(records) < 2 or data[end - 1] == 0x2F:
        return False
    dif_vif = records[-1].get("dif_vif")
    known = _LONG_LAST_RECORD.get(dif_vif) if isinstance(dif_vif, str) else False
    if known is None:
        assert isinstance(dif_vif, str)
        known = _long_record(dif_vif)
        if len(_LONG_LAST_RECORD) >= 4096:
            _LONG_LAST_RECORD.clear()
        _LONG_LAST_RECORD[dif_vif] = known
    return known


def _long_record(dif_vif: str) -> bool:
    """Does a record with this DIF/VIF text have at least 3 bytes (header plus fixed-size data)?"""
    if len(dif_vif) < 4:
        return False
    try:
        size = _DATA_SIZE[int(dif_vif[:2], 16) & 0x0F]
    except ValueError:
        return False
    return size >= 0 and len(dif_vif) // 2 + size >= 3


# dif_vif text -> _long_record(text); memo of a pure function (a few layouts in practice), bounded
_LONG_LAST_RECORD: dict[str, bool] = {}


def _plain_records(data: bytes, start: int, end: int, plan: Plan | None) -> Records | None:
    """The records of a payload that claims to be encrypted but is plaintext already, or None. A
    record error is tolerated only after the first 16 bytes parsed (a truncated copy), never at
    the start (that is ciphertext)."""
    if data[start : start + 2] != FILLER2:
        return None
    if plan is not None and plan.owns_apl:
        return Records([], None)  # a driver builds the records from the proprietary APL
    try:
        records, mdata = _apl.decode_records(data, start, end)
    except DecodeError as exc:
        got = (exc.partial or {}).get("records")
        if exc.code != "invalid_record" or not got or exc.offset is None or exc.offset < start + 16:
            return None
        tail = _apl.undecoded_record(data, exc.offset, end, exc)
        return Records(got + [tail], None, tail["value"].upper())
    return Records(records, mdata)


def plain_already(t: Telegram, meter_key: bytes | None, failure: str) -> Result | None:
    """A payload that could not be decrypted: telegrams copied after decryption keep their
    "encrypted" header, so accept it when it is plaintext already (2F2F and records that parse;
    a compact frame after 2F2F); the finished result of a full frame, None for a compact one
    (decoded on as usual). Else ``no_key`` or ``wrong_key``."""
    mode, data, payload, end = t.mode, t.data, t.payload, t.end
    parsed = _plain_records(data, payload, end, t.plan) if t.content == "full" else None
    compact_plain = t.content == "compact" and data[payload : payload + 2] == FILLER2
    if parsed is None and not compact_plain:
        partial = t.partial(ENCRYPTED.get(mode) or Security(mode, True, False, False, False))
        if meter_key is None:
            raise DecodeError(
                "no_key",
                f"encrypted telegram (security mode {mode}) of {t.meter['manufacturer']} "
                f"{t.meter['id']} and no key known",
                layer="security",
                partial=partial,
            )
        raise DecodeError(
            "wrong_key",
            f"{failure} (wrong key or corrupted telegram)",
            layer="security",
            offset=payload,
            partial=partial,
        )
    t.security = PLAIN_ALREADY[mode]
    if parsed is None:
        return None
    if t.afl is not None:
        t.frame_info["afl"] = t.afl.to_dict(False)
    if parsed.unparsed is not None:
        t.frame_info["unparsed"] = parsed.unparsed
        t.formats = None
    t.apl_data, t.apl_start, t.apl_end = data, payload, end
    return assemble(t, parsed.records, parsed.mdata)


# ----------------------------------------------------------------------------- compact frames


def compact_records(t: Telegram) -> tuple[list[Record], str | None]:
    """Records of a compact frame (CI 79/7B/73): the format from the caller's cache, else one a
    driver file knows. The full-frame CRC is reported (``frame["compact"]["crc_ok"]``), not
    required: real meters announce the CRC of an earlier full frame (Kamstrup)."""
    data, start, end, meter = t.apl_data, t.apl_start, t.apl_end, t.meter
    formats, t.formats = t.formats, None  # a compact frame teaches nothing
    if t.mode != 0 and data[start : start + 2] == FILLER2:
        start += 2
    if end - start < 4:
        raise DecodeError(
            "too_short",
            "compact frame needs a 2-byte format signature and a 2-byte CRC",
            layer="apl",
            offset=start,
            partial=t.partial(),
        )
    signature = data[start] | data[start + 1] << 8
    full_crc = data[start + 2] | data[start + 3] << 8
    manufacturer = meter["manufacturer"]
    fmt = formats.get(manufacturer, meter["id"], signature) if formats is not None else None
    if fmt is None:
        fmt = _drivers.compact_format(manufacturer, signature)
    if fmt is None:
        t.frame_info["compact"] = {"signature": f"{signature:04X}", "crc_ok": None}  # callers file it under this
        raise DecodeError(
            "unknown_format",
            f"compact frame with format signature {signature:04X} of "
            f"{manufacturer} {meter['id']}: format not learned yet (needs a full frame first)",
            layer="apl",
            offset=start,
            partial=t.partial(),
        )
    try:
        full = _compact.rebuild_full(fmt, data, start + 4, end)
        t.frame_info["compact"] = {"signature": f"{signature:04X}", "crc_ok": crc16(full) == full_crc}
        return _apl.decode_records(full)
    except DecodeError as exc:
        exc.partial = t.partial()
        raise


def _learn_format(formats: FormatCache, meter: Result, t: Telegram, layout: str | None) -> None:
    """Teach ``formats`` this full frame's record format (for later compact frames).

    The format is the records' DIF/VIF bytes, which the record decoder already reports as
    ``dif_vif`` (joined: ``layout``); a closing 0F/1F is part of it. (Same bytes as
    ``compact.format_of``, without parsing the records a second time.)"""
    memo = getattr(formats, "signatures", None)  # a FormatCache's; other caches may have none
    known = memo.get(layout) if memo is not None and layout is not None else None
    if known is None:
        try:
            fmt = (
                bytes.fromhex(layout) if layout is not None else _compact.format_of(t.apl_data, t.apl_start, t.apl_end)
            )
        except (ValueError, DecodeError):
            return
        known = (fmt, _compact.format_signature(fmt))
        if memo is not None and layout is not None:
            if len(memo) >= 4096:
                memo.clear()
            memo[layout] = known
    formats.put(meter["manufacturer"], meter["id"], known[1], known[0])


# ----------------------------------------------------------------------------- drivers and the result


def assemble(t: Telegram, records: list[Record], mdata: str | None) -> Result:
    """The result dict, with the drivers' field names (and whatever else a driver plan does)."""
    meter, plan = t.meter, t.plan
    # the records' layout: their dif_vif texts (plus a closing 0F/1F) as the record decoder made
    # them; the compact-frame format and the drivers' key to which record names which field
    layout = None
    if records:
        try:
            layout = "".join(map(_DIF_VIF, records))
        except (KeyError, TypeError):  # records a driver made (proprietary payload)
            layout = None
        else:
            if mdata is not None:
                layout += HEX[t.apl_data[t.apl_end - len(mdata) // 2 - 1]]
        if t.formats is not None and t.content == "full" and meter["id"] is not None:
            _learn_format(t.formats, meter, t, layout)
    fields: dict[str, Any] = {}
    mode, encrypted, decrypted, authenticated, before = t.security  # (Security.as_dict without a call)
    result = {
        "meter": meter,
        "transmitter": t.transmitter,
        "access_number": t.acc,
        "status": t.status,
        "security": {
            "mode": mode,
            "encrypted": encrypted,
            "decrypted": decrypted,
            "authenticated": authenticated,
            "decrypted_before_receipt": before,
        },
        "frame": t.frame_info,
        "records": records,
        "fields": fields,
        "manufacturer_data": mdata,
    }
    if plan is not None:
        if plan.work:  # driver layouts may read the APL bytes and change the records
            _drivers.apply_plan(plan, result, bytes(t.apl_data[t.apl_start : t.apl_end]) if plan.needs_apl else None)
        elif plan.computed:
            _drivers.apply_plan(plan, result, None, layout)
        else:  # only field names: what apply_plan would do, without its checks
            plan.name_fields(records, fields, layout)
    return result


def manufacturer_specific(t: Telegram) -> Result:
    """CI fields the codec does not know (manufacturer specific A0–B7 etc.): ask the drivers."""
    partial = t.partial(transmitter=False)
    data, pos, end = t.data, t.pos, t.end
    if t.meter["id"] is not None:
        telegram: Result = {
            "meter": t.meter,
            "transmitter": None,
            "access_number": t.acc,
            "status": None,
            "security": t.security.as_dict(),
            "frame": t.frame_info,
            "records": [],
            "fields": {},
            "manufacturer_data": None,
        }
        records = _drivers.decode_proprietary(telegram, bytes(data[pos:end]))
        if records is not None:
            telegram["records"] = records
            # the proprietary payload as sent: bytes no driver value names are kept here (docs/formats.md §1)
            t.frame_info["proprietary"] = bytes(data[pos + 1 : end]).hex()
            _drivers.apply(telegram, bytes(data[pos + 1 : end]))
            return telegram
    raise DecodeError(
        "unknown_ci", f"unknown or unsupported CI {t.ci:02X} at offset {pos}", layer="tpl", offset=pos, partial=partial
    )


# EN 13757-3 fixed data structure (wired CI 73): ident (4, BCD) ACC STS medium/unit (2)
# counter 1 (4) counter 2 (4)
FIXED_SIZE = 16
# its status bits 2-4 mean what they mean in the variable structure; bits 0-1 (counter coding,
# fixed-date values) and 5-7 (manufacturer) are read differently by the sources
_FIXED_STATUS_FLAGS = ((2, "power_low"), (3, "permanent_error"), (4, "temporary_error"))


def fixed_structure(data: bytes, pos: int, frame_info: Result) -> Result:
    """A wired M-Bus response with the fixed data structure (CI 73, 16 bytes; older meters).

    Identification number, access number and status are decoded; medium/unit and the two
    counters stay an ``undecoded`` record: descriptions of this old format disagree on which
    status bit says whether the counters are BCD or binary (bit 0 or bit 7; docs/protocol.md
    §9.2), and a billing value is never guessed."""
    body = bytes(data[pos + 1 : pos + 1 + FIXED_SIZE])
    sts = body[5]
    meter = {
        "manufacturer": None,
        "id": body[3::-1].hex().upper(),
        "version": None,
        "device_type": None,
        "device_type_code": None,
    }
    frame_info["fixed_structure"] = True
    record = {
        "quantity": "undecoded",
        "unit": "",
        "value": body[6:].hex(),
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "function": "instantaneous",
        "dif_vif": "",
        "reason": "fixed_data_structure",
        "message": "CI 73 fixed data structure (EN 13757-3, older wired meters): medium/unit and "
        "counters 1 and 2 are not decoded (their coding is ambiguous in the sources)",
    }
    return {
        "meter": meter,
        "transmitter": None,
        "access_number": body[4],
        "status": {"code": sts, "flags": [name for bit, name in _FIXED_STATUS_FLAGS if sts >> bit & 1]},
        "security": PLAIN.as_dict(),
        "frame": frame_info,
        "records": [record],
        "fields": {},
        "manufacturer_data": None,
    }
