"""The PSRP server runtime: psrpcore's server state machines, a pool of runspaces and pipeline workers.

Transport-neutral. A transport feeds it what the client sent - :meth:`PsrpServer.data`,
:meth:`~PsrpServer.command`, :meth:`~PsrpServer.close`, :meth:`~PsrpServer.signal` - and drains it
through a :class:`Channel`: ``send(payload)`` for each PSRP payload to deliver, ``acknowledge(action,
guid)`` when pwsh would acknowledge, ``fatal(message)`` for a protocol violation that ends the
session. The out-of-process transport (:mod:`server_mode`) maps these to packets on stdin/stdout; a
WinRM stand-in can map them to Send/Receive/Signal/Delete responses (``on_pipeline_end(pipeline_id)``
tells it when a pipeline's last message was sent, so that a Receive can answer CommandState Done).

What pwsh does and this runtime does too (powershell.md, "What real pwsh enforces"):

* a pipeline's channel exists only after ``Command``; data for an unknown pipeline is acknowledged and
  dropped; CREATE_PIPELINE anywhere else is a fatal protocol error (pwsh fails with a
  NullReferenceException);
* pool data is acknowledged after its messages are processed (configurable: before its replies);
  pipeline data gets one acknowledgement per packet, except the packet carrying CREATE_PIPELINE, which
  is acknowledged just before the pipeline starts (a pipeline waits for a free runspace first);
  pipeline input that arrives before that acknowledgement is dropped (``drop_early_input``, the
  out-of-process transport), as real pwsh drops it;
* ``Close`` of a pipeline stops it, then is acknowledged; ``Close`` of the pool waits until every
  pipeline that got a ``Command`` is closed, sends Closing and Closed, then is acknowledged;
  ``Signal`` stops the pipeline, then is acknowledged;
* a failed pipeline ends with PIPELINE_STATE Failed carrying ``ExceptionAsErrorRecord``; ``exit N``
  calls the host's SetShouldExit(N); prompts are host calls answered by the client.
"""

from __future__ import annotations

import platform
import queue
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import psrpcore
from psrpcore import types as ps

from tests.standins.powershell.engine import Engine
from tests.standins.powershell.errors import (
    ExitRequested,
    PipelineStopped,
    PSError,
    StandinUnsupported,
    error_record,
    unsupported_record,
)
from tests.standins.powershell.framing import EMPTY_GUID
from tests.standins.powershell.runspace import NoHost, Runspace
from tests.standins.powershell.streams import to_wire

PS_VERSION = "7.4.6"
FRAGMENT_SIZE = 32_768
_END_OF_INPUT = object()


class Channel(Protocol):
    """How the runtime talks back to the client, whatever the transport."""

    def send(self, payload: psrpcore.PSRPPayload) -> None: ...

    def acknowledge(self, action: str, guid: uuid.UUID) -> None: ...

    def fatal(self, message: str) -> None: ...


def application_private_data() -> dict[str, Any]:
    """What pwsh 7 sends as APPLICATION_PRIVATE_DATA (PSVersionTable and the debug settings)."""
    return {
        "DebugMode": 1,
        "DebugStop": False,
        "UnhandledBreakpointMode": 0,
        "PSVersionTable": {
            "PSVersion": ps.PSVersion(PS_VERSION),
            "PSEdition": "Core",
            "PSCompatibleVersions": [
                ps.PSVersion(x) for x in ("1.0", "2.0", "3.0", "4.0", "5.0", "5.1", PS_VERSION)
            ],
            "GitCommitId": PS_VERSION,
            "OS": f"{platform.system()} {platform.release()} (pwsh stand-in)",
            "Platform": "Unix",
            "WSManStackVersion": ps.PSVersion("3.0"),
        },
    }


@dataclass
class _Pipeline:
    """A pipeline channel (created by Command) and, once CREATE_PIPELINE arrived, its worker."""

    id: uuid.UUID
    server: psrpcore.ServerPipeline
    metadata: Any = None
    unsupported: str | None = None
    started: bool = False  # CREATE_PIPELINE acknowledged: from now on input is taken
    inputs: queue.Queue[Any] = field(default_factory=queue.Queue)
    responses: dict[int, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def iter_input(self) -> Iterator[Any]:
        while True:
            try:
                item = self.inputs.get(timeout=0.05)
            except queue.Empty:
                if self.stop.is_set():
                    raise PipelineStopped() from None
                continue
            if item is _END_OF_INPUT:
                return
            yield item


class PsrpServer:
    """One PSRP session: a runspace pool and its pipelines."""

    def __init__(
        self,
        engine: Engine,
        channel: Channel,
        *,
        fragment_size: int = FRAGMENT_SIZE,
        ack_pool_data_first: bool = False,
        drop_early_input: bool = False,
        on_output: Callable[[], None] | None = None,
        on_pipeline_start: Callable[[], None] | None = None,
        on_pipeline_end: Callable[[uuid.UUID], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.fragment_size = fragment_size
        self.ack_pool_data_first = ack_pool_data_first
        self.drop_early_input = drop_early_input
        self._on_output = on_output or (lambda: None)
        self._on_pipeline_start = on_pipeline_start or (lambda: None)
        self._on_pipeline_end = on_pipeline_end or (lambda pipeline_id: None)
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._pool = psrpcore.ServerRunspacePool(application_private_data=application_private_data())
        self._pipelines: dict[uuid.UUID, _Pipeline] = {}
        self.runspaces: list[Runspace] = []
        self._busy: set[int] = set()

    # ------------------------------------------------------------------------------------------
    # What the transport feeds in
    # ------------------------------------------------------------------------------------------

    def data(self, guid: uuid.UUID, data: bytes, stream: str = "Default") -> None:
        stream_type = (
            psrpcore.StreamType.prompt_response
            if stream.casefold() == "promptresponse"
            else (psrpcore.StreamType.default)
        )
        with self._lock:
            if guid == EMPTY_GUID:
                self._pool.receive_data(psrpcore.PSRPPayload(data, stream_type, None))
                if self.ack_pool_data_first:
                    self._drain_events()
                    self.channel.acknowledge("Data", guid)
                    self._flush()
                else:
                    self._drain_events()
                    self._flush()
                    self.channel.acknowledge("Data", guid)
                return
            pipeline = self._pipelines.get(guid)
            if pipeline is None:
                self.channel.acknowledge("Data", guid)  # pwsh acks and drops data for unknown pipelines
                return
            self._pool.receive_data(psrpcore.PSRPPayload(data, stream_type, guid))
            created = self._drain_events()
            self._flush()
            if guid not in created:
                self.channel.acknowledge("Data", guid)

    def command(self, guid: uuid.UUID) -> None:
        with self._lock:
            if guid == EMPTY_GUID:
                self.channel.fatal("Object reference not set to an instance of an object.")
                return
            if guid not in self._pipelines:
                self._pipelines[guid] = _Pipeline(guid, psrpcore.ServerPipeline(self._pool, guid))
            self.channel.acknowledge("Command", guid)

    def close(self, guid: uuid.UUID) -> None:
        """Close a pipeline (stopping it first) or the pool (after every pipeline closed). Blocks."""
        if guid == EMPTY_GUID:
            self._close_pool()
            return
        with self._lock:
            pipeline = self._pipelines.get(guid)
        if pipeline is not None:
            self._stop_and_wait(pipeline)
            with self._lock:
                if pipeline.server.state == ps.PSInvocationState.Running:  # pragma: no cover - defensive
                    pipeline.server.stop()
                pipeline.server.close()
                self._pipelines.pop(guid, None)
                self._flush()
                self._changed.notify_all()
        self.channel.acknowledge("Close", guid)

    def signal(self, guid: uuid.UUID) -> None:
        """Stop a pipeline; acknowledged once it stopped. A signal to the pool is a fatal error."""
        if guid == EMPTY_GUID:
            self.channel.fatal(
                "A signal was received for the session. Signals are only allowed for commands (PSGuid "
                "00000000-0000-0000-0000-000000000000 is the session)."
            )
            return
        with self._lock:
            pipeline = self._pipelines.get(guid)
        if pipeline is not None:
            self._stop_and_wait(pipeline)
        self.channel.acknowledge("Signal", guid)

    def shutdown(self) -> None:
        """The transport ended: stop every pipeline (no acknowledgements)."""
        with self._lock:
            pipelines = list(self._pipelines.values())
        for pipeline in pipelines:
            pipeline.stop.set()

    # ------------------------------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------------------------------

    def _stop_and_wait(self, pipeline: _Pipeline) -> None:
        if pipeline.thread is None:
            return
        pipeline.stop.set()
        with self._lock:
            self._changed.notify_all()
        pipeline.done.wait()

    def _close_pool(self) -> None:
        with self._lock:
            while self._pipelines:
                self._changed.wait()
            self._pool.begin_close()
            self._pool.close()
            self._flush()
            self.channel.acknowledge("Close", EMPTY_GUID)
            # pwsh starts a new session if the client opens another pool on the same process.
            self._pool = psrpcore.ServerRunspacePool(application_private_data=application_private_data())
            self.runspaces = []
            self._busy = set()

    def _flush(self) -> None:
        while True:
            payload = self._pool.data_to_send(self.fragment_size)
            if payload is None:
                return
            self.channel.send(payload)

    def _drain_events(self) -> set[uuid.UUID]:
        """Process every complete message received; returns the pipelines whose CREATE_PIPELINE came."""
        created: set[uuid.UUID] = set()
        while True:
            try:
                event = self._pool.next_event()
            except Exception as problem:
                if "Failed to find pipeline" in str(problem):
                    # pwsh, sent CREATE_PIPELINE for a pipeline whose channel does not exist:
                    # NullReferenceException in GetHostAssociatedWithPowerShell.
                    message = (
                        "Object reference not set to an instance of an object.\n   at System.Management.Automation"
                        ".Remoting.ServerRunspacePoolDriver.GetHostAssociatedWithPowerShell(...)"
                    )
                else:
                    message = f"{problem}\n   at {type(problem).__module__}.{type(problem).__name__}"
                self.channel.fatal(message)
                return created
            if event is None:
                return created
            if isinstance(event, psrpcore.InitRunspacePoolEvent):
                self._ensure_runspaces()
            elif isinstance(event, psrpcore.ConnectRunspacePoolEvent):
                self.channel.fatal(
                    "pwsh stand-in does not support connecting to a disconnected runspace pool"
                )
            elif isinstance(event, psrpcore.SetMaxRunspacesEvent):
                self._pool.runspace_availability_response(event.ci, True)
                self._ensure_runspaces()
            elif isinstance(event, psrpcore.SetMinRunspacesEvent):
                self._pool.runspace_availability_response(event.ci, True)
            elif isinstance(event, psrpcore.GetAvailableRunspacesEvent):
                self._ensure_runspaces()
                self._pool.runspace_availability_response(event.ci, len(self.runspaces) - len(self._busy))
            elif isinstance(event, psrpcore.ResetRunspaceStateEvent):
                for runspace in self.runspaces:
                    runspace.reset()
                self._pool.runspace_availability_response(event.ci, True)
            elif isinstance(event, (psrpcore.CreatePipelineEvent, psrpcore.GetCommandMetadataEvent)):
                pipeline = self._pipelines.get(event.pipeline_id) if event.pipeline_id else None
                if pipeline is None:
                    self.channel.fatal("Object reference not set to an instance of an object.")
                    return created
                if isinstance(event, psrpcore.CreatePipelineEvent):
                    pipeline.metadata = event.pipeline
                else:
                    pipeline.unsupported = "GetCommandMetadata (Get-Command over PSRP)"
                created.add(pipeline.id)
                self._start(pipeline)
            elif isinstance(event, (psrpcore.PipelineInputEvent, psrpcore.EndOfPipelineInputEvent)):
                # Real pwsh drops input (and its end) that arrives before it acknowledged the packet
                # carrying CREATE_PIPELINE, even in a later packet: the pipeline then waits forever.
                target = self._pipelines.get(event.pipeline_id)
                if target is not None and (target.started or not self.drop_early_input):
                    is_input = isinstance(event, psrpcore.PipelineInputEvent)
                    target.inputs.put(event.data if is_input else _END_OF_INPUT)
            elif isinstance(event, psrpcore.PipelineHostResponseEvent):
                target = self._pipelines.get(event.pipeline_id)
                if target is not None:
                    target.responses[event.ci] = event
                    self._changed.notify_all()

    def _ensure_runspaces(self) -> None:
        wanted = max(1, self._pool.max_runspaces or 1)
        while len(self.runspaces) < wanted:
            self.runspaces.append(Runspace())

    def _start(self, pipeline: _Pipeline) -> None:
        pipeline.thread = threading.Thread(
            target=self._run, args=(pipeline,), name=f"pipeline-{pipeline.id}", daemon=True
        )
        pipeline.thread.start()

    def _acquire_runspace(self, pipeline: _Pipeline) -> Runspace:
        with self._lock:
            self._ensure_runspaces()
            while True:
                for index, runspace in enumerate(self.runspaces):
                    if index not in self._busy:
                        self._busy.add(index)
                        return runspace
                if pipeline.stop.is_set():
                    # Stopped before a runspace was free: it still starts, then stops at once.
                    return Runspace()
                self._changed.wait(0.05)

    def _release_runspace(self, runspace: Runspace) -> None:
        with self._lock:
            for index, candidate in enumerate(self.runspaces):
                if candidate is runspace:
                    self._busy.discard(index)
            self._changed.notify_all()

    def _run(self, pipeline: _Pipeline) -> None:
        runspace = self._acquire_runspace(pipeline)
        outcome: tuple[str, Any] = ("completed", None)
        try:
            with self._lock:
                self.channel.acknowledge("Data", pipeline.id)  # the CREATE_PIPELINE packet, just before start
                pipeline.started = True
                pipeline.server.start()
                self._flush()
            self._on_pipeline_start()
            if pipeline.unsupported:
                raise StandinUnsupported(pipeline.unsupported)
            host = self._host_for(pipeline)
            execution = self.engine.execution(runspace, host, stop=pipeline.stop)
            streams = _PipelineStreams(self, pipeline)
            metadata = pipeline.metadata
            inputs = None if metadata.no_input else pipeline.iter_input()
            try:
                self.engine.run_powershell(metadata, execution, streams, inputs)
            except ExitRequested as exit_request:
                host.set_should_exit(exit_request.code)
        except PipelineStopped:
            outcome = ("stopped", None)
        except PSError as problem:
            outcome = ("failed", problem.record)
        except StandinUnsupported as problem:
            self._log(f"pwsh stand-in: {problem}")
            outcome = ("failed", unsupported_record(problem))
        except Exception as problem:  # a bug in the stand-in: loud, and the client sees a failure
            self._log("pwsh stand-in internal error:\n" + traceback.format_exc())
            outcome = (
                "failed",
                error_record(
                    f"pwsh stand-in internal error: {problem!r}", error_id="PwshStandinInternalError"
                ),
            )
        finally:
            if pipeline.stop.is_set() and outcome[0] != "completed":
                outcome = ("stopped", None)
            try:
                with self._lock:
                    server = pipeline.server
                    if server.state == ps.PSInvocationState.Running:
                        if outcome[0] == "stopped":
                            server.stop()
                        elif outcome[0] == "failed":
                            # Real pwsh 7.6 sends the failed state's record without its invocation
                            # info (SerializeExtendedInfo false), whatever command failed.
                            record = outcome[1]
                            record.InvocationInfo = None
                            record.serialize_extended_info = False
                            server._change_state(ps.PSInvocationState.Failed, error=record)
                        else:
                            server.complete()
                    self._flush()
            finally:
                self._release_runspace(runspace)
                pipeline.done.set()
                self._on_pipeline_end(pipeline.id)

    def _host_for(self, pipeline: _Pipeline) -> Any:
        info = pipeline.metadata.host if pipeline.metadata is not None else None
        pool_host = self._pool.host
        if info is None or info.IsHostNull or info.IsHostUINull:
            if (
                info is not None
                and info.UseRunspaceHost
                and pool_host is not None
                and not pool_host.IsHostNull
            ):
                return _PipelineHost(self, pipeline)
            return NoHost()
        return _PipelineHost(self, pipeline)

    # --- used by the pipeline's streams and host ---------------------------------------------

    def emit(
        self,
        pipeline: _Pipeline,
        action: Callable[[psrpcore.ServerPipeline], None],
        *,
        is_output: bool = False,
    ) -> None:
        with self._lock:
            if pipeline.server.state != ps.PSInvocationState.Running:
                return
            action(pipeline.server)
            self._flush()
            if is_output:
                self._on_output()

    def host_call(
        self, pipeline: _Pipeline, request: Callable[[psrpcore.ServerHostRequestor], int | None]
    ) -> Any:
        with self._lock:
            ci = request(psrpcore.ServerHostRequestor(pipeline.server))
            self._flush()
            if ci is None or ci == -100:
                return None
            while ci not in pipeline.responses:
                if pipeline.stop.is_set():
                    raise PipelineStopped()
                self._changed.wait(0.05)
            event = pipeline.responses.pop(ci)
        error = event.error
        if error is not None:
            if not isinstance(error, ps.ErrorRecord):
                error = error_record(str(error), error_id="HostError")
            raise PSError(error, script_terminating=True)
        return event.result


class _PipelineStreams:
    """A PSRP pipeline's streams: each object or record becomes its PSRP message, sent at once."""

    information_pipe = True

    def __init__(self, server: PsrpServer, pipeline: _Pipeline) -> None:
        self._server = server
        self._pipeline = pipeline

    def output(self, value: Any) -> None:
        self._server.emit(self._pipeline, lambda p: p.write_output(to_wire(value)), is_output=True)

    def _record(self, record: Any, message_type: ps.PSRPMessageType) -> None:
        self._server.emit(self._pipeline, lambda p: p.prepare_message(record, message_type=message_type))

    def error(self, record: ps.ErrorRecord) -> None:
        self._record(record, ps.PSRPMessageType.ErrorRecord)

    def warning(self, record: ps.WarningRecord) -> None:
        self._record(record, ps.PSRPMessageType.WarningRecord)

    def verbose(self, record: ps.VerboseRecord) -> None:
        self._record(record, ps.PSRPMessageType.VerboseRecord)

    def debug(self, record: ps.DebugRecord) -> None:
        self._record(record, ps.PSRPMessageType.DebugRecord)

    def information(self, record: ps.InformationRecord) -> None:
        self._server.emit(
            self._pipeline,
            lambda p: p.write_information(
                record.MessageData,
                record.Source,
                time_generated=record.TimeGenerated,
                tags=list(record.Tags or []),
                user=record.User,
                computer=record.Computer,
                process_id=record.ProcessId,
                native_thread_id=record.NativeThreadId,
                managed_thread_id=record.ManagedThreadId,
            ),
        )

    def progress(self, record: ps.ProgressRecord, source_id: int) -> None:
        self._server.emit(
            self._pipeline,
            lambda p: p.write_progress(
                record.Activity,
                record.ActivityId,
                record.StatusDescription,
                current_operation=record.CurrentOperation,
                parent_activity_id=record.ParentActivityId,
                percent_complete=record.PercentComplete,
                record_type=record.RecordType,
                seconds_remaining=record.SecondsRemaining,
            ),
        )


class _PipelineHost:
    """The client's host, reached through PIPELINE_HOST_CALL messages."""

    interactive = True

    def __init__(self, server: PsrpServer, pipeline: _Pipeline) -> None:
        self._server = server
        self._pipeline = pipeline

    def read_line(self, secure: bool = False) -> Any:
        if secure:
            return self._server.host_call(self._pipeline, lambda h: h.read_line_as_secure_string())
        return self._server.host_call(self._pipeline, lambda h: h.read_line())

    def prompt(self, caption: str, message: str, fields: list[ps.FieldDescription]) -> dict[str, Any]:
        result = self._server.host_call(self._pipeline, lambda h: h.prompt(caption, message, fields))
        return result if isinstance(result, dict) else {}

    def set_should_exit(self, code: int) -> None:
        self._server.host_call(self._pipeline, lambda h: h.set_should_exit(code))
