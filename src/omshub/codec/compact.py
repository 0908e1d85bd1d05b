"""Compact frames (CI 0x79/0x7B/0x73, docs/protocol.md §9): records sent without their headers.

A compact frame carries ``format signature (2, LE) | full-frame CRC (2, LE) | data bytes``.
The *format* is the concatenated DIF/DIFE/VIF/VIFE bytes of an earlier full frame; its
signature is CRC-16/EN-13757 over those bytes, and the full-frame CRC is the same CRC over the
full APL the compact frame stands for (headers interleaved with data). Pure functions: the
caller keeps the formats it has learned (``FormatCache``).
"""

from __future__ import annotations

from typing import Any

from omshub.codec.errors import DecodeError

# CRC-16/EN-13757 (poly 0x3D65, init 0, no reflection, final XOR 0xFFFF): the frame layer's
# two-bytes-per-step table implementation
from omshub.codec.frame import crc16
from omshub.codec.headers import header_end, header_info
from omshub.codec.records import decode_records
from omshub.codec.tables import HeaderInfo
from omshub.codec.values import lvar_size


def format_of(data: bytes, start: int = 0, end: int | None = None) -> bytes:
    """A full frame's record format: the header bytes of its records in ``data[start:end]``.

    2F fillers are left out; a closing 0F/1F (manufacturer data) is kept as the last format
    byte, its data is not part of the format. ``DecodeError`` if the records are malformed.
    """
    decode_records(data, start, end)  # validates the whole record grammar first
    n = len(data) if end is None else end
    fmt = bytearray()
    i = start
    while i < n:
        b = data[i]
        if b == 0x2F:
            i += 1
            continue
        if b in (0x0F, 0x1F):
            fmt.append(b)
            break
        j = header_end(data, i, n)
        fmt += data[i:j]
        i = j + _data_length(data, j, n, header_info(data[i:j]), i)
    return bytes(fmt)


def format_signature(fmt: bytes) -> int:
    """The format signature a CI 79 header carries for ``fmt`` (transmitted LE)."""
    return crc16(fmt)


def full_frame_crc(full_apl: bytes) -> int:
    """The full-frame CRC a CI 79 header carries for the full APL it stands for (transmitted LE)."""
    return crc16(full_apl)


def _data_length(data: bytes, j: int, n: int, info: HeaderInfo, record: int) -> int:
    if info.dlen >= 0:
        return info.dlen
    if j >= n:
        raise DecodeError(
            "invalid_record",
            f"compact data for the LVAR record at format offset {record} is missing",
            layer="apl",
            offset=j,
        )
    lv = data[j]
    size = lvar_size(lv)
    if size is None:
        raise DecodeError("invalid_record", f"reserved LVAR 0x{lv:02X} at offset {j}", layer="apl", offset=j)
    return 1 + size


# format -> (((header, data size or -1 for LVAR, offset in the format), ...), closing 0F/1F or -1)
_Plan = tuple[tuple[tuple[bytes, int, int], ...], int]
_PLANS: dict[bytes, _Plan] = {}
_PLANS_LIMIT = 1024


def _plan(fmt: bytes) -> _Plan:
    """The format's records as (header bytes, fixed data size or -1 for LVAR) (memoised)."""
    plan = _PLANS.get(fmt)
    if plan is None:
        records: list[tuple[bytes, int, int]] = []
        closing = -1
        p, m = 0, len(fmt)
        while p < m:
            if fmt[p] in (0x0F, 0x1F):  # manufacturer data: the rest of the compact data
                closing = fmt[p]
                break
            q = header_end(fmt, p, m)
            records.append((fmt[p:q], header_info(fmt[p:q]).dlen, p))
            p = q
        plan = (tuple(records), closing)
        if len(_PLANS) >= _PLANS_LIMIT:
            _PLANS.clear()
        _PLANS[fmt] = plan
    return plan


def rebuild_full(fmt: bytes, data: bytes, start: int = 0, end: int | None = None) -> bytes:
    """Interleave the format's headers with the compact data: the full APL it stands for.

    Trailing 2F fillers in the data are dropped; any other surplus is an error (the format does
    not describe the data).
    """
    n = len(data) if end is None else end
    if start < 0 or n > len(data) or start > n:
        raise DecodeError(
            "invalid_record",
            f"compact data bounds {start}..{end} outside the {len(data)} bytes given",
            layer="apl",
            offset=start,
        )
    records, closing = _plan(fmt)
    parts: list[bytes] = []
    append = parts.append
    j = start
    for hdr, size, p in records:
        if size < 0:
            if j >= n:
                raise DecodeError(
                    "invalid_record",
                    f"compact data for the LVAR record at format offset {p} is missing",
                    layer="apl",
                    offset=j,
                )
            lvar = lvar_size(data[j])
            if lvar is None:
                raise DecodeError(
                    "invalid_record", f"reserved LVAR 0x{data[j]:02X} at offset {j}", layer="apl", offset=j
                )
            size = lvar + 1
        if j + size > n:
            raise DecodeError(
                "invalid_record",
                f"compact data ends at offset {n}; the record of format offset {p} needs {size} bytes from offset {j}",
                layer="apl",
                offset=j,
            )
        append(hdr)
        append(data[j : j + size])
        j += size
    if closing >= 0:
        append(bytes((closing,)))
        append(data[j:n])
        return b"".join(parts)
    surplus = data[j:n]
    if surplus.strip(b"\x2f"):
        raise DecodeError(
            "invalid_record",
            f"compact data has {len(surplus)} bytes at offset {j} beyond what its format describes",
            layer="apl",
            offset=j,
        )
    return b"".join(parts)


def decode_compact(
    fmt: bytes, data: bytes, start: int = 0, *, full_crc: int | None = None, end: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Records of a compact frame whose data bytes are ``data[start:end]``, given its format.

    With ``full_crc`` (from the CI 79 header) the rebuilt full APL must have that CRC, else
    ``DecodeError("unknown_format")``: the cached format does not belong to this frame.
    """
    full = rebuild_full(fmt, data, start, end)
    if full_crc is not None and crc16(full) != full_crc:
        raise DecodeError(
            "unknown_format",
            f"rebuilt full frame has CRC {crc16(full):04X}, the "
            f"compact frame announces {full_crc:04X} (format does not match)",
            layer="apl",
            offset=start,
        )
    return decode_records(full)


def encode_compact(records: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """Records -> (format bytes, value bytes) of the compact frame standing for them."""
    from omshub.codec.apl_encode import encode_records  # encoding only: decoding starts without it

    full = encode_records(records)
    fmt = bytearray()
    values = bytearray()
    n = len(full)
    i = 0
    while i < n:
        if full[i] in (0x0F, 0x1F):
            fmt.append(full[i])
            values += full[i + 1 :]
            break
        j = header_end(full, i, n)
        size = _data_length(full, j, n, header_info(full[i:j]), i)
        fmt += full[i:j]
        values += full[j : j + size]
        i = j + size
    return bytes(fmt), bytes(values)
