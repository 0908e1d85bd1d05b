"""The export writers (domain/exports/v1.py) build CSV and JSON text from fragments instead of
csv.writer and orjson: for any texts (quotes, commas, line breaks, control and non-ASCII
characters, None) they must give exactly what csv.writer and orjson give."""

from __future__ import annotations

import csv
import io

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from omshub.cloud.domain.exports import v1

TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(['a"b', "a,b", "x\r\ny", "\\", "\x00", "é", " "]))
VALUE = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6))


def _csv(rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerows(rows)
    return buf.getvalue()


def _row(texts: list, value, shared: list) -> list:
    values = (v1.SCHEMA, shared[0], "boundary_value", shared[1], "energy", "kWh", "2026-10-31T23:00:00Z",
              "2026-11-01T00:00:00+01:00", shared[2], "2026-11", "2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z",
              shared[3], "12", "measured", "ok")  # fmt: skip
    s = v1.Shared(values, "Europe/Berlin")
    row = [*values[:4], *texts[:5], texts[5], texts[5], values[4], value, *values[5:],
           "2026-12-01T06:00:00Z", "v:1", "2026-12-02T06:00:00Z", texts[6], texts[7]]  # fmt: skip
    return [*row, "Europe/Berlin", 1, None, None, s]


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXT, min_size=8, max_size=8), VALUE, st.lists(TEXT, min_size=4, max_size=4))
def test_v1_writers_match_csv_writer_and_orjson(texts, value, shared):
    shared[0] = shared[0] or ""  # export id and tenant are texts
    shared[1] = shared[1] or ""
    row = _row(texts, value, shared)
    public = row[: len(v1.COLUMNS)]
    assert "".join(v1.v1_csv([[row]])) == _csv([list(v1.COLUMNS), public])
    (lines,) = list(v1.v1_json_lines([[row]]))
    assert lines == [orjson.dumps(dict(zip(v1.COLUMNS, public, strict=True))).decode()]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(TEXT, min_size=4, max_size=4), max_size=4))
def test_table_writers_match_csv_writer_and_orjson(rows):
    columns = ("A", "B", "C", "D")
    assert "".join(v1.table_csv([rows], columns)) == _csv([list(columns), *rows])
    (lines,) = list(v1.table_json_lines([rows], columns))
    assert lines == [orjson.dumps(dict(zip(columns, r, strict=True))).decode() for r in rows]
