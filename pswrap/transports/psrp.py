"""The PSRP client: a runspace pool driven with psrpcore's client state machines, without any I/O.

:class:`PSRPClient` turns :class:`~pswrap.transports.base.Invocation` s into PSRP messages (commands
and parameters as PSRP commands, never as script text) and the messages PowerShell sends back into
:class:`~pswrap.transports.base.StreamItem` s and an :class:`~pswrap.transports.base.Outcome` per
pipeline. It plays a non-interactive host: prompts are answered with an error that says so, and
``exit`` codes are captured from ``SetShouldExit``. A transport moves its payloads: the out-of-process
framing of a ``pwsh -s`` process, or WinRM's shell messages. It is thread-safe: the transport's reader thread
feeds it while callers start and stop pipelines.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psrpcore
from psrpcore import types as ps

from pswrap.errors import ProtocolError, TransportError
from pswrap.records import error_record, to_record
from pswrap.secret import get_logger, protect_loggers
from pswrap.transports._convert import from_psrp, to_psrp
from pswrap.transports._messages import Defragmenter, Message, read_outputs
from pswrap.transports.base import Invocation, Outcome, StreamItem

__all__ = ["FRAGMENT_SIZE", "PSRPClient", "RemotePipeline"]

log = get_logger(__name__)

#: The largest PSRP fragment sent (pwsh's own default is 32 KiB).
FRAGMENT_SIZE = 32 * 1024

HOST_NAME = "pswrap"
HOST_VERSION = "0.1"

# A host that exists (so that SetShouldExit and prompts reach the client) but has no raw console.
_POOL_HOST = ps.HostInfo(IsHostNull=False, IsHostUINull=False, IsHostRawUINull=True, UseRunspaceHost=False)
_PIPELINE_HOST = ps.HostInfo(
    IsHostNull=False, IsHostUINull=False, IsHostRawUINull=True, UseRunspaceHost=False
)

_M = ps.HostMethodIdentifier
_PROMPTS = {
    _M.ReadLine: "Read-Host (a prompt for a line of input)",
    _M.ReadLineAsSecureString: "Read-Host -AsSecureString (a prompt for a secret)",
    _M.Prompt: "a prompt for missing values",
    _M.PromptForCredential1: "a credential prompt (Get-Credential)",
    _M.PromptForCredential2: "a credential prompt (Get-Credential)",
    _M.PromptForChoice: "a choice prompt (such as a -Confirm confirmation)",
    _M.PromptForChoiceMultipleSelection: "a choice prompt",
    _M.ReadKey: "a key press",
    _M.EnterNestedPrompt: "a nested prompt",
}


class _PayloadFilter(logging.Filter):
    """Hide the PSRP message bodies psrpcore logs at DEBUG: they carry parameter values (tokens)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            isinstance(record.msg, str)
            and record.msg.startswith(("Queuing PSRP Message", "Processing PSRP Message"))
            and isinstance(record.args, tuple)
            and record.args
        ):
            record.args = (*record.args[:-1], "<message body hidden by pswrap>")
        return True


_PAYLOAD_FILTER = _PayloadFilter()


def _protect_psrpcore_logs() -> None:
    base = logging.getLogger("psrpcore._base")
    if _PAYLOAD_FILTER not in base.filters:
        base.addFilter(_PAYLOAD_FILTER)
    protect_loggers()


_protect_psrpcore_logs()


class RemotePipeline:
    """One pipeline on the pool: its items arrive in :attr:`items`, ending with an :class:`Outcome`.

    A :class:`TransportError` is put in :attr:`items` instead when the connection breaks.
    """

    def __init__(self, pipeline_id: uuid.UUID, invocation: Invocation) -> None:
        self.id = pipeline_id
        self.invocation = invocation
        self.items: queue.SimpleQueue[StreamItem | Outcome | TransportError] = queue.SimpleQueue()
        self.command_acked = threading.Event()
        #: Data packets sent for this pipeline that pwsh has not acknowledged yet (out-of-process).
        self.unacked_data = 0
        self.finished = False
        self.exit_code: int | None = None
        self.refused_prompts: list[str] = []
        self._ps: psrpcore.ClientPowerShell | None = None
        # The converted values, kept from prepare() until begin() sends them.
        self._request: tuple[list[tuple[str, Any]], list[Any], list[Any] | None] | None = None
        self._input: list[Any] | None = None  # input held back until send_input()

    @property
    def started(self) -> bool:
        return self._ps is not None

    def fail(self, error: TransportError) -> None:
        if not self.finished:
            self.finished = True
            self.items.put(error)


class PSRPClient:
    """A runspace pool of ``pool_size`` runspaces, as a sans-I/O state machine.

    The transport calls :meth:`open`, writes :meth:`outgoing` payloads, feeds what PowerShell sends
    to :meth:`receive`, creates each pipeline's channel (out-of-process: ``Command``) before calling
    :meth:`begin` for it, and closes the pipelines :meth:`receive` reports as finished.
    """

    def __init__(self, *, pool_size: int = 1, fragment_size: int = FRAGMENT_SIZE) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if fragment_size < 22:
            raise ValueError("fragment_size must leave room for a PSRP fragment header (22 bytes or more)")
        #: The largest payload :meth:`outgoing` hands out (WinRM: what fits in one envelope).
        self.fragment_size = fragment_size
        self.lock = threading.RLock()
        self._pool = psrpcore.ClientRunspacePool(
            host=_POOL_HOST, min_runspaces=pool_size, max_runspaces=pool_size
        )
        self._instance_id = uuid.uuid4()
        self._key_requested = False
        self.key_ready = False
        self.pipelines: dict[uuid.UUID, RemotePipeline] = {}
        self._defragmenter = Defragmenter()
        #: Why PowerShell broke the pool, when it did.
        self.broken_reason: str | None = None

    # --- the pool ---

    @property
    def pool_id(self) -> uuid.UUID:
        """The runspace pool's id (over WinRM, the shell's id)."""
        return uuid.UUID(str(self._pool.runspace_pool_id))

    @property
    def state(self) -> str:
        """The runspace pool's state: ``BeforeOpen``, ``Opening``, ``Opened``, ``Closed``, ``Broken``…"""
        return str(self._pool.state.name)

    @property
    def opened(self) -> bool:
        return self._pool.state == ps.RunspacePoolState.Opened

    @property
    def application_private_data(self) -> dict[str, Any]:
        """What the server said about itself when the pool opened (``PSVersionTable``…), as pswrap values."""
        with self.lock:
            data = from_psrp(self._pool.application_private_data or {})
        return dict(data) if isinstance(data, dict) else {}

    @property
    def server_protocol(self) -> tuple[int, ...] | None:
        """The PSRP protocol version the server announced (``(2, 3)``), once it has."""
        capability = self._pool.their_capability
        version = getattr(capability, "protocolversion", None)
        if version is None:
            return None
        return tuple(int(part) for part in str(version).split(".") if part.isdigit())

    @property
    def ready(self) -> bool:
        """Opened, with the session key exchanged (SecureStrings can travel both ways)."""
        return self.opened and self.key_ready

    def open(self) -> None:
        """Queue the session capability and INIT_RUNSPACEPOOL messages."""
        with self.lock:
            self._pool.open()

    def outgoing(self) -> list[psrpcore.PSRPPayload]:
        """Every payload waiting to be sent, in order, each at most :attr:`fragment_size` bytes."""
        payloads: list[psrpcore.PSRPPayload] = []
        with self.lock:
            while True:
                payload = self._pool.data_to_send(self.fragment_size)
                if payload is None:
                    return payloads
                payloads.append(payload)

    def receive(self, payload: psrpcore.PSRPPayload) -> list[uuid.UUID]:
        """Process PSRP fragments; returns the ids of pipelines that finished (close their channels).

        Raises :class:`pswrap.ProtocolError` when the fragments or messages are not valid PSRP.
        """
        finished: list[uuid.UUID] = []
        with self.lock:
            outputs: list[tuple[RemotePipeline, Message]] = []
            for message in self._defragmenter.feed(payload.data):
                pipeline = self.pipelines.get(message.pipeline_id) if message.output else None
                if pipeline is not None and pipeline.started:
                    outputs.append((pipeline, message))
                    continue
                finished.extend(self._outputs(outputs, payload))
                outputs = []
                finished.extend(self._through_psrpcore(message, payload))
            finished.extend(self._outputs(outputs, payload))
        return finished

    def _outputs(
        self, outputs: list[tuple[RemotePipeline, Message]], payload: psrpcore.PSRPPayload
    ) -> list[uuid.UUID]:
        """Pipeline output, read by pswrap's reader all at once (see :mod:`._messages`)."""
        if not outputs:
            return []
        values = read_outputs([message.body for _, message in outputs])
        if values is None:  # not one value each: let psrpcore read them one by one
            return [done for _, m in outputs for done in self._through_psrpcore(m, payload)]
        for (pipeline, _), value in zip(outputs, values, strict=True):
            self._put(pipeline, "output", value)
        return []

    def _through_psrpcore(self, message: Message, payload: psrpcore.PSRPPayload) -> list[uuid.UUID]:
        self._pool.receive_data(
            psrpcore.PSRPPayload(message.fragment(), payload.stream_type, payload.pipeline_id)
        )
        return self._drain()

    def _drain(self) -> list[uuid.UUID]:
        """Handle every event psrpcore has ready."""
        finished: list[uuid.UUID] = []
        while True:
            try:
                event = self._pool.next_event()
            except Exception as exc:
                raise ProtocolError(f"pwsh sent a PSRP message pswrap cannot read: {exc}") from exc
            if event is None:
                break
            try:
                done = self._handle(event)
            except ProtocolError:
                raise
            except Exception as exc:
                raise ProtocolError(
                    f"pswrap could not process a {type(event).__name__} from pwsh: {exc!r}"
                ) from exc
            if done is not None:
                finished.append(done)
        return finished

    def fail_all(self, error_for: Callable[[RemotePipeline], TransportError]) -> None:
        """End every unfinished pipeline with the error ``error_for(pipeline)`` (the connection broke)."""
        with self.lock:
            for pipeline in list(self.pipelines.values()):
                pipeline.fail(error_for(pipeline))

    # --- pipelines ---

    def prepare(self, invocation: Invocation) -> RemotePipeline:
        """Check and convert the invocation's values, and register a pipeline for it (not yet sent).

        Raises ``TypeError``/``ValueError`` naming the parameter pswrap cannot send.
        """
        parameters = [
            (name, to_psrp(value, f"parameter {name!r}")) for name, value in invocation.parameters.items()
        ]
        arguments = [to_psrp(value, f"argument {i + 1}") for i, value in enumerate(invocation.arguments)]
        inputs = None
        if invocation.input is not None:
            inputs = [to_psrp(value, f"input object {i + 1}") for i, value in enumerate(invocation.input)]
        pipeline = RemotePipeline(uuid.uuid4(), invocation)
        pipeline._request = (parameters, arguments, inputs)
        with self.lock:
            self.pipelines[pipeline.id] = pipeline
        return pipeline

    def begin(self, pipeline: RemotePipeline, *, with_input: bool = True) -> None:
        """Queue the pipeline's CREATE_PIPELINE message and its input (call once its channel exists).

        ``with_input=False`` holds the input back for :meth:`send_input`: pwsh in server mode drops
        input that reaches it before it acknowledged the packet carrying CREATE_PIPELINE (its own
        client waits for that acknowledgement), and the pipeline then waits for input forever.
        """
        if pipeline._request is None:
            raise RuntimeError("begin() called twice for one pipeline")
        parameters, arguments, inputs = pipeline._request
        pipeline._request = None
        with self.lock:
            if not self.opened:
                raise TransportError(f"the runspace pool is {self.state}, not Opened")
            powershell = psrpcore.ClientPowerShell(
                self._pool,
                host=_PIPELINE_HOST,
                no_input=inputs is None,
                # Records carry where they happened ("At line:1 char:5"), as they do in one-shot mode.
                remote_stream_options=ps.RemoteStreamOptions.AddInvocationInfo,
                pipeline_id=pipeline.id,
            )
            command = psrpcore.Command(pipeline.invocation.command, is_script=pipeline.invocation.is_script)
            for value in arguments:
                command.add_argument(value)
            for name, value in parameters:
                command.add_parameter(name, value)
            powershell.add_command(command)
            try:
                powershell.start()
            except psrpcore.MissingCipherError:
                self._pool.pipeline_table.pop(pipeline.id, None)
                raise TransportError(
                    "a SecureString cannot be sent before the session key is exchanged"
                ) from None
            pipeline._ps = powershell
            pipeline._input = inputs
            if with_input:
                self.send_input(pipeline)

    def send_input(self, pipeline: RemotePipeline) -> None:
        """Queue the input :meth:`begin` held back, and its end (nothing when there is none)."""
        with self.lock:
            inputs, pipeline._input = pipeline._input, None
            powershell = pipeline._ps
            if inputs is None or powershell is None or pipeline.finished:
                return
            for value in inputs:
                powershell.send(value)
            powershell.send_eof()

    def stop(self, pipeline: RemotePipeline) -> bool:
        """Mark the pipeline as stopping; true when a stop signal must be sent for it."""
        with self.lock:
            powershell = pipeline._ps
            if pipeline.finished or powershell is None:
                return False
            if powershell.state != ps.PSInvocationState.Running:
                return False
            powershell.begin_stop()
            return True

    def forget(self, pipeline: RemotePipeline) -> None:
        """Drop a pipeline whose channel is closed (or that never got one)."""
        with self.lock:
            self.pipelines.pop(pipeline.id, None)
            self._pool.pipeline_table.pop(pipeline.id, None)

    def abandon(self, pipeline: RemotePipeline, error: TransportError) -> None:
        """Give up on a pipeline that could not be started."""
        pipeline.fail(error)
        self.forget(pipeline)

    # --- events ---

    def _handle(self, event: psrpcore.PSRPEvent[Any, Any]) -> uuid.UUID | None:
        if isinstance(event, psrpcore.RunspacePoolStateEvent):
            if event.state == ps.RunspacePoolState.Broken:
                reason = event.reason
                self.broken_reason = (
                    str(error_record(from_psrp(reason))) if reason is not None else "no reason given"
                )
            if event.state == ps.RunspacePoolState.Opened and not self._key_requested:
                # Exchange the session key now so that SecureStrings can travel either way later.
                self._key_requested = True
                self._pool.exchange_key()
            return None
        if isinstance(event, psrpcore.EncryptedSessionKeyEvent):
            self.key_ready = True
            return None
        if isinstance(event, (psrpcore.PipelineHostCallEvent, psrpcore.RunspacePoolHostCallEvent)):
            self._host_call(event)
            return None
        pipeline_id = getattr(event, "pipeline_id", None)
        pipeline = self.pipelines.get(pipeline_id) if pipeline_id is not None else None
        if pipeline is None:
            if pipeline_id is not None:
                log.debug("dropping a %s for unknown pipeline %s", type(event).__name__, pipeline_id)
            return None
        if isinstance(event, psrpcore.PipelineOutputEvent):
            self._put(pipeline, "output", from_psrp(event.data))
        elif isinstance(event, psrpcore.ErrorRecordEvent):
            self._put(pipeline, "error", error_record(from_psrp(event.record)))
        elif isinstance(event, psrpcore.WarningRecordEvent):
            self._put(pipeline, "warning", to_record("warning", from_psrp(event.record)))
        elif isinstance(event, psrpcore.VerboseRecordEvent):
            self._put(pipeline, "verbose", to_record("verbose", from_psrp(event.record)))
        elif isinstance(event, psrpcore.DebugRecordEvent):
            self._put(pipeline, "debug", to_record("debug", from_psrp(event.record)))
        elif isinstance(event, psrpcore.InformationRecordEvent):
            self._put(pipeline, "information", to_record("information", from_psrp(event.record)))
        elif isinstance(event, psrpcore.ProgressRecordEvent):
            if pipeline.invocation.progress:
                self._put(pipeline, "progress", to_record("progress", from_psrp(event.record)))
        elif isinstance(event, psrpcore.PipelineStateEvent):
            return self._state(pipeline, event)
        return None

    def _put(self, pipeline: RemotePipeline, stream: str, value: Any) -> None:
        if not pipeline.finished:
            pipeline.items.put(StreamItem(stream, value))

    def _state(self, pipeline: RemotePipeline, event: psrpcore.PipelineStateEvent) -> uuid.UUID | None:
        state = event.state
        if state == ps.PSInvocationState.Completed:
            outcome = Outcome("completed", exit_code=pipeline.exit_code)
        elif state == ps.PSInvocationState.Failed:
            reason = event.reason
            record = error_record(from_psrp(reason)) if reason is not None else None
            outcome = Outcome("failed", error=record, exit_code=pipeline.exit_code)
        elif state == ps.PSInvocationState.Stopped:
            outcome = Outcome("stopped", exit_code=pipeline.exit_code)
        else:
            return None  # Running, Stopping: not the end
        if pipeline.finished:
            return pipeline.id
        pipeline.finished = True
        pipeline.items.put(outcome)
        if pipeline._ps is not None:
            pipeline._ps.close()
        return pipeline.id

    # --- the host ---

    def _host_call(self, event: psrpcore.PipelineHostCallEvent | psrpcore.RunspacePoolHostCallEvent) -> None:
        method = event.method_identifier
        pipeline = self.pipelines.get(event.pipeline_id) if event.pipeline_id else None
        if method == _M.SetShouldExit:
            code = event.method_parameters[0] if event.method_parameters else 0
            if pipeline is None:
                running = [p for p in self.pipelines.values() if not p.finished]
                pipeline = running[0] if len(running) == 1 else None
            if pipeline is not None:
                pipeline.exit_code = int(code)
            return
        if event.ci == -100:  # a void call (WriteLine, SetWindowTitle…): nothing to answer
            return
        answer: Any = None
        if method == _M.GetName:
            answer = HOST_NAME
        elif method == _M.GetVersion:
            answer = ps.PSVersion(HOST_VERSION)
        elif method == _M.GetInstanceId:
            answer = self._instance_id
        elif method in (_M.GetCurrentCulture, _M.GetCurrentUICulture):
            answer = "en-US"
        elif method == _M.GetIsRunspacePushed:
            answer = False
        else:
            what = _PROMPTS.get(method, f"the host call {method.name}")
            refusal = _refusal(what)
            self._pool.host_response(event.ci, error_record=refusal)
            if pipeline is not None:
                # Say so on the error stream too: how PowerShell reports a failed host call varies.
                pipeline.refused_prompts.append(what)
                self._put(pipeline, "error", error_record(from_psrp(refusal)))
            return
        self._pool.host_response(event.ci, answer)


def _refusal(what: str) -> ps.ErrorRecord:
    message = (
        f"pswrap refused {what}: sessions run by pswrap are not interactive. Pass the value as a "
        "parameter instead (for confirmations, -Confirm:$false)."
    )
    return ps.ErrorRecord(
        Exception=ps.NETException(Message=message),
        CategoryInfo=ps.ErrorCategoryInfo(Category=ps.ErrorCategory.NotImplemented, Reason="PromptRefused"),
        FullyQualifiedErrorId="PswrapPromptRefused",
    )
