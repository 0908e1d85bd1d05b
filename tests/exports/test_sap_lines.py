"""The SAP upload's lines (domain/exports/sap.UploadLines, made from fragments) must be exactly what
csv.writer and orjson write of the upload rows (sap.reading_row + the bookkeeping), for any texts
in the rows and the mapping (quotes, commas, line breaks, control and non-ASCII characters, None),
any reading, receiving time and zone, and in any order (fragments learnt from earlier rows)."""

from __future__ import annotations

import csv
import io

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from omshub.cloud.domain.exports import sap, v1
from tests.exports.test_writers import TEXT, VALUE, _row

COLUMNS = sap.COLUMNS + sap.EXTRA
SERIAL = st.one_of(TEXT, st.sampled_from(["00000001", "12345678", "A1B2", ""]))
RECEIVED = st.one_of(st.none(), st.sampled_from(["2026-12-01T06:00:00Z", "2026-11-30T23:30:00.250000Z"]))
ROW = st.tuples(SERIAL, VALUE, RECEIVED, TEXT, TEXT, st.sampled_from(["bench-000001", "", "x,y"]),
                st.sampled_from(["month", "due_date", "move_in", None]), st.sampled_from(["Europe/Berlin", None]))  # fmt: skip
MAPPING = st.fixed_dictionaries({
    "material": st.one_of(st.just(""), st.text(max_size=18)),
    "meter_reader": st.sampled_from(["", "MR 1", 'a"b', "x,y"]),
    "decimals": st.integers(0, 6),
    "notes": st.dictionaries(st.sampled_from(["missing", "12", "meter_stored"]), st.sampled_from(["01", "Z9"])),
    "reading_types": st.dictionaries(st.sampled_from(["meter_stored"]), st.sampled_from(["01", "A"])),
})  # fmt: skip


def _v1_row(serial, value, received, delivery, previous, export_id, reason, zone) -> list:
    row = _row(
        [None, None, None, None, None, serial, delivery, previous], value, [export_id, "t", reason, "meter_stored"]
    )
    row[v1.COL["received_utc"]] = received
    row[v1.ZONE] = zone
    row[v1.SHARED].zone = zone
    return row


def _expected(rows: list[list], mapping: dict) -> list[list]:
    out, cache = [], {}
    for r in rows:
        made = sap.reading_row(r, mapping, cache)
        if made is not None:
            out.append([*made, r[v1.EXPORT_ID] or None, r[v1.DELIVERY], r[v1.PREVIOUS_EXPORT_ID]])
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(ROW, max_size=6), MAPPING)
def test_upload_lines_match_csv_writer_and_orjson(rows, mapping):
    mapping = sap.merged(sap.check(mapping))
    made = [_v1_row(*r) for r in rows]
    # twice: the second pass takes the fragments the first one learnt
    made += [list(r) for r in made]
    expected = _expected(made, mapping)
    csv_lines, json_lines = sap.UploadLines(mapping, "csv"), sap.UploadLines(mapping, "json")
    # row by row, then the whole batch (fragments learnt by then)
    got_csv = [t for r in made for t in csv_lines.readings([r])]
    got_json = [t for r in made for t in json_lines.readings([r])]
    assert csv_lines.readings(made) == got_csv
    assert json_lines.readings(made) == got_json
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(expected)
    assert "".join(got_csv) == buf.getvalue()
    assert got_json == [orjson.dumps(dict(zip(COLUMNS, r, strict=True))).decode() for r in expected]
