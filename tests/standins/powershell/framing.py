"""The out-of-process PSRP packets: one XML element per line, sans I/O.

Feed bytes as they arrive to :class:`LineReader` (a packet may be split across reads, several may come
in one); :func:`parse_packet` turns a line into a :class:`Packet`; :func:`data_packet`,
:func:`ack_packet` and :func:`action_packet` build lines to send. The shapes are pwsh's own
(``OutOfProcessUtils``): single-quoted attributes, lower-case GUIDs, ``Stream='Default'`` or
``'PromptResponse'``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree

EMPTY_GUID = uuid.UUID(int=0)
ACTIONS = ("Data", "Command", "Close", "Signal")
ACKS = tuple(f"{action}Ack" for action in ACTIONS)


class FramingError(Exception):
    """A line that is not a packet pwsh accepts; the message is pwsh's."""


@dataclass(frozen=True)
class Packet:
    kind: str  # Data, Command, Close, Signal, or one of the ...Ack kinds
    guid: uuid.UUID
    stream: str = "Default"
    data: bytes = b""


def unknown_element(name: str) -> str:
    return (
        f'An unknown element "{name}" was received. This can happen if the remote process closed or ended '
        "abnormally."
    )


class LineReader:
    """Splits a byte stream into lines, keeping a partial line until its newline arrives."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return lines
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            lines.append(line[:-1] if line.endswith(b"\r") else line)

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)


def parse_packet(line: bytes) -> Packet:
    """One line as a packet; raises :class:`FramingError` with pwsh's message for anything else."""
    if not line.strip():
        raise FramingError(unknown_element(""))
    try:
        text = line.decode("utf-8")
        element = ElementTree.fromstring(text)
    except (UnicodeDecodeError, ElementTree.ParseError):
        raise FramingError("Data at the root level is invalid. Line 1, position 1.") from None
    kind = element.tag
    if kind not in ACTIONS and kind not in ACKS:
        raise FramingError(unknown_element(kind))
    raw_guid = element.attrib.get("PSGuid")
    if raw_guid is None:
        raise FramingError("Value cannot be null. (Parameter 'g')")
    try:
        guid = uuid.UUID(raw_guid)
    except ValueError:
        raise FramingError(
            "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
        ) from None
    if kind != "Data":
        return Packet(kind, guid)
    stream = element.attrib.get("Stream", "Default")
    try:
        data = base64.b64decode(element.text or "", validate=True)
    except (binascii.Error, ValueError):
        raise FramingError(
            "The input is not a valid Base-64 string as it contains a non-base 64 character, more than two "
            "padding characters, or an illegal character among the padding characters."
        ) from None
    return Packet(kind, guid, stream, data)


def data_packet(guid: uuid.UUID | None, data: bytes, stream: str = "Default") -> bytes:
    encoded = base64.b64encode(data).decode("ascii")
    return f"<Data Stream='{stream}' PSGuid='{guid or EMPTY_GUID}'>{encoded}</Data>\n".encode("ascii")


def ack_packet(kind: str, guid: uuid.UUID | None) -> bytes:
    return f"<{kind}Ack PSGuid='{guid or EMPTY_GUID}' />\n".encode("ascii")


def action_packet(kind: str, guid: uuid.UUID | None) -> bytes:
    """A Command/Close/Signal packet (what a client sends)."""
    return f"<{kind} PSGuid='{guid or EMPTY_GUID}' />\n".encode("ascii")
