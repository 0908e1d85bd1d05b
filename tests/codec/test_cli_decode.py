"""`omshub decode` through typer's CliRunner and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from omshub.codec import encode_telegram
from omshub.commands.decode import decode_parallel, decode_stream, register

from ._stack import HEAT_RECORDS, KAM, KEY, OTHER_KEY, SMALL_RECORDS

OTHER = dict(KAM, id="87654321")


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # keeps `decode` a sub-command whatever else is registered
        """omshub"""

    register(app)
    return app


def _run(args, stdin=None):
    result = CliRunner().invoke(_app(), ["decode", *args], input=stdin)
    return result.exit_code, result.stdout


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_stdin_lines_in_order_with_errors_and_comments():
    good = encode_telegram(KAM, HEAT_RECORDS, mode=5, key=KEY).hex()
    spaced = " ".join(good[i : i + 2] for i in range(0, len(good), 2))
    stdin = f"# a comment\n{good}\n\n{spaced.upper()}\nzz12\n{good[:-2]}_\n"
    code, out = _run(["--key", KEY.hex()], stdin)
    lines = _jsonl(out)
    assert code == 1
    assert len(lines) == 4
    assert lines[0]["meter"]["id"] == "12345678" and lines[1] == lines[0]
    assert lines[2] == {"error": {"code": "invalid_hex", "message": lines[2]["error"]["message"]}, "input": "zz12"}
    assert "error" in lines[3]


def test_all_decoded_exit_zero_and_arguments():
    frames = [encode_telegram(KAM, SMALL_RECORDS).hex(), encode_telegram(OTHER, SMALL_RECORDS).hex()]
    code, out = _run(frames)
    assert code == 0
    assert [line["meter"]["id"] for line in _jsonl(out)] == ["12345678", "87654321"]


def test_wrong_key_line():
    frame = encode_telegram(KAM, HEAT_RECORDS, mode=5, key=KEY).hex()
    code, out = _run(["--key", OTHER_KEY.hex(), frame])
    assert code == 1
    (line,) = _jsonl(out)
    assert line["error"]["code"] == "wrong_key" and line["input"] == frame


def test_keys_file(tmp_path):
    keys = tmp_path / "keys.csv"
    keys.write_text(f"id,key,manufacturer\n12345678,{KEY.hex()},KAM\n87654321,{OTHER_KEY.hex()}\n")
    frames = [
        encode_telegram(KAM, SMALL_RECORDS, mode=5, key=KEY).hex(),
        encode_telegram(OTHER, SMALL_RECORDS, mode=7, key=OTHER_KEY).hex(),
    ]
    code, out = _run(["--keys", str(keys)], "\n".join(frames) + "\n")
    assert code == 0
    assert [line["security"]["mode"] for line in _jsonl(out)] == [5, 7]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--key", "abc"], "--key"),
        (["--keys", "/nonexistent/keys.csv"], "cannot read"),
        (["--format", "xml"], "--format"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = CliRunner().invoke(_app(), ["decode", *args, "00"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_keys_file_content(tmp_path):
    keys = tmp_path / "keys.csv"
    keys.write_text("id,key\n12345678,12\n")
    result = CliRunner().invoke(_app(), ["decode", "--keys", str(keys), "00"])
    assert result.exit_code == 2 and "line 2" in result.output


def test_compact_frames_use_formats_learned_earlier_in_the_run():
    full = encode_telegram(KAM, HEAT_RECORDS, tpl="none").hex()
    compact = encode_telegram(KAM, HEAT_RECORDS, tpl="none", compact=True).hex()
    code, out = _run([], f"{compact}\n{full}\n{compact}\n")
    lines = _jsonl(out)
    assert code == 1
    assert lines[0]["error"]["code"] == "unknown_format"
    assert "records" in lines[1] and lines[2]["records"] == lines[1]["records"]


def test_json_and_table_formats():
    frames = [encode_telegram(KAM, SMALL_RECORDS).hex()]
    code, out = _run(["--format", "json", *frames])
    assert code == 0 and json.loads(out)["records"][0]["value"] == 165.0
    code, out = _run(["--format", "json", *frames, frames[0]])
    assert isinstance(json.loads(out), list)
    code, out = _run(["--format", "table", *frames, "zz"])
    assert code == 1 and "KAM 12345678" in out and "energy" in out and "invalid_hex" in out


def test_parallel_matches_sequential():
    lines = []
    for i in range(60):
        meter = dict(KAM, id=f"{10000000 + i % 7:08d}")
        if i % 3 == 2:
            lines.append(encode_telegram(meter, HEAT_RECORDS, tpl="none", compact=True).hex())
        else:
            lines.append(encode_telegram(meter, HEAT_RECORDS, tpl="none").hex())
        if i % 11 == 0:
            lines.append("nothex")
    sequential, parallel = [], []
    seq_counts = decode_stream(lines, sequential.append)
    par_counts = decode_parallel(lines, parallel.append, keys=None, workers=2, chunk_lines=5)
    # the same bytes (decode_stream writes batches of lines, decode_parallel a chunk at a time)
    assert b"".join(sequential) == b"".join(parallel)
    assert b"".join(parallel).count(b"\n") == len(lines)
    assert all(chunk.endswith(b"\n") for chunk in parallel)
    assert all(chunk.endswith(b"\n") for chunk in sequential)
    assert seq_counts == par_counts


def test_parallel_from_a_file_writes_to_the_descriptor_in_order(tmp_path, monkeypatch):
    # a text file is cut into blocks (the workers split the lines and skip blank and comment
    # lines); the workers write their chunks to the descriptor themselves, in input order, and
    # the parent writes the chunks whose compact frames needed formats learned by earlier chunks
    lines = ["# a comment", ""]
    for i in range(90):
        meter = dict(KAM, id=f"{10000000 + i % 7:08d}")
        compact = i % 3 == 2
        lines.append(encode_telegram(meter, HEAT_RECORDS, tpl="none", compact=compact).hex())
        if i % 13 == 0:
            lines.append("  nothex  ")
    text = "\n".join(lines)  # no line end after the last line
    source = tmp_path / "in.txt"
    source.write_text(text)
    sequential: list[bytes] = []
    seq_counts = decode_stream(text.split("\n"), sequential.append)
    from omshub.commands import parallel_decode as command

    completed = []
    complete = command._complete
    monkeypatch.setattr(command, "_complete", lambda *args: completed.append(1) or complete(*args))
    target = tmp_path / "out.jsonl"
    unused: list[bytes] = []
    with source.open() as stream, target.open("wb") as out:
        par_counts = decode_parallel(stream, unused.append, keys=None, workers=2, chunk_lines=3, out_fd=out.fileno())
    assert unused == [] and completed  # some chunks were completed and written by the parent
    assert target.read_bytes() == b"".join(sequential)
    assert par_counts == seq_counts and sum(par_counts) == 90 + 7  # (decoded, failed)
    assert b"unknown_format" in target.read_bytes()  # the compact frames before their meter's full frame


def test_stream_writes_whole_lines_in_batches():
    from omshub.commands.decode import WRITE_BATCH

    frame = encode_telegram(KAM, SMALL_RECORDS).hex()
    lines = [frame] * (WRITE_BATCH * 2 + 3) + ["# comment", "", "zz"]
    chunks = []
    assert decode_stream(lines, chunks.append) == (WRITE_BATCH * 2 + 3, 1)
    assert [chunk.count(b"\n") for chunk in chunks] == [WRITE_BATCH, WRITE_BATCH, 4]
    out = _jsonl(b"".join(chunks).decode())
    assert out[0]["meter"]["id"] == KAM["id"]
    assert out[-1]["error"]["code"] == "invalid_hex"
    assert out[-1]["input"] == "zz"


@pytest.mark.subprocess  # starts another process: not in the fast lane
def test_subprocess_python_m_omshub():
    frame = encode_telegram(KAM, SMALL_RECORDS, mode=5, key=KEY).hex()
    proc = subprocess.run(
        [sys.executable, "-m", "omshub", "decode", "--key", KEY.hex()],
        input=f"{frame}\nzz\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode == 0 and '"meter"' not in proc.stdout:
        pytest.fail(proc.stdout + proc.stderr)
    lines = _jsonl(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    assert lines[0]["records"][0]["value"] == 165.0 and lines[1]["error"]["code"] == "invalid_hex"
    proc = subprocess.run(
        [sys.executable, "-m", "omshub", "decode", "--key", "nothex", frame], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_crc_option():
    frame = encode_telegram(KAM, SMALL_RECORDS, frame_format="A").hex()
    code, out = _run(["--crc", "A", frame])
    assert code == 0 and _jsonl(out)[0]["frame"]["format"] == "A"
    code, out = _run(["--crc", "none", frame])
    assert code == 1 or _jsonl(out)[0]["frame"]["format"] is None
    code, _ = _run(["--crc", "C", frame])
    assert code == 2


@pytest.mark.subprocess  # also times whole `omshub decode` processes
def test_benchmark_smoke(capsys):
    from benchmarks.decode import main

    assert main(["--count", "50", "--pool", "4", "--naive", "10", "--process-count", "200", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("plain", "mode5", "mode7", "ell", "compact", "mixed", "naive", "peak RSS"):
        assert label in out


@pytest.mark.parametrize(
    "bad", ["000102030405060708090A0B0C0D0E0", "000102030405060708090A0B0C0D0EZZ", "000102030405060708090A0B0C0D0E0F00"]
)
def test_a_bad_key_is_refused_without_showing_it(tmp_path, bad):
    """A mistyped key is still most of a key: no message repeats it (--key and --keys alike)."""
    keys = tmp_path / "keys.csv"
    keys.write_text(f"id,key\n12345678,{bad}\n")
    for args in (["--key", bad], ["--keys", str(keys)]):
        result = CliRunner().invoke(_app(), ["decode", *args, "00"])
        assert result.exit_code == 2, result.output
        assert "0102030405" not in result.output.replace(" ", ""), result.output


def test_auto_workers_only_for_large_regular_files(tmp_path, monkeypatch):
    import io
    import os

    from omshub.commands import decode as decode_command
    from omshub.commands import parallel_decode

    small = tmp_path / "small.txt"
    small.write_text("00\n")
    with small.open() as stream:
        assert decode_command.auto_workers(stream) == 1  # a small file: no workers to start
    monkeypatch.setattr(parallel_decode, "AUTO_PARALLEL_BYTES", 2)
    with small.open() as stream:
        assert decode_command.auto_workers(stream) == len(os.sched_getaffinity(0))
        stream.read()  # what was read already does not count
        assert decode_command.auto_workers(stream) == 1
    read, write = os.pipe()
    os.write(write, b"00\n" * 100)
    os.close(write)
    with os.fdopen(read) as pipe:
        assert decode_command.auto_workers(pipe) == 1  # live input stays in one streaming process
    assert decode_command.auto_workers(io.StringIO("00\n" * 100)) == 1


def test_workers_option():
    frame = encode_telegram(KAM, SMALL_RECORDS).hex()
    for args in (["--workers", "auto"], ["--workers", "2"], []):
        code, out = _run([*args, frame])
        assert code == 0 and _jsonl(out)[0]["records"][0]["value"] == 165.0
    for bad in ("0", "many", "300"):
        result = CliRunner().invoke(_app(), ["decode", "--workers", bad, frame])
        assert result.exit_code == 2 and "--workers must be auto or a number" in result.output


def test_plain_command_lines_skip_typer():
    from omshub.commands.decode import parse_plain_args

    options = parse_plain_args(["--key", "00" * 16, "--workers=1", "--explain", "ab", "--crc", "A", "--crc=B", "cd"])
    assert options == {
        "telegrams": ["ab", "cd"],
        "key": "00" * 16,
        "keys_file": None,
        "output_format": "jsonl",
        "workers_text": "1",
        "crc": "B",  # the last one counts, as with typer
        "explain": True,
    }
    assert parse_plain_args(["-"])["telegrams"] == ["-"]
    assert parse_plain_args([])["telegrams"] is None
    # help, unknown or incomplete options, `--`: typer's own handling and messages
    for args in (["--help"], ["-h"], ["--bogus", "x"], ["--key"], ["--key", "--format", "json"], ["--", "ab"]):
        assert parse_plain_args(args) is None, args


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "json", "FRAME", "zz"],
        ["--key", "KEY", "FRAME"],
        ["--key=KEY", "--format=table", "FRAME"],
        ["--explain", "FRAME"],
        ["--format", "xml", "FRAME"],
        ["--key", "abc", "FRAME"],
        ["--workers", "0", "FRAME"],
        ["--help"],
        ["--bogus", "FRAME"],
    ],
)
def test_standalone_decode_is_the_typer_command(args, capsys):
    # `omshub decode ...` (omshub.__main__) gives what the app's `decode` command gives: output and exit status
    from omshub.commands.decode import standalone_main

    frame = encode_telegram(KAM, SMALL_RECORDS, mode=5, key=KEY).hex()
    args = [a.replace("FRAME", frame).replace("KEY", KEY.hex()) for a in args]
    expected = CliRunner().invoke(_app(), ["decode", *args], prog_name="omshub")
    with pytest.raises(SystemExit) as done:
        standalone_main(args)
    captured = capsys.readouterr()
    assert (done.value.code or 0) == expected.exit_code
    if args != ["--help"] and "--bogus" not in args:  # typer's boxes depend on the terminal's width
        assert captured.out == expected.stdout
        assert captured.err.strip() == expected.stderr.strip()
