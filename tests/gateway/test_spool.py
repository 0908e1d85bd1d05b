"""The durable spool: bounds, newest-per-kind, batches with a persisted seq, ack, SIGKILL."""

import signal
import subprocess
import sys
import textwrap

import pytest

from omshub.gateway.spool import Spool


def raw(i: int, n: int = 30) -> bytes:
    return bytes([n - 1]) + i.to_bytes(4, "big") * ((n - 1) // 4) + b"\x00" * ((n - 1) % 4)


def test_put_take_ack(tmp_path):
    sp = Spool(tmp_path / "s.db")
    for i in range(10):
        assert sp.put(raw(i), 1000.0 + i, -70, "T1")
    b = sp.take_batch(4)
    assert b.seq == 1 and [t.rx_time for t in b.telegrams] == [1000, 1001, 1002, 1003]
    again = sp.take_batch(4)  # not acknowledged: the same seq and rows
    assert again.seq == 1 and [t.id for t in again.telegrams] == [t.id for t in b.telegrams]
    assert sp.ack(2) == 0  # not the one in flight
    assert sp.ack(1) == 4 and sp.rows == 6
    b2 = sp.take_batch(100)
    assert b2.seq == 2 and len(b2.telegrams) == 6
    assert sp.ack(2) == 6 and sp.rows == 0 and sp.bytes == 0
    b3 = sp.take_batch(100)  # status-only contact still gets its own seq
    assert b3.seq == 3 and b3.telegrams == []
    sp.close()


def test_seq_and_batch_survive_reopen(tmp_path):
    sp = Spool(tmp_path / "s.db")
    for i in range(5):
        sp.put(raw(i), 1.0 * i, None, "C1")
    b = sp.take_batch(3)
    sp.close()
    sp = Spool(tmp_path / "s.db")
    assert sp.rows == 5
    b2 = sp.take_batch(3)
    assert (b2.seq, [t.raw for t in b2.telegrams]) == (b.seq, [t.raw for t in b.telegrams])
    sp.ack(b2.seq)
    sp.close()
    sp = Spool(tmp_path / "s.db")
    assert sp.rows == 2 and sp.take_batch(10).seq == b.seq + 1
    sp.close()


def test_bounded_never_drops_silently(tmp_path):
    sp = Spool(tmp_path / "s.db", max_rows=3, max_bytes=10_000)
    assert all(sp.put(raw(i), i, None, "T1") for i in range(3))
    assert sp.full
    assert not sp.put(raw(9), 9, None, "T1")
    assert sp.rows == 3
    sp.ack(sp.take_batch(2).seq)
    assert not sp.full and sp.put(raw(10), 10, None, "T1")
    sp.close()
    sb = Spool(tmp_path / "b.db", max_rows=1000, max_bytes=1024)
    n = 0
    while sb.put(raw(n, 100), n, None, "T1"):
        n += 1
    assert n == 6 and sb.bytes == 600 and sb.full  # no room left for a 512-byte frame
    sb.close()


def test_newest_per_kind_replaces_within_window_only(tmp_path):
    sp = Spool(tmp_path / "s.db")
    sp.put(raw(1), 1, -80, "T1", window=1, dedup_key="m1/7A")
    sp.put(raw(2), 2, -70, "T1", window=1, dedup_key="m1/7A")
    sp.put(raw(3), 3, -70, "T1", window=1, dedup_key="m1/79")
    sp.put(raw(4), 4, -70, "T1", window=2, dedup_key="m1/7A")
    assert sp.rows == 3
    b = sp.take_batch(10)
    assert [t.raw for t in b.telegrams] == [raw(2), raw(3), raw(4)]
    # a frame of the same window+key arriving while the older one is in flight is kept as well
    sp.put(raw(5), 5, None, "T1", window=2, dedup_key="m1/7A")
    assert sp.rows == 4
    sp.ack(b.seq)
    assert [t.raw for t in sp.take_batch(10).telegrams] == [raw(5)]
    sp.close()


def test_shrink_batch(tmp_path):
    sp = Spool(tmp_path / "s.db")
    for i in range(10):
        sp.put(raw(i), i, None, "T1")
    b = sp.take_batch(10)
    small = sp.shrink_batch(b.seq, 4)
    assert small.seq == b.seq and [t.rx_time for t in small.telegrams] == [0, 1, 2, 3]
    sp.ack(b.seq)
    assert sp.rows == 6 and [t.rx_time for t in sp.take_batch(10).telegrams][0] == 4
    sp.close()


WRITER = textwrap.dedent("""
    import sys
    from omshub.gateway.spool import Spool
    sp = Spool(sys.argv[1])
    if sys.argv[2] == "upload":
        b = sp.take_batch(50)
        print("SEQ", b.seq, ",".join(str(t.id) for t in b.telegrams), flush=True)
        sys.stdin.readline()
    i = 0
    while True:
        raw = bytes([29]) + i.to_bytes(4, "big") * 7 + b"\\x00"
        sp.put(raw, float(i), None, "T1")
        print(i, flush=True)   # only after the commit returned
        i += 1
""")


def _kill_after(proc, lines):
    got = []
    while len(got) < lines:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        got.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return got


@pytest.mark.subprocess  # starts another process: not in the fast lane
def test_sigkill_loses_nothing(tmp_path):
    db = tmp_path / "s.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "collect"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    committed = [int(x) for x in _kill_after(proc, 300)]
    sp = Spool(db)
    rows = {int(t.rx_time) for t in sp.take_batch(5000).telegrams}
    assert set(committed) <= rows  # every commit the writer reported survived
    assert len(rows) == sp.rows
    sp.close()


@pytest.mark.subprocess  # starts another process: not in the fast lane
def test_sigkill_during_upload_repeats_seq_and_no_duplicates(tmp_path):
    db = tmp_path / "s.db"
    sp = Spool(db)
    for i in range(80):
        sp.put(bytes([29]) + bytes(29), float(1000 + i), None, "T1")
    sp.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "upload"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline().split()
    assert first[0] == "SEQ"
    seq, ids = int(first[1]), first[2]
    proc.send_signal(signal.SIGKILL)  # "during upload": batch taken, no ack yet
    proc.wait(10)
    sp = Spool(db)
    b = sp.take_batch(50)
    assert b.seq == seq and ",".join(str(t.id) for t in b.telegrams) == ids
    assert sp.ack(seq) == 50
    rest = sp.take_batch(5000)
    assert rest.seq == seq + 1 and len(rest.telegrams) == 30
    assert not {t.id for t in rest.telegrams} & {int(x) for x in ids.split(",")}
    sp.close()
