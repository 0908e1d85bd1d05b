"""The layout memo: whole APLs decoded by the plan of an earlier APL with the same headers
(docs/protocol.md §8.4).

A meter sends the same records telegram after telegram: only the data bytes change. A
:class:`Layout` is a whole APL's plan: where every header, filler and 0F/1F byte is, one struct
for all data fields and one value step per record. It is learned from an APL the general record
decoder has decoded, and reused when an APL of the same length has exactly the same bytes at all
those places (one big-int mask test: the record grammar reads no other byte, so its walk would be
the same). Values a plan cannot take as they are (invalid or negative BCD, invalid or summer-time
dates, NaN, compact profiles) send the APL to the general decoder, so both give the same result.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from omshub.codec.headers import header_end, header_info
from omshub.codec.tables import (
    D_BCD,
    D_DATE_F,
    D_DATE_G,
    D_DATETIME_F,
    D_DATETIME_I,
    D_INT,
    D_NONE,
    D_RAW,
    D_REAL,
    D_TIME_J,
    D_UINT,
    DATA_LEN,
    M_DIV,
    M_ONE,
    HeaderInfo,
    Record,
)
from omshub.codec.values import bcd, date_g, datetime_f, datetime_i, lvar_size, real32, scaled, time_j

Records = tuple[list[Record], "str | None"]
GeneralDecoder = Callable[[bytes, int, int], Records]
Convert = Callable[[Any], Any]
Builder = Callable[[bytes, int], "list[Record] | None"]
FixedValue = Callable[[bytes, int, int, HeaderInfo, Record], None]  # (data, start, end, info, record)

# how a step gets its value from its struct field v (a, b, c: the step's parameters)
#   K_DIV      v * a / b                              (1/2/4/8-byte binary; a = b = 1 gives a float)
#   K_AS_IS    v                                      (plain integers)
#   K_BCD      BCD digits of v (bytes when c), then * a / b, or as is when b == 0
#   K_INT      int.from_bytes(v, signed=c), then * a / b, or as is when b == 0  (3/6-byte fields)
#   K_CALL     a(v)                                   (dates, real32, other scales)
#   K_RAW      "raw": v.hex()                         K_NONE: no data field
# a value of None from K_BCD/K_CALL sends the APL to the general decoder.
K_DIV, K_AS_IS, K_BCD, K_INT, K_CALL, K_RAW, K_NONE = range(7)
_MEMO_LIMIT = 8192


class Step(NamedTuple):
    """One record of a layout: its template, which struct field holds its data, how the value is made."""

    template: Record
    field: int  # index of its data field in the struct's values
    kind: int  # K_*
    a: Any
    b: Any
    c: Any
    has_lists: bool
    # a fixed-size field's record made the general way (``(data, start) -> record``), for a value
    # the step cannot take as it is (invalid BCD or date, NaN); None: the whole APL goes the general way
    fallback: Callable[[bytes, int], Record] | None = None


class Layout:
    """A learned APL layout: the bits that must match, and how to build its records.

    ``build(data, start)`` returns the records of a matching APL, or None: decode it the general
    way (a value the plan cannot take as it is, a layout that could not be planned, or one not
    used often enough yet to be compiled into its generated builder, :meth:`compile`)."""

    __slots__ = ("mask", "expected", "unpack", "steps", "mdata_at", "uses", "build")

    def __init__(
        self,
        mask: int,
        expected: int,
        unpack: Callable[[bytes, int], tuple[Any, ...]] | None,
        steps: tuple[Step, ...],
        mdata_at: int,
    ) -> None:
        self.mask = mask
        self.expected = expected
        self.unpack = unpack  # None: a known layout the memo cannot decode (general decoder)
        self.steps = steps
        self.mdata_at = mdata_at  # offset of the manufacturer data after 0F/1F from the APL's start, or -1
        self.uses = 0 if unpack is not None else -1  # matches so far; -1: compiled, or never will be
        self.build: Builder = _general_way

    @property
    def compiled(self) -> bool:
        return self.build is not _general_way

    def compile(self) -> None:
        """Generate the layout's builder (:func:`compile_steps`)."""
        if self.unpack is not None:
            self.build = compile_steps(self.unpack, self.steps)
            self.uses = -1  # no more counting


def _general_way(data: bytes, start: int) -> None:
    """The builder of a layout not compiled (yet): the general decoder decodes the APL."""
    return None


def _step_source(k: int, step: Step, args: dict[str, Any]) -> list[str]:
    """The generated lines that build record ``r{k}`` of ``step`` (names it needs go into ``args``)."""
    template, index, kind, a, b, c, has_lists, fallback = step
    t, r = f"T{k}", f"r{k}"
    args[t] = template
    if fallback is not None:
        args[f"G{k}"] = fallback
        bad = f"{r} = G{k}(data, start)"  # the general way for this one record
    else:
        bad = "return None"
    field = f"v[{int(index)}]"
    if kind == K_DIV:
        lines = [f"    {r} = {t}.copy(); {r}['value'] = {field} * {int(a)} / {int(b)}"]
    elif kind == K_AS_IS:
        lines = [f"    {r} = {t}.copy(); {r}['value'] = {field}"]
    elif kind == K_INT:
        number = f"from_bytes({field}, 'little', signed={bool(c)})"
        scaled_number = f"{number} * {int(a)} / {int(b)}" if b else number
        lines = [f"    {r} = {t}.copy(); {r}['value'] = {scaled_number}"]
    elif kind == K_BCD:
        # the digits of the LE number, read as decimal; a sign nibble or an invalid digit
        # (hex a-f) makes int() fail: the general decoder then decides
        raw = f"from_bytes({field}, 'little')" if c else field
        lines = [
            "    try:",
            f"        x = int('%x' % {raw})",
            "    except ValueError:",
            f"        {bad}",
            "    else:",
            f"        {r} = {t}.copy(); {r}['value'] = {f'x * {int(a)} / {int(b)}' if b else 'x'}",
        ]
    elif kind == K_CALL:
        args[f"C{k}"] = a
        lines = [
            f"    x = C{k}({field})",
            "    if x is None:",
            f"        {bad}",
            "    else:",
            f"        {r} = {t}.copy(); {r}['value'] = x",
        ]
    elif kind == K_RAW:
        lines = [f"    {r} = {t}.copy(); {r}['raw'] = {field}.hex()"]
    else:
        lines = [f"    {r} = {t}.copy()"]
    if has_lists:
        lines += [f"    {r}[{name!r}] = list({r}[{name!r}])" for name in ("qualifiers", "vife") if name in template]
    return lines


def compile_steps(unpack: Callable[[bytes, int], tuple[Any, ...]], steps: tuple[Step, ...]) -> Builder:
    """A layout's record builder ``(data, start) -> records | None`` as one generated function:
    no per-record loop, dispatch or parameter lookups (the steps are known when it is learned).
    Only integers (as literals) and names bound to the step objects go into the source."""
    args: dict[str, Any] = {"unpack": unpack, "from_bytes": int.from_bytes}
    lines = ["    v = unpack(data, start)"]
    for k, step in enumerate(steps):
        lines += _step_source(k, step, args)
    params = ", ".join(f"{name}={name}" for name in args)
    names = ", ".join(f"r{k}" for k in range(len(steps)))
    source = f"def build(data, start, *, {params}):\n" + "\n".join(lines) + f"\n    return [{names}]\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<omshub.codec.layouts>", "exec"), args, namespace)
    build: Builder = namespace["build"]
    return build


class LayoutMemo:
    """Decodes APLs whose layout it has learned; every other APL goes to ``general``, the
    record-by-record decoder, and teaches the memo its layout.

    Keys are (APL length, the fillers and the first two header bytes, and when the first record
    is a plain DIF+VIF with fixed-size data, the first two header bytes of the second record). A
    key seen for the first time is only noted: one-off layouts cost no learning. Bounded: at most
    ``limit`` keys (cleared when full) and ``per_key`` layouts behind one key."""

    def __init__(
        self,
        general: GeneralDecoder,
        limit: int = 512,
        per_key: int = 8,
        compile_after: int = 4,
        compile_limit: int = 256,
        fixed_value: FixedValue | None = None,
    ) -> None:
        self.general = general
        # the general decoder's maker of one fixed-size record's value (records._fixed_value):
        # compiled layouts use it for the values their steps cannot take as they are
        self.fixed_value = fixed_value
        self.limit = limit
        self.per_key = per_key
        # matches of a layout before its builder is compiled; until then the general decoder decodes
        # it. Compiling costs a few dozen decodes: a layout seen once or twice is not worth it, and
        # `benchmarks.decode`'s varying-layout figure (each layout ~40 times) is best from about 4.
        self.compile_after = compile_after
        self.compile_limit = compile_limit  # compiled builders until the memo is next cleared (memory bound)
        self.compiled = 0
        self.layouts: dict[tuple[Any, ...], list[Layout]] = {}

    def clear(self) -> None:
        self.layouts.clear()
        self.compiled = 0

    def __len__(self) -> int:
        return len(self.layouts)

    def decode(self, data: bytes, start: int, n: int) -> Records:
        """The records and manufacturer data of the valid-bounds APL ``data[start:n]``."""
        i = start
        while i < n and data[i] == 0x2F:
            i += 1
        if i + 1 < n and not (data[i] | data[i + 1]) & 0x80 and data[i + 1] != 0x7C:
            second = i + 2 + DATA_LEN[data[i] & 0x0F]
            key: tuple[Any, ...] = (n - start, data[start : i + 2], data[second : second + 2])
        else:
            key = (n - start, data[start : i + 2])
        candidates = self.layouts.get(key)
        if candidates is None:
            if len(self.layouts) >= self.limit:
                self.clear()
            self.layouts[key] = []
            return self.general(data, start, n)
        bits = int.from_bytes(data[start:n], "little")
        for k, layout in enumerate(candidates):
            if bits & layout.mask == layout.expected:
                if k:  # the layouts in use move to the front
                    candidates.insert(0, candidates.pop(k))
                uses = layout.uses
                if uses >= 0:  # not compiled yet
                    layout.uses = uses = uses + 1
                    if uses >= self.compile_after and self.compiled < self.compile_limit:
                        self.compiled += 1
                        layout.compile()
                records = layout.build(data, start)
                if records is None:
                    return self.general(data, start, n)
                at = layout.mdata_at
                return records, (data[start + at : n].hex() if at >= 0 else None)
        result = self.general(data, start, n)
        if len(candidates) < self.per_key:
            candidates.append(learn_layout(data, start, n, self.fixed_value))
        return result


# ----------------------------------------------------------------------------- learning a layout


def _memoised(convert: Callable[[bytes], str | None]) -> Convert:
    """``convert`` (bytes -> str | None) with a bounded memo: dates repeat from telegram to
    telegram, and formatting them costs more than a lookup."""
    memo: dict[bytes, str | None] = {}
    get = memo.get
    miss = object()

    def memoised(b: bytes) -> str | None:
        v = get(b, miss)
        if v is miss:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            v = memo[b] = convert(b)
        return v  # type: ignore[return-value]  # not the sentinel: replaced above

    return memoised


def _date_f_date(b: bytes) -> str | None:
    r = datetime_f(b)
    # a time of day under a date VIF: the general decoder keeps the bytes as raw too
    return None if r is None or not r[0].endswith("T00:00") else r[0][:10]


def _date_f_datetime(b: bytes) -> str | None:
    r = datetime_f(b)
    return None if r is None or r[1] else r[0]  # summer-time flag: the general decoder adds "dst"


def _date_i_datetime(b: bytes) -> str | None:
    r = datetime_i(b)
    return None if r is None or r[1] else r[0]


_DATE_CONVERTERS = {
    D_DATE_G: _memoised(date_g),
    D_TIME_J: _memoised(time_j),
    D_DATE_F: _memoised(_date_f_date),
    D_DATETIME_F: _memoised(_date_f_datetime),
    D_DATETIME_I: _memoised(_date_i_datetime),
}

# (struct code, K_*, a, b, c) of one data field
Plan = tuple[str, int, Any, Any, Any]


def _lvar_plan(info: HeaderInfo, lv: int, size: int) -> tuple[Plan | None, Record | None]:
    """The plan of an LVAR data field of ``size`` bytes (LVAR byte ``lv``), and the record
    template (a date's quantity may follow from the LVAR size)."""
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


def _lvar_value_plan(info: HeaderInfo, lv: int, size: int, code: str) -> Plan:
    if lv < 0xC0:
        if info.lvar_raw:
            return code, K_RAW, None, None, None
        return code, K_CALL, lambda b: b[::-1].decode("latin-1"), None, None
    if lv < 0xE0:
        negative = lv >= 0xD0

        def lvar_bcd(b: bytes) -> int | float | None:
            raw = bcd(b)
            if raw is None or raw < 0:
                return None  # error value: the general decoder marks it
            return scaled(-raw if negative else raw, info)

        return code, K_CALL, lvar_bcd, None, None
    if size <= 8 and not info.lvar_raw:
        signed = info.signed
        return code, K_CALL, lambda b: scaled(int.from_bytes(b, "little", signed=signed), info), None, None
    return code, K_RAW, None, None, None


def _number_plan(info: HeaderInfo, a: int | None, b: int | None) -> Plan:
    """The plan of a binary or BCD integer field; (a, b) the scale (see K_*), None: not a plain one."""
    dec, dlen = info.decoder, info.dlen
    if dec in (D_INT, D_UINT):
        signed = dec == D_INT
        if a is None:
            return (f"{dlen}s", K_CALL, lambda v: scaled(int.from_bytes(v, "little", signed=signed), info), None, None)
        if info.unpack is None:
            return f"{dlen}s", K_INT, a, b, signed
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[dlen]
        code = code if signed else code.upper()
        return (code, K_AS_IS, None, None, None) if b == 0 else (code, K_DIV, a, b, None)
    code = {1: "B", 2: "H", 4: "I", 8: "Q"}.get(dlen) or f"{dlen}s"
    if a is None:

        def scaled_bcd(v: Any) -> int | float | None:
            digits = "%x" % (v if v.__class__ is int else int.from_bytes(v, "little"))
            return scaled(int(digits), info) if digits.isdigit() else None

        return code, K_CALL, scaled_bcd, None, None
    return code, K_BCD, a, b, code.endswith("s")


def _field_plan(info: HeaderInfo) -> Plan | None:
    """The plan of a record's fixed-size data field, or None if it cannot be planned."""
    dec, dlen, mode = info.decoder, info.dlen, info.mode
    if info.record_error or dlen < 0 or info.keep_raw:
        return None
    if dec == D_RAW:
        return f"{dlen}s", K_RAW, None, None, None
    if dec == D_NONE:
        return "", K_NONE, None, None, None
    if dec in (D_INT, D_UINT, D_BCD):
        # scale as (a, b): value = raw * a / b, or the raw int itself for b == 0
        if mode == M_ONE:
            return _number_plan(info, 1, 1 if info.is_float else 0)
        return _number_plan(info, info.num, info.den) if mode == M_DIV else _number_plan(info, None, None)
    if dec == D_REAL:
        num, den = info.num, info.den

        def real(v: bytes) -> float | None:
            r = real32(v)
            if r is None:
                return None
            x, digits = r
            return float(f"{(x if mode == M_ONE else x * num / den):.{digits}g}")

        return "4s", K_CALL, real, None, None
    return f"{dlen}s", K_CALL, _DATE_CONVERTERS[dec], None, None


def _fallback(info: HeaderInfo, offset: int, fixed_value: FixedValue) -> Callable[[bytes, int], Record]:
    """The record of a fixed-size field at ``offset`` from the APL's start, made as the general
    decoder makes it (``fixed_value``): for the values a step cannot take as they are."""
    end = offset + info.dlen
    template = info.template

    def general_record(data: bytes, start: int) -> Record:
        rec = template.copy()
        fixed_value(data, start + offset, start + end, info, rec)
        return rec

    return general_record


def learn_layout(data: bytes, start: int, n: int, fixed_value: FixedValue | None = None) -> Layout:
    """The layout of the (valid) APL ``data[start:n]`` (``fixed_value``: see LayoutMemo)."""
    mask = bytearray(n - start)
    fmt = ["<"]
    steps: list[Step] = []
    gap = 0  # bytes since the last data field (struct pad)
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
                mdata_at = i - start  # from the APL's start: the same APL comes at other offsets (ELL, AFL)
                break
            continue
        j = header_end(data, i, n)
        info = header_info(data[i:j])
        dlen = info.dlen
        plan: Plan | None
        lvar_at = -1
        if dlen < 0 and not info.record_error:  # LVAR: its length byte is part of the layout
            lv = data[j]
            lvar_at = j
            dlen = lvar_size(lv)  # type: ignore[assignment]  # a valid APL has no reserved LVAR
            plan, template = _lvar_plan(info, lv, dlen)
            j += 1
        else:
            plan, template = _field_plan(info), info.template
        mask[i - start : j - start] = b"\xff" * (j - i)
        if plan is None or template is None:
            plannable = False  # a match then just means: decode the general way, learn nothing
            break
        code, kind, pa, pb, pc = plan
        gap += j - i
        if code:
            if gap:
                fmt.append(f"{gap}x")
            fmt.append(code)
            fallback = None
            if fixed_value is not None and lvar_at < 0 and kind in (K_BCD, K_CALL):
                fallback = _fallback(info, j - start, fixed_value)
            steps.append(Step(template, fields, kind, pa, pb, pc, info.has_lists, fallback))
            fields += 1
            gap = 0
        else:
            steps.append(Step(template, 0, kind, pa, pb, pc, info.has_lists))
        i = j + dlen
    mask_int = int.from_bytes(mask, "little")
    expected = int.from_bytes(data[start:n], "little") & mask_int
    if not plannable:
        return Layout(mask_int, expected, None, (), -1)
    return Layout(mask_int, expected, struct.Struct("".join(fmt)).unpack_from, tuple(steps), mdata_at)
