"""The driver test kit: check a driver file against the test telegrams it carries.

A driver file (``codec/drivers/*.toml``) may hold ``[[test]]`` tables next to its drivers::

    [[test]]
    comment = "where the telegram comes from (a source in the docs, or built from the layout above)"
    telegram = "68…16"            # hex, as a receiver logs it
    key = "…"                     # optional AES key (32 hex digits)
    prior = ["…"]                 # optional: telegrams the meter sent before (compact frames)
    fields = { total_m3 = 12.5 }  # every named field the decode must produce, with its value
    records = [{ quantity = "volume", storage = 1, value = 3.5 }]  # each must match some record

:func:`check_text` decodes every test telegram with that file in place of the packaged file of the
same name (or added to them), and compares: a field value must be equal (numbers within 1e-9
relative), a record expectation is a subset of the keys of one decoded record. The result lists,
per test, every field the decode produced (so a new driver's author sees what each field decodes
to) and every mismatch. ``omshub drivers check FILE`` prints it; the packaged files' own tests run
in the test suite.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from typing import Any

from omshub.codec import drivers as _drivers
from omshub.codec import telegram as _telegram
from omshub.codec.errors import DecodeError
from omshub.codec.telegram import decode, parse_hex

TEST_KEYS = frozenset({"comment", "telegram", "key", "prior", "fields", "records"})


@dataclass
class TestResult:
    """One ``[[test]]`` table: what the decode produced and what did not match."""

    index: int
    comment: str
    fields: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class CheckResult:
    """A whole file: schema problems (then no test ran) or one result per test."""

    name: str
    error: str | None = None
    tests: list[TestResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.tests) and all(t.ok for t in self.tests)


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(float(expected), float(got), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(_same(e, g) for e, g in zip(expected, got, strict=True))
    if isinstance(expected, dict) and isinstance(got, dict):
        return all(k in got and _same(v, got[k]) for k, v in expected.items())
    return bool(expected == got)


def _hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a hex string")
    try:
        return parse_hex(value)
    except DecodeError as exc:
        raise ValueError(f"{where}: {exc.message}") from None


def _run_one(index: int, test: dict[str, Any]) -> TestResult:
    where = f"test[{index}]"
    result = TestResult(index, str(test.get("comment", "")))
    unknown = sorted(set(test) - TEST_KEYS)
    if unknown:
        result.problems.append(f"{where}: unknown keys {unknown} (allowed: {sorted(TEST_KEYS)})")
        return result
    try:
        frame = _hex(test.get("telegram"), f"{where}.telegram")
        key = _hex(test["key"], f"{where}.key") if "key" in test else None
        priors = [_hex(p, f"{where}.prior[{i}]") for i, p in enumerate(test.get("prior", []))]
    except ValueError as exc:
        result.problems.append(str(exc))
        return result
    formats = _drivers.KnownFormatCache()
    try:
        for prior in priors:
            decode(prior, key=key, formats=formats)
        decoded = decode(frame, key=key, formats=formats)
    except DecodeError as exc:
        result.problems.append(f"{where}: the telegram does not decode: {exc.code}: {exc.message}")
        return result
    result.fields = decoded.get("fields") or {}
    result.records = decoded.get("records") or []
    expected_fields = test.get("fields", {})
    expected_records = test.get("records", [])
    if not expected_fields and not expected_records:
        result.problems.append(f"{where}: expects nothing (give 'fields' and/or 'records')")
    for name, value in expected_fields.items():
        if name not in result.fields:
            result.problems.append(f"{where}: field {name!r} missing (expected {value!r})")
        elif not _same(value, result.fields[name]):
            result.problems.append(f"{where}: field {name!r} = {result.fields[name]!r}, expected {value!r}")
    for i, wanted in enumerate(expected_records):
        if not any(_same(wanted, record) for record in result.records):
            result.problems.append(f"{where}: no record matches records[{i}] = {wanted!r}")
    return result


def check_text(name: str, text: str) -> CheckResult:
    """Validate the driver file ``name`` (its TOML ``text``) and run its test telegrams."""
    out = CheckResult(name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        out.error = f"{name}: not valid TOML: {exc}"
        return out
    texts = _drivers.packaged_texts()
    texts[name] = text
    try:
        reg = _drivers.load_texts(texts)
    except _drivers.SchemaError as exc:
        out.error = str(exc)
        return out
    tests = data.get("test", [])
    if not isinstance(tests, list) or not tests:
        out.error = f"{name}: no [[test]] tables (each driver file carries the telegrams it was checked against)"
        return out
    _drivers.install(reg)
    _telegram.forget_meters()  # the memoised plans belong to the registry used before
    try:
        for index, test in enumerate(tests):
            if not isinstance(test, dict):
                out.tests.append(TestResult(index, "", problems=[f"test[{index}]: expected a table"]))
                continue
            out.tests.append(_run_one(index, test))
    finally:
        _drivers.install(None)
        _telegram.forget_meters()
    return out


def _record_line(record: dict[str, Any]) -> str:
    where = ", ".join(f"{k} {record[k]}" for k in ("storage", "tariff", "subunit") if record.get(k)) or "current"
    function = record.get("function")
    what = f"{record.get('quantity')}" + (f" ({function})" if function not in (None, "instantaneous") else "")
    value = record.get("value")
    text = f"{what} [{where}] = {value!r} {record.get('unit') or ''}".rstrip()
    if record.get("error_value"):
        text += " (error value)"
    if record.get("driver"):
        text += f"  <- driver {record['driver']}"
    elif value is None and record.get("raw"):
        text += f"  kept as hex: {record['raw']}"
    return text


def report(result: CheckResult) -> str:
    """The check as text: per test its comment, every field it decoded, the problems; a verdict."""
    lines = [f"{result.name}:"]
    if result.error is not None:
        lines.append(f"  FAILED: {result.error}")
        return "\n".join(lines)
    for test in result.tests:
        comment = test.comment.strip().splitlines()[0] if test.comment.strip() else ""
        lines.append(f"  test[{test.index}] {'ok' if test.ok else 'FAILED'}" + (f": {comment}" if comment else ""))
        for name, value in test.fields.items():
            lines.append(f"    field {name} = {value!r}")
        for record in test.records:
            lines.append("    record " + _record_line(record))
        lines.extend(f"    ! {problem}" for problem in test.problems)
    passed = sum(t.ok for t in result.tests)
    lines.append(f"  {passed}/{len(result.tests)} tests passed")
    return "\n".join(lines)
