"""Fault switches: die during start, hang, die after N output objects, write garbage to stdout.

The modes call :meth:`FaultInjector.at_start` before answering anything,
:meth:`~FaultInjector.at_pipeline_start` when a pipeline (or the one-shot script) starts and
:meth:`~FaultInjector.output_written` after each output object reached stdout. ``stderr`` from the
config is written first, so the client can show "pwsh's stderr tail".
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

from tests.standins.powershell.config import Faults
from tests.standins.powershell.recording import Recorder


class FaultInjector:
    def __init__(self, faults: Faults, recorder: Recorder, write_stdout: Callable[[bytes], None]) -> None:
        self.faults = faults
        self.active = faults.applies_to(recorder.sequence) if recorder.enabled else faults.processes is None
        self._recorder = recorder
        self._write_stdout = write_stdout
        self._count = 0
        self._lock = threading.Lock()

    def at_start(self) -> None:
        if not self.active:
            return
        if self.faults.die_on_start:
            self._die("die_on_start")
        if self.faults.hang_on_start:
            self._hang("hang_on_start")

    def at_pipeline_start(self) -> None:
        self._check(0)

    def output_written(self) -> None:
        with self._lock:
            self._count += 1
            count = self._count
        self._check(count)

    def _check(self, count: int) -> None:
        if not self.active:
            return
        faults = self.faults
        if faults.garbage_after_objects is not None and count == faults.garbage_after_objects:
            self._recorder.event("fault", fault="garbage", after=count)
            self._write_stdout((faults.garbage + "\n").encode("utf-8"))
        if faults.exit_after_objects is not None and count == faults.exit_after_objects:
            self._die("exit_after_objects")
        if faults.hang_after_objects is not None and count == faults.hang_after_objects:
            self._hang("hang_after_objects")

    def _stderr(self) -> None:
        if self.faults.stderr:
            sys.stderr.write(self.faults.stderr + "\n")
            sys.stderr.flush()

    def _die(self, why: str) -> None:
        self._stderr()
        self._recorder.event("fault", fault=why)
        self._recorder.exit(self.faults.exit_code)
        os._exit(self.faults.exit_code)

    def _hang(self, why: str) -> None:
        self._stderr()
        self._recorder.event("fault", fault=why)
        while True:  # alive, answering nothing, until killed
            time.sleep(3600)
