"""The default transport: one persistent ``pwsh -NoLogo -NoProfile -s`` (server mode) spoken to over PSRP.

One process serves every invocation of a session; a runspace pool of ``pool_size`` runspaces lets
that many run at once. Three threads per process move the bytes (stdout packets into the PSRP client,
the client's packets onto stdin, stderr into a bounded tail for error messages). When pwsh dies,
writes garbage or hangs past a timeout, the running invocations fail with a
:class:`pswrap.TransportError` that quotes pwsh's stderr, what arrived before stays with the caller,
and the next :meth:`LocalTransport.open` starts a fresh process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar

import psrpcore

from pswrap.errors import InvocationNotStarted, InvocationTimeout, ProtocolError, TransportError
from pswrap.transports._process import StreamTail, find_pwsh, kill_tree, spawn
from pswrap.transports.base import Execution, Invocation, QueuedExecution, Transport
from pswrap.transports.outofproc import EMPTY_GUID, Packet, PacketReader
from pswrap.transports.psrp import PSRPClient, RemotePipeline

__all__ = ["LocalTransport"]

log = logging.getLogger(__name__)

SERVER_MODE_ARGS = ("-NoLogo", "-NoProfile", "-s")
# pwsh exits with 4000 (160 on Linux) when its stdin closes: expected after the pool is closed.
_STDIN_CLOSED_CODES = (4000, 160)


class LocalTransport(Transport):
    """A local PowerShell in server mode.

    ``pwsh``: the executable (see :func:`pswrap.transports.find_pwsh`); ``pool_size``: how many
    invocations can run at once (each runspace has its own variables and modules, so keep 1 when
    state must carry from one call to the next); ``open_timeout``: how long pwsh may take to start;
    ``stop_grace``: how long a stopped invocation or a closing process may take before its process
    tree is killed.
    """

    name: ClassVar[str] = "local"
    persistent: ClassVar[bool] = True

    def __init__(
        self,
        *,
        pwsh: str | os.PathLike[str] | Sequence[str] | None = None,
        pool_size: int = 1,
        open_timeout: float = 60.0,
        stop_grace: float = 5.0,
    ) -> None:
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a whole number of at least 1, not {pool_size!r}")
        self.pwsh = pwsh
        self.pool_size = pool_size
        self.open_timeout = open_timeout
        self.stop_grace = stop_grace
        #: How many pwsh processes this transport has started (a fault or a timeout starts another).
        self.processes_started = 0
        self._lock = threading.Lock()
        self._connection: _Connection | None = None

    def open(self) -> None:
        with self._lock:
            if self._connection is not None:
                if self._connection.healthy:
                    return
                self._connection.close()
                self._connection = None
            argv = [*find_pwsh(self.pwsh), *SERVER_MODE_ARGS]
            connection = _Connection(argv, self.pool_size, self.stop_grace, self.open_timeout)
            self.processes_started += 1
            try:
                connection.open()
            except BaseException:
                connection.close()
                raise
            self._connection = connection

    def start(self, invocation: Invocation) -> Execution:
        connection = self._connection
        if connection is None:
            raise InvocationNotStarted(
                f"the local PowerShell session is not open to run {invocation.description}"
            )
        if not connection.healthy:
            raise connection.error(f"could not start {invocation.description}", InvocationNotStarted)
        return connection.start(invocation)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    @property
    def healthy(self) -> bool:
        connection = self._connection
        return connection is not None and connection.healthy

    @property
    def pid(self) -> int | None:
        """The process id of the current pwsh, if one is running."""
        connection = self._connection
        return None if connection is None else connection.process.pid


class _Connection:
    """One pwsh process, its PSRP client and the threads that move its bytes."""

    def __init__(self, argv: list[str], pool_size: int, stop_grace: float, open_timeout: float) -> None:
        self.client = PSRPClient(pool_size=pool_size)
        self.stop_grace = stop_grace
        self.open_timeout = open_timeout
        self.tail = StreamTail()
        self._cond = threading.Condition()
        self._broken: str | None = None
        self._kill_reason: str | None = None
        self._closing = False
        self._closed = False
        self._pool_closed = threading.Event()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.executable = argv[0]
        self.process = spawn(argv)
        pid = self.process.pid
        self._threads = [
            threading.Thread(target=self._read_stdout, name=f"pswrap-pwsh-{pid}-stdout", daemon=True),
            threading.Thread(target=self._write_stdin, name=f"pswrap-pwsh-{pid}-stdin", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"pswrap-pwsh-{pid}-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # --- state ---

    @property
    def healthy(self) -> bool:
        return (
            self._broken is None
            and not self._closing
            and self.client.ready
            and self.process.returncode is None
        )

    def error(self, message: str, kind: type[TransportError] = TransportError) -> TransportError:
        """A ``kind`` of error saying ``message`` and why the connection broke, with pwsh's stderr."""
        if self._broken:
            message = f"{message}: {self._broken}"
        return kind(message, stderr_tail=self.tail.text() or None)

    def _wait(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate() or self._broken is not None, timeout)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # --- opening and running ---

    def open(self) -> None:
        self.client.open()
        self._flush()
        if not self._wait(lambda: self.client.ready, self.open_timeout):
            self.kill(f"pwsh did not open a PowerShell session within {self.open_timeout:g} s")
            self._wait(lambda: False, self.stop_grace)
        if not self.client.ready:
            raise self.error(f"could not open a PowerShell session with {self.executable!r}")

    def start(self, invocation: Invocation) -> _LocalExecution:
        pipeline = self.client.prepare(invocation)  # bad values fail here, before anything is sent
        deadline = None if invocation.timeout is None else time.monotonic() + invocation.timeout
        self._send(Packet("Command", pipeline.id))
        ack_wait = self.open_timeout if invocation.timeout is None else invocation.timeout
        if not self._wait(pipeline.command_acked.is_set, ack_wait):
            self.kill(f"pwsh did not acknowledge a new pipeline within {ack_wait:g} s")
            self._wait(lambda: False, self.stop_grace)
        if not pipeline.command_acked.is_set():
            # Nothing of the invocation was sent beyond an empty channel: it provably never ran.
            error = self.error(f"could not start {invocation.description}", InvocationNotStarted)
            self.client.abandon(pipeline, error)
            raise error
        try:
            with self.client.lock:
                self.client.begin(pipeline, with_input=False)  # sent once pwsh acks CREATE_PIPELINE
                self._flush()
        except BaseException as exc:
            self.client.abandon(pipeline, TransportError(f"could not start {invocation.description}: {exc}"))
            self._send(Packet("Close", pipeline.id))
            raise
        return _LocalExecution(self, pipeline, deadline)

    def stop(self, pipeline: RemotePipeline) -> None:
        with self.client.lock:
            if self.client.stop(pipeline):
                self._send(Packet("Signal", pipeline.id))

    def kill(self, reason: str) -> None:
        """Kill pwsh's process tree; the running invocations fail with ``reason``."""
        with self._cond:
            if self._kill_reason is None:
                self._kill_reason = reason
        kill_tree(self.process)

    def close(self) -> None:
        """Close the pool cleanly when possible, end the process (killing it if it lingers), join threads."""
        if self._closed:
            return
        self._closing = True
        grace = self.stop_grace
        if self._broken is None and self.process.returncode is None and self.client.opened:
            running = [p for p in list(self.client.pipelines.values()) if p.started and not p.finished]
            for pipeline in running:
                self.stop(pipeline)
            self._wait(lambda: all(p.finished for p in running), grace)
            self._send(Packet("Close", EMPTY_GUID))
            self._wait(self._pool_closed.is_set, grace)
        self._outbox.put(None)  # the writer closes stdin; pwsh then exits (4000/160: expected here)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill("pwsh did not exit after its session was closed")
        for thread in self._threads:
            thread.join(timeout=grace)
        if any(thread.is_alive() for thread in self._threads):  # a grandchild holds a pipe open
            kill_tree(self.process)
            for thread in self._threads:
                thread.join()
        self.process.wait()
        self._closed = True
        self.client.fail_all(
            lambda p: TransportError(f"the session was closed while running {p.invocation.description}")
        )

    # --- moving bytes ---

    def _send(self, packet: Packet) -> None:
        self._outbox.put(packet.to_bytes())

    def _flush(self) -> None:
        with self.client.lock:
            for payload in self.client.outgoing():
                stream = (
                    "PromptResponse"
                    if payload.stream_type == psrpcore.StreamType.prompt_response
                    else "Default"
                )
                pipeline = self.client.pipelines.get(payload.pipeline_id) if payload.pipeline_id else None
                if pipeline is not None:
                    pipeline.unacked_data += 1
                self._send(Packet.for_data(payload.data, payload.pipeline_id, stream=stream))

    def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        reader = PacketReader()
        try:
            while True:
                data = stdout.read(65536)
                if not data:
                    break
                try:
                    packets = reader.feed(data)
                except ProtocolError as exc:
                    for packet in exc.partial or ():
                        self._on_packet(packet)
                    raise
                for packet in packets:
                    self._on_packet(packet)
            reader.close()
            self._fail(self._exit_reason())
        except ProtocolError as exc:
            self.kill(f"pwsh wrote something that is not PowerShell remoting data ({exc})")
            self._fail(self._exit_reason())
        except Exception as exc:  # a pswrap bug: still end cleanly and say what happened
            log.exception("reading from pwsh failed")
            self.kill(f"pswrap failed reading from pwsh: {exc!r}")
            self._fail(self._exit_reason())

    def _on_packet(self, packet: Packet) -> None:
        kind = packet.kind
        if kind == "Data":
            stream = (
                psrpcore.StreamType.prompt_response
                if packet.stream == "PromptResponse"
                else psrpcore.StreamType.default
            )
            pipeline_id = None if packet.guid == EMPTY_GUID else packet.guid
            with self.client.lock:
                finished = self.client.receive(psrpcore.PSRPPayload(packet.data, stream, pipeline_id))
                self._flush()
                for done in finished:
                    self._send(Packet("Close", done))
            if self.client.broken_reason and not self._closing:
                self.kill(f"PowerShell broke the runspace pool: {self.client.broken_reason}")
        elif kind == "CommandAck":
            pipeline = self.client.pipelines.get(packet.guid)
            if pipeline is None:
                raise ProtocolError(f"pwsh acknowledged a pipeline pswrap never created ({packet.guid})")
            pipeline.command_acked.set()
        elif kind == "CloseAck":
            if packet.guid == EMPTY_GUID:
                self._pool_closed.set()
            else:
                pipeline = self.client.pipelines.get(packet.guid)
                if pipeline is not None:
                    self.client.forget(pipeline)
        elif kind == "DataAck":
            with self.client.lock:
                pipeline = self.client.pipelines.get(packet.guid)
                if pipeline is not None and pipeline.unacked_data > 0:
                    pipeline.unacked_data -= 1
                    if pipeline.unacked_data == 0 and pipeline.started:
                        # CREATE_PIPELINE is in: its input can follow (see PSRPClient.begin).
                        self.client.send_input(pipeline)
                        self._flush()
        elif kind == "SignalAck":
            pass
        else:
            raise ProtocolError(f"pwsh sent {kind}, a packet only clients send", data=packet.to_bytes())
        self._notify()

    def _write_stdin(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while True:
                chunk = self._outbox.get()
                if chunk is None:
                    return
                batch = [chunk]
                end = False
                while True:  # write what has piled up in one go
                    try:
                        more = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        end = True
                        break
                    batch.append(more)
                view = memoryview(b"".join(batch))
                while view:
                    written = stdin.write(view)
                    view = view[written or 0 :]
                if end:
                    return
        except (OSError, ValueError) as exc:
            if not self._closing:
                self._fail(f"pwsh stopped reading its input ({exc})")
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        self.tail.drain(stderr)

    def _exit_reason(self) -> str:
        """Why stdout ended: our kill, a close, or pwsh exiting on its own (with its exit code)."""
        try:
            code = self.process.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            kill_tree(self.process)
            code = self.process.wait()
        self._threads[2].join(timeout=self.stop_grace)  # let the stderr tail catch up
        if self._kill_reason is not None:
            return self._kill_reason
        if self._closing:
            return "the session was closed"
        if code in _STDIN_CLOSED_CODES:
            return f"pwsh (pid {self.process.pid}) rejected what it was sent and exited with code {code}"
        return f"pwsh (pid {self.process.pid}) exited with code {code}"

    def _fail(self, reason: str) -> None:
        with self._cond:
            if self._broken is None:
                self._broken = reason
            self._cond.notify_all()
        tail = self.tail.text() or None
        self.client.fail_all(
            lambda p: TransportError(
                f"{self._broken} while running {p.invocation.description}", stderr_tail=tail
            )
        )
        self._notify()


class _LocalExecution(QueuedExecution):
    def __init__(self, connection: _Connection, pipeline: RemotePipeline, deadline: float | None) -> None:
        super().__init__(pipeline.items, pipeline.invocation, deadline, connection.stop_grace)
        self._connection = connection
        self._pipeline = pipeline

    def stop(self) -> None:
        self._connection.stop(self._pipeline)

    def give_up(self, limit: float) -> InvocationTimeout:
        connection = self._connection
        description = self._pipeline.invocation.description
        connection.kill(
            f"pwsh did not stop {description} within {connection.stop_grace:g} s of its "
            f"{limit:g} s timeout, so pswrap killed it"
        )
        connection._wait(lambda: False, connection.stop_grace)
        return InvocationTimeout(
            f"{description} did not finish within its timeout of {limit:g} s and pwsh did not "
            f"answer the stop signal within {connection.stop_grace:g} s: pswrap killed the pwsh process "
            "(the next invocation starts a fresh one)",
            timeout=limit,
            stderr_tail=connection.tail.text() or None,
        )
