"""What each stand-in process received, written to disk as it happens (for leak checks).

Per process, in the config's ``record_dir``: ``proc-NNNN.json`` (sequence number, pid, argv,
environment, mode), ``proc-NNNN.stdin`` (every byte read from stdin, appended as read) and
``proc-NNNN.events.jsonl`` (every script text parsed, every PSRP command name, the exit code). The
sequence number (1 for the first process under a config) is claimed atomically, so concurrent
processes never share files; files are flushed as written, so a process that dies keeps its record.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class Recorder:
    """Records one process; does nothing when the config names no directory."""

    def __init__(self, directory: str | None) -> None:
        self.directory = Path(directory) if directory else None
        self.sequence = 0
        self._lock = threading.Lock()
        self._stem: Path | None = None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.sequence, self._stem = _claim(self.directory)

    @property
    def enabled(self) -> bool:
        return self._stem is not None

    def start(self, argv: list[str], environ: dict[str, str], mode: str) -> None:
        if self._stem is None:
            return
        record = {
            "sequence": self.sequence,
            "pid": os.getpid(),
            "argv": argv,
            "env": environ,
            "cwd": os.getcwd(),
            "mode": mode,
            "started": time.time(),
        }
        tmp = self._stem.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(self._stem.with_suffix(".json"))

    def stdin(self, data: bytes) -> None:
        if self._stem is None or not data:
            return
        with self._lock, open(self._stem.with_suffix(".stdin"), "ab") as handle:
            handle.write(data)

    def event(self, kind: str, **fields: Any) -> None:
        if self._stem is None:
            return
        line = json.dumps({"kind": kind, "time": time.time(), **fields}, default=str)
        with self._lock, open(self._stem.with_suffix(".events.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def script(self, text: str) -> None:
        self.event("script", text=text)

    def exit(self, code: int) -> None:
        self.event("exit", code=code)


def _claim(directory: Path) -> tuple[int, Path]:
    number = 1
    while True:
        stem = directory / f"proc-{number:04}"
        try:
            fd = os.open(stem.with_suffix(".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            number += 1
            continue
        os.close(fd)
        return number, stem
