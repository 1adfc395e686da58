"""``pswrap parse``: what a person or a pipeline sees."""

from __future__ import annotations

import csv
import io
import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pswrap.cli import main

ROOT = Path(__file__).resolve().parent.parent
NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'
MAILBOX = (
    '<Obj RefId="{i}"><TN RefId="{i}"><T>Mailbox</T></TN><ToString>user{i}</ToString><Props>'
    '<S N="Name">user{i}</S><I64 N="Size">{i}</I64><DT N="When">2024-01-0{d}T00:00:00.0000001Z</DT>'
    '<Obj N="Emails" RefId="x{i}"><LST><S>a{i}@x</S><S>b{i}@x</S></LST></Obj></Props></Obj>'
)


def document(count: int = 2) -> str:
    body = "".join(MAILBOX.format(i=i, d=i + 1) for i in range(count))
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" {NS}>{body}<S S="warning">careful</S></Objs>'


def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["parse", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_ndjson_from_stdin_with_warnings_on_stderr() -> None:
    code, out, err = run("-", stdin=document())
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["Name"] for line in lines] == ["user0", "user1"]
    assert lines[0]["When"] == "2024-01-01T00:00:00.0000001+00:00"
    assert lines[1]["Emails"] == ["a1@x", "b1@x"]
    assert "WARNING: careful" in err


def test_streams_go_into_the_output_when_asked() -> None:
    _, out, _ = run("--streams", "-", stdin=document(1))
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["stream"] for r in records] == ["output", "warning"]
    assert records[1]["value"]["message"] == "careful"


def test_json_csv_and_table(tmp_path: Path) -> None:
    path = tmp_path / "mailboxes.xml"
    path.write_text(document(3), encoding="utf-16")
    code, out, _ = run("--format", "json", str(path))
    assert code == 0 and [m["Size"] for m in json.loads(out)] == [0, 1, 2]
    code, out, _ = run("--format", "csv", "--select", "Name,Size", str(path))
    assert list(csv.reader(io.StringIO(out))) == [
        ["Name", "Size"],
        ["user0", "0"],
        ["user1", "1"],
        ["user2", "2"],
    ]
    code, out, _ = run("--format", "table", str(path))
    assert "user2" in out and "{a2@x, b2@x}" in out


def test_a_broken_document_keeps_earlier_objects_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "cut.xml"
    path.write_text(document(2)[:-200], encoding="utf-8")
    code, out, err = run(str(path))
    assert code == 1
    assert [json.loads(line)["Name"] for line in out.splitlines()] == ["user0"]
    assert "input ended inside CLIXML document 1" in err and "cut.xml" in err


def test_missing_file_is_named(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.xml"))
    assert code != 0 and "nope.xml" in err


def test_ndjson_prints_the_first_object_before_the_input_ends() -> None:
    text = document(2)
    first_end = text.index("</Props></Obj>") + len("</Props></Obj>")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pswrap", "parse", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(text[:first_end].encode())
        proc.stdin.flush()
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), "no output while the input was still open"
        first = json.loads(proc.stdout.readline())
        assert first["Name"] == "user0"
        assert proc.poll() is None  # still reading: the input has not ended
        proc.stdin.write(text[first_end:].encode())
        proc.stdin.close()
        assert json.loads(proc.stdout.readline())["Name"] == "user1"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
