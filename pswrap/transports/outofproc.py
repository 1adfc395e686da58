"""The out-of-process packet framing of PowerShell remoting, as sans-I/O code.

``pwsh -s`` (and the SSH ``powershell`` subsystem, ``pwsh -sshs``) carry PSRP fragments as one XML
element per line: ``<Data Stream='Default' PSGuid='…'>base64</Data>``, ``<Command PSGuid='…' />``,
``<Close …/>``, ``<Signal …/>`` and their ``…Ack`` answers. The PSGuid is the pipeline's id, or the
empty GUID for the runspace pool. :class:`PacketReader` turns bytes (split anywhere) into
:class:`Packet` s and refuses anything else; :meth:`Packet.to_bytes` writes one. No I/O here: the
same code serves a process's pipes, an SSH channel or a test.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Final, NamedTuple
from xml.etree import ElementTree

from pswrap.errors import ProtocolError

__all__ = ["EMPTY_GUID", "KINDS", "Packet", "PacketReader"]

#: The PSGuid of packets for the runspace pool itself.
EMPTY_GUID: Final = uuid.UUID(int=0)

#: Every packet kind. Clients send Data, Command, Close and Signal; servers answer with the rest (and Data).
KINDS: Final = ("Data", "DataAck", "Command", "CommandAck", "Close", "CloseAck", "Signal", "SignalAck")

STREAMS: Final = ("Default", "PromptResponse")

# pwsh's fragments are at most tens of KiB; a line this long is not a packet.
MAX_LINE: Final = 16 * 1024 * 1024
_SHOWN = 200


class Packet(NamedTuple):
    """One out-of-process packet. ``data`` and ``stream`` only mean something for ``Data``."""

    kind: str
    guid: uuid.UUID = EMPTY_GUID
    data: bytes = b""
    stream: str = "Default"

    @classmethod
    def for_data(cls, data: bytes, guid: uuid.UUID | None = None, *, stream: str = "Default") -> Packet:
        """A ``Data`` packet carrying PSRP fragments for the pool (``guid=None``) or a pipeline."""
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {', '.join(STREAMS)}, not {stream!r}")
        return cls("Data", guid or EMPTY_GUID, bytes(data), stream)

    def to_bytes(self) -> bytes:
        """The packet as one line, newline included."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown packet kind {self.kind!r}")
        guid = str(self.guid).encode("ascii")
        if self.kind == "Data":
            stream = self.stream.encode("ascii")
            return b"<Data Stream='%s' PSGuid='%s'>%s</Data>\n" % (stream, guid, base64.b64encode(self.data))
        return b"<%s PSGuid='%s' />\n" % (self.kind.encode("ascii"), guid)


class PacketReader:
    """Feed it bytes as they are read; it returns the packets completed so far.

    Strict, like pwsh itself: an empty line, an unknown element or attribute, a bad GUID or bad
    base64 raises :class:`pswrap.ProtocolError` (whose ``partial`` holds the packets completed in
    that call before the bad line). A ``\\r`` before the newline is accepted (Windows line ends).
    """

    def __init__(self, *, max_line: int = MAX_LINE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._offset = 0  # bytes consumed before the buffer, for error messages

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by ``data``."""
        self._buffer += data
        packets: list[Packet] = []
        start = 0
        buffer = self._buffer
        try:
            while True:
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                line = bytes(buffer[start:end])
                packets.append(self._parse(line.removesuffix(b"\r"), self._offset + start))
                start = end + 1
        except ProtocolError as exc:
            exc.partial = packets
            raise
        finally:
            del buffer[:start]
            self._offset += start
        if len(buffer) > self._max_line:
            raise ProtocolError(
                f"a line of more than {self._max_line} bytes at byte {self._offset} is not a packet",
                data=bytes(buffer[:_SHOWN]),
                partial=packets,
            )
        return packets

    def close(self) -> None:
        """Check the input ended on a packet boundary."""
        if self._buffer:
            raise ProtocolError(
                f"the input ended inside a packet at byte {self._offset}: {_show(bytes(self._buffer))}",
                data=bytes(self._buffer[:_SHOWN]),
            )

    @property
    def pending(self) -> int:
        """How many bytes of an unfinished line are buffered."""
        return len(self._buffer)

    def _parse(self, line: bytes, offset: int) -> Packet:
        def bad(reason: str) -> ProtocolError:
            return ProtocolError(
                f"not an out-of-process packet at byte {offset} ({reason}): {_show(line)}", data=line[:_SHOWN]
            )

        if not line:
            raise bad("an empty line")
        if not line.startswith(b"<") or b"<!" in line or b"<?" in line:
            raise bad("not a single XML element")
        try:
            element = ElementTree.fromstring(line.decode("ascii"))
        except (UnicodeDecodeError, ElementTree.ParseError) as exc:
            raise bad(f"not well-formed: {exc}") from None
        kind = element.tag
        if kind not in KINDS:
            raise bad(f"unknown element {kind!r}")
        if len(element):
            raise bad("the element has children")
        allowed = {"PSGuid", "Stream"} if kind == "Data" else {"PSGuid"}
        unknown = set(element.attrib) - allowed
        if unknown:
            raise bad(f"unknown attribute {sorted(unknown)[0]!r}")
        raw_guid = element.attrib.get("PSGuid")
        if raw_guid is None:
            raise bad("no PSGuid")
        try:
            guid = uuid.UUID(raw_guid)
        except ValueError:
            raise bad(f"PSGuid {raw_guid!r} is not a GUID") from None
        text = element.text or ""
        if kind != "Data":
            if text.strip():
                raise bad(f"{kind} carries text")
            return Packet(kind, guid)
        stream = element.attrib.get("Stream")
        if stream not in STREAMS:
            raise bad(f"Stream must be Default or PromptResponse, not {stream!r}")
        try:
            data = base64.b64decode(text.strip(), validate=True)
        except binascii.Error:
            raise bad("the data is not base64") from None
        return Packet("Data", guid, data, stream)


def _show(data: bytes) -> str:
    shown = data[:_SHOWN]
    return repr(shown) + ("…" if len(data) > _SHOWN else "")
