"""A runspace pool over the out-of-process packets of ``pwsh -s``, on any byte pipe.

The local transport's pipe is a ``pwsh -s`` process's standard streams; the SSH transport's is an SSH
channel to the ``powershell`` subsystem (``pwsh -sshs``). Everything above the pipe is the same: the
framing (:mod:`.outofproc`), the PSRP client (:mod:`.psrp`), and here the threads that move the bytes
(packets read into the client, the client's packets written out, the peer's stderr into a bounded
tail), acknowledgements, stop, timeouts and faults. When the peer dies, writes garbage or hangs past a
timeout, the running invocations fail with a :class:`pswrap.TransportError` that quotes its stderr,
and what arrived before stays with the caller.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import psrpcore

from pswrap.errors import InvocationNotStarted, InvocationTimeout, ProtocolError, TransportError
from pswrap.secret import get_logger
from pswrap.transports._process import StreamTail
from pswrap.transports.base import Execution, Invocation, QueuedExecution, Transport
from pswrap.transports.outofproc import EMPTY_GUID, Packet, PacketReader
from pswrap.transports.psrp import PSRPClient, RemotePipeline

__all__ = ["OutOfProcConnection", "OutOfProcExecution", "Pipe"]

log = get_logger(__name__)

# How pwsh in SSH server mode prefixes the fatal error it writes to stdout before exiting.
_PWSH_ERROR = b"__NamedPipeError__:"


class Pipe(Protocol):
    """Bytes to and from a PowerShell in server mode: a process's stdio, or an SSH channel.

    ``name`` names the peer in "could not open a PowerShell session with …"; ``tag`` goes in thread
    names (``pswrap-<tag>-stdout``); ``killed`` says what :meth:`kill` does, for timeout messages.
    """

    name: str
    tag: str
    killed: str

    def read(self) -> bytes:
        """Up to 64 KiB of the peer's output as soon as some arrive; ``b""`` at its end."""

    def write(self, data: bytes) -> None:
        """Write all of ``data``; raises :class:`OSError` (or :class:`ValueError`) when the pipe is gone."""

    def close_input(self) -> None:
        """End the peer's input (pwsh then exits)."""

    def read_errors(self, tail: StreamTail) -> None:
        """Read the peer's stderr into ``tail`` until it ends (runs in a thread)."""

    @property
    def running(self) -> bool:
        """Whether the peer has not ended yet."""

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: forever) for the peer to end; whether it did."""

    def kill(self) -> None:
        """End the peer now (its process tree, or the channel)."""

    def ended(self) -> str:
        """How the peer ended on its own, for messages (``pwsh (pid 7) exited with code 3``)."""

    def release(self) -> None:
        """Free what the pipe holds (connections, file handles) once the peer has ended."""


class OutOfProcConnection:
    """One pipe to a server-mode pwsh, its PSRP client and the threads that move its bytes."""

    def __init__(self, pipe: Pipe, pool_size: int, stop_grace: float, open_timeout: float) -> None:
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
        # Channels (pool or pipeline) with a Data packet pwsh has not acknowledged, and what waits behind it.
        self._window_lock = threading.Lock()
        self._unacked: set[uuid.UUID] = set()
        self._held: dict[uuid.UUID, collections.deque[bytes]] = {}
        # Pipelines whose CREATE_PIPELINE pwsh has not acked yet, and those of them asked to stop.
        self._awaiting_start: set[uuid.UUID] = set()
        self._stop_pending: set[uuid.UUID] = set()
        self.pipe = pipe
        tag = pipe.tag
        self._threads = [
            threading.Thread(target=self._read_stdout, name=f"pswrap-{tag}-stdout", daemon=True),
            threading.Thread(target=self._write_stdin, name=f"pswrap-{tag}-stdin", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"pswrap-{tag}-stderr", daemon=True),
        ]
        # stderr's reader first: the stdout reader joins it when the peer exits, which can be at once.
        for thread in reversed(self._threads):
            thread.start()

    # --- state ---

    @property
    def healthy(self) -> bool:
        return self._broken is None and not self._closing and self.client.ready and self.pipe.running

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
            raise self.error(f"could not open a PowerShell session with {self.pipe.name!r}")

    def start(self, invocation: Invocation) -> OutOfProcExecution:
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
                self._awaiting_start.add(pipeline.id)
                self.client.begin(pipeline, with_input=False)  # sent once pwsh acks CREATE_PIPELINE
                self._flush()
        except BaseException as exc:
            self.client.abandon(pipeline, TransportError(f"could not start {invocation.description}: {exc}"))
            self._send(Packet("Close", pipeline.id))
            raise
        return OutOfProcExecution(self, pipeline, deadline)

    def stop(self, pipeline: RemotePipeline) -> None:
        with self.client.lock:
            if self.client.stop(pipeline):
                if pipeline.id in self._awaiting_start:
                    # pwsh drops a Signal that overtakes the pipeline's creation: send it once the
                    # CREATE_PIPELINE data is acked (pwsh acks it just before the pipeline starts).
                    self._stop_pending.add(pipeline.id)
                else:
                    self._send(Packet("Signal", pipeline.id))

    def kill(self, reason: str) -> None:
        """End the peer (pwsh's process tree, or the channel); the running invocations fail with ``reason``."""
        with self._cond:
            if self._kill_reason is None:
                self._kill_reason = reason
        self.pipe.kill()

    def close(self) -> None:
        """Close the pool cleanly when possible, end the process (killing it if it lingers), join threads."""
        if self._closed:
            return
        self._closing = True
        grace = self.stop_grace
        if self._broken is None and self.pipe.running and self.client.opened:
            running = [p for p in list(self.client.pipelines.values()) if p.started and not p.finished]
            for pipeline in running:
                self.stop(pipeline)
                # Its reader raises this before the "stopped" outcome pwsh will send: not a success.
                pipeline.items.put(
                    TransportError(f"the session was closed while running {pipeline.invocation.description}")
                )
            self._wait(lambda: all(p.finished for p in running), grace)
            self._send(Packet("Close", EMPTY_GUID))
            self._wait(self._pool_closed.is_set, grace)
        self._outbox.put(None)  # the writer closes stdin; pwsh then exits (4000/160: expected here)
        if not self.pipe.wait(grace):
            self.kill("pwsh did not exit after its session was closed")
        for thread in self._threads:
            thread.join(timeout=grace)
        if any(thread.is_alive() for thread in self._threads):  # a grandchild holds a pipe open
            self.pipe.kill()
            for thread in self._threads:
                thread.join()
        self.pipe.wait(None)
        self.pipe.release()
        self._closed = True
        self.client.fail_all(
            lambda p: TransportError(f"the session was closed while running {p.invocation.description}")
        )

    # --- moving bytes ---

    def _send(self, packet: Packet) -> None:
        self._outbox.put(packet.to_bytes())

    def _send_data(self, packet: Packet) -> None:
        """Send a Data packet once pwsh has acknowledged the previous one on the same channel.

        pwsh hands every line it reads to a thread-pool thread, so two Data packets in flight on one
        channel can be reassembled out of order: a parameter of more than one fragment then failed
        with "Remote transport error" and the invocation hung. PowerShell's own client sends one at a
        time too.
        """
        with self._window_lock:
            if packet.guid in self._unacked:
                self._held.setdefault(packet.guid, collections.deque()).append(packet.to_bytes())
                return
            self._unacked.add(packet.guid)
            self._outbox.put(packet.to_bytes())

    def _data_acked(self, guid: uuid.UUID) -> None:
        with self._window_lock:
            held = self._held.get(guid)
            if held:
                self._outbox.put(held.popleft())
                if not held:
                    del self._held[guid]
            else:
                self._unacked.discard(guid)

    def _channel_closed(self, guid: uuid.UUID) -> None:
        with self._window_lock:
            self._unacked.discard(guid)
            self._held.pop(guid, None)

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
                self._send_data(Packet.for_data(payload.data, payload.pipeline_id, stream=stream))

    def _read_stdout(self) -> None:
        reader = PacketReader()
        try:
            while True:
                data = self.pipe.read()
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
            if exc.data.startswith(_PWSH_ERROR):  # pwsh -sshs reports its own fatal errors on stdout
                reported = exc.data.removeprefix(_PWSH_ERROR).decode("utf-8", "replace").strip()
                self.kill(f"pwsh reported an error and ended the session: {reported}")
            else:
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
            self._channel_closed(packet.guid)
            if packet.guid == EMPTY_GUID:
                self._pool_closed.set()
            else:
                pipeline = self.client.pipelines.get(packet.guid)
                if pipeline is not None:
                    self.client.forget(pipeline)
        elif kind == "DataAck":
            self._data_acked(packet.guid)
            with self.client.lock:
                pipeline = self.client.pipelines.get(packet.guid)
                if pipeline is not None and pipeline.unacked_data > 0:
                    pipeline.unacked_data -= 1
                if packet.guid in self._awaiting_start and (pipeline is None or pipeline.unacked_data == 0):
                    # CREATE_PIPELINE is in (every packet of it acked). pwsh drops input and a stop
                    # Signal that overtake it, so both were held back until now.
                    self._awaiting_start.discard(packet.guid)
                    if pipeline is not None and pipeline.started:
                        self.client.send_input(pipeline)
                        self._flush()
                    if packet.guid in self._stop_pending:
                        self._stop_pending.discard(packet.guid)
                        self._send(Packet("Signal", packet.guid))
        elif kind == "SignalAck":
            pass
        else:
            raise ProtocolError(f"pwsh sent {kind}, a packet only clients send", data=packet.to_bytes())
        self._notify()

    def _write_stdin(self) -> None:
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
                self.pipe.write(b"".join(batch))
                if end:
                    return
        except (OSError, ValueError) as exc:
            # When the peer has exited, the stdout reader says how (its exit code and stderr).
            if not self._closing and not self.pipe.wait(self.stop_grace):
                self._fail(f"pwsh stopped reading its input ({exc})")
        finally:
            with contextlib.suppress(OSError):
                self.pipe.close_input()

    def _read_stderr(self) -> None:
        self.pipe.read_errors(self.tail)

    def _exit_reason(self) -> str:
        """Why stdout ended: our kill, a close, or pwsh exiting on its own (with its exit code)."""
        if not self.pipe.wait(self.stop_grace):
            self.pipe.kill()
            self.pipe.wait(None)
        self._threads[2].join(timeout=self.stop_grace)  # let the stderr tail catch up
        if self._kill_reason is not None:
            return self._kill_reason
        if self._closing:
            return "the session was closed"
        return self.pipe.ended()

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


class OutOfProcExecution(QueuedExecution):
    def __init__(
        self, connection: OutOfProcConnection, pipeline: RemotePipeline, deadline: float | None
    ) -> None:
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
            f"answer the stop signal within {connection.stop_grace:g} s: pswrap {connection.pipe.killed} "
            "(the next invocation starts a fresh one)",
            timeout=limit,
            stderr_tail=connection.tail.text() or None,
        )


class OutOfProcTransport(Transport):
    """A transport that runs one :class:`OutOfProcConnection` at a time on a pipe it makes.

    Subclasses give :meth:`_new_pipe` (a pwsh process, an SSH channel…) and ``_session`` (how
    messages name the session); everything else (reopening a broken connection, starting
    invocations, closing) is the same whatever carries the bytes. They set ``pool_size``,
    ``stop_grace`` and ``open_timeout``.
    """

    pool_size: int
    stop_grace: float
    open_timeout: float
    _session: str

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: OutOfProcConnection | None = None

    def _new_pipe(self) -> Pipe:
        """A fresh pipe to a PowerShell in server mode."""
        raise NotImplementedError

    def open(self) -> None:
        with self._lock:
            old = self._connection
            if old is not None:
                if old.healthy:
                    return
                self._connection = None
                old.close()
            connection = OutOfProcConnection(
                self._new_pipe(), self.pool_size, self.stop_grace, self.open_timeout
            )
            try:
                connection.open()
            except BaseException:
                connection.close()
                raise
            self._connection = connection

    def start(self, invocation: Invocation) -> Execution:
        connection = self._connection
        if connection is None:
            raise InvocationNotStarted(f"{self._session} is not open to run {invocation.description}")
        if not connection.healthy:
            raise connection.error(f"could not start {invocation.description}", InvocationNotStarted)
        return connection.start(invocation)

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    @property
    def healthy(self) -> bool:
        connection = self._connection
        return connection is not None and connection.healthy
