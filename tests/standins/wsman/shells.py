"""The WS-Management shell operations PSRP uses, each shell hosting the pwsh stand-in's PSRP runtime.

A shell is a runspace pool: Create feeds its ``creationXml`` to a fresh :class:`PsrpServer`; Command
opens a pipeline's channel and feeds its argument (CREATE_PIPELINE); Send feeds ``stdin``/``pr``;
Receive waits for what the runtime sent for the pool or a command, up to the request's
OperationTimeout, then answers the timed-out fault (clients poll again), and never answers more than the
request's MaxEnvelopeSize; Signal ``powershell/signal/crtl_c`` (misspelt, as PowerShell's plugin compares
it, ordinally) stops a pipeline, and any other code - ``Terminate``, the correctly spelt ``ctrl_c`` - closes
its command, after which the command is unknown (fault 2150858843, as Windows answers); Delete closes the
pool. Shells belong to the user who created them.
"""

from __future__ import annotations

import base64
import binascii
import collections
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import psrpcore

from tests.standins.powershell.engine import Engine
from tests.standins.powershell.framing import EMPTY_GUID
from tests.standins.powershell.runtime import PsrpServer
from tests.standins.wsman.soap import PWSH, RSP, WSA, WSMAN, WST, Code, Fault, Request

CTRL_C = "powershell/signal/crtl_c"  # sic: WSManPluginConstants.CtrlCSignal
TERMINATE = f"{RSP}/signal/Terminate"
PENDING = f"{RSP}/CommandState/Pending"  # what Windows says of a PowerShell command not yet done
DONE = f"{RSP}/CommandState/Done"
RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
_ENVELOPE_OVERHEAD = 2048  # headers and the ReceiveResponse skeleton
_PER_STREAM = 200  # one rsp:Stream element around its base64


def largest_payload(max_envelope_size: int) -> int:
    """The largest PSRP payload one Receive answer can carry within the client's MaxEnvelopeSize."""
    return (max_envelope_size - _ENVELOPE_OVERHEAD - _PER_STREAM) * 3 // 4 - 4


def _data(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Fault(Code.INVALID_PARAMETER, f"The WS-Management service cannot process the request: {what} is "
                    "not base64.") from None  # fmt: skip


def command_not_found() -> Fault:
    """What Windows answers a Receive/Send/Signal naming a command it does not have (closed or unknown)."""
    return Fault(
        Code.SHELL_NOT_FOUND,
        "The Windows Remote Shell received a request to perform an operation on a command identifier that does "
        "not exist. Either the command has completed execution or the client specified an invalid command "
        "identifier. ",
        reason="The WS-Management service cannot process the request because the request contained invalid "
        "selectors for the resource. ",
        detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def shell_not_found(shell_id: str) -> Fault:
    return Fault(
        Code.SHELL_NOT_FOUND,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not "
        "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer "
        "exists on the server. Provide the correct ShellId or create a new shell and retry the operation. ",
    )


@dataclass
class _Command:
    id: uuid.UUID
    out: collections.deque[bytes] = field(default_factory=collections.deque)
    ended: bool = False
    terminated: bool = False


class Shell:
    """One shell: a PSRP runspace pool on the runtime, the data waiting to be received, its commands.

    It is the runtime's Channel: ``send`` queues payloads for the pool or their command.
    """

    def __init__(
        self, shell_id: str, resource_uri: str, owner: str, engine: Engine, fragment_size: int
    ) -> None:
        self.id = shell_id
        self.resource_uri = resource_uri
        self.owner = owner
        self.created = time.monotonic()
        self.cond = threading.Condition()
        self.pool_out: collections.deque[bytes] = collections.deque()
        self.commands: dict[uuid.UUID, _Command] = {}
        self.broken: str | None = None
        self.deleted = False
        self.server = PsrpServer(
            engine,
            self,
            fragment_size=fragment_size,
            on_pipeline_end=self._pipeline_ended,
            log=lambda message: None,
        )

    # --- the runtime's Channel ---

    def send(self, payload: psrpcore.PSRPPayload) -> None:
        with self.cond:
            if payload.pipeline_id is None:
                self.pool_out.append(payload.data)
            else:
                command = self.commands.get(payload.pipeline_id)
                if command is not None:
                    command.out.append(payload.data)
            self.cond.notify_all()

    def acknowledge(self, action: str, guid: uuid.UUID) -> None:
        """WSMan has no acknowledgements: each request's answer is one."""

    def fatal(self, message: str) -> None:
        with self.cond:
            self.broken = message
            self.cond.notify_all()

    def _pipeline_ended(self, pipeline_id: uuid.UUID) -> None:
        with self.cond:
            command = self.commands.get(pipeline_id)
            if command is not None:
                command.ended = True
            self.cond.notify_all()

    # --- operations (never called holding self.cond: the runtime calls back into send) ---

    def check(self) -> None:
        if self.deleted:
            raise shell_not_found(self.id)
        if self.broken is not None:
            raise Fault(Code.PROVIDER_FAILURE, f"The PowerShell plug-in failed: {self.broken}")

    def command(self, pipeline_id: uuid.UUID, data: bytes) -> None:
        with self.cond:
            self.commands.setdefault(pipeline_id, _Command(pipeline_id))
        self.server.command(pipeline_id)
        if data:
            self.server.data(pipeline_id, data)
        self.check()

    def input(self, pipeline_id: uuid.UUID | None, data: bytes, stream: str) -> None:
        if pipeline_id is not None and pipeline_id not in self.commands:
            raise command_not_found()
        self.server.data(pipeline_id or EMPTY_GUID, data, "PromptResponse" if stream == "pr" else "Default")
        self.check()

    def receive(
        self, pipeline_id: uuid.UUID | None, timeout: float, max_envelope: int
    ) -> tuple[list[bytes], bool]:
        """Wait for data (or the command's end); ``([], False)`` means the OperationTimeout passed."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                self.check()
                if pipeline_id is None:
                    queue = self.pool_out
                    ended = False
                else:
                    command = self.commands.get(pipeline_id)
                    if command is None:
                        raise command_not_found()
                    queue = command.out
                    ended = command.ended or command.terminated
                if queue or ended:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], False
                self.cond.wait(remaining)
            budget = max_envelope - _ENVELOPE_OVERHEAD
            taken: list[bytes] = []
            while queue:
                size = len(queue[0]) * 4 // 3 + 4 + _PER_STREAM
                if size > budget:
                    if not taken:
                        raise Fault(Code.MAX_ENVELOPE_SIZE_EXCEEDED, "The response that the WS-Management service "
                                    "computed exceeds the maximum envelope size in the request.")  # fmt: skip
                    break
                budget -= size
                taken.append(queue.popleft())
            return taken, ended and not queue

    def stop(self, pipeline_id: uuid.UUID) -> None:
        self.server.signal(pipeline_id)

    def terminate(self, pipeline_id: uuid.UUID) -> None:
        """Close the command: what it had not yet delivered is gone, and so is the command itself."""
        with self.cond:
            command = self.commands.pop(pipeline_id, None)
            if command is None:
                return
            command.terminated = True
            command.out.clear()
            self.cond.notify_all()
        self.server.close(pipeline_id)

    def delete(self) -> None:
        """Close every command, then the pool; pending Receives answer that the shell is gone."""
        with self.cond:
            commands = list(self.commands)
        for pipeline_id in commands:
            self.server.close(pipeline_id)
        if self.broken is None:
            self.server.close(EMPTY_GUID)
        self.drop()

    def drop(self) -> None:
        """Forget the shell at once (the host restarted, or the shell idled out): no clean close."""
        self.server.shutdown()
        with self.cond:
            self.deleted = True
            self.cond.notify_all()

    def describe(self, client_ip: str) -> ET.Element:
        """The shell as Windows describes it (in the Create answer and to a Get), property for property."""
        shell = ET.Element(f"{{{RSP}}}Shell")
        for tag, value in (
            ("ShellId", self.id),
            ("ResourceUri", self.resource_uri),
            ("Owner", self.owner),
            ("ClientIP", client_ip),
            ("ProcessId", "4242"),
            ("IdleTimeOut", "PT7200.000S"),
            ("InputStreams", "stdin pr"),
            ("OutputStreams", "stdout"),
            ("MaxIdleTimeOut", "PT2147483.647S"),
            ("Locale", "en-US"),
            ("DataLocale", "en-US"),
            ("CompressionMode", "NoCompression"),
            ("ProfileLoaded", "Yes"),
            ("Encoding", "UTF8"),
            ("BufferMode", "Block"),
            ("State", "Connected"),
            ("ShellRunTime", _duration(time.monotonic() - self.created)),
            ("ShellInactivity", "P0DT0H0M0S"),
        ):
            ET.SubElement(shell, f"{{{RSP}}}{tag}").text = value
        return shell


def _duration(seconds: float) -> str:
    """An xs:duration as Windows writes a shell's times: ``P0DT0H1M2S``."""
    whole = int(seconds)
    return f"P{whole // 86400}DT{whole % 86400 // 3600}H{whole % 3600 // 60}M{whole % 60}S"


class Shells:
    """Every shell of the host, and the WS-Management operations on them."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        *,
        configurations: set[str],
        denied_users: set[str],
        endpoint: str,
    ) -> None:
        self._engine_factory = engine_factory
        self.configurations = configurations
        self.denied_users = denied_users
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self.shells: dict[str, Shell] = {}
        #: Every Signal code received, in order.
        self.signals: list[str] = []

    def _get(self, request: Request, user: str) -> Shell:
        shell_id = request.shell_id
        if not shell_id:
            raise Fault(Code.SHELL_NOT_FOUND, "The WS-Management service cannot process the request because the "
                        "request did not contain all required selectors (ShellId).")  # fmt: skip
        with self._lock:
            shell = self.shells.get(shell_id)
        if shell is None or shell.deleted:
            raise shell_not_found(shell_id)
        if shell.owner.casefold() != user.casefold():
            raise Fault(Code.ACCESS_DENIED, "Access is denied.")
        shell.check()
        return shell

    def create(self, request: Request, user: str, client_ip: str) -> list[ET.Element]:
        if not request.resource_uri.startswith(RESOURCE_PREFIX):
            raise Fault(Code.RESOURCE_NOT_FOUND, "The WS-Management service cannot process the request. The "
                        f"resource URI {request.resource_uri} was not found.")  # fmt: skip
        configuration = request.resource_uri[len(RESOURCE_PREFIX) :]
        if configuration not in self.configurations:
            raise Fault(Code.RESOURCE_NOT_FOUND, "The WS-Management service cannot process the request. Cannot find "
                        f"the {configuration} session configuration in the WSMan: drive on the localhost "
                        "computer.")  # fmt: skip
        if user.casefold() in self.denied_users:
            raise Fault(Code.ACCESS_DENIED, "Access is denied.")
        body = request.body
        if body is None or body.tag != f"{{{RSP}}}Shell":
            raise Fault(Code.INVALID_PARAMETER, "The WS-Management service cannot process the request: Create "
                        "needs an rsp:Shell.")  # fmt: skip
        creation = body.find(f"{{{PWSH}}}creationXml")
        if creation is None:
            raise Fault(Code.INVALID_PARAMETER, "The WS-Management service cannot process the request: a PowerShell "
                        "shell needs creationXml (the runspace pool's opening fragments).")  # fmt: skip
        data = _data(creation.text, "creationXml")
        shell_id = (body.get("ShellId") or str(uuid.uuid4())).upper()
        fragment_size = max(1024, min(32_768, largest_payload(request.max_envelope_size)))
        shell = Shell(shell_id, request.resource_uri, user, self._engine_factory(), fragment_size)
        with self._lock:
            if shell_id in self.shells and not self.shells[shell_id].deleted:
                raise Fault(Code.INVALID_PARAMETER, f"A shell with ShellId {shell_id} already exists.")
            self.shells[shell_id] = shell
        shell.server.data(EMPTY_GUID, data)
        shell.check()
        created = ET.Element(f"{{{WST}}}ResourceCreated")
        ET.SubElement(created, f"{{{WSA}}}Address").text = self.endpoint
        reference = ET.SubElement(created, f"{{{WSA}}}ReferenceParameters")
        ET.SubElement(reference, f"{{{WSMAN}}}ResourceURI").text = request.resource_uri
        selectors = ET.SubElement(reference, f"{{{WSMAN}}}SelectorSet")
        ET.SubElement(selectors, f"{{{WSMAN}}}Selector", Name="ShellId").text = shell_id
        # Windows answers with the ResourceCreated and the shell's description side by side in the body.
        return [created, shell.describe(client_ip)]

    def get(self, request: Request, user: str, client_ip: str) -> ET.Element:
        return self._get(request, user).describe(client_ip)

    def command(self, request: Request, user: str) -> ET.Element:
        shell = self._get(request, user)
        body = request.body
        if body is None or body.tag != f"{{{RSP}}}CommandLine":
            raise Fault(Code.INVALID_PARAMETER, "The WS-Management service cannot process the request: Command "
                        "needs an rsp:CommandLine.")  # fmt: skip
        command_id = body.get("CommandId")
        try:
            pipeline_id = uuid.UUID(command_id) if command_id else uuid.uuid4()
        except ValueError:
            raise Fault(Code.INVALID_PARAMETER, f"CommandId {command_id!r} is not a GUID.") from None
        arguments = body.find(f"{{{RSP}}}Arguments")
        shell.command(pipeline_id, _data(arguments.text if arguments is not None else "", "Arguments"))
        response = ET.Element(f"{{{RSP}}}CommandResponse")
        ET.SubElement(response, f"{{{RSP}}}CommandId").text = str(pipeline_id).upper()
        return response

    def send(self, request: Request, user: str) -> ET.Element:
        shell = self._get(request, user)
        body = request.body
        if body is None or body.tag != f"{{{RSP}}}Send":
            raise Fault(Code.INVALID_PARAMETER, "Send needs an rsp:Send.")
        for stream in body.findall(f"{{{RSP}}}Stream"):
            name = stream.get("Name")
            if name not in ("stdin", "pr"):
                raise Fault(
                    Code.INVALID_PARAMETER, f"The shell has no input stream {name!r} (it has stdin, pr)."
                )
            command_id = stream.get("CommandId")
            shell.input(uuid.UUID(command_id) if command_id else None, _data(stream.text, "Stream"), name)
        return ET.Element(f"{{{RSP}}}SendResponse")

    def receive(self, request: Request, user: str) -> ET.Element | None:
        """The ReceiveResponse, or ``None`` when the OperationTimeout passed with nothing to say."""
        shell = self._get(request, user)
        desired = request.body.find(f"{{{RSP}}}DesiredStream") if request.body is not None else None
        if desired is None or (desired.text or "").strip() != "stdout":
            raise Fault(Code.INVALID_PARAMETER, "A PowerShell shell has one output stream: stdout.")
        command_id = desired.get("CommandId")
        pipeline_id = uuid.UUID(command_id) if command_id else None
        data, done = shell.receive(pipeline_id, request.operation_timeout, request.max_envelope_size)
        if not data and not done:
            return None
        response = ET.Element(f"{{{RSP}}}ReceiveResponse")
        for chunk in data:
            stream = ET.SubElement(response, f"{{{RSP}}}Stream", Name="stdout")
            if command_id:
                stream.set("CommandId", command_id.upper())
            stream.text = base64.b64encode(chunk).decode("ascii")
        if command_id:
            state = ET.SubElement(response, f"{{{RSP}}}CommandState", CommandId=command_id.upper())
            state.set("State", DONE if done else PENDING)
            if done:  # Windows reports the plugin's exit code, always 0 for PowerShell
                ET.SubElement(state, f"{{{RSP}}}ExitCode").text = "0"
        return response

    def signal(self, request: Request, user: str) -> ET.Element:
        shell = self._get(request, user)
        body = request.body
        if body is None or body.tag != f"{{{RSP}}}Signal" or not body.get("CommandId"):
            raise Fault(Code.INVALID_PARAMETER, "Signal needs an rsp:Signal with a CommandId.")
        pipeline_id = uuid.UUID(body.get("CommandId", ""))
        code = (body.findtext(f"{{{RSP}}}Code") or "").strip()
        if pipeline_id not in shell.commands:
            raise command_not_found()
        if code == CTRL_C:  # an ordinal comparison, as in WSManPlugin.PerformWSManPluginSignal
            shell.stop(pipeline_id)
        else:  # Terminate, and any other code (ctrl_c spelt right included): close the command
            shell.terminate(pipeline_id)
        self.signals.append(code)
        return ET.Element(f"{{{RSP}}}SignalResponse")

    def close_command(self, request: Request, user: str) -> None:
        """Close the command a Receive names, as a Terminate from elsewhere would (a fault switch)."""
        desired = request.body.find(f"{{{RSP}}}DesiredStream") if request.body is not None else None
        command_id = desired.get("CommandId") if desired is not None else None
        if command_id:
            self._get(request, user).terminate(uuid.UUID(command_id))

    def delete(self, request: Request, user: str) -> None:
        shell = self._get(request, user)
        shell.delete()
        with self._lock:
            self.shells.pop(shell.id, None)

    def drop_all(self) -> int:
        """Forget every shell at once (as a restart of the WinRM service would). Returns how many."""
        with self._lock:
            shells, self.shells = list(self.shells.values()), {}
        for shell in shells:
            shell.drop()
        return len(shells)
