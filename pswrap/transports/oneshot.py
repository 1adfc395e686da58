"""The one-shot transport: one ``pwsh -OutputFormat xml`` process per invocation.

The fallback for hosts where server mode is not available. The command line carries only a fixed
bootstrap; the script or command and every value travel on stdin as one CLIXML document written with
psrpcore's serializer (never in argv or the environment). stdout and stderr are read concurrently and
parsed as they arrive. The bootstrap merges every record into output (``*>&1``), so records keep
their order and the console host never shows them (it would write Write-Host's text into the output
document); pswrap puts each back on its stream by its type (pwsh 7 marks a merged record with no note;
Windows PowerShell 5.1's ``writeErrorStream``-style notes are honoured too). A record object the script
itself writes as output therefore arrives as a record here (over PSRP it stays output). Progress
records come on stderr; the bootstrap's ``PswrapTerminatingError`` object is the terminating error.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from psrpcore import types as ps

from pswrap import _dpapi
from pswrap.clixml import ClixmlItem, ClixmlReader
from pswrap.errors import ClixmlError, InvocationNotStarted, InvocationTimeout, ProtocolError, TransportError
from pswrap.objects import PSObject
from pswrap.records import error_record, merged_stream, to_record
from pswrap.transports._convert import to_psrp
from pswrap.transports._process import StreamTail, find_pwsh, kill_tree, spawn
from pswrap.transports.base import Execution, Invocation, Outcome, StreamItem, Transport

__all__ = ["BOOTSTRAP", "OneShotTransport", "build_request", "command_line"]

#: The fixed script on the command line: it reads the request from stdin and runs it as one block.
BOOTSTRAP = "\n".join(
    [
        "$ErrorActionPreference = 'Stop'",
        "$pswrapRequest = [System.Management.Automation.PSSerializer]::Deserialize("
        "(@($input) -join [Environment]::NewLine))",
        "$ErrorActionPreference = $pswrapRequest['ErrorActionPreference']",
        "$ProgressPreference = $pswrapRequest['ProgressPreference']",
        "$pswrapParameters = $pswrapRequest['Parameters']",
        "$pswrapArguments = $pswrapRequest['Arguments']",
        "try {",
        "    if ($pswrapRequest['Script']) { $pswrapCommand = [scriptblock]::Create($pswrapRequest['Script']) } "
        "else { $pswrapCommand = $pswrapRequest['Command'] }",
        "    if ($pswrapRequest['HasInput']) { $pswrapRequest['Input'] | & $pswrapCommand @pswrapArguments "
        "@pswrapParameters *>&1 }",
        "    else { & $pswrapCommand @pswrapArguments @pswrapParameters *>&1 }",
        "}",
        "catch {",
        "    [pscustomobject]@{ PswrapTerminatingError = $_ }",
        "    exit 1",
        "}",
    ]
)

ONESHOT_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-InputFormat", "Text", "-OutputFormat", "xml")
_TERMINATING = "PswrapTerminatingError"


def command_line(pwsh: Sequence[str]) -> list[str]:
    """The full argv for one call: pwsh, the fixed switches and the encoded bootstrap. No values."""
    encoded = base64.b64encode(BOOTSTRAP.encode("utf-16-le")).decode("ascii")
    return [*pwsh, *ONESHOT_ARGS, "-EncodedCommand", encoded]


class _LocalSecureStrings(ps.PSCryptoProvider):
    """How ``PSSerializer`` expects a SecureString in local CLIXML: DPAPI on Windows, UTF-16LE hex elsewhere."""

    def encrypt(self, value: str) -> str:
        data = value.encode("utf-16-le", errors="surrogatepass")
        if sys.platform == "win32":  # pragma: no cover - needs Windows
            data = _dpapi.protect(data)
        return data.hex()

    def decrypt(self, value: str) -> str:
        raise NotImplementedError("pswrap never reads a SecureString back from its own request")


def build_request(invocation: Invocation) -> bytes:
    """The stdin of one call: the request Hashtable as one line of ASCII CLIXML, then a newline.

    Non-ASCII characters become XML character references, so no console code page can mangle them.
    Raises ``TypeError``/``ValueError`` naming a value pswrap cannot send.
    """
    parameters = ps.PSDict()
    for name, value in invocation.parameters.items():
        parameters[name] = to_psrp(value, f"parameter {name!r}")
    arguments = ps.PSList([to_psrp(v, f"argument {i + 1}") for i, v in enumerate(invocation.arguments)])
    inputs = ps.PSList([to_psrp(v, f"input object {i + 1}") for i, v in enumerate(invocation.input or ())])
    request = ps.PSDict()
    request["Command"] = None if invocation.is_script else invocation.command
    request["Script"] = invocation.command if invocation.is_script else None
    request["Parameters"] = parameters
    request["Arguments"] = arguments
    request["HasInput"] = invocation.input is not None
    request["Input"] = inputs
    request["ErrorActionPreference"] = "Continue"
    request["ProgressPreference"] = "Continue" if invocation.progress else "SilentlyContinue"
    text = ps.serialize_clixml(request, _LocalSecureStrings())
    return text.encode("ascii", errors="xmlcharrefreplace") + b"\n"


class OneShotTransport(Transport):
    """A fresh ``pwsh`` per invocation: nothing carries over from one call to the next.

    ``pwsh``: the executable (see :func:`pswrap.transports.find_pwsh`).
    """

    name: ClassVar[str] = "oneshot"
    persistent: ClassVar[bool] = False

    def __init__(self, *, pwsh: str | os.PathLike[str] | Sequence[str] | None = None) -> None:
        self.pwsh = pwsh
        #: How many pwsh processes this transport has started.
        self.processes_started = 0
        self._command: list[str] | None = None
        self._lock = threading.Lock()
        self._running: set[_OneShotExecution] = set()

    def open(self) -> None:
        if self._command is None:
            self._command = find_pwsh(self.pwsh)

    def start(self, invocation: Invocation) -> Execution:
        if self._command is None:
            raise InvocationNotStarted("the one-shot transport is not open")
        request = build_request(invocation)  # bad values fail here, before a process starts
        try:
            process = spawn(command_line(self._command))
        except TransportError as exc:
            raise InvocationNotStarted(str(exc)) from exc
        with self._lock:
            self.processes_started += 1
        execution = _OneShotExecution(self, process, invocation, request)
        with self._lock:
            self._running.add(execution)
        return execution

    def close(self) -> None:
        with self._lock:
            running = list(self._running)
        for execution in running:
            execution.abort()
        self._command = None

    @property
    def healthy(self) -> bool:
        return self._command is not None

    def _finished(self, execution: _OneShotExecution) -> None:
        with self._lock:
            self._running.discard(execution)


class _StreamEnd:
    """Put in the item queue when stdout or stderr ended; ``problem`` says how it went wrong, if it did."""

    def __init__(self, stream: str, problem: str | None = None, garbage: bool = False) -> None:
        self.stream = stream
        self.problem = problem
        self.garbage = garbage


class _OneShotExecution(Execution):
    def __init__(
        self,
        transport: OneShotTransport,
        process: subprocess.Popen[bytes],
        invocation: Invocation,
        request: bytes,
    ) -> None:
        self._transport = transport
        self.process = process
        self._invocation = invocation
        self._request = request
        self._deadline = None if invocation.timeout is None else time.monotonic() + invocation.timeout
        self._items: queue.SimpleQueue[StreamItem | _StreamEnd] = queue.SimpleQueue()
        self._tail = StreamTail()
        self._error_lines: list[str] = []
        self._terminating: Any = None
        self._stdout_seen = False
        self._stopped = False
        self._closed = False
        self._timed_out = False
        self._outcome: Outcome | None = None
        self._done = False
        pid = process.pid
        self._threads = [
            threading.Thread(target=self._read_stdout, name=f"pswrap-oneshot-{pid}-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"pswrap-oneshot-{pid}-stderr", daemon=True),
            threading.Thread(target=self._write_stdin, name=f"pswrap-oneshot-{pid}-stdin", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    def stop(self) -> None:
        if self.process.returncode is None and not self._done:
            self._stopped = True
            kill_tree(self.process)

    def abort(self) -> None:
        """Kill the process (if still running) and join the threads: the transport is closing."""
        self._closed = True
        self.stop()
        self._finish()

    # --- reading ---

    def __iter__(self) -> Iterator[StreamItem]:
        ended: list[_StreamEnd] = []
        try:
            while len(ended) < 2:
                timeout = None if self._deadline is None else self._deadline - time.monotonic()
                if timeout is not None and timeout <= 0 and not self._timed_out:
                    self._timed_out = True
                    kill_tree(self.process)
                    timeout = None
                try:
                    item = self._items.get(timeout=timeout if not self._timed_out else None)
                except queue.Empty:
                    continue
                if isinstance(item, _StreamEnd):
                    ended.append(item)
                else:
                    yield item
            code = self._finish()
            self._outcome = self._conclude(code, ended)
        except BaseException:
            self.stop()  # the reader gave up (Ctrl-C…): end pwsh now rather than wait for it
            raise
        finally:
            self._finish()

    def _conclude(self, code: int, ended: list[_StreamEnd]) -> Outcome:
        invocation = self._invocation
        tail = self._stderr_text()
        if self._timed_out:
            limit = invocation.timeout or 0.0
            raise InvocationTimeout(
                f"{invocation.description} did not finish within its timeout of {limit:g} s; pswrap killed pwsh",
                timeout=limit,
                stderr_tail=tail,
            )
        if self._stopped and self._closed:
            raise TransportError(
                f"the session was closed while running {invocation.description}", stderr_tail=tail
            )
        if self._stopped:
            return Outcome("stopped")
        garbage = next((end for end in ended if end.garbage), None)
        if garbage is not None:
            raise ProtocolError(
                f"pwsh wrote something that is not CLIXML on its {garbage.stream} while running "
                f"{invocation.description}: {garbage.problem}",
                stderr_tail=tail,
            )
        if self._terminating is not None:
            return Outcome("failed", error=error_record(self._terminating))
        truncated = next((end for end in ended if end.stream == "stdout" and end.problem), None)
        if truncated is not None or code < 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise TransportError(
                f"pwsh (pid {self.process.pid}) {how} before finishing its output while running "
                f"{invocation.description}",
                stderr_tail=tail,
            )
        if self._error_lines and code != 0:
            return Outcome("failed", error=error_record("".join(self._error_lines).strip()))
        if code != 0 and not self._stdout_seen:
            raise TransportError(
                f"pwsh (pid {self.process.pid}) exited with code {code} without running "
                f"{invocation.description} (it wrote no output document)",
                stderr_tail=tail,
            )
        return Outcome("completed", exit_code=code or None)

    def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        reader = ClixmlReader(source="pwsh stdout")
        end = _StreamEnd("stdout")
        try:
            while True:
                data = stdout.read(65536)
                if not data:
                    break
                self._stdout_seen = True
                try:
                    items = reader.feed(data)
                except ClixmlError as exc:  # something that is not CLIXML: garbage
                    for item in exc.items:
                        self._on_stdout(item)
                    kill_tree(self.process)
                    self._discard(stdout)
                    end = _StreamEnd("stdout", str(exc), garbage=True)
                    break
                for item in items:
                    self._on_stdout(item)
            if not end.problem:
                try:
                    items = reader.close()
                except ClixmlError as exc:  # the output ended inside the document: truncated
                    items = exc.items
                    end = _StreamEnd("stdout", str(exc))
                for item in items:
                    self._on_stdout(item)
        except OSError as exc:
            end = _StreamEnd("stdout", f"reading failed: {exc}")
        self._items.put(end)

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        reader = ClixmlReader(source="pwsh stderr")
        end = _StreamEnd("stderr")
        try:
            while True:
                data = stderr.read(65536)
                if not data:
                    break
                self._tail.feed(data)
                for item in reader.feed(data):
                    self._on_stderr(item)
            for item in reader.close():
                self._on_stderr(item)
        except ClixmlError as exc:
            for item in exc.items:
                self._on_stderr(item)
            # pwsh writes plain text on stderr when it fails before its CLIXML writer exists; keep it for
            # the error message rather than calling it garbage.
            self._tail.drain(stderr)
            end = _StreamEnd("stderr", f"{exc}")
        except OSError as exc:
            end = _StreamEnd("stderr", f"reading failed: {exc}")
        self._items.put(end)

    @staticmethod
    def _discard(pipe: Any) -> None:
        try:
            while pipe.read(65536):
                pass
        except (OSError, ValueError):
            pass

    def _on_stdout(self, item: ClixmlItem) -> None:
        value = item.value
        stream = item.stream.lower()
        if (
            stream == "output"
            and isinstance(value, PSObject)
            and set(value.extended) == {_TERMINATING}
            and not value.adapted
        ):
            self._terminating = value.extended[_TERMINATING]
            return
        merged = merged_stream(value) if stream == "output" else None
        if merged is not None:
            self._put(merged, to_record(merged, value))
            return
        if stream == "output":
            self._put("output", value)
        else:
            self._put(stream, to_record(stream, value))

    def _on_stderr(self, item: ClixmlItem) -> None:
        stream = item.stream.lower()
        if stream == "error" and isinstance(item.value, str):
            self._error_lines.append(item.value)  # a line of an error pwsh formatted as text
            return
        if stream == "output":
            return
        if stream == "progress" and not self._invocation.progress:
            return
        self._put(stream, to_record(stream, item.value))

    def _put(self, stream: str, value: Any) -> None:
        self._items.put(StreamItem(stream, value))

    def _write_stdin(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            view = memoryview(self._request)
            while view:
                written = stdin.write(view)
                view = view[written or 0 :]
        except (OSError, ValueError):
            pass  # pwsh ended without reading it all: its exit status says why
        finally:
            self._request = b""
            with contextlib.suppress(OSError):
                stdin.close()

    def _finish(self) -> int:
        """Reap the process and join the threads (once); the exit code."""
        code = self.process.wait()
        if not self._done:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()
            self._done = True
            self._transport._finished(self)
        return code

    def _stderr_text(self) -> str | None:
        if self._error_lines:
            return "".join(self._error_lines).strip() or None
        return self._tail.text() or None
