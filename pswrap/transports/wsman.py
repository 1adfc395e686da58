"""The WS-Management shell messages that carry PSRP to a WinRM host ([MS-WSMV], [MS-PSRP] 3.x), no I/O.

A runspace pool is a *shell* created at ``http://schemas.microsoft.com/powershell/<configuration>``
whose ``creationXml`` holds the pool's opening PSRP fragments. Each pipeline is a *Command* (its id is
the pipeline's id) whose argument holds the pipeline's first fragments; *Send* carries the rest on
``stdin`` (``pr`` for answers to prompts); *Receive* returns what PowerShell sent on ``stdout`` and the
command's state; *Signal* stops a pipeline (``powershell/signal/crtl_c``, misspelt as PowerShell spells
it) or closes its command (``Terminate``); *Delete* closes the shell. The functions here build the message bodies and read the
answers; a transport puts them in SOAP envelopes and moves them (pypsrp's ``WSMan`` does both).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree as ET

__all__ = [
    "CONFIG_RESOURCE",
    "DEFAULT_ENVELOPE_SIZE",
    "LARGE_ENVELOPE_SIZE",
    "OPERATION_TIMED_OUT",
    "PROTOCOL_VERSION",
    "SHELL_NOT_FOUND",
    "SHELL_RESOURCE",
    "Received",
    "Signal",
    "command",
    "command_id",
    "create_shell",
    "max_envelope_size",
    "parse_receive",
    "receive",
    "resource_uri",
    "send",
    "shell_selectors",
    "shell_state",
    "signal",
]

RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
PWSH = "http://schemas.microsoft.com/powershell"
_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
_WST = "http://schemas.xmlsoap.org/ws/2004/09/transfer"

#: The generic shell resource: a WSMan Get of it (with the ShellId selector) describes a live shell.
SHELL_RESOURCE = RSP
#: The PSRP protocol version announced when creating the shell (PowerShell 5.1 and 7 speak 2.3).
PROTOCOL_VERSION = "2.3"
#: The envelope every WinRM host accepts (WinRM 2.0's 150 KB): used until the host says more.
DEFAULT_ENVELOPE_SIZE = 153_600
#: What hosts speaking PSRP 2.2 or later (WinRM 3.0+: Windows 8/2012 and later) accept by default, 500 KB;
#: PowerShell's own client uses it unless the server's protocol is 2.1 or older, and so does pypsrp.
LARGE_ENVELOPE_SIZE = 512_000
#: The host's WinRM configuration: a WSMan Get of it tells its MaxEnvelopeSizekb (to administrators).
CONFIG_RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/config"
#: WSMan fault: nothing happened within the OperationTimeout (a Receive with nothing to say): poll again.
OPERATION_TIMED_OUT = 2150858793
#: WSMan fault: the shell does not exist (closed after being idle, the host restarted, or deleted).
SHELL_NOT_FOUND = 2150858843

_DONE = f"{RSP}/CommandState/Done"
_CONFIGURATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Signal:
    """Signal codes PSRP uses."""

    #: Stop the pipeline (PowerShell's Stop()); the pipeline ends in the Stopped state. Misspelt exactly
    #: so: PowerShell's client sends it (``WSManClientCommandTransportManager.StopSignal``) and its WinRM
    #: plugin compares against it (``WSManPluginConstants.CtrlCSignal``, ordinal); any other code, the
    #: correctly spelt ``ctrl_c`` included, makes the host close the command instead of stopping it.
    STOP = "powershell/signal/crtl_c"
    #: Close the command and release what the host holds for it.
    TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/Terminate"


def resource_uri(configuration: str) -> str:
    """The resource URI of a PowerShell session configuration (``Microsoft.PowerShell``, a JEA endpoint…)."""
    if not isinstance(configuration, str) or not _CONFIGURATION.match(configuration):
        raise ValueError(
            f"{configuration!r} is not a session configuration name (like Microsoft.PowerShell or "
            "PowerShell.7)"
        )
    return f"{PWSH}/{configuration}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def create_shell(shell_id: uuid.UUID, creation: bytes) -> ET.Element:
    """The body of Create: a shell with the pool's id and its opening fragments in ``creationXml``."""
    shell = ET.Element(f"{{{RSP}}}Shell", ShellId=str(shell_id).upper())
    ET.SubElement(shell, f"{{{RSP}}}InputStreams").text = "stdin pr"
    ET.SubElement(shell, f"{{{RSP}}}OutputStreams").text = "stdout"
    ET.SubElement(shell, f"{{{PWSH}}}creationXml").text = _b64(creation)
    return shell


def command(pipeline_id: uuid.UUID, first: bytes) -> ET.Element:
    """The body of Command: the pipeline's command, carrying its first fragments (CREATE_PIPELINE)."""
    line = ET.Element(f"{{{RSP}}}CommandLine", CommandId=str(pipeline_id).upper())
    ET.SubElement(line, f"{{{RSP}}}Command")
    ET.SubElement(line, f"{{{RSP}}}Arguments").text = _b64(first)
    return line


def send(stream: str, data: bytes, pipeline_id: uuid.UUID | None = None) -> ET.Element:
    """The body of Send: fragments for the pool (no pipeline) or a pipeline, on ``stdin`` or ``pr``."""
    body = ET.Element(f"{{{RSP}}}Send")
    element = ET.SubElement(body, f"{{{RSP}}}Stream", Name=stream)
    if pipeline_id is not None:
        element.set("CommandId", str(pipeline_id).upper())
    element.text = _b64(data)
    return body


def receive(pipeline_id: uuid.UUID | None = None) -> ET.Element:
    """The body of Receive: what the pool (no pipeline) or a pipeline sent on ``stdout``."""
    body = ET.Element(f"{{{RSP}}}Receive")
    desired = ET.SubElement(body, f"{{{RSP}}}DesiredStream")
    desired.text = "stdout"
    if pipeline_id is not None:
        desired.set("CommandId", str(pipeline_id).upper())
    return body


def signal(pipeline_id: uuid.UUID, code: str) -> ET.Element:
    """The body of Signal: ``code`` (:class:`Signal`) for the pipeline's command."""
    body = ET.Element(f"{{{RSP}}}Signal", CommandId=str(pipeline_id).upper())
    ET.SubElement(body, f"{{{RSP}}}Code").text = code
    return body


def shell_selectors(body: ET.Element) -> list[tuple[str, str]]:
    """The selectors that address the shell a Create answer describes (``[("ShellId", "…")]``)."""
    found = body.find(f"{{{_WST}}}ResourceCreated/{{{_WSA}}}ReferenceParameters/{{{_WSMAN}}}SelectorSet")
    selectors = [] if found is None else [(s.get("Name", ""), s.text or "") for s in found]
    if not any(name == "ShellId" for name, _ in selectors):
        shell_id = body.findtext(f"{{{RSP}}}Shell/{{{RSP}}}ShellId")
        if not shell_id:
            raise ValueError("the Create answer names no shell (no ShellId selector)")
        selectors.append(("ShellId", shell_id))
    return selectors


def max_envelope_size(body: ET.Element) -> int | None:
    """The host's MaxEnvelopeSizekb, in bytes, from the answer to a Get of :data:`CONFIG_RESOURCE`."""
    text = body.findtext(f"{{{CONFIG_RESOURCE}}}Config/{{{CONFIG_RESOURCE}}}MaxEnvelopeSizekb")
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip()) * 1024


def shell_state(body: ET.Element) -> str | None:
    """The ``State`` a Get of a shell reports (``Connected``, ``Disconnected``), when it says."""
    return body.findtext(f"{{{RSP}}}Shell/{{{RSP}}}State")


def command_id(body: ET.Element) -> str | None:
    """The CommandId a Command answer confirms."""
    return body.findtext(f"{{{RSP}}}CommandResponse/{{{RSP}}}CommandId")


@dataclass(frozen=True)
class Received:
    """A Receive answer: the ``stdout`` data in order, and whether the command is done."""

    data: list[bytes]
    done: bool


def parse_receive(body: ET.Element) -> Received:
    """Read a Receive answer. Raises ``ValueError`` for a stream that is not base64."""
    response = body.find(f"{{{RSP}}}ReceiveResponse")
    if response is None:
        raise ValueError("the answer to Receive has no ReceiveResponse")
    data = []
    for stream in response.findall(f"{{{RSP}}}Stream"):
        if stream.get("Name") != "stdout" or not stream.text:
            continue
        try:
            data.append(base64.b64decode(stream.text, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("a Receive stream is not base64") from None
    state = response.find(f"{{{RSP}}}CommandState")
    done = state is not None and state.get("State") == _DONE
    return Received(data, done)
