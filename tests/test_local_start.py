"""A pwsh that dies at once: the local transport says how it exited, with no thread tracebacks."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest

from pswrap import LocalTransport, TransportError

DIES_AT_ONCE = [sys.executable, "-c", "import sys; sys.stderr.write('pwsh: no such module\\n'); sys.exit(7)"]


def test_pwsh_that_dies_at_once_reports_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    crashes: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        # Make the race certain: the stderr reader starts only once the stdout reader has finished
        # (or after a bounded wait, when the stdout reader is not started yet).
        if thread.name.endswith("-stderr"):
            prefix = thread.name[: -len("stderr")]
            end = time.monotonic() + 3
            while time.monotonic() < end:
                readers = [t for t in threading.enumerate() if t.name == prefix + "stdout"]
                if not readers and any(t.name == prefix + "stdin" for t in threading.enumerate()):
                    break  # stdout's reader has run to its end
                time.sleep(0.01)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    transport = LocalTransport(pwsh=DIES_AT_ONCE, stop_grace=5)
    with pytest.raises(TransportError) as caught:
        transport.open()
    transport.close()
    assert "exited with code 7" in str(caught.value)
    assert "pwsh: no such module" in (caught.value.stderr_tail or "")
    assert crashes == []
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
