"""``pwsh -NonInteractive -InputFormat Text -OutputFormat xml -EncodedCommand …`` (and ``-Command``).

As real pwsh (notes/oneshot-contract.md): stdin lines are ``$input``; each output object is written to
stdout as produced (``#< CLIXML`` + one ``<Objs>`` document, ``S="Output"``); records that nothing
redirected go to the stderr document (``S="Error"`` ErrorRecords, ``S="warning"``/``"verbose"``/
``"debug"`` text, ``S="information"`` InformationRecords, ``S="progress"`` PSCustomObject{SourceId,
Record}); an error that
escapes the script is written to stderr as formatted ``<S S="Error">…_x000D__x000A_</S>`` lines with
exit code 1; ``exit N`` ends with N; otherwise 0.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from psrpcore import types as ps

from tests.standins.powershell.clixml import DocumentWriter, error_text_elements, progress_object
from tests.standins.powershell.engine import Engine
from tests.standins.powershell.errors import (
    ExitRequested,
    PipelineStopped,
    PSError,
    StandinUnsupported,
    formatted_error_lines,
)
from tests.standins.powershell.faults import FaultInjector
from tests.standins.powershell.language import values as v
from tests.standins.powershell.language.parser import ParseError
from tests.standins.powershell.recording import Recorder
from tests.standins.powershell.runspace import NonInteractiveHost, Runspace


class _Stdout:
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write_text(self, text: str) -> None:
        with self._lock:
            self._stream.write(text.encode("utf-8"))

    def write_bytes(self, data: bytes) -> None:
        with self._lock:
            self._stream.write(data)
            self._stream.flush()

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()


class OneShotStreams:
    """Where a one-shot script's output and unredirected records go (CLIXML or text)."""

    def __init__(self, xml: bool, faults: FaultInjector, stdout: _Stdout, stderr: _Stdout) -> None:
        self.xml = xml
        # Real pwsh -OutputFormat xml writes Write-Information's records to stderr even under
        # SilentlyContinue (only Ignore drops them); the text console shows them only under Continue.
        self.information_pipe = xml
        self.faults = faults
        self.stdout = stdout
        self.stderr = stderr
        self.out_doc = DocumentWriter(stdout.write_text, stdout.flush)
        self.err_doc = DocumentWriter(stderr.write_text, stderr.flush)

    def output(self, value: Any) -> None:
        if self.xml:
            self.out_doc.write(value, "Output")
        else:
            self.stdout.write_text(_as_text(value) + "\n")
            self.stdout.flush()
        self.faults.output_written()

    def error(self, record: ps.ErrorRecord) -> None:
        if self.xml:
            self.err_doc.write(record, "Error")
        else:
            self._text_lines(formatted_error_lines(record))

    def _message(self, stream: str, message: str) -> None:
        if self.xml:
            self.err_doc.write(message, stream)
        else:
            prefix = {"warning": "WARNING: ", "verbose": "VERBOSE: ", "debug": "DEBUG: "}.get(stream, "")
            target = self.stderr if stream != "information" else self.stdout
            target.write_text(prefix + message + "\n")
            target.flush()

    def warning(self, record: ps.WarningRecord) -> None:
        self._message("warning", str(record.Message))

    def verbose(self, record: ps.VerboseRecord) -> None:
        self._message("verbose", str(record.Message))

    def debug(self, record: ps.DebugRecord) -> None:
        self._message("debug", str(record.Message))

    def information(self, record: ps.InformationRecord) -> None:
        if self.xml:  # the whole record, as real pwsh writes it (not its text)
            self.err_doc.write(record, "information")
        else:
            self._message("information", v.to_string(record.MessageData))

    def progress(self, record: ps.ProgressRecord, source_id: int) -> None:
        if self.xml:
            self.err_doc.write(progress_object(record, source_id), "progress")

    def escaped_error(self, lines: list[str]) -> None:
        """An error that escaped the script: formatted text lines (pwsh's ReportException)."""
        if self.xml:
            for element in error_text_elements(lines):
                self.err_doc.write_raw(element)
        else:
            self._text_lines(lines)

    def _text_lines(self, lines: list[str]) -> None:
        self.stderr.write_text("".join(line + "\n" for line in lines))
        self.stderr.flush()

    def close(self) -> None:
        self.out_doc.close()
        self.err_doc.close()


def _as_text(value: Any) -> str:
    if value is None or isinstance(value, (str, int, float, bool, ps.PSDateTime, ps.PSVersion)):
        return v.to_string(value)
    raise StandinUnsupported("formatting objects as text (use -OutputFormat xml)")


def run(engine: Engine, text: str, *, xml: bool, recorder: Recorder, faults: FaultInjector) -> int:
    stdout = _Stdout(sys.stdout.buffer)
    stderr = _Stdout(sys.stderr.buffer)
    streams = OneShotStreams(xml, faults, stdout, stderr)

    def read_stdin() -> str:
        chunks = []
        while True:
            chunk = (
                sys.stdin.buffer.read1(65536)
                if hasattr(sys.stdin.buffer, "read1")
                else sys.stdin.buffer.read()
            )
            if not chunk:
                break
            recorder.stdin(chunk)
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    runspace = Runspace()
    execution = engine.execution(runspace, NonInteractiveHost(), read_stdin=read_stdin)
    code = 0
    try:
        faults.at_pipeline_start()
        engine.run_script(text, execution, streams, input_lines=execution.stdin_lines)
    except ExitRequested as exit_request:
        code = exit_request.code
    except ParseError as problem:
        # pwsh reports the parse error through the exception that wraps it.
        problem.record.CategoryInfo.Reason = "ParentContainsErrorRecordException"
        streams.escaped_error(formatted_error_lines(problem.record))
        code = 1
    except PSError as problem:
        command = None
        invocation = problem.record.InvocationInfo
        if invocation is not None and getattr(invocation, "MyCommand", None) is not None:
            command = str(invocation.MyCommand.Name)
        streams.escaped_error(formatted_error_lines(problem.record, command))
        code = 1
    except StandinUnsupported as problem:
        streams.escaped_error([str(problem)])
        code = 1
    except PipelineStopped:  # pragma: no cover - nothing stops a one-shot run from outside
        code = 1
    finally:
        streams.close()
        stdout.flush()
        stderr.flush()
    return code
